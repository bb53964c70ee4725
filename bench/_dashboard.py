"""Drive a real ``lq dashboard --source local`` in headless Chromium (screenshots, bench).

Used by ``scripts/screenshots`` (every tab at 1600x1000) and ``bench/bench_dashboard.py``
(page open -> first chart, warm and cold). Starts the real CLI on a free port and a
temporary database, so what is measured and shot is what a user gets.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SYMBOLS = "BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT,XRPUSDT"
WARM_LINE = "lq dashboard: a kernel is warm"  # lq.dashboard.app.WARM_LINE: imports done

# the Market chart has candles
JS_FIRST_CHART = """() => {
  const gd = document.querySelector('.js-plotly-plot');
  return !!(gd && gd.data && gd.data[0] && gd.data[0].x && gd.data[0].x.length
            && gd.querySelector('svg.main-svg'));
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    url: str
    proc: subprocess.Popen[str]
    log: Path
    db: Path

    def warm_count(self) -> int:
        """How many kernels said they are warm (imports done; one per refill)."""
        # Voila's log goes to <db>.dashboard.log (older versions: lq dashboard's stderr)
        return sum(
            p.read_text(errors="replace").count(WARM_LINE)
            for p in (self.log, Path(f"{self.db}.dashboard.log"))
            if p.exists()
        )

    def wait_warm(self, count: int = 1, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while self.warm_count() < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no warm kernel after {timeout:.0f} s")
            if self.proc.poll() is not None:
                raise RuntimeError(f"lq dashboard exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.25)


@contextlib.contextmanager
def dashboard(*, warm_kernels: int = 1, symbols: str = SYMBOLS) -> Iterator[Running]:
    """A real ``lq dashboard --source local`` on a free port; stopped with SIGINT after."""
    with tempfile.TemporaryDirectory(prefix="lq-shots-") as tmp:
        db = Path(tmp) / "live.sqlite"
        log_path = Path(tmp) / "dashboard.log"
        cmd = [
            sys.executable,
            "-m",
            "lq.cli",
            "dashboard",
            "--source",
            "local",
            "--db",
            str(db),
            "--port",
            str(free_port()),
            "--symbols",
            symbols,
            "--warm-kernels",
            str(warm_kernels),
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "LQ_DB": str(db)}
        with log_path.open("w+") as log:
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=REPO
            )
            try:
                url = None
                assert proc.stdout is not None
                for line in proc.stdout:
                    m = re.search(r"lq dashboard: (https?://\S+)", line)
                    if m:
                        url = m.group(1)
                        break
                if url is None:
                    raise RuntimeError(f"lq dashboard printed no URL: {log_path.read_text()}")
                yield Running(url=url, proc=proc, log=log_path, db=db)
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()


@contextlib.contextmanager
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: run scripts/install-chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def open_to_first_chart(b: object, url: str, *, timeout_s: float = 300.0) -> tuple[float, object]:
    """Open ``url`` in a new 1600x1000 page; seconds until the Market chart shows data."""
    page = b.new_page(viewport={"width": 1600, "height": 1000})  # type: ignore[attr-defined]
    t0 = time.monotonic()
    page.goto(url, wait_until="commit", timeout=timeout_s * 1000)
    page.wait_for_function(JS_FIRST_CHART, timeout=timeout_s * 1000, polling=50)
    return time.monotonic() - t0, page


def static_plotly_baseline(b: object) -> float:
    """Seconds for the same browser to open a static page with one plotly chart (the
    machine's speed in the same run: plotly.js parse + first draw, no kernel)."""
    import plotly.graph_objects as go

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "one.html"
        go.Figure(go.Scatter(x=list(range(300)), y=list(range(300)))).write_html(
            path, include_plotlyjs=True
        )
        page = b.new_page(viewport={"width": 1600, "height": 1000})  # type: ignore[attr-defined]
        t0 = time.monotonic()
        page.goto(path.as_uri(), wait_until="commit")
        page.wait_for_function(
            "() => !!document.querySelector('.js-plotly-plot svg.main-svg')", polling=50
        )
        took = time.monotonic() - t0
        page.close()
    return took
