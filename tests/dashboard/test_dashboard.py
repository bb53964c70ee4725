"""Panels, feed and loop, in-process against real stores built from the real recordings."""

from __future__ import annotations

import asyncio
import base64
import io
import re
import sqlite3
import sys
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lq.dashboard import BarFeed, Dashboard, DataPanel, MarketPanel, PairsPanel, status_html
from lq.dashboard.volatility import VolatilityPanel
from lq.store import Store, Writer
from lq.store.export import select


# -- status bar ----------------------------------------------------------------------------
def _row(**kw):
    base = {
        "exchange": "local",
        "source": "local",
        "source_label": "LOCAL EXCHANGE",
        "state": "live",
        "updated_ts": 1_000_000_000,
        "messages": 1234,
        "messages_per_s": 19.5,
        "lag_p50_ms": 12.0,
        "lag_p99_ms": 80.0,
        "last_message_age_s": 0.25,
        "gaps_found": 3,
        "gaps_filled": 2,
        "gaps_unfilled": 1,
        "reconnects": 4,
    }
    return {**base, **kw}


def test_status_bar_shows_source_rate_lag_age_gaps_and_reconnects() -> None:
    # now is 0.5 s after the collector published; last tick age = 0.25 + 0.5 (hand-computed)
    out = status_html([_row()], now_us=1_000_500_000)
    assert 'data-source="LOCAL EXCHANGE"' in out and ">LOCAL EXCHANGE<" in out
    assert 'data-messages="1234"' in out and "1,234" in out
    assert ">19.5</b>/s" in out
    assert "lag p50 12 ms · p99 80 ms" in out
    assert ">0.8 s</b> ago" in out  # 0.75 rounded to one decimal
    assert "gaps 3 found · 2 filled · <b>1 unfilled</b>" in out
    assert "reconnects 4" in out
    assert "#b8860b" in out  # healthy local: amber banner, not the red alarm


def test_status_bar_shows_latency_apart_from_the_clock_offset() -> None:
    # the issue's "lag p50 -1 ms": the exchange's clock is ahead of ours. With the fastest
    # lag known (-4 ms), latency is lag minus it (hand-computed: -1 - -4 = 3, 6 - -4 = 10)
    # and the offset is bounded by it; no negative latency is shown
    out = status_html(
        [_row(lag_p50_ms=-1.0, lag_p99_ms=6.0, lag_min_ms=-4.0)], now_us=1_000_500_000
    )
    assert "latency p50 <b>3 ms</b> · p99 <b>10 ms</b> above the fastest" in out
    assert "clock offset ≤ -4 ms" in out
    assert "lag p50 -1" not in out
    # an older collector's row (no fastest lag): the raw lag, a negative one explained
    old = status_html([_row(lag_p50_ms=-1.0, lag_p99_ms=6.0)], now_us=1_000_500_000)
    assert "lag p50 -1 ms · p99 6 ms (negative: the clocks differ)" in old


def test_status_bar_marks_a_silent_collector_stale_and_red() -> None:
    out = status_html([_row()], now_us=1_000_000_000 + 12_000_000)
    assert "STALE (12 s without an update)" in out
    assert "#7a1f1f" in out


def test_status_bar_says_a_cleanly_stopped_collector_stopped_not_stale() -> None:
    out = status_html(
        [_row(state="stopped", storage="storing")], now_us=1_000_000_000 + 300_000_000
    )
    assert "STOPPED 5 min ago" in out and "STALE" not in out
    assert "everything it received was stored" in out
    assert "#7a1f1f" in out  # nothing is being stored: red, as any feed that is not storing


def test_status_bar_says_no_feed_when_nothing_published() -> None:
    assert "NO FEED" in status_html([], now_us=0)


def test_replay_source_is_labelled_replay() -> None:
    out = status_html([_row(source_label="REPLAY", source="replay:x.gz")], now_us=1_000_000_000)
    assert 'data-source="REPLAY"' in out


