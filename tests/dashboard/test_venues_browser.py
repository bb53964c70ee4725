"""The Venues tab in a real `lq dashboard` (Voila) driven by Debian's Chromium, on a database
that a separate writer process fills live with trades of four exchange labels (USD and USDT
quotes, coinbase with holes, okx with dead letters). The screenshot is taken at 1600x1000
(artifacts/dashboard_venues.png, gitignored)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .test_dashboard_browser import ARGS, ARTIFACTS, CHROMIUM, REPO, _free_port

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not at /usr/bin/chromium"),
]

HERE = Path(__file__).resolve().parent
# how many visible traces of the page's charts have a name matching a regex and points
JS_DRAWN = """(re) => [...document.querySelectorAll('.js-plotly-plot')]
  .flatMap(gd => gd.data || [])
  .filter(t => t.visible === true && re.test(t.name || '') && t.x && t.x.length > 0
               && t.y && t.y.length === t.x.length).length"""
VENUES = ("BTCUSDT@binance", "BTC-USD@coinbase", "BTC-USDT@okx", "BTCUSDT@bybit")


def _wait_for_db(db: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    import sqlite3

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the live writer exited with {proc.returncode}")
        if db.exists():
            try:
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                n = con.execute("SELECT count(DISTINCT exchange) FROM bars_1m").fetchone()[0]
                con.close()
                if n >= 4:
                    return
            except sqlite3.Error:
                pass
        time.sleep(0.25)
    raise AssertionError("the live writer did not write the four venues in time")


@pytest.fixture
def venues_dashboard(tmp_path: Path):
    db = tmp_path / "venues.sqlite"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(HERE)}
    writer = subprocess.Popen(
        [sys.executable, str(HERE / "venues_market.py"), str(db), "600"], env=env, cwd=REPO
    )
    port = _free_port()
    log = (tmp_path / "dashboard.log").open("w+")
    dash = None
    try:
        _wait_for_db(db, writer)
        dash = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lq.cli",
                "dashboard",
                "--no-collector",
                "--db",
                str(db),
                "--port",
                str(port),
                "--orphan-timeout",
                "20",
                "--cull-idle-timeout",
                "30",
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
            cwd=REPO,
        )
        url = None
        assert dash.stdout is not None
        for line in dash.stdout:
            m = re.search(r"lq dashboard: (http://\S+)", line)
            if m:
                url = m.group(1)
                break
        if url is None:
            log.seek(0)
            pytest.fail(f"lq dashboard printed no URL:\n{log.read()[-3000:]}")
        yield {"url": url, "db": db}
    finally:
        for p in (dash, writer):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGINT if p is dash else signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


@pytest.mark.timeout(900)
def test_venues_tab_shows_all_venues_live_in_chromium(venues_dashboard: dict) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        module = []  # plotly's FigureWidget module: fetched by URL, once for the page
        page.on(
            "response",
            lambda r: (
                module.append((r.status, r.headers.get("content-type", "")))
                if "/lq/static/plotly-widget.js" in r.url
                else None
            ),
        )
        page.goto(venues_dashboard["url"], wait_until="commit", timeout=90_000)
        # a loaded 2-core machine takes up to two minutes to start the page's kernel
        page.wait_for_selector(".lq-status", timeout=240_000)
        page.get_by_role("tab", name="Venues").click()
        page.wait_for_selector(".lq-venues-list", timeout=60_000)
        # every venue is listed with its quote, and the USD/USDT difference is stated
        for v in VENUES:
            page.wait_for_selector(f".lq-venue[data-symbol='{v.split('@')[0]}']"
                                   f"[data-venue='{v.split('@')[1]}']", timeout=30_000)  # fmt: skip
        listed = page.locator(".lq-venues-list").inner_text()
        assert "quotes differ (USD, USDT)" in listed
        # the price chart draws one line per venue, with points (a chart whose view missed
        # its state shows white axes and no traces); the dislocation lines name the quotes
        page.wait_for_function(f"() => ({JS_DRAWN})(/ \\((USD|USDT)\\)$/) >= 4", timeout=120_000)
        page.wait_for_function(
            f"() => ({JS_DRAWN})(/ vs BTC-USD@coinbase: USDT? vs USD$/) >= 3", timeout=60_000
        )
        rows = page.locator(".lq-disl-row")
        rows.first.wait_for(timeout=30_000)
        assert rows.count() >= 3
        page.wait_for_timeout(1500)
        page.screenshot(path=str(ARTIFACTS / "dashboard_venues.png"))
        # lead-lag arrives from the slow path (the executor, every 10 s), with sample sizes;
        # bybit's is too short
        page.wait_for_selector(".lq-leadlag", timeout=240_000)
        page.wait_for_function(f"() => ({JS_DRAWN})(/^BTC-USD@coinbase → /) >= 3", timeout=60_000)
        ll = page.locator(".lq-leadlag")
        assert ll.count() == 3 and "n = " in ll.first.inner_text()
        assert page.locator(".lq-leadlag[data-short='1']").count() >= 1
        # data quality: coinbase's unfillable hole, okx's dead letters, bybit not checkable
        q = page.locator(".lq-quality-row[data-venue='coinbase']").inner_text()
        assert "unfilled holes" in q and "2000–2004" in q
        okx = page.locator(".lq-quality-row[data-venue='okx'] td").all_inner_texts()
        assert okx[-1] == "3", okx
        by = page.locator(".lq-quality-row[data-venue='bybit']")
        assert by.get_attribute("data-state") == "not checkable", by.inner_text()
        # live: the trade count in the list grows as the writer adds trades
        first = page.locator(".lq-venues-list").inner_text()
        page.wait_for_function(
            f"() => document.querySelector('.lq-venues-list').innerText !== {first!r}",
            timeout=20_000,
        )
        page.screenshot(path=str(ARTIFACTS / "dashboard_venues_leadlag.png"))
        browser.close()
    assert len(module) == 1 and module[0][0] == 200, module
    assert module[0][1].startswith("text/javascript"), module
