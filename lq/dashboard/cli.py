"""``lq dashboard``: a collector (unless one runs) plus Voila serving notebooks/dashboard.ipynb.

The collector is a child process (``python -m lq.cli collect``) so that it keeps its own
event loop and the single-writer lock; the Voila server is a second child
(``python -m lq.dashboard.server``, Voila with lq's fixes, see :mod:`lq.dashboard.server`)
on 127.0.0.1. The database path reaches the notebook's kernel through ``LQ_DB`` (kernels
inherit the server's environment); the token reaches the server through
``LQ_DASHBOARD_TOKEN`` in its environment, never its command line, and the server removes
it before any kernel starts. The server writes the port it really bound to a file this
process waits for, so the URL printed is the one served. Both children write their logs to
``<db>.dashboard.log`` (``--log-file``); the console shows a few lines ending with the URL.
SIGINT/SIGTERM stop Voila first, then the collector. Settings that matter here, from the
Voila notes: ``disable_check_xsrf`` so a closed tab's shutdown beacon is accepted (loopback
only), an idle culler, and the heartbeat's orphan timeout so a kernel whose tab vanished
goes idle and is culled.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from lq.collector.cli import add_source_arguments
from lq.config import Settings, check_source
from lq.dashboard.server import MAX_UPLOAD_BYTES, is_loopback, tornado_settings
from lq.errors import ValidationError

__all__ = [
    "MAX_UPLOAD_BYTES",
    "add_parser",
    "dashboard_notebook",
    "is_loopback",
    "resolve_token",
    "run",
    "tornado_settings",
    "voila_command",
]

log = logging.getLogger("lq.dashboard")

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "dashboard.ipynb"
#: ``--token`` without a value: a fresh random token (printed in the URL only).
GENERATE = "\0generate"
_FORWARDED = (
    "source",
    "venue",
    "symbols",
    "channels",
    "endpoint",
    "ws_url",
    "rest_url",
    "exchange_label",
    "seed",
    "rate",
    "speed",
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "dashboard",
        help="the live dashboard in your browser (starts a collector unless one runs)",
        description=(
            "Start `lq collect` on the database unless a collector already writes it, then "
            "Voila on 127.0.0.1 serving notebooks/dashboard.ipynb; print the URL."
        ),
    )
    p.add_argument(
        "--db", metavar="PATH", help="the SQLite database (default: store.db from `lq config`)"
    )
    add_source_arguments(p)
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help="HTTP port (default dashboard.port, 8866); if it is busy the next free one is "
        "used and printed; 0: any free port",
    )
    p.add_argument(
        "--host",
        default=None,
        help="address to bind (default 127.0.0.1); anything else also needs a token",
    )
    p.add_argument(
        "--token-file",
        metavar="PATH",
        default=None,
        help="read the access token from this file (else $LQ_DASHBOARD_TOKEN or "
        "[dashboard] token in the config file); required off loopback",
    )
    p.add_argument(
        "--token",
        nargs="?",
        const=GENERATE,
        default=None,
        metavar="(none)",
        help="protect the dashboard with a fresh random token, shown in the printed URL "
        "(a token given here would be visible to everyone in `ps`: use --token-file or "
        "$LQ_DASHBOARD_TOKEN)",
    )
    p.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="URL",
        help="also accept browser websockets from this origin, e.g. a reverse proxy's "
        "https://dash.example.com (repeatable)",
    )
    p.add_argument(
        "--log-file",
        metavar="PATH",
        default=None,
        help="where Voila's and the collector's logs go (default <db>.dashboard.log)",
    )
    p.add_argument(
        "--orphan-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="a page's loop ends after this long without a browser heartbeat (default 120)",
    )
    p.add_argument(
        "--warm-kernels",
        type=int,
        default=1,
        metavar="N",
        help="kernels kept started with the notebook's imports done, so a page opens faster"
        " (default 1; 0 starts a kernel per page view)",
    )
    p.add_argument(
        "--cull-idle-timeout",
        type=int,
        default=300,
        metavar="SECONDS",
        help="Voila shuts down kernels idle this long (default 300)",
    )
    p.add_argument(
        "--no-collector",
        action="store_true",
        help="only serve the dashboard; never start a collector",
    )
    return p


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond loopback without a token (the page runs code on this machine)."""
    if not is_loopback(host) and not token:
        raise ValidationError(
            "--host",
            host,
            "serving beyond 127.0.0.1 runs a kernel for anyone who can reach it: set a "
            "token (--token-file PATH, $LQ_DASHBOARD_TOKEN, or --token for a random one) "
            "or bind to 127.0.0.1",
        )


