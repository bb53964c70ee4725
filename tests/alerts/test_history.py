"""History over stored data equals what the live engine fires on the same trades; forward
returns are checked by hand."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np
import pytest

from lq.alerts.engine import AlertEngine
from lq.alerts.history import forward_returns, rule_history
from lq.alerts.rules import Rule
from lq.alerts.store import AlertStore
from lq.feeds.events import Trade
from lq.feeds.parser import Parser
from lq.feeds.recording import read_frames
from lq.store import Batch, Store, Writer

S = 1_000_000


def recorded_trades(folder: Path) -> list[Trade]:
    p = Parser()
    out: list[Trade] = []
    for name in ("spot_btcusdt_20240808.gz", "spot_ethusdt_20240808.gz"):
        for ns, raw in read_frames(folder / name):
            out += [e for e in p.parse(raw, ns // 1000) if isinstance(e, Trade)]
    out.sort(key=lambda t: (t.recv_ts, t.symbol, t.trade_id))  # arrival order
    return out


RULES = [
    Rule(name="eth-btc-z", metric="spread_zscore", symbol="ETHUSDT/BTCUSDT",
         condition="crosses_above", threshold=1.5, rearm=0.0, window=30),
    Rule(name="btc-z-band", metric="zscore", symbol="BTCUSDT", condition="outside",
         band=(-2.0, 2.0), window=20),
    Rule(name="eth-rsi", metric="rsi", symbol="ETHUSDT", condition="crosses_below",
         threshold=30.0, rearm=45.0, window=14, sample=5.0),
    Rule(name="btc-px-tick", metric="price", symbol="BTCUSDT", condition="crosses_above",
         threshold=61_000.0, sample=0.0, rearm=60_900.0),
    Rule(name="corr-kalman-drift", metric="hedge_drift", symbol="ETHUSDT/BTCUSDT",
         condition="outside", band=(-0.05, 0.05), window=30, hedge_method="kalman",
         lookback=20),
]  # fmt: skip


def test_live_engine_fires_exactly_what_history_finds_on_the_real_recording(tmp_path, recordings):
    trades = recorded_trades(recordings)
    assert len(trades) == 9_757 + 6_106  # the README's counts
    db = tmp_path / "h.sqlite"
    with AlertStore(db) as s:
        ids = {s.add(r).id: r for r in RULES}

    async def live() -> None:
        w = Writer(db)

        async def riw(fn):
            return await asyncio.to_thread(fn, w)

        eng = AlertEngine(db=db, run_in_writer=riw, warmup=False)
        eng.start()
        await eng.wait_ready()
        eng.feed(trades)
        await eng.flush()
        await eng.stop()
        w.write_batch(Batch(trades=trades))
        w.close()

    asyncio.run(live())
    with AlertStore(db) as s, Store(db) as st:
        ev = s.events(limit=None)
        total = 0
        for rid, rule in ids.items():
            live_ts = sorted(ev.loc[ev.rule_id == rid, "ts"].tolist())
            hist = rule_history(st, rule)
            assert sorted(hist.firings["ts"].tolist()) == live_ts, rule.name
            np.testing.assert_allclose(
                sorted(hist.firings["value"]), sorted(ev.loc[ev.rule_id == rid, "value"]),
                rtol=1e-12,
            )  # fmt: skip
            total += len(live_ts)
    assert total >= 20  # the rules really fire on this data (not a vacuous equality)


def test_forward_returns_are_log_returns_of_bar_closes_by_hand(tmp_path):
    db = tmp_path / "f.sqlite"
    t0 = 1_723_161_600 * S
    # one trade per second at prices 100, 101, ..., 199 (100 s)
    trades = [
        Trade(symbol="BTCUSDT", trade_id=i, price=100.0 + i, qty=1.0, ts=t0 + i * S + 10,
              event_ts=t0 + i * S + 10, is_buyer_maker=False)
        for i in range(100)
    ]  # fmt: skip
    with Writer(db) as w:
        w.write_batch(Batch(trades=trades))
    with Store(db) as st:
        fr = forward_returns(st, "BTCUSDT", [t0 + 10 * S, t0 + 95 * S], ["30s", "1m"])
    # at t0+10s the last closed bar is second 9 (price 109); +30 s -> second 39 (139)
    assert fr["fwd_30s"][0] == pytest.approx(math.log(139 / 109), rel=1e-12)
    assert fr["fwd_1m"][0] == pytest.approx(math.log(169 / 109), rel=1e-12)
    assert np.isnan(fr["fwd_30s"][1])  # beyond the data


def test_history_counts_firings_and_summarises_forward_returns(tmp_path):
    db = tmp_path / "s.sqlite"
    t0 = 1_723_161_600 * S
    # a saw-tooth: price climbs 100 -> 120 over 20 s, drops back to 100, repeat (10 cycles)
    px = [100.0 + (i % 21) for i in range(210)]
    trades = [
        Trade(symbol="BTCUSDT", trade_id=i, price=p, qty=1.0, ts=t0 + i * S,
              event_ts=t0 + i * S, is_buyer_maker=False)
        for i, p in enumerate(px)
    ]  # fmt: skip
    with Writer(db) as w:
        w.write_batch(Batch(trades=trades))
    rule = Rule(name="up", metric="price", symbol="BTCUSDT", condition="crosses_above",
                threshold=115.0)  # fmt: skip
    with Store(db) as st:
        res = rule_history(st, rule, horizons=["3s", "5s"])
    # crosses 115 -> 116 once per cycle (second 21c + 16); the sample is stamped at the end
    # of that second, 21c + 17
    assert res.count == 10
    assert res.firings["ts"].tolist() == [t0 + (21 * c + 17) * S for c in range(10)]
    # +3 s: the last closed bar is second 21c + 19 (price 119); +5 s: second 21c + 21, the
    # next cycle's first (100). The last firing (t0 + 206 s) has no data 5 s later (ends 210).
    summ = res.summary.set_index("horizon")
    assert summ.loc["3s", "n"] == 10 and summ.loc["5s", "n"] == 9
    assert summ.loc["3s", "mean"] == pytest.approx(math.log(119 / 116), rel=1e-12)
    assert summ.loc["5s", "mean"] == pytest.approx(math.log(100 / 116), rel=1e-12)
    assert summ.loc["3s", "hit_rate"] == 1.0 and summ.loc["5s", "hit_rate"] == 0.0


def test_pair_history_reports_both_legs_and_the_hedged_spread_after_firing(tmp_path):
    """A spread z-score rule: each firing carries the hedge ratio it used (checked against
    numpy's least squares on the same window), both legs' forward returns, the hedged
    spread's change, and the share of firings after which the spread reverted."""
    db = tmp_path / "pair.sqlite"
    t0 = 1_723_161_600 * S
    rng = np.random.default_rng(11)
    n, w = 900, 30
    lx = np.log(100.0) + np.cumsum(rng.normal(0, 1e-3, n))
    s = np.zeros(n)
    for i in range(1, n):  # a mean-reverting spread with a kick every 90 s
        s[i] = 0.85 * s[i - 1] + rng.normal(0, 2e-4) + (3e-3 if i % 90 == 45 else 0.0)
    ly = 0.2 + 0.8 * lx + s
    trades = []
    for sym, lp in (("BTCUSDT", ly), ("ETHUSDT", lx)):
        trades += [
            Trade(symbol=sym, trade_id=i + 1, price=float(np.exp(lp[i])), qty=1.0,
                  ts=t0 + i * S, event_ts=t0 + i * S, is_buyer_maker=False)
            for i in range(n)
        ]  # fmt: skip
    with Writer(db) as wr:
        wr.write_batch(Batch(trades=trades))
    rule = Rule(name="z", metric="spread_zscore", symbol="BTCUSDT/ETHUSDT", window=w,
                condition="crosses_above", threshold=2.0, rearm=0.0)  # fmt: skip
    with Store(db) as st:
        res = rule_history(st, rule, horizons=["5s", "20s"])
        y_fwd = forward_returns(st, "BTCUSDT", res.firings["ts"].tolist(), ["5s", "20s"])
        x_fwd = forward_returns(st, "ETHUSDT", res.firings["ts"].tolist(), ["5s", "20s"])
    f = res.firings
    assert res.count >= 5
    # the samples are the 1 s closes: the one stamped ts is second ts/1e6 - t0 - 1
    for ts, beta in zip(f["ts"], f["beta"], strict=True):
        i = (ts - t0) // S - 1
        ref = np.polyfit(lx[i - w + 1 : i + 1], ly[i - w + 1 : i + 1], 1)[0]
        assert beta == pytest.approx(ref, rel=1e-9)
    for h in ("5s", "20s"):
        np.testing.assert_allclose(f[f"fwd_{h}"], y_fwd[f"fwd_{h}"], rtol=1e-12)
        np.testing.assert_allclose(f[f"fwd_x_{h}"], x_fwd[f"fwd_{h}"], rtol=1e-12)
        spread = y_fwd[f"fwd_{h}"] - f["beta"] * x_fwd[f"fwd_{h}"]
        np.testing.assert_allclose(f[f"fwd_spread_{h}"], spread, rtol=1e-12, equal_nan=True)
    summ = res.summary.set_index(["series", "horizon"])
    sp = f["fwd_spread_20s"].dropna()
    assert summ.loc[("spread", "20s"), "reverted"] == pytest.approx((sp < 0).mean())
    assert summ.loc[("spread", "20s"), "reverted"] >= 0.8  # the simulated spread reverts
    assert summ.loc[("x", "5s"), "n"] == x_fwd["fwd_5s"].notna().sum()
