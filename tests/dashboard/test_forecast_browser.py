"""The Forecast tab in a real Chromium against a real `lq dashboard --source local`: a model
deployed with one call while the dashboard runs is scored by its collector, the tab draws
the live forecasts, and warns when the live score falls below the baseline."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "forecast"))

from test_dashboard_browser import ARGS, ARTIFACTS, CHROMIUM, dashboard

__all__ = ["dashboard"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not at /usr/bin/chromium"),
]

JS_FORECASTS = """() => {
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    for (const t of (gd.data || [])) {
      if (t.name === 'forecast' && t.y && t.y.length) return Array.from(t.y).filter(v => v === v && v !== null).length;
    }
  }
  return 0;
}"""


JS_TRACES = """() => [...document.querySelectorAll('.js-plotly-plot')].map(
  gd => (gd.data || []).map(t => [t.name, t.y ? t.y.length : -1]))"""


@pytest.mark.timeout(900)  # a dashboard, a collector and Chromium on a shared 2-core machine
def test_forecast_tab_shows_a_deployed_model_live_and_warns_below_baseline(dashboard: dict) -> None:
    from _sim import ar1
    from playwright.sync_api import sync_playwright

    from lq.forecast import FeatureSpec, TargetSpec
    from lq.forecast.store import deploy
    from lq.forecast.trained import train_model

    # a model that learned a strong trend (phi = 0.8) that the simulator does not have: it
    # is confidently wrong, so its live log-loss is far above always-the-majority's
    bars = ar1(3000, 0.8, seed=1)
    bars.attrs["symbol"] = "BTCUSDT"
    spec = FeatureSpec(
        zscore_windows=(10,), vol_windows=(10,), flow_windows=(10,), intensity_windows=(10,)
    )
    bad = train_model(
        bars,
        target=TargetSpec(kind="sign"),
        features=spec,
        model="linear",
        baseline="majority",
        name="btc-trend",
    )
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(dashboard["url"], wait_until="commit", timeout=60_000)
        page.wait_for_selector(".lq-status", timeout=240_000)
        deploy(bad, dashboard["db"])  # one call, while the dashboard and its collector run
        page.get_by_role("tab", name="Forecast").click(timeout=120_000)
        page.wait_for_function(
            "() => { const e = document.querySelector('.lq-forecast-info');"
            " return e && e.innerText.includes('btc-trend'); }",
            timeout=120_000,
        )
        try:
            page.wait_for_function(
                "() => { const e = document.querySelector('.lq-forecast-warning');"
                " return e && e.innerText.includes('Live score below the baseline'); }",
                timeout=180_000,
            )
            page.wait_for_function(f"() => ({JS_FORECASTS})() >= 5", timeout=60_000)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "dashboard_forecast_failed.png"))
            traces = page.evaluate(JS_TRACES)
            raise AssertionError(f"forecast tab not drawn; traces on the page: {traces}") from None
        page.screenshot(path=str(ARTIFACTS / "dashboard_forecast.png"))
        info = page.locator(".lq-forecast-info").first.inner_text()
        warning = page.locator(".lq-forecast-warning").first.inner_text()
        browser.close()
    assert "resolved" in info and "majority" in info
    assert "lq forecast undeploy btc-trend" in warning
