"""Data sources: the seeded simulator and the replay of recorded frames (no sockets)."""

from __future__ import annotations

import gzip
import itertools
import json
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from statsmodels.tsa.stattools import adfuller

from lq.errors import ValidationError
from lq.exchange import ReplaySource, SimulatorParams, SimulatorSource
from lq.exchange.market import QuoteIn, TradeIn

BTC_FILE = "spot_btcusdt_20240808.gz"
ETH_FILE = "spot_ethusdt_20240808.gz"

T0 = 1_700_000_000_000_000  # a fixed start time (µs) makes runs comparable item by item


def _take(src: SimulatorSource, seconds: float) -> list:
    end = (src.start_time_us or 0) + int(seconds * 1e6)
    return list(itertools.takewhile(lambda it: it[0] < end, src.items()))


def test_same_seed_gives_the_same_trades_and_another_seed_does_not() -> None:
    a = _take(SimulatorSource(symbols=["BTCUSDT", "ETHUSDT"], seed=7, start_time_us=T0), 20)
    b = _take(SimulatorSource(symbols=["BTCUSDT", "ETHUSDT"], seed=7, start_time_us=T0), 20)
    c = _take(SimulatorSource(symbols=["BTCUSDT", "ETHUSDT"], seed=8, start_time_us=T0), 20)
    assert a == b
    assert [x for x in a if isinstance(x[1], TradeIn)] != [
        x for x in c if isinstance(x[1], TradeIn)
    ]


def test_prices_are_on_the_tick_quantities_on_the_lot_and_ids_contiguous() -> None:
    src = SimulatorSource(
        symbols=["BTCUSDT", "ETHUSDT", "XRPUSDT", "FOOUSDT"], seed=3, start_time_us=T0
    )
    specs = {s.symbol: s for s in src.specs()}
    last_id: dict[str, int] = {}
    last_ts: dict[str, int] = {}
    n = 0
    for _, it in _take(src, 30):
        spec = specs[it.symbol]
        if isinstance(it, TradeIn):
            n += 1
            assert Decimal(it.price) % Decimal(spec.tick_size) == 0
            assert Decimal(it.qty) % Decimal(spec.lot_size) == 0 and Decimal(it.qty) > 0
            assert len(it.price.split(".")[1]) == 8  # Binance's 8-decimal strings
            assert it.trade_id == last_id.get(it.symbol, it.trade_id - 1) + 1
            assert it.ts >= last_ts.get(it.symbol, 0) and it.event_ts >= it.ts
            last_id[it.symbol], last_ts[it.symbol] = it.trade_id, it.ts
        else:
            assert isinstance(it, QuoteIn)
            assert Decimal(it.ask) > Decimal(it.bid)
    assert n > 4 * 30 * 5 and set(last_id) == set(specs)