def resolve_token(args: argparse.Namespace, settings: Settings) -> str | None:
    """The server's token: ``--token-file``, else ``dashboard.token`` (the config file or
    ``$LQ_DASHBOARD_TOKEN``), else a random one for a bare ``--token``; None: no token."""
    given = getattr(args, "token", None)
    if given not in (None, GENERATE):
        raise ValidationError(
            "--token",
            "***",
            "a token on the command line is visible to every user of this machine in "
            "`ps`: put it in $LQ_DASHBOARD_TOKEN, in [dashboard] token of the config file, "
            "or in a file named by --token-file (a bare --token makes a random one)",
        )
    path = getattr(args, "token_file", None)
    if path:
        try:
            token = Path(path).expanduser().read_text().strip()
        except OSError as exc:
            raise ValidationError("--token-file", path, f"cannot read it: {exc}") from None
        if not token:
            raise ValidationError("--token-file", path, "the file is empty")
        return token
    if settings.dashboard.token:
        return settings.dashboard.token
    if given == GENERATE:
        return secrets.token_urlsafe(24)
    return None


def token_hint(args: argparse.Namespace, settings: Settings) -> str:
    """Where a token the user chose lives, for the printed URL line (which never shows it:
    that line reaches terminals, container logs and CI output). Empty for a random token."""
    from lq.dashboard.server import TOKEN_ENV

    path = getattr(args, "token_file", None)
    if path:
        return f"the token in {path}"
    if settings.dashboard.token:
        if os.environ.get(TOKEN_ENV):
            return f"the token in ${TOKEN_ENV}"
        return "the token in [dashboard] token of the config file"
    return ""


def voila_command(
    notebook: str | os.PathLike[str],
    *,
    port: int,
    host: str = "127.0.0.1",
    cull_idle_timeout: int = 300,
    warm_kernels: int = 1,
) -> list[str]:
    """The server's command line (settings from ``shared/reference/voila-notes.md``).

    It carries no secret: the token goes through the environment (``LQ_DASHBOARD_TOKEN``).
    """
    cmd = [
        sys.executable,
        "-m",
        "lq.dashboard.server",
        str(notebook),
        "--no-browser",
        f"--port={int(port)}",
        f"--Voila.ip={host}",
        "--strip_sources=True",
        "--theme=dark",
        f"--MappingKernelManager.cull_idle_timeout={int(cull_idle_timeout)}",
        "--MappingKernelManager.cull_interval=30",
        "--MappingKernelManager.cull_connected=True",
    ]
    if warm_kernels > 0:
        # kernels kept started with the notebook's imports done, each waiting in
        # wait_for_viewer(): opening the page skips kernel start and imports
        cmd += [
            "--VoilaConfiguration.preheat_kernel=True",
            f"--VoilaConfiguration.default_pool_size={int(warm_kernels)}",
        ]
    return cmd


def dashboard_notebook() -> Path:
    """notebooks/dashboard.ipynb from the source tree, or a generated copy when installed."""
    if NOTEBOOK.exists():
        return NOTEBOOK
    import nbformat

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('db = ""\nsymbols = []\ninterval = 0.5\nlive = True')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            "from lq.dashboard import Dashboard, wait_for_viewer\n\n"
            "wait_for_viewer()\n"
            "Dashboard(db=db or None, symbols=symbols or None, interval=interval, live=live)"
        ),
    ]
    out = Path(tempfile.mkdtemp(prefix="lq-dashboard-")) / "dashboard.ipynb"
    nbformat.write(nb, out)
    return out


