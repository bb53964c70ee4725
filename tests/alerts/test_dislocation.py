"""The ``dislocation_bps`` alert metric: one asset on two venues (legs ``symbol@exchange``).

Values are checked against a hand computation with pandas (last price per 1 s bucket per venue,
carried forward, a leg left out once it has not traded within ``lookback`` samples); firings go
through the real engine and arrive at a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np
import pandas as pd
import pytest

from lq.alerts.channels import WebhookChannel
from lq.alerts.delivery import Delivery, RetryPolicy
from lq.alerts.engine import AlertEngine
from lq.alerts.history import evaluate_samples, load_samples, rule_history
from lq.alerts.metrics import DislocationMetric, VenueSampler, make_metric
from lq.alerts.rules import METRIC_RANGES, Rule, rule_from_dict, venue_legs
from lq.alerts.store import AlertStore
from lq.errors import RuleError
from lq.feeds.events import Trade
from lq.store import Store, Writer

S = 1_000_000
T0 = 1_723_161_600 * S
PAIR = "BTC-USD@coinbase/BTCUSDT@binance"
RULE = Rule(name="cb-vs-bn", metric="dislocation_bps", symbol=PAIR, condition="above",
            threshold=10.0, channels=("webhook", "dashboard"))  # fmt: skip
# a generous attempt timeout: a loaded machine only delays the answer (a 1 s timeout there
# retries a request the server did receive, and the recorder sees it twice)
FAST = RetryPolicy(attempts=3, initial=0.05, factor=2.0, attempt_timeout=30.0, rate=1000.0,
                   burst=1000)  # fmt: skip

# second -> (coinbase price, binance price); None: that venue did not trade in that second.
# bybit also lists BTCUSDT: its trades (at 150!) must never reach the binance leg.
SCRIPT = {
    0: (100.0, 100.0), 1: (100.0, 100.0), 2: (100.3, 100.0), 3: (100.0, 100.0),
    4: (100.0, 100.0), 5: (100.5, None), 6: (100.5, None), 7: (100.5, None),
    8: (100.5, 100.0), 9: (100.0, 100.0), 10: (100.0, None),
}  # fmt: skip


def _script_trades() -> list[Trade]:
    out, ids = [], {"coinbase": 0, "binance": 0, "bybit": 0}

    def trade(ex: str, sym: str, p: float, ts: int) -> Trade:
        ids[ex] += 1
        return Trade(symbol=sym, trade_id=ids[ex], price=p, qty=1.0, ts=ts, event_ts=ts,
                     is_buyer_maker=False, recv_ts=time.time_ns() // 1000, exchange=ex)  # fmt: skip

    for sec, (a, b) in SCRIPT.items():
        t = T0 + sec * S
        out.append(trade("coinbase", "BTC-USD", a, t + 100_000))
        if sec == 4:
            out.append(trade("bybit", "BTCUSDT", 150.0, t + 150_000))
        if b is not None:
            out.append(trade("binance", "BTCUSDT", b, t + 200_000))
    return out


def _by_hand(trades: list[Trade], rule: Rule) -> pd.Series:
    """Reference: per 1 s bucket each leg's last price (pandas groupby), forward-filled onto
    the buckets where either leg traded, a leg NaN once its last trade is older than
    ``lookback`` buckets; stamped with the bucket's end; the last (open) bucket left out."""
    legs = venue_legs(rule.symbol)
    assert legs is not None
    us = rule.sample_us
    cols = {}
    for k, (sym, ex) in enumerate(legs):
        df = pd.DataFrame([(t.ts, t.price) for t in trades if (t.symbol, t.exchange) == (sym, ex)],
                          columns=["ts", "price"])  # fmt: skip
        df["bucket"] = df["ts"] // us
        last = df.groupby("bucket")["price"].last()
        cols[f"p{k}"] = last
        cols[f"b{k}"] = pd.Series(last.index.to_numpy(), index=last.index)
    wide = pd.DataFrame(cols).sort_index().ffill().dropna()
    wide = wide.iloc[:-1]  # the newest bucket closes only when a later trade arrives
    end = wide.index.to_numpy() + 1
    ok = (wide["b0"] >= end - rule.max_age_samples) & (wide["b1"] >= end - rule.max_age_samples)
    bps = (wide["p0"] / wide["p1"] - 1.0) * 1e4
    return pd.Series(np.where(ok, bps, np.nan), index=end * us)