# -- feed: only new rows -------------------------------------------------------------------
def test_feed_reads_only_new_bars_and_matches_the_store(tmp_path: Path, trades) -> None:
    db = tmp_path / "inc.sqlite"
    half = len(trades) // 2
    with Writer(db) as w:
        w.write_trades(trades[:half])
    store = Store(db)
    feed = BarFeed(store, ["BTCUSDT", "ETHUSDT"])
    feed.update()
    before = {s: len(store.bars(s)) for s in feed.symbols}
    v1, read1 = feed.version, feed.rows_read
    assert feed.update() == 0 and feed.version == v1  # nothing new: nothing read
    with Writer(db) as w:
        w.write_trades(trades[half:])
    n = feed.update()
    after = {s: len(store.bars(s)) for s in feed.symbols}
    new_trades = {s: sum(1 for t in trades[half:] if t.symbol == s) for s in feed.symbols}
    # bars read = bars added + the last cached bar re-read; trades read = new trades
    expected = sum(after[s] - before[s] + 1 + new_trades[s] for s in feed.symbols)
    assert n == expected and feed.rows_read == read1 + expected
    for s in feed.symbols:  # reference: the store's own full read
        pd.testing.assert_frame_equal(feed.bars(s), store.bars(s), check_freq=False)
        last = max((t for t in trades if t.symbol == s), key=lambda t: t.trade_id)
        assert feed.last_trade(s).trade_id == last.trade_id
        assert feed.last_trade(s).price == last.price
    store.close()


def test_feed_keeps_only_the_history_window(real_db: Path) -> None:
    with Store(real_db) as store:
        feed = BarFeed(store, ["BTCUSDT"], history=60)
        feed.update()
        b = feed.bars("BTCUSDT")
        ref = store.bars("BTCUSDT")
        # the newest 60 s: ts > newest - 60 s (hand: bars are 1 s apart at most)
        assert b["ts"].iloc[-1] == ref["ts"].iloc[-1]
        assert (b["ts"] > ref["ts"].iloc[-1] - 60_000_000).all() and len(b) <= 60


# -- panels draw what lq.store / lq.analytics give ------------------------------------------
def test_market_candles_equal_the_stores_bars(real_db: Path) -> None:
    with Store(real_db) as store:
        feed = BarFeed(store, ["BTCUSDT", "ETHUSDT"])
        feed.update()
        p = MarketPanel(feed, symbols=["BTCUSDT", "ETHUSDT"], bars=100)
        p.refresh()
        ref = store.bars("BTCUSDT").iloc[-100:]
        np.testing.assert_array_equal(np.asarray(p.fig.data[0].close), ref["close"].to_numpy())
        # SMA 20 reference: pandas rolling mean of the close (tolerance 1e-9 relative)
        sma_ref = store.bars("BTCUSDT")["close"].rolling(20).mean().iloc[-100:].to_numpy()
        np.testing.assert_allclose(np.asarray(p.fig.data[1].y, float), sma_ref, rtol=1e-9)
        assert 'class="lq-last-tick"' in p.header.value
        p.interval.value = "1m"  # the observer redraws at once
        ref1m = store.bars("BTCUSDT", "1m")
        np.testing.assert_allclose(np.asarray(p.fig.data[0].close), ref1m["close"], rtol=1e-12)


def test_pairs_zscore_matches_an_independent_ols_and_rolling_zscore(real_db: Path) -> None:
    with Store(real_db) as store:
        feed = BarFeed(store, ["BTCUSDT", "ETHUSDT"])
        feed.update()
        p = PairsPanel(feed, symbols=["ETHUSDT", "BTCUSDT"], window=60, bars=200)
        p.refresh()
        z = np.asarray(p.fig.data[4].y, dtype=float)
        # reference: numpy polyfit OLS of log ETH on log BTC over the last 60 aligned bars,
        # spread, then pandas rolling mean/std (ddof=1) over 60; tolerance 1e-6 absolute
        px = feed.closes(["ETHUSDT", "BTCUSDT"], last=260)
        ly, lx = np.log(px["ETHUSDT"]), np.log(px["BTCUSDT"])
        beta, alpha = np.polyfit(lx.iloc[-60:], ly.iloc[-60:], 1)
        s = ly - alpha - beta * lx
        zref = ((s - s.rolling(60).mean()) / s.rolling(60).std()).iloc[-200:].to_numpy()
        np.testing.assert_allclose(z, zref, atol=1e-6, equal_nan=True)
        assert f"β={beta:.4f}" in p.stats.value
        assert re.search(r"ADF p <b class='lq-adf-p'>0\.\d{3}</b>", p.stats.value)
        p.method.value = "kalman"
        assert "kalman" in p.stats.value


