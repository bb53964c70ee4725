"""``lq backtest --grid ... --engine ray --address ADDR`` against a cluster started with
``ray start --head`` (one per module, its own ports and temp dir), as real processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

from ._store import archived_store  # noqa: E402

RAY = str(Path(sys.executable).parent / "ray")
GRID = ("--grid", "fast=3,5,8", "--grid", "slow=20,40")
# a loopback test cluster: no token written to ~/.ray, none needed to join
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled"}
COMMON = ("-p", "strategy", "ma_crossover", "-p", "symbols", "BTCUSDT", "-p", "interval", "1m")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def head() -> Iterator[str]:
    """A one-node cluster from ``ray start --head --block``; its address."""
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="lqray", dir="/tmp")  # short: Ray's unix sockets live here
    cmd = [
        RAY, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
        "--num-cpus=2", "--include-dashboard=false", f"--object-store-memory={100 * 2**20}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--temp-dir={tmp}", "--disable-usage-stats",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        deadline = time.monotonic() + 120
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, "ray start --head exited"
            assert time.monotonic() < deadline, "the Ray head never listened"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)  # --block: stops the processes it started
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        _, alive = psutil.wait_procs(children, timeout=30)
        for p in alive:  # only what this fixture started, by pid
            p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return archived_store(tmp_path_factory.mktemp("raycli") / "lq.sqlite")[0]


def lq(*args: str, cwd: Path, code: str | None = None) -> subprocess.CompletedProcess[str]:
    pre = [sys.executable, "-m", "lq.cli"] if code is None else [sys.executable, "-c", code]
    return subprocess.run(
        [*pre, "backtest", *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=ENV
    )


def test_grid_on_a_ray_cluster_by_address_equals_the_local_sweep(
    head: str, db: Path, tmp_path: Path
) -> None:
    ray_run = lq(
        "--db", str(db), *COMMON, *GRID, "--engine", "ray", "--address", head,
        "--out", "ray", cwd=tmp_path,
    )  # fmt: skip
    assert ray_run.returncode == 0, ray_run.stderr[-3000:]
    # progress: one line per finished task, the last one complete
    assert "sweep ma_crossover: 1/6 done" in ray_run.stderr
    assert "sweep ma_crossover: 6/6 done" in ray_run.stderr
    assert "stored" in ray_run.stdout
    local = lq(
        "--db", str(db), *COMMON, *GRID, "--workers", "1", "--out", "local", cwd=tmp_path
    )  # fmt: skip
    assert local.returncode == 0, local.stderr[-3000:]
    [ray_csv] = (tmp_path / "ray").glob("*.csv")
    [local_csv] = (tmp_path / "local").glob("*.csv")
    # the same table to the last digit (floats written as their shortest repr)
    assert ray_csv.read_text() == local_csv.read_text()
    assert len(ray_csv.read_text().splitlines()) == 7


def test_a_bad_address_is_one_line_naming_it(db: Path, tmp_path: Path) -> None:
    bad = f"127.0.0.1:{free_port()}"
    proc = lq("--db", str(db), *COMMON, *GRID, "--engine", "ray", "--address", bad, cwd=tmp_path)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert bad in last and "ray start --head" in last, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_the_default_engine_imports_no_ray(db: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from lq.cli import main; rc = main(sys.argv[1:]);"
        "assert 'ray' not in sys.modules, 'ray imported'; sys.exit(rc)"
    )
    proc = lq("--db", str(db), *COMMON, *GRID, "--workers", "1", cwd=tmp_path, code=code)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_engine_ray_without_ray_names_the_extra(db: Path, tmp_path: Path) -> None:
    code = "import sys; sys.modules['ray'] = None; from lq.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = lq("--db", str(db), *COMMON, *GRID, "--engine", "ray", cwd=tmp_path, code=code)
    assert proc.returncode != 0
    assert "pip install 'lq[ray]'" in proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr


def test_address_without_the_ray_engine_is_refused(db: Path, tmp_path: Path) -> None:
    proc = lq("--db", str(db), *COMMON, *GRID, "--address", "127.0.0.1:1", cwd=tmp_path)
    assert proc.returncode != 0
    assert "--address" in proc.stderr and "only with --engine ray" in proc.stderr
