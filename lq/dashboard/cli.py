"""``lq dashboard``: a collector (unless one runs) plus Voila serving notebooks/dashboard.ipynb.

The collector is a child process (``python -m lq.cli collect``) so that it keeps its own
event loop and the single-writer lock; Voila is a second child on 127.0.0.1. The database
path reaches the notebook's kernel through ``LQ_DB`` (kernels inherit Voila's environment).
SIGINT/SIGTERM stop Voila first, then the collector. Settings that matter here, from the
Voila notes: ``disable_check_xsrf`` so a closed tab's shutdown beacon is accepted (loopback
only), an idle culler, and the heartbeat's orphan timeout so a kernel whose tab vanished
goes idle and is culled.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lq.collector.cli import add_source_arguments
from lq.config import Settings
from lq.errors import ValidationError

__all__ = [
    "MAX_UPLOAD_BYTES",
    "add_parser",
    "dashboard_notebook",
    "is_loopback",
    "run",
    "voila_command",
]

log = logging.getLogger("lq.dashboard")

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "dashboard.ipynb"
#: The largest upload the Data tab takes (one websocket message; larger: ``lq import FILE``).
MAX_UPLOAD_BYTES = 256 * 2**20
_FORWARDED = (
    "source",
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
    p.add_argument("--port", type=int, default=None, help="HTTP port (default dashboard.port)")
    p.add_argument(
        "--host",
        default=None,
        help="address to bind (default 127.0.0.1); anything else also needs --token",
    )
    p.add_argument("--token", default=None, help="access token, required off loopback")
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


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond loopback without a token (the page runs code on this machine)."""
    if not is_loopback(host) and not token:
        raise ValidationError(
            "--host",
            host,
            "serving beyond 127.0.0.1 runs a kernel for anyone who can reach it: "
            "pass --token SECRET as well (or bind to 127.0.0.1)",
        )


def voila_command(
    notebook: str | os.PathLike[str],
    *,
    port: int,
    host: str = "127.0.0.1",
    token: str | None = None,
    cull_idle_timeout: int = 300,
    warm_kernels: int = 1,
) -> list[str]:
    """The Voila command line (settings from ``shared/reference/voila-notes.md``)."""
    cmd = [
        sys.executable,
        "-m",
        "voila",
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
    # uploads travel as one websocket message: Tornado's 10 MiB default closes the socket on
    # anything larger (the browser reconnects and the file is silently lost)
    tornado: dict[str, object] = {"websocket_max_message_size": MAX_UPLOAD_BYTES}
    if is_loopback(host):
        # a closed tab's shutdown beacon carries no _xsrf (voila#1458): accept it on loopback
        tornado["disable_check_xsrf"] = True
    cmd.append(f"--Voila.tornado_settings={tornado!r}")
    if token:
        cmd.append(f"--Voila.token={token}")
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
            "from lq.dashboard import Dashboard\n\n"
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
        if v is not None and not (name == "seed" and v == 7) and not (name == "speed" and v == "1"):
            cmd += [f"--{name.replace('_', '-')}", str(v)]
    if getattr(args, "loop", False):
        cmd.append("--loop")
    if getattr(args, "retime", False):
        cmd.append("--retime")
    return cmd


def _wait_port(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """TCP connect only: a GET of the notebook URL would start a kernel (voila-notes P2)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host if host != "0.0.0.0" else "127.0.0.1", port), 0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


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


def run(args: argparse.Namespace, settings: Settings) -> int:
    from lq.store import writer_pid

    host = args.host or settings.dashboard.host
    port = int(args.port if args.port is not None else settings.dashboard.port)
    check_bind(host, args.token)
    if args.orphan_timeout <= 0:
        raise ValidationError("--orphan-timeout", args.orphan_timeout, "must be positive seconds")
    if args.warm_kernels < 0:
        raise ValidationError("--warm-kernels", args.warm_kernels, "must be 0 or more")
    db = settings.db.resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    collector: subprocess.Popen[bytes] | None = None
    voila: subprocess.Popen[bytes] | None = None
    stop_requested = False

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stop_requested
        stop_requested = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        pid = writer_pid(db)
        if pid is not None:
            print(f"collector already running on {db} (pid {pid}); not starting another")
        elif not args.no_collector:
            cmd = _collector_command(args, db)
            log.info("starting the collector: %s", " ".join(cmd))
            collector = subprocess.Popen(cmd, start_new_session=True)
            deadline = time.monotonic() + 60
            while not db.exists():
                if collector.poll() is not None:
                    print(
                        f"lq dashboard: the collector exited with {collector.returncode}",
                        file=sys.stderr,
                    )
                    return 1
                if time.monotonic() > deadline or stop_requested:
                    print(f"lq dashboard: {db} did not appear within 60 s", file=sys.stderr)
                    return 1
                time.sleep(0.1)
        env = {**os.environ, "LQ_DB": str(db), "LQ_DASH_ORPHAN_TIMEOUT": str(args.orphan_timeout)}
        if getattr(args, "config", None):
            env["LQ_CONFIG"] = str(Path(args.config).resolve())
        cmd = voila_command(
            dashboard_notebook(),
            port=port,
            host=host,
            token=args.token,
            cull_idle_timeout=args.cull_idle_timeout,
            warm_kernels=args.warm_kernels,
        )
        log.info(
            "starting voila: %s",
            " ".join(c if "token" not in c else "--Voila.token=***" for c in cmd),
        )
        voila = subprocess.Popen(cmd, env=env, start_new_session=True)
        if not _wait_port(host, port, voila, timeout=60):
            print(
                f"lq dashboard: voila did not open port {port} (exit {voila.poll()})",
                file=sys.stderr,
            )
            return 1
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        url = f"http://{shown}:{port}/" + (f"?token={args.token}" if args.token else "")
        print(f"lq dashboard: {url}  (database {db}; Ctrl-C stops)", flush=True)
        while not stop_requested:
            if voila.poll() is not None:
                print(f"lq dashboard: voila exited with {voila.returncode}", file=sys.stderr)
                return 1
            if collector is not None and collector.poll() is not None:
                print(
                    f"lq dashboard: the collector exited with {collector.returncode}; "
                    "the dashboard keeps showing stored data",
                    file=sys.stderr,
                )
                collector = None
            time.sleep(0.2)
        return 0
    finally:
        _stop(voila, "voila", signal.SIGTERM)
        _stop(collector, "collector", signal.SIGINT)
        for s, h in old.items():
            signal.signal(s, h)
