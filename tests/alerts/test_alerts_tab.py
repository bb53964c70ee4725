"""The dashboard's Alerts tab driven through its widgets (no browser)."""

from __future__ import annotations

import asyncio
import io

import pandas as pd
import pytest

from lq.alerts.engine import AlertEngine
from lq.alerts.store import AlertStore
from lq.dashboard.alerts_tab import AlertsTab
from lq.feeds.events import Trade
from lq.store import Writer

S = 1_000_000
T0 = 1_723_161_600 * S


@pytest.fixture
def tab(tmp_path):
    t = AlertsTab(tmp_path / "tab.sqlite", known_symbols=["BTCUSDT", "ETHUSDT"])
    yield t
    t.close()


def test_title_and_widget(tab):
    assert tab.title == "Alerts"
    assert tab.widget is not None


def test_inline_validation_names_the_field_and_saves_nothing(tab):
    tab.name.value = "bad one"
    tab.threshold.value = "nan"
    assert tab.save() is None
    assert "threshold" in tab.message.value and "finite" in tab.message.value
    assert tab.threshold.layout.border  # the offending input is highlighted
    tab.threshold.value = "2"
    tab.symbol.value = "ETHUSDT/DOGEUSDT"
    assert tab.save() is None
    assert "DOGEUSDT is not collected" in tab.message.value
    tab.symbol.value = "ETHUSDT"  # a pair metric with one symbol
    assert "symbol" in tab.message.value  # validated while typing, before Save
    assert tab.store.rules() == []


def test_create_edit_disable_delete_a_rule(tab):
    tab.name.value = "eth-btc-z"
    sr = tab.save()
    assert sr is not None and sr.rule.symbol == "ETHUSDT/BTCUSDT"
    assert sr.rule.condition == "crosses_above" and sr.rule.threshold == 2.0
    assert [v for _, v in tab.rule_list.options] == [sr.id]
    tab.edit(sr.id)
    tab.threshold.value = "2.5"
    tab.condition.value = "outside"
    tab.band.value = "-2.5,2.5"
    sr2 = tab.save()
    assert sr2.id == sr.id and sr2.rule.band == (-2.5, 2.5) and sr2.rule.threshold is None
    tab.rule_list.value = sr.id
    tab.toggle_button.click()
    assert tab.store.get(sr.id).enabled is False
    assert " off " in tab.rule_list.options[0][0]
    tab.delete_button.click()
    assert tab.store.rules() == []


def test_new_events_appear_in_the_live_feed_and_history_exports_csv(tab):
    tab.name.value = "btc-up"
    tab.metric.value = "price"
    tab.symbol.value = "BTCUSDT"
    tab.condition.value = "crosses_above"
    tab.threshold.value = "100"
    tab.sample.value = "0"
    tab.severity.value = "critical"
    assert tab.save() is not None
    assert tab.feed_events == []

    async def collect() -> None:  # the collector's engine, here without a feed
        w = Writer(tab.db)

        async def riw(fn):
            return await asyncio.to_thread(fn, w)

        eng = AlertEngine(db=tab.db, run_in_writer=riw, warmup=False)
        eng.start()
        await eng.wait_ready()
        eng.feed([Trade(symbol="BTCUSDT", trade_id=i, price=p, qty=1.0, ts=T0 + i * S,
                        event_ts=T0 + i * S, is_buyer_maker=False)
                  for i, p in enumerate([99.0, 101.0, 99.0, 102.0])])  # fmt: skip
        await eng.flush()
        await eng.stop()
        w.close()

    asyncio.run(collect())
    tab.refresh()
    assert len(tab.feed_events) == 2
    assert "CRITICAL" in tab.feed_events[0] and "102" in tab.feed_events[0]  # newest first
    tab.filter_text.value = "btc-up"
    assert len(tab.history()) == 2
    tab.filter_severity.value = "info"
    assert tab.history().empty
    tab.filter_severity.value = "critical"
    df = pd.read_csv(io.StringIO(tab.export_csv()))
    assert df["value"].tolist() == [102.0, 101.0]
    assert set(df["rule"]) == {"btc-up"}
    tab.export_button.click()
    assert "data:text/csv;base64," in tab.export_link.value
    with AlertStore(tab.db) as s:
        assert len(s.events()) == 2


def test_a_channel_without_settings_is_refused_on_save(tab):
    tab.name.value = "tg"
    tab.channels.value = ("dashboard", "telegram")
    assert tab.save() is None
    assert "telegram needs telegram.token (or $LQ_TELEGRAM_TOKEN)" in tab.message.value
    assert tab.store.rules() == []


def test_backtest_rule_greys_a_per_day_rate_from_under_a_day(tab):
    px = [100.0 + (i % 21) for i in range(420)]  # 7 minutes of a saw-tooth: 20 crossings
    with Writer(tab.db) as w:
        w.write_trades([
            Trade(symbol="BTCUSDT", trade_id=i, price=p, qty=1.0, ts=T0 + i * S,
                  event_ts=T0 + i * S, is_buyer_maker=False) for i, p in enumerate(px)
        ])  # fmt: skip
    tab.name.value = "up"
    tab.metric.value = "price"
    tab.symbol.value = "BTCUSDT"
    tab.threshold.value = "115"
    sr = tab.save()
    assert sr is not None
    tab.rule_list.value = sr.id
    tab.history_button.click()
    out = tab.rule_history.value
    # 20 firings in 419 s: 20 / (419 / 86400) = 4124.1 per day, shown greyed with the reason
    assert "would have fired 20 times" in out and "4124.1 per day" in out
    assert "opacity:0.45" in out
    assert "not meaningful: per-day rate from 7.0 min of data (under 1 day)" in out