def test_garch_refit_runs_off_the_loop_and_draws_the_forecast(real_db: Path) -> None:
    from lq.analytics import garch_forecast, returns

    with Store(real_db) as store:
        feed = BarFeed(store, ["BTCUSDT"])
        feed.update()
        p = VolatilityPanel(feed, symbols=["BTCUSDT"], horizon=10)
        p.refresh()
        job = p.prepare_slow()
        assert not p.slow_due
        p.apply_slow(job())  # the dashboard runs job() in an executor
        r = returns(store.bars("BTCUSDT")["close"], kind="log").dropna()
        ref = garch_forecast(r, horizon=10, interval="1s")  # same inputs, same seed
        i = p._i_garch
        np.testing.assert_allclose(
            np.asarray(p.fig.data[i].y), ref.annualized_volatility, rtol=1e-9
        )
        np.testing.assert_allclose(np.asarray(p.fig.data[i + 2].y), 2 * ref.volatility, rtol=1e-9)
        assert "GARCH garch/normal" in p.garch_info.value


# -- data: download and upload -------------------------------------------------------------
def test_csv_download_link_carries_the_exported_selection(real_db: Path) -> None:
    with Store(real_db) as store:
        p = DataPanel(store, db=real_db, symbols=["BTCUSDT"])
        p.range.value = "everything"
        link = p.make_download()
        b64 = re.search(r'base64,([^"]+)"', link).group(1)
        got = pd.read_csv(io.BytesIO(base64.b64decode(b64)))
        ref = select(store, "bars", "BTCUSDT")
        assert list(got.columns) == list(ref.columns) and len(got) == len(ref) == 345
        np.testing.assert_allclose(got["close"], ref["close"], rtol=1e-12)
        p.format.value = "parquet"
        link = p.make_download()
        raw = base64.b64decode(re.search(r'base64,([^"]+)"', link).group(1))
        assert raw[:4] == b"PAR1" and 'download="BTCUSDT_bars_1s.parquet"' in link


def test_bad_upload_shows_the_importers_error_inline(real_db: Path) -> None:
    pytest.importorskip("lq.importer", reason="lq.importer (issue: import) not built yet")
    with Store(real_db) as store:
        p = DataPanel(store, db=real_db, symbols=["BTCUSDT"])
        out = p.import_file("junk.csv", b"this,is\nnot,a market file\n")
        assert "lq-error" in out and "junk.csv" in out


def test_upload_while_a_collector_runs_is_queued_then_reported_imported(tmp_path: Path) -> None:
    from lq.collector import Collector

    db = tmp_path / "queued.sqlite"
    csv = "\n".join(
        f"{i},{100 + i * 0.01:.2f},0.5,{(100 + i * 0.01) * 0.5:.4f},{1723161600000 + i * 1000},"
        "true,true"
        for i in range(1, 301)
    )

    async def main() -> tuple[str, str]:
        col = Collector(db=db, source="local", symbols=("BTCUSDT",), simulator={"seed": 1})
        col.start()
        await col.wait_started(20)
        with Store(db) as store:
            p = DataPanel(store, db=db, symbols=["BTCUSDT"])
            first = p.import_file("SOLUSDT-trades-2024-08-09.csv", csv.encode())
            deadline = time.monotonic() + 20
            while "imported by the running" not in p.upload_result.value:
                assert time.monotonic() < deadline, p.upload_result.value
                await asyncio.sleep(0.2)
                p.refresh()  # the dashboard loop calls this for the visible tab
        await col.stop()
        return first, p.upload_result.value

    first, done = asyncio.run(main())
    assert "300 rows queued for the running collector" in first
    assert "imported by the running collector (300 rows checked" in done
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM ticks WHERE symbol = 'SOLUSDT'").fetchone()[0] == 300


# -- the dashboard and its loop ------------------------------------------------------------
def _fake_clock(d: Dashboard) -> list[float]:
    """Put the heartbeat on a clock the test moves: silence is then exact, whatever the
    machine's load (a loaded machine used to spend the whole timeout building the page)."""
    now = [0.0]
    d.heartbeat._clock = lambda: now[0]
    d.heartbeat.last_beat = 0.0
    return now


async def _next_refresh(d: Dashboard, task: asyncio.Task) -> None:
    n = d.refreshes
    while d.refreshes == n and not task.done():
        await asyncio.sleep(0.02)