def _live_values(trades: list[Trade], rule: Rule) -> pd.Series:
    legs = [f"{s}@{e}" for s, e in venue_legs(rule.symbol)]  # type: ignore[union-attr]
    sampler, metric = VenueSampler(n_legs=2, sample_us=rule.sample_us), make_metric(rule)
    out = {}
    for t in trades:
        key = f"{t.symbol}@{t.exchange}"
        if key not in legs:
            continue
        s = sampler.on_trade(legs.index(key), t.price, t.ts)
        if s is not None:
            metric.update(*s)
            out[s[0]] = metric.value
    return pd.Series(out, dtype=float)


# -- the rule -------------------------------------------------------------------------------------


def test_every_metric_has_a_range_and_dislocation_is_bounded_below_by_minus_10000_bps():
    assert METRIC_RANGES["dislocation_bps"] == (-10_000.0, math.inf)
    with pytest.raises(RuleError, match="never reached"):
        Rule(name="x", metric="dislocation_bps", symbol=PAIR, condition="below", threshold=-2e4)


def test_legs_are_symbol_at_exchange_and_are_normalised_from_user_text():
    r = rule_from_dict({"name": "k", "metric": "dislocation_bps", "threshold": 5.0,
                        "symbol": " btc/usd@Kraken / btcusdt@BINANCE "})  # fmt: skip
    assert r.symbol == "BTC/USD@kraken/BTCUSDT@binance"
    assert r.symbols == ("BTC/USD@kraken", "BTCUSDT@binance")
    assert venue_legs(r.symbol) == (("BTC/USD", "kraken"), ("BTCUSDT", "binance"))
    assert r.describe() == (
        "dislocation_bps(BTC/USD@kraken (USD) vs BTCUSDT@binance (USDT), max age 1 sample(s))"
        " above 5"
    )


@pytest.mark.parametrize(
    ("symbol", "sample", "match"),
    [
        ("BTC-USD/BTCUSDT", 1.0, "two venues"),
        ("BTCUSDT@binance/BTCUSDT@binance", 1.0, "two venues"),
        ("BTC-USD@coinbase", 1.0, "two venues"),
        (PAIR, 0.0, "time clock"),
    ],
)
def test_bad_venue_rules_are_refused_with_the_way_out(symbol, sample, match):
    with pytest.raises(RuleError, match=match):
        Rule(name="x", metric="dislocation_bps", symbol=symbol, threshold=5.0, sample=sample)


# -- the metric -----------------------------------------------------------------------------------