def _collector_command(args: argparse.Namespace, db: Path) -> list[str]:
    cmd = [sys.executable, "-m", "lq.cli"]
    if getattr(args, "config", None):
        cmd += ["--config", str(args.config)]
    cmd += ["collect", "--db", str(db)]
    for name in _FORWARDED:
        v = getattr(args, name, None)
        if isinstance(v, list):  # --symbols is repeatable (one list per venue)
            for item in v:
                cmd += [f"--{name.replace('_', '-')}", str(item)]
        elif (
            v is not None and not (name == "seed" and v == 7) and not (name == "speed" and v == "1")
        ):
            cmd += [f"--{name.replace('_', '-')}", str(v)]
    if getattr(args, "loop", False):
        cmd.append("--loop")
    if getattr(args, "retime", False):
        cmd.append("--retime")
    return cmd


def _wait_ready(
    ready: Path, proc: subprocess.Popen[bytes], timeout: float, stop: Any
) -> int | None:
    """The port the server reports once it listens (None: it exited, or no report in time).

    Never a GET of the notebook URL: that would start a kernel (voila-notes P2)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop():
        if ready.exists():
            try:
                return int(json.loads(ready.read_text())["port"])
            except (ValueError, KeyError, OSError):
                pass  # being written
        if proc.poll() is not None:
            return None
        time.sleep(0.1)
    return None


def _stop(proc: subprocess.Popen[bytes] | None, name: str, sig: int, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    log.info("stopping %s (pid %d)", name, proc.pid)
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("%s (pid %d) did not stop in %.0f s: killing it", name, proc.pid, timeout)
        proc.kill()
        proc.wait()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class _LogToFile:
    """For the command's duration: lq's own INFO lines go to the log file, the console
    keeps warnings and errors (and the few lines this command prints)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handler = logging.FileHandler(path)
        self.handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        self._levels: list[tuple[logging.Handler, int]] = []

    def __enter__(self) -> _LogToFile:
        root = logging.getLogger()
        for h in root.handlers:
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                self._levels.append((h, h.level))
                h.setLevel(max(h.level, logging.WARNING))
        root.addHandler(self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        self.handler.close()
        for h, level in self._levels:
            h.setLevel(level)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from lq.dashboard.server import ORIGINS_ENV, READY_ENV, TOKEN_ENV
    from lq.store import writer_pid

    check_source(args.source or settings.collector.source)  # the check `lq collect` makes
    host = args.host or settings.dashboard.host
    port = int(args.port if args.port is not None else settings.dashboard.port)
    token = resolve_token(args, settings)
    check_bind(host, token)
    if not 0 <= port <= 65535:
        raise ValidationError("--port", port, "must be 0 (any free port) to 65535")
    if args.orphan_timeout <= 0:
        raise ValidationError("--orphan-timeout", args.orphan_timeout, "must be positive seconds")
    if args.warm_kernels < 0:
        raise ValidationError("--warm-kernels", args.warm_kernels, "must be 0 or more")
    db = settings.db.resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    logfile = Path(args.log_file).expanduser() if args.log_file else Path(f"{db}.dashboard.log")
    logfile.parent.mkdir(parents=True, exist_ok=True)
    collector: subprocess.Popen[bytes] | None = None
    voila: subprocess.Popen[bytes] | None = None
    stop_requested = False

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stop_requested
        stop_requested = True

    # children's environment: the token only where it is needed (the server pops it)
    base_env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    try:
        out: IO[bytes] = logfile.open("ab")
    except OSError as exc:
        raise ValidationError(
            "--log-file", str(logfile), f"cannot write it ({exc.strerror}): pass --log-file PATH"
        ) from None
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    private = Path(tempfile.mkdtemp(prefix="lq-dashboard-"))
    with _LogToFile(logfile):
        try:
            log.info("lq dashboard starting on %s", db)
            pid = writer_pid(db)
            if pid is not None:
                print(f"lq dashboard: a collector already writes {db} (pid {pid}); using it")
            elif not args.no_collector:
                cmd = _collector_command(args, db)
                log.info("starting the collector: %s", " ".join(cmd))
                collector = subprocess.Popen(
                    cmd, env=base_env, stdout=out, stderr=out, start_new_session=True
                )
                print(f"lq dashboard: collector started (pid {collector.pid}) on {db}")
                deadline = time.monotonic() + 60
                while not db.exists():
                    if collector.poll() is not None:
                        print(
                            f"lq dashboard: the collector exited with {collector.returncode}:\n"
                            f"{_tail(logfile)}\n(log: {logfile})",
                            file=sys.stderr,
                        )
                        return 1
                    if time.monotonic() > deadline or stop_requested:
                        print(f"lq dashboard: {db} did not appear within 60 s", file=sys.stderr)
                        return 1
                    time.sleep(0.1)
            ready = private / "ready.json"
            env = {
                **base_env,
                "LQ_DB": str(db),
                "LQ_DASH_ORPHAN_TIMEOUT": str(args.orphan_timeout),
                READY_ENV: str(ready),
            }
            if token:
                env[TOKEN_ENV] = token
            if args.allow_origin:
                env[ORIGINS_ENV] = " ".join(args.allow_origin)
            if getattr(args, "config", None):
                env["LQ_CONFIG"] = str(Path(args.config).resolve())
            cmd = voila_command(
                dashboard_notebook(),
                port=port,
                host=host,
                cull_idle_timeout=args.cull_idle_timeout,
                warm_kernels=args.warm_kernels,
            )
            log.info("starting the dashboard server: %s", " ".join(cmd))
            voila = subprocess.Popen(cmd, env=env, stdout=out, stderr=out, start_new_session=True)
            served = _wait_ready(ready, voila, timeout=180, stop=lambda: stop_requested)
            if served is None:
                if stop_requested:
                    return 0
                print(
                    f"lq dashboard: the dashboard server did not start (exit {voila.poll()}):\n"
                    f"{_tail(logfile)}\n(log: {logfile})",
                    file=sys.stderr,
                )
                return 1
            if port and served != port:
                print(
                    f"lq dashboard: port {port} is busy (another program, perhaps another "
                    f"lq dashboard, answers there); serving on port {served} instead"
                )
            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            if ":" in shown:
                shown = f"[{shown}]"
            url = f"http://{shown}:{served}/"
            hint = token_hint(args, settings) if token else ""
            if hint:  # a token the user chose is theirs to type: never printed or logged
                url += f"  (open it with ?token= and {hint})"
            elif token:  # a random one exists only here: the URL is the only way in
                url += f"?token={token}"
            print(f"lq dashboard: logs in {logfile}; Ctrl-C stops")
            print(f"lq dashboard: {url}", flush=True)
            while not stop_requested:
                if voila.poll() is not None:
                    print(
                        f"lq dashboard: the dashboard server exited with {voila.returncode}:\n"
                        f"{_tail(logfile)}\n(log: {logfile})",
                        file=sys.stderr,
                    )
                    return 1
                if collector is not None and collector.poll() is not None:
                    print(
                        f"lq dashboard: the collector exited with {collector.returncode}; "
                        f"the dashboard keeps showing stored data (log: {logfile})",
                        file=sys.stderr,
                    )
                    collector = None
                time.sleep(0.2)
            print("lq dashboard: stopping", flush=True)
            return 0
        finally:
            _stop(voila, "the dashboard server", signal.SIGTERM)
            _stop(collector, "the collector", signal.SIGINT)
            out.close()
            for f in private.glob("*"):
                f.unlink(missing_ok=True)
            private.rmdir()
            for s, h in old.items():
                signal.signal(s, h)