def test_loop_ends_when_the_browser_heartbeat_stops(real_db: Path) -> None:
    d = Dashboard(db=real_db, symbols=["BTCUSDT", "ETHUSDT"], interval=0.2, orphan_timeout=60)
    now = _fake_clock(d)

    async def main() -> None:
        task = d.start()
        for _ in range(3):  # 59 s of silence: still refreshing
            now[0] += 59 / 3
            await _next_refresh(d, task)
        assert not task.done() and d.refreshes >= 3
        now[0] = 61.0  # past the 60 s timeout: the loop ends at its next check
        await asyncio.wait_for(task, timeout=60)

    asyncio.run(main())
    assert d.stopped_reason == "no browser heartbeat for 61 s"


def test_a_page_that_beats_after_the_timeout_gets_its_loop_back(real_db: Path) -> None:
    """A page that took longer than the orphan timeout to render (a loaded machine) used to
    keep a dead loop: its first beat now starts the loop again."""
    d = Dashboard(db=real_db, symbols=["BTCUSDT", "ETHUSDT"], interval=0.2, orphan_timeout=60)
    now = _fake_clock(d)

    async def main() -> None:
        task = d.start()
        now[0] = 61.0
        await asyncio.wait_for(task, timeout=60)
        assert d.stopped_reason == "no browser heartbeat for 61 s"
        ended_at = d.refreshes
        now[0] = 90.0
        d.heartbeat.beat = 1.0  # the page has rendered and beats
        assert d._task is not None and d._task is not task and d.stopped_reason is None
        for _ in range(2):
            await _next_refresh(d, d._task)
        assert d.refreshes >= ended_at + 2 and not d._task.done()
        await d.stop()

    asyncio.run(main())
    assert d.stopped_reason == "stopped"


def test_loop_keeps_running_while_the_browser_beats(real_db: Path) -> None:
    d = Dashboard(db=real_db, symbols=["BTCUSDT", "ETHUSDT"], interval=0.2, orphan_timeout=60)
    now = _fake_clock(d)

    async def main() -> None:
        task = d.start()
        for i in range(8):  # 8 beats 30 s apart: 240 s, four times the timeout
            now[0] += 30.0
            d.heartbeat.beat = float(i + 1)  # the browser's beat
            await _next_refresh(d, task)  # the loop checked the silence after this beat
            assert not task.done()
        await d.stop()

    asyncio.run(main())
    assert d.stopped_reason == "stopped" and d.heartbeat.beats == 8


def test_tabs_from_later_issues_plug_in_when_their_module_exists(
    real_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ipywidgets as W

    mod = types.ModuleType("lq.dashboard.alerts_tab")

    class AlertsTab:
        title = "Alerts"

        def __init__(self, *, store, symbols) -> None:
            self.widget = W.HTML(f"alerts for {','.join(symbols)}")
            self.refreshed = 0

        def refresh(self) -> None:
            self.refreshed += 1

    AlertsTab.__module__ = mod.__name__
    mod.AlertsTab = AlertsTab
    monkeypatch.setitem(sys.modules, "lq.dashboard.alerts_tab", mod)
    d = Dashboard(db=real_db, symbols=["BTCUSDT", "ETHUSDT"], live=False)
    titles = [d.tabs.get_title(i) for i in range(len(d.tabs.children))]
    assert titles[:5] == ["Market", "Pairs", "Volatility", "Correlation & clusters", "Data"]
    # the stand-in, then the real tabs
    assert titles[5:] == ["Alerts", "Backtest", "Forecast", "Venues"]
    d.tabs.selected_index = 5
    d.refresh()
    assert d.panels[5].refreshed >= 2 and "BTCUSDT,ETHUSDT" in d.panels[5].widget.value


def test_every_tab_builds_and_refreshes_on_real_data(real_db: Path) -> None:
    d = Dashboard(db=real_db, symbols=["BTCUSDT", "ETHUSDT"], live=False)
    for i in range(5):
        d.tabs.selected_index = i
        d.refresh()
        p = d.panels[i]
        assert p is not None
        if hasattr(p, "prepare_slow"):
            p.apply_slow(p.prepare_slow()())
    clusters = d.panels[3]
    assert "2 symbols on" in clusters.info.value and "<table" in clusters.table.value
    assert np.asarray(clusters.fig.data[0].z).shape == (2, 2)


def test_interval_below_five_updates_per_second_is_refused(real_db: Path) -> None:
    from lq.errors import ValidationError

    with pytest.raises(ValidationError, match=r"interval=0\.1"):
        Dashboard(db=real_db, symbols=["BTCUSDT"], interval=0.1)
