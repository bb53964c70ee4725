"""A real `lq dashboard --source local` (collector + Voila) driven by Debian's Chromium.

Also measures the issue's targets and prints them (run with -s to see):
tick -> visible p95, page open -> first chart, kernel CPU while live on two symbols.
Screenshots go to artifacts/ (gitignored).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
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

# it measures tick -> visible and refits: no other browser module beside it (conftest)
BROWSER_EXCLUSIVE = True

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    # a dashboard, its collector, kernels and Chromium on a shared 2-core machine: the waits
    # below are deadlines for outcomes, minutes apart under load
    pytest.mark.timeout(900),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not at /usr/bin/chromium"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def _kernels(root: int) -> list[int]:
    """ipykernel processes anywhere under ``root`` (lq dashboard -> voila -> kernels)."""
    found, todo = [], [root]
    while todo:
        p = todo.pop()
        for c in _children(p):
            todo.append(c)
            try:
                cmd = Path(f"/proc/{c}/cmdline").read_bytes()
            except OSError:
                continue
            if b"ipykernel" in cmd:
                found.append(c)
    return found


def _trades_csv(path: Path, size: int) -> Path:
    """A Binance public-data trades CSV (no header) of at least ``size`` bytes."""
    rng = np.random.default_rng(7)
    n = size // 40 + 1  # rows are about 45 bytes
    ids = np.arange(1, n + 1)
    price = np.round(150 + np.cumsum(rng.normal(0, 0.01, n)), 2)
    qty = np.round(rng.uniform(0.001, 5, n), 3)
    ms = 1_723_161_600_000 + ids * 10
    with path.open("w") as f:
        rows = zip(ids.tolist(), price.tolist(), qty.tolist(), ms.tolist(), strict=True)
        for i, p, q, t in rows:
            f.write(f"{i},{p:.2f},{q:.3f},{p * q:.5f},{t},true,true\n")
    assert path.stat().st_size > size
    return path


def _warm_kernel(dashboard: dict, proc: subprocess.Popen) -> int:
    """Wait until Voila has its warm kernel; return its pid."""
    deadline = time.monotonic() + 240  # the kernel's imports: a minute or more under load
    while time.monotonic() < deadline:
        log = dashboard["log"]
        if log.exists() and "lq dashboard: a kernel is warm" in log.read_text():
            kernels = _kernels(proc.pid)
            if len(kernels) == 1:
                return kernels[0]
        time.sleep(0.25)
    raise AssertionError(f"no warm kernel after 240 s: {dashboard['log'].read_text()[-2000:]}")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


# the newest x of the candlestick, and the market header's newest trade time (µs)
JS_MARKET = """() => {
  const gd = document.querySelector('.js-plotly-plot');
  const tick = document.querySelector('.lq-last-tick');
  if (!gd || !gd.data || !gd.data[0] || !gd.data[0].x) return null;
  const x = gd.data[0].x;
  return {n: x.length, last: x.length ? String(x[x.length - 1]) : null,
          tick: tick ? Number(tick.dataset.ts) : null};
}"""

# record, every 50 ms, how old the newest trade is when its time first appears on the page
JS_LATENCY_START = """() => {
  window.__lq_lat = []; let seen = null;
  window.__lq_timer = setInterval(() => {
    const el = document.querySelector('.lq-last-tick');
    if (!el) return;
    const ts = Number(el.dataset.ts);
    if (ts !== seen) { if (seen !== null) window.__lq_lat.push(Date.now() - ts / 1000); seen = ts; }
  }, 50);
}"""

# the drawn width of every plotly figure on the page (hidden tabs' figures included)
JS_WIDTHS = """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
  .map(gd => gd._fullLayout ? gd._fullLayout.width : 0)"""

# the drawn width of the Pairs figure (the one with the z-score trace)
JS_PAIRS_WIDTH = """() => {
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    if ((gd.data || []).some(t => t.name === 'z-score')) return gd._fullLayout.width;
  }
  return 0;
}"""

JS_ZSCORE = """() => {
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    for (const t of (gd.data || [])) {
      if (t.name === 'z-score' && t.y && t.y.length) return t.y.length;
    }
  }
  return 0;
}"""


@pytest.fixture
def dashboard(tmp_path: Path):
    port = _free_port()
    db = tmp_path / "live.sqlite"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
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
        str(port),
        "--orphan-timeout",
        "20",
        "--cull-idle-timeout",
        "30",
    ]
    log = (tmp_path / "dashboard.log").open("w+")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=REPO)
    t0 = time.monotonic()
    url = None
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.search(r"lq dashboard: (http://\S+)", line)
        if m:
            url = m.group(1)
            break
    if url is None:
        log.seek(0)
        pytest.fail(f"lq dashboard printed no URL:\n{log.read()[-3000:]}")
    try:
        # Voila's log goes to <db>.dashboard.log (the console shows only lq's lines)
        yield {
            "url": url,
            "proc": proc,
            "db": db,
            "started": t0,
            "log": Path(f"{db}.dashboard.log"),
        }
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_live_dashboard_in_chromium(dashboard: dict) -> None:
    from playwright.sync_api import sync_playwright

    from lq.store import writer_pid

    ARTIFACTS.mkdir(exist_ok=True)
    proc: subprocess.Popen = dashboard["proc"]
    figures: dict[str, float] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page = ctx.new_page()
        # Voila keeps one kernel warm (imports done, waiting for a viewer): a user opens the
        # page after it is ready, and that kernel is the one that serves the page
        warm = _warm_kernel(dashboard, proc)
        t_open = time.monotonic()
        page.goto(dashboard["url"], wait_until="commit", timeout=60_000)

        # page open -> first chart with data
        page.wait_for_function(
            JS_MARKET.replace("return {", "return x.length && {"), timeout=300_000
        )
        figures["page_open_to_first_chart_s"] = time.monotonic() - t_open

        # the page ran anywidget's front-end as lq serves it, with the model timeout raised
        # (anywidget's own 2 s froze the first chart under load: test_anywidget_timeout.py)
        served = page.evaluate(
            """async () => {
              const urls = performance.getEntriesByType("resource").map((e) => e.name)
                .filter((u) => u.includes("/voila/labextensions/anywidget/static/"));
              const bodies = await Promise.all(urls.map((u) => fetch(u).then((r) => r.text())));
              return { urls, raised: bodies.filter((b) => b.includes(
                "AbortSignal.timeout(120000).addEventListener")).length,
                stock: bodies.filter((b) => b.includes("AbortSignal.timeout(2000)")).length };
            }"""
        )
        assert served["urls"] and served["raised"] >= 1 and served["stock"] == 0, served

        # the status bar says where the data comes from, and the message count rises
        status = page.locator(".lq-status").first
        assert status.get_attribute("data-source") == "LOCAL EXCHANGE"
        assert "LOCAL EXCHANGE" in status.inner_text()
        m1 = int(status.get_attribute("data-messages"))
        page.wait_for_function(
            f"() => Number(document.querySelector('.lq-status').dataset.messages) > {m1}",
            timeout=60_000,
        )

        # the newest point advances (within a second or two on a quiet machine; a deadline
        # for the outcome under a full suite on 2 cores, with what the page showed if not)
        first = page.evaluate(JS_MARKET)
        try:
            page.wait_for_function(
                f"() => {{ const x = document.querySelector('.js-plotly-plot').data[0].x;"
                f" return String(x[x.length - 1]) !== {json.dumps(first['last'])}; }}",
                timeout=180_000,
            )
        except Exception:
            shown = page.evaluate(JS_MARKET)
            bar = page.locator(".lq-status").first.inner_text()
            tail = dashboard["log"].read_text()[-3000:] if dashboard["log"].exists() else ""
            raise AssertionError(
                f"the newest point stayed at {first} -> {shown}; status: {bar}\nlog: {tail}"
            ) from None
        page.screenshot(path=str(ARTIFACTS / "dashboard_market.png"))

        # tick -> visible, and the kernel's CPU, over the same 10 s
        kernels = _kernels(proc.pid)
        # the page's kernel, and at most one new warm kernel for the next viewer
        assert warm in kernels and len(kernels) <= 2, f"warm {warm}, found {kernels}"
        kernels = [warm]
        cpu0, w0 = _cpu_seconds(kernels[0]), time.monotonic()
        page.evaluate(JS_LATENCY_START)
        page.wait_for_timeout(10_000)
        # at least 5 changes: 10 s on a quiet machine, waited for (not timed) under load
        page.wait_for_function("() => window.__lq_lat.length >= 5", timeout=60_000)
        lat = np.array(page.evaluate("() => window.__lq_lat"), dtype=float)
        figures["kernel_cpu_pct_one_core"] = (
            100 * (_cpu_seconds(kernels[0]) - cpu0) / (time.monotonic() - w0)
        )
        assert len(lat) >= 5, f"the newest trade changed only {len(lat)} times"
        figures["tick_to_visible_p50_s"] = float(np.percentile(lat, 50)) / 1e3
        figures["tick_to_visible_p95_s"] = float(np.percentile(lat, 95)) / 1e3
        figures["tick_to_visible_samples"] = float(len(lat))

        # the Pairs tab draws a z-score trace, across the page like the market chart (a
        # figure first rendered in a hidden tab used to keep plotly's 700 px default)
        market_width = page.evaluate(JS_WIDTHS)[0]
        page.get_by_role("tab", name="Pairs").click()
        page.wait_for_function(JS_ZSCORE, timeout=90_000)
        page.wait_for_function(
            f"() => ({JS_WIDTHS})().some(w => w >= {0.95 * market_width})", timeout=60_000
        )
        # and it follows the browser window when that is resized
        page.set_viewport_size({"width": 1000, "height": 1000})
        page.wait_for_function(f"() => ({JS_PAIRS_WIDTH})() <= 1000 - 30", timeout=60_000)
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.wait_for_function(
            f"() => ({JS_PAIRS_WIDTH})() >= {0.95 * market_width}", timeout=60_000
        )
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / "dashboard_pairs.png"))

        # a CSV download arrives
        page.get_by_role("tab", name="Data").click()
        page.get_by_role("button", name="Prepare download").click()
        link = page.locator("a.lq-download")
        link.wait_for(timeout=15_000)
        with page.expect_download(timeout=15_000) as dl:
            link.click()
        path = dl.value.path()
        text = Path(path).read_text()
        assert dl.value.suggested_filename == "BTCUSDT_bars_1s.csv"
        assert text.startswith("time,symbol,exchange,ts,open,high,low,close,volume")
        assert len(text.splitlines()) > 2
        page.screenshot(path=str(ARTIFACTS / "dashboard_data.png"))

        # an upload above Tornado's 10 MiB message default arrives, is queued for the
        # running collector, and is reported imported (it used to vanish silently)
        big = _trades_csv(dashboard["db"].parent / "SOLUSDT-trades-2024-08-09.csv", 11 * 2**20)
        with page.expect_file_chooser() as fc:
            page.get_by_text("Upload file").click()
        fc.value.set_files(str(big))
        done = page.locator(".lq-upload-ok", has_text="imported by the running collector")
        done.wait_for(timeout=90_000)
        rows = sum(1 for _ in big.open())
        assert f"({rows:,} rows checked" in done.inner_text()

        # closing the page ends its kernel (the beacon is accepted: disable_check_xsrf);
        # only the warm kernel for the next viewer is left
        page.close(run_before_unload=True)
        deadline = time.monotonic() + 20
        while warm in _kernels(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = _kernels(proc.pid)
        ctx.close()
        browser.close()
    assert warm not in left, f"the page's kernel {warm} still runs after the page closed"
    assert len(left) <= 1, f"kernels left after the page closed: {left} (one warm at most)"

    # SIGINT stops Voila and the child collector
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    assert writer_pid(dashboard["db"]) is None

    (ARTIFACTS / "dashboard_figures.json").write_text(json.dumps(figures, indent=2))
    print("\nmeasured:", json.dumps(figures, indent=2))
    # the targets are reported, not asserted (no timed assertions in tests)


def _field(page, kind: str, label: str):
    """The input of the ipywidgets control whose description is ``label``."""
    return page.locator(f".widget-inline-hbox:has(> label:text-is('{label}'))").locator(
        "select" if kind == "dropdown" else "input"
    )


def test_alert_rule_created_in_the_alerts_tab_fires_into_the_live_feed(dashboard: dict) -> None:
    from playwright.sync_api import sync_playwright

    from lq.alerts.store import AlertStore

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(dashboard["url"], wait_until="commit", timeout=60_000)
        # a kernel starts and imports for this page: a minute or more on a loaded machine
        page.wait_for_selector(".lq-status", timeout=240_000)
        page.get_by_role("tab", name="Alerts").click()

        # a z-score over the last 5 trades crosses 0.5 every few seconds on a live market
        _field(page, "text", "name").first.fill("btc-z")
        _field(page, "dropdown", "metric").first.select_option("zscore")
        _field(page, "text", "symbol").first.fill("BTCUSDT")
        _field(page, "dropdown", "condition").first.select_option("crosses_above")
        _field(page, "text", "threshold").first.fill("0.5")
        _field(page, "inttext", "window").first.fill("5")
        _field(page, "inttext", "window").first.press("Enter")
        _field(page, "text", "sample s").first.fill("0")
        _field(page, "text", "sample s").first.press("Enter")
        page.get_by_role("button", name="Save rule").click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('.widget-html-content')]"
            ".some(e => e.innerText.includes('saved rule'))",
            timeout=15_000,
        )

        # the collector (not the page) evaluates it; the event shows up in the live feed
        page.wait_for_function(
            "() => { const f = document.querySelector('.lq-alert-feed');"
            " return f && f.innerText.includes('btc-z'); }",
            timeout=120_000,
        )
        page.screenshot(path=str(ARTIFACTS / "dashboard_alerts.png"))
        feed = page.locator(".lq-alert-feed").inner_text()
        browser.close()

    # the rule and its firings are in the database, as the form set them
    store = AlertStore(dashboard["db"])
    rules = store.rules()
    assert [(r.name, r.rule.metric, r.rule.symbol, r.rule.window) for r in rules] == [
        ("btc-z", "zscore", "BTCUSDT", 5)
    ]
    events = store.events()
    assert len(events) >= 1
    assert (events.value > 0.5).all()  # every firing is a crossing above the threshold
    assert "btc-z" in feed