@pytest.mark.parametrize("lookback", [None, 3])
def test_live_values_equal_the_hand_computation_and_a_stale_leg_is_left_out(lookback):
    rule = Rule(**{**{f: getattr(RULE, f) for f in RULE.__struct_fields__}, "lookback": lookback})
    trades = _script_trades()
    live, want = _live_values(trades, rule), _by_hand(trades, rule)
    pd.testing.assert_series_equal(live, want, check_names=False, check_index_type=False)
    at = {int((ts - T0) // S) - 1: v for ts, v in live.items()}  # bucket -> value
    assert at[2] == pytest.approx(30.0, abs=1e-9)  # (100.3 / 100 - 1) · 1e4
    assert at[8] == pytest.approx(50.0, abs=1e-9)
    if lookback is None:  # binance silent in seconds 5-7: no value, not a stale 50 bps
        assert all(math.isnan(at[k]) for k in (5, 6, 7))
    else:  # allowed 3 samples old: seconds 5-6 compare with binance's price of second 4
        assert at[5] == pytest.approx(50.0) and math.isnan(at[7])


def test_metric_formula_is_lq_analytics_dislocation_simple():
    """Same formula as lq.analytics.dislocation (the batch function) on the same prices."""
    from lq.analytics import dislocation

    m = DislocationMetric(max_age_us=S)
    m.update(2 * S, (100.3, 100.0, float(S), float(S)))
    d = dislocation({"binance": pd.Series([100.0], index=[S]), "coinbase": pd.Series([100.3], index=[S])},
                    quotes={"binance": "USDT", "coinbase": "USD"}, reference="binance", interval=None)  # fmt: skip
    assert m.value == d.bps["coinbase"].iloc[0]


def test_history_reads_the_same_samples_from_the_store_as_the_live_sampler(tmp_path):
    db = tmp_path / "hist.sqlite"
    trades = _script_trades()
    with Writer(db) as w:
        w.write_trades(trades)
    with Store(db) as st:
        ts, prices = load_samples(st, RULE)
        _, values = evaluate_samples(RULE, ts, prices)
        hist = rule_history(st, RULE, horizons=("2s",))
    live = _live_values(trades, RULE)
    # history also has the newest, still open bucket
    np.testing.assert_array_equal(ts[:-1], live.index.to_numpy())
    np.testing.assert_allclose(values[:-1], live.to_numpy(), rtol=0, atol=1e-9, equal_nan=True)
    assert hist.firings["ts"].tolist() == [T0 + 3 * S, T0 + 9 * S]
    assert values[list(ts).index(T0 + 5 * S)] == 0.0  # bybit's 150 never stood in for binance
    # forward returns of the first leg (coinbase), read from its own exchange label
    fwd = hist.firings["fwd_2s"].to_numpy()
    np.testing.assert_allclose(fwd, [math.log(100.0 / 100.3), math.log(100.0 / 100.5)], atol=1e-12)


# -- the engine, delivering to a real HTTP server -------------------------------------------------


def test_engine_fires_on_dislocation_and_delivers_to_the_webhook(tmp_path, http_server):
    db = tmp_path / "live.sqlite"
    with AlertStore(db) as s:
        rid = s.add(RULE).id

    async def go() -> AlertEngine:
        w = Writer(db)

        async def riw(fn):
            return await asyncio.to_thread(fn, w)

        eng = AlertEngine(db=db, run_in_writer=riw, poll_interval=0.05, warmup=False)
        eng.delivery = Delivery({"webhook": WebhookChannel(url=http_server.url + "/hook")},
                                record=eng.record_delivery, policy=FAST)  # fmt: skip
        eng.start()
        await eng.wait_ready()
        eng.feed(_script_trades())
        await eng.flush()
        await eng.delivery.drain(30)
        await eng.stop()
        w.close()
        return eng

    eng = asyncio.run(go())
    want = _by_hand(_script_trades(), RULE)
    fired = want[(want > 10.0) & (want.shift(1).fillna(0.0) <= 10.0)]
    assert list(fired.index) == [T0 + 3 * S, T0 + 9 * S]
    bodies = sorted((r.json()["event"] for r in http_server.requests), key=lambda e: e["ts"])
    assert [b["ts"] for b in bodies] == list(fired.index)
    np.testing.assert_allclose([b["value"] for b in bodies], fired.to_numpy(), atol=1e-9)
    assert {b["rule"] for b in bodies} == {"cb-vs-bn"}
    assert "BTC-USD@coinbase (USD) vs BTCUSDT@binance (USDT)" in bodies[0]["message"]
    assert eng.stats.stored == 2
    with AlertStore(db) as s:
        ev = s.events(rule=rid, limit=None)
    assert all(d["webhook"]["status"] == "sent" for d in ev["delivery"])


def test_engine_warms_a_dislocation_rule_up_from_each_legs_own_exchange(tmp_path):
    """Warm-up reads every leg from its own exchange label: after a restart the rule is
    disarmed where a firing was already stored, and a bybit BTCUSDT never stands in for
    binance's."""
    db = tmp_path / "warm.sqlite"
    trades = _script_trades()
    with Writer(db) as w:
        w.write_trades(trades)
    with AlertStore(db) as s:
        s.add(RULE)

    async def go() -> AlertEngine:
        eng = AlertEngine(db=db, poll_interval=0.05, warmup=True, exchange="binance")
        eng.start()
        await eng.wait_ready()
        await eng.stop()
        return eng

    eng = asyncio.run(go())
    (entry,) = eng._entries.values()
    # warmed on every stored sample; the last (bucket 10) has no binance trade within 1 s
    assert entry.metric.last_ts == T0 + 11 * S and math.isnan(entry.metric.value)
    assert entry.rules[0].state.armed  # bucket 9 compared 100.0 with 100.0: re-armed