def test_trade_rate_matches_the_parameter_and_arrivals_are_bursty() -> None:
    # calm regime only (stressed regimes double the baseline): mean rate == rate
    params = SimulatorParams(rate=10.0, calm_duration=1e12)
    src = SimulatorSource(symbols=["BTCUSDT"], seed=11, start_time_us=T0, params=params)
    ts = np.array([it.ts for _, it in _take(src, 400) if isinstance(it, TradeIn)])
    assert ts.size / 400 == pytest.approx(10.0, rel=0.15)  # tolerance: Hawkes clustering
    counts = np.bincount(((ts - T0) // 1_000_000).astype(int), minlength=400)
    fano = counts.var() / counts.mean()
    assert fano > 2.0  # a Poisson process has a Fano factor of 1: these arrive in bursts


def test_eth_is_cointegrated_with_btc_with_the_stated_hedge_ratio() -> None:
    assert SimulatorSource(symbols=["BTCUSDT", "ETHUSDT"]).pairs == {"ETHUSDT": ("BTCUSDT", 0.8)}
    # a volatile factor and a fast spread make 10 simulated minutes enough to pin the ratio:
    # slope sd ~ spread_sd / (sd(log BTC) * sqrt(n_eff)) ~ 0.001 / (0.05 * 6) ~ 0.003
    params = SimulatorParams(rate=2.0, vol_calm=2e-3, vol_stressed=2e-3, spread_half_life=5.0)
    src = SimulatorSource(symbols=["BTCUSDT", "ETHUSDT"], seed=5, start_time_us=T0, params=params)
    mids: dict[str, dict[int, float]] = {"BTCUSDT": {}, "ETHUSDT": {}}
    for at, it in _take(src, 600):
        if isinstance(it, QuoteIn):
            mids[it.symbol][at // 1_000_000] = (float(it.bid) + float(it.ask)) / 2
    secs = sorted(set(mids["BTCUSDT"]) & set(mids["ETHUSDT"]))
    x = np.log([mids["BTCUSDT"][s] for s in secs])
    y = np.log([mids["ETHUSDT"][s] for s in secs])
    slope, _intercept = np.polyfit(x, y, 1)
    # OLS slope vs the stated hedge ratio; tolerance 0.02 (about 6 sd, see above)
    assert slope == pytest.approx(0.8, abs=0.02)
    assert (
        adfuller(y - 0.8 * x, result_object=False)[1] < 0.01
    )  # statsmodels ADF: the spread is stationary
    assert adfuller(y, result_object=False)[1] > 0.05  # ... while the price itself is not


def test_fifty_symbols_all_trade() -> None:
    syms = [f"S{i:02d}USDT" for i in range(50)]
    src = SimulatorSource(symbols=syms, seed=1, start_time_us=T0, speed=None)
    traded = {it.symbol for _, it in _take(src, 10) if isinstance(it, TradeIn)}
    assert traded == set(syms)


def test_bad_simulator_arguments_name_the_field() -> None:
    with pytest.raises(ValidationError, match="rate=-1"):
        SimulatorSource(symbols=["BTCUSDT"], rate=-1)
    with pytest.raises(ValidationError, match="symbols"):
        SimulatorSource(symbols=[])


# -- replay ---------------------------------------------------------------------------


def _trades_in_file(path: Path) -> list[tuple[int, str, str]]:
    """Independent reference: the stdlib json module over the gzip lines."""
    out = []
    with gzip.open(path, "rt") as f:
        for line in f:
            frame = json.loads(line.split(" ", 1)[1])
            if frame.get("stream", "").endswith("@trade"):
                d = frame["data"]
                out.append((d["t"], d["p"], d["q"]))
    return out


def test_replay_of_the_real_recordings_yields_every_trade_exactly(recordings: Path) -> None:
    src = ReplaySource([recordings / BTC_FILE, recordings / ETH_FILE], speed=None)
    got: dict[str, list[tuple[int, str, str]]] = {"BTCUSDT": [], "ETHUSDT": []}
    last_at = 0
    for at, it in src.items():
        assert at >= last_at  # merged by receive time
        last_at = at
        if isinstance(it, TradeIn):
            got[it.symbol].append((it.trade_id, it.price, it.qty))
    assert len(got["BTCUSDT"]) == 9757 and len(got["ETHUSDT"]) == 6106  # data README counts
    assert got["BTCUSDT"] == _trades_in_file(recordings / BTC_FILE)
    assert got["ETHUSDT"] == _trades_in_file(recordings / ETH_FILE)
    assert got["BTCUSDT"][0][0] == 3735683259 and got["BTCUSDT"][-1][0] == 3735693015
    assert {s.symbol for s in src.specs()} == {"BTCUSDT", "ETHUSDT"}


def test_looping_replay_keeps_ids_increasing_by_one(recordings: Path) -> None:
    src = ReplaySource(recordings / BTC_FILE, speed=None, loop=True)
    trades = [it for _, it in itertools.islice(src.items(), 90_000) if isinstance(it, TradeIn)]
    ids = [t.trade_id for t in trades]
    assert len(ids) > 9757 * 2
    assert ids == list(range(3735683259, 3735683259 + len(ids)))
    assert all(b.ts >= a.ts for a, b in itertools.pairwise(trades))
    assert trades[9757].price == trades[0].price  # the same market, shifted


def test_retimed_replay_starts_now(recordings: Path) -> None:
    src = ReplaySource(recordings / ETH_FILE, speed=None, retime=True)
    first = next(it for _, it in src.items() if isinstance(it, TradeIn))
    assert abs(first.event_ts - time.time_ns() // 1000) < 5_000_000  # 5 s: file read time


def test_missing_recording_is_named() -> None:
    with pytest.raises(ValidationError, match=r"nope\.gz"):
        ReplaySource("/nonexistent/nope.gz")
