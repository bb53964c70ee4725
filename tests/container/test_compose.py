"""The image and compose.yaml, built and run with real podman against the local exchange.

One module, one sequence (each step needs the one before): a Debian base image made from
the package mirror with debootstrap (``shared/reference/containers.md``), the Dockerfile
built FROM it, then compose.yaml's ``collector`` and ``dashboard`` with compose.demo.yaml's
``exchange`` started by podman-compose on a fresh named volume. It checks what a user of
``docker compose up`` relies on: the dashboard page draws a chart in headless Chromium
through the published port with the token, the ticks are on the volume, the collector's
healthcheck says "storing", ``podman stop`` makes the collector flush and exit 0 and a
restart continues with no hole in the trade ids, and nothing in the containers runs as root.
It prints the image size and the cold-start figures (run with -s).

Skipped, with the reason, where podman, debootstrap (for a missing base image), Chromium or
container mounts are not available. Runs only when asked: ``make test-container``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# podman-compose from the dev extras, beside this interpreter (the venv is not on PATH)
COMPOSE = shutil.which("podman-compose", path=str(Path(sys.executable).parent)) or shutil.which(
    "podman-compose"
)
BASE = os.environ.get("LQ_TEST_BASE_IMAGE", "localhost/debian-base:bookworm")
IMAGE = "localhost/lq:test"
UID = 10001  # the Dockerfile's LQ_UID
SYMBOLS = "BTCUSDT,ETHUSDT"
# the budget of issue 13: cold container start to a served page
COLD_START_BUDGET_S = 20.0

pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(1800)]

# podman on these machines (containers.md): runc (crun refuses the hybrid cgroup layout),
# cgroupfs, and ulimits at or below the current ones. A containers.conf of the test's own
# carries them, so podman-compose runs compose.yaml unchanged.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]

# the newest x of the market chart (the same probe as tests/dashboard/test_dashboard_browser.py)
JS_CHART = """() => {
  const gd = document.querySelector('.js-plotly-plot');
  if (!gd || !gd.data || !gd.data[0] || !gd.data[0].x || !gd.data[0].x.length) return null;
  return gd.data[0].x.length;
}"""


@dataclass
class Podman:
    env: dict[str, str]
    log: Path

    def run(
        self, *args: str, check: bool = True, timeout: float = 600, quiet: bool = False
    ) -> subprocess.CompletedProcess[str]:
        t0 = time.monotonic()
        p = subprocess.run(
            ["podman", *args], capture_output=True, text=True, env=self.env, timeout=timeout
        )
        with self.log.open("a") as f:
            f.write(
                f"$ podman {' '.join(args)}  # {time.monotonic() - t0:.1f} s, rc {p.returncode}\n"
            )
            if not quiet:
                f.write(p.stdout[-4000:] + p.stderr[-4000:] + "\n")
        if check and p.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args)} exited {p.returncode}:\n{p.stderr[-3000:]}"
            )
        return p


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    if shutil.which("podman") is None:
        pytest.skip(
            "podman is not installed (`make test-container` installs podman, runc, debootstrap)"
        )
    if COMPOSE is None:
        pytest.skip("podman-compose is not installed (it is in the dev extras: make setup)")
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium not at /usr/bin/chromium (scripts/install-chromium)")
    tmp = tmp_path_factory.mktemp("podman")
    conf = tmp / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    pm = Podman(env=env, log=tmp / "podman.log")
    info = pm.run("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False)
    if info.returncode != 0:
        pytest.skip(f"podman cannot run here: {info.stderr.strip()[-500:]}")
    if pm.run("image", "exists", BASE, check=False).returncode != 0:
        _make_base_image(pm, tmp)
    probe = pm.run("run", "--rm", "--network=none", BASE, "true", check=False)
    if probe.returncode != 0:  # no overlay/fuse mounts, no namespaces, ...
        pytest.skip(f"podman cannot start a container here: {probe.stderr.strip()[-500:]}")
    return pm


def _make_base_image(pm: Podman, tmp: Path) -> None:
    """A minimal Debian bookworm with python3 from the machine's own mirror (containers.md)."""
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        pytest.skip(f"no base image {BASE}, and debootstrap (as root) is not available to make one")
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    mirror = "http://deb.debian.org/debian"
    if sources.exists():
        m = re.search(r"^URIs:\s*(\S+)", sources.read_text(), re.M)
        mirror = m.group(1) if m else mirror
    root = tmp / "rootfs"
    subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=python3,python3-venv,ca-certificates",
            "bookworm",
            str(root),
            mirror,
        ],
        check=True,
        capture_output=True,
        timeout=1200,
    )
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(["podman", "import", "-", BASE], stdin=tar.stdout, check=True, env=pm.env)
    tar.wait()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def image(podman: Podman) -> str:
    """The Dockerfile built FROM the local base; the machine's CA bundle as a build secret.

    ``LQ_TEST_IMAGE=NAME`` runs an image built before instead (iterating on the test)."""
    if os.environ.get("LQ_TEST_IMAGE"):
        return os.environ["LQ_TEST_IMAGE"]
    t0 = time.monotonic()
    args = ["build", "--network=host", *ULIMITS, "--build-arg", f"BASE={BASE}", "-t", IMAGE]
    cert = Path("/etc/ssl/certs/ca-certificates.crt")
    if cert.exists():
        args += ["--secret", f"id=pip-cert,src={cert}"]
    podman.run(*args, str(REPO), timeout=1500, quiet=True)
    size = int(podman.run("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout)
    print(f"\nimage {IMAGE}: built in {time.monotonic() - t0:.0f} s, {size / 1e6:.0f} MB")
    assert size <= 1.2e9, f"the image is {size / 1e6:.0f} MB, over the 1.2 GB budget"
    return IMAGE


@dataclass
class Stack:
    podman: Podman
    project: str
    dir: Path
    env: dict[str, str]
    port: int
    token: str
    volume: str

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        assert COMPOSE is not None
        cmd = [COMPOSE, "-p", self.project, "-f", str(self.dir / "compose.yaml")]
        cmd += ["-f", str(self.dir / "compose.demo.yaml"), *args]
        p = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=timeout)
        with self.podman.log.open("a") as f:
            f.write(
                f"$ {' '.join(cmd)}  # rc {p.returncode}\n{p.stdout[-3000:]}{p.stderr[-3000:]}\n"
            )
        assert p.returncode == 0, f"{' '.join(cmd)} exited {p.returncode}:\n{p.stderr[-3000:]}"
        return p

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def logs(self, service: str) -> str:
        p = self.podman.run("logs", self.container(service), check=False, quiet=True)
        return (p.stdout + p.stderr)[-4000:]

    def query(self, sql: str) -> list[list[int]]:
        """``sql`` on the volume's database, read by a throwaway container of the image."""
        code = (
            "import json, sqlite3, sys; "
            "c = sqlite3.connect('file:/data/lq.sqlite?mode=ro', uri=True); "
            "print(json.dumps(c.execute(sys.argv[1]).fetchall()))"
        )
        p = self.podman.run(
            "run", "--rm", "--network=none", "-v", f"{self.volume}:/data", self.env["LQ_IMAGE"],
            "python3", "-c", code, sql, quiet=True,
        )  # fmt: skip
        return json.loads(p.stdout)


@pytest.fixture(scope="module")
def stack(podman: Podman, image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("compose")
    for name in ("compose.yaml", "compose.demo.yaml"):  # byte for byte: the files users get
        shutil.copy(REPO / name, tmp / name)
    token = secrets.token_urlsafe(24)
    token_file = tmp / "dashboard_token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o400)
    os.chown(token_file, UID, -1) if os.geteuid() == 0 else None
    project = f"lqtest{os.getpid()}"
    port = _free_port()
    env = {
        **podman.env,
        "LQ_IMAGE": image,
        "LQ_COLLECTOR_SYMBOLS": SYMBOLS,
        "LQ_DASHBOARD_BIND": "127.0.0.1",
        "LQ_DASHBOARD_PORT": str(port),
        "LQ_DASHBOARD_ORIGIN": f"http://127.0.0.1:{port}",
    }
    st = Stack(podman, project, tmp, env, port, token, volume=f"{project}_lq-data")
    try:
        yield st
    finally:
        for service in ("collector", "dashboard", "exchange"):
            with podman.log.open("a") as f:
                f.write(f"--- logs of {service}\n{st.logs(service)}\n")
        try:
            st.compose("down", "-v", "-t", "30", timeout=300)
        finally:
            # whatever compose left (a failed `up`): this project's containers and volume only
            left = podman.run(
                "ps", "-aq", "--filter", f"label=io.podman.compose.project={project}", check=False
            ).stdout.split()
            if left:
                podman.run("rm", "-f", *left, check=False)
            podman.run("volume", "rm", "-f", st.volume, check=False)
        shutil.copy(podman.log, REPO / "artifacts" / "container-test.log") if (
            REPO / "artifacts"
        ).is_dir() else None


def _wait(what: str, probe, timeout: float, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def _healthy(st: Stack, service: str) -> bool:
    return st.podman.run("healthcheck", "run", st.container(service), check=False).returncode == 0


def _ids(st: Stack) -> dict[str, tuple[int, int, int]]:
    rows = st.query(
        "SELECT symbol, min(trade_id), max(trade_id), count(*) FROM ticks GROUP BY symbol"
    )
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def test_compose_serves_a_chart_and_the_collector_restarts_without_a_hole(stack: Stack) -> None:
    from playwright.sync_api import sync_playwright

    st, pm = stack, stack.podman
    figures: dict[str, float] = {}

    # the writer first: the exchange and the collector, until the collector's healthcheck
    # (`lq status`) says every feed is live and storing
    st.compose("up", "-d", "--no-build", "exchange", "collector")
    try:
        _wait("collector healthy (lq status exit 0)", lambda: _healthy(st, "collector"), 180, 2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\ncollector log:\n{st.logs('collector')}") from None
    ids = _wait("ticks on the volume", lambda: _ids(st) if len(_ids(st)) == 2 else None, 60)
    assert set(ids) == set(SYMBOLS.split(",")), ids

    # the dashboard, cold: container start -> the page served through the published port
    # (HTTP 200 with the token; without it, no page) -> a chart with data in Chromium
    base = f"http://127.0.0.1:{st.port}/"
    t0 = time.monotonic()
    st.compose("up", "-d", "--no-build", "dashboard")

    def served() -> bool:
        try:
            with urllib.request.urlopen(f"{base}?token={st.token}", timeout=30) as r:
                return r.status == 200 and b"<html" in r.read(4096).lower()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    _wait("the dashboard page (HTTP 200 with the token)", served, 240, 0.25)
    figures["cold_start_to_served_page_s"] = time.monotonic() - t0
    try:
        urllib.request.urlopen(base, timeout=30)
        no_token = 200
    except urllib.error.HTTPError as exc:
        no_token = exc.code
    # without the token: the login form (a redirect is followed to it) or a refusal, no page
    assert no_token in (200, 302, 403)
    with urllib.request.urlopen(base, timeout=30) as r:
        assert b"js-plotly-plot" not in r.read() and "login" in r.url, r.url

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
            headless=True,
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        t_open = time.monotonic()
        page.goto(f"{base}?token={st.token}", wait_until="commit", timeout=60_000)
        try:
            page.wait_for_function(JS_CHART, timeout=240_000)
        except Exception:
            raise AssertionError(
                f"no chart with data on the page; dashboard log:\n{st.logs('dashboard')}"
            ) from None
        figures["page_open_to_first_chart_s"] = time.monotonic() - t_open
        figures["cold_start_to_first_chart_s"] = time.monotonic() - t0
        if (REPO / "artifacts").is_dir():
            page.screenshot(path=str(REPO / "artifacts" / "container_dashboard.png"))
        browser.close()

    # nobody runs as root: the image's user, in every process of every container
    for service in ("exchange", "collector", "dashboard"):
        name = st.container(service)
        assert pm.run("exec", name, "id", "-u").stdout.strip() == str(UID), service
        users = pm.run("top", name, "user").stdout.split()[1:]
        assert users and set(users) == {"lq"}, f"{service} runs as {users}"
    # the token is in no process's argv, and the dashboard's log does not show it
    argv = pm.run("top", st.container("dashboard"), "args").stdout
    assert st.token not in argv and "--token-file=/run/secrets/dashboard_token" in argv
    assert st.token not in st.logs("dashboard")

    # SIGTERM: the collector flushes and exits 0 within the stop timeout; the exchange trades on
    before = _ids(st)
    t_stop = time.monotonic()
    pm.run("stop", "-t", "30", st.container("collector"))
    figures["collector_stop_s"] = time.monotonic() - t_stop
    state = json.loads(pm.run("inspect", st.container("collector")).stdout)[0]["State"]
    assert state["ExitCode"] == 0, f"collector exited {state['ExitCode']}:\n{st.logs('collector')}"
    assert figures["collector_stop_s"] < 30
    stopped = _ids(st)
    assert all(stopped[s][1] >= before[s][1] for s in before)  # the flush lost nothing
    time.sleep(8)  # ~80 trades a symbol happen while it is down (simulator: 10/s)

    # the restart fills the hole from the exchange's REST history: ids contiguous again
    pm.run("start", st.container("collector"))
    _wait("collector healthy again", lambda: _healthy(st, "collector"), 180, 2)

    def caught_up() -> dict[str, tuple[int, int, int]] | None:
        now = _ids(st)
        done = all(
            now[s][1] > stopped[s][1] + 50 and now[s][2] == now[s][1] - now[s][0] + 1 for s in now
        )
        return now if done else None

    try:
        after = _wait("trade ids contiguous after the restart", caught_up, 120, 2)
    except AssertionError:
        raise AssertionError(
            f"before stop {stopped}, now {_ids(st)}:\n{st.logs('collector')}"
        ) from None
    unfilled = st.query("SELECT symbol, first_missing, last_missing, status FROM gaps "
                        "WHERE status != 'filled'")  # fmt: skip
    assert unfilled == [], unfilled
    figures.update({f"{s}_trades": float(after[s][2]) for s in after})
    print("\n" + "\n".join(f"{k}: {v:.1f}" for k, v in figures.items()))
    assert figures["cold_start_to_served_page_s"] <= COLD_START_BUDGET_S, figures
