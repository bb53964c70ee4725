import math

import numpy as np
import pandas as pd
import pytest
from analytics_data import cointegrated_pair, load_trades

import lq.analytics as A
from lq.analytics import streaming as S


def _bars_from(prices: np.ndarray, start_s: int = 0, step_s: int = 1) -> pd.DataFrame:
    ts = (start_s + np.arange(prices.size) * step_s) * 1_000_000
    ticks = pd.DataFrame({"ts": ts, "price": prices, "qty": np.ones(prices.size)})
    return A.resample_bars(ticks, "1s")


def test_dashboard_snapshot_recovers_the_pair_and_matches_the_single_functions():
    y, x = cointegrated_pair(4000)
    bars_a, bars_b = _bars_from(np.exp(y)), _bars_from(np.exp(x))
    snap = A.dashboard_snapshot(bars_a, bars_b, names=("Y", "X"), window=200, vol_windows=(60,))
    # known pair: beta 1.7 (abs 0.02), AR(1) phi 0.9 -> half-life 6.58 bars (20 %)
    assert snap.pair.hedge.beta == pytest.approx(1.7, abs=0.02)
    assert snap.pair.adf is not None and snap.pair.adf.pvalue < 0.01
    assert snap.pair.half_life == pytest.approx(math.log(0.5) / math.log(0.9), rel=0.2)
    np.testing.assert_allclose(snap.a.rsi, A.rsi(bars_a["close"], 14), rtol=1e-12)
    np.testing.assert_allclose(snap.pair.spread_zscore, A.zscore(snap.pair.spread, 200))
    assert snap.a.realized_vol[60].index.equals(bars_a.index)
    # B misses every 7th bar: aligned on A's bar times with B's last price carried forward
    gappy = A.dashboard_snapshot(bars_a, bars_b.drop(bars_b.index[1::7]), names=("Y", "X"))
    assert len(gappy.pair.prices) == len(bars_a)
    assert gappy.pair.prices["X"].iloc[1] == bars_b["close"].iloc[0]
    assert gappy.pair.hedge.beta == pytest.approx(1.7, abs=0.02)


def test_on_the_real_btcusdt_ethusdt_recordings_everything_is_finite():
    btc, eth = load_trades("BTCUSDT"), load_trades("ETHUSDT")
    assert (len(btc), len(eth)) == (9757, 6106)  # the recordings' trade counts (README)
    ba, bb = A.resample_bars(btc, "1s"), A.resample_bars(eth, "1s")
    assert ba["trades"].sum() == 9757 and ba["volume"].sum() == pytest.approx(btc["qty"].sum())
    snap = A.dashboard_snapshot(
        ba, bb, names=("BTCUSDT", "ETHUSDT"), window=30, vol_windows=(10, 30)
    )
    last = lambda s: s.dropna().iloc[-1]  # noqa: E731
    for value in (
        last(snap.a.sma), last(snap.a.ema), last(snap.a.rsi), last(snap.b.zscore),
        last(snap.a.realized_vol[30]), last(snap.b.ewma_vol), last(snap.pair.spread_zscore),
        last(snap.pair.correlation), snap.pair.hedge.beta, snap.pair.adf.statistic,
    ):  # fmt: skip
        assert math.isfinite(value)
    prices = snap.pair.prices
    ly, lx = np.log(prices["BTCUSDT"]), np.log(prices["ETHUSDT"])
    assert math.isfinite(A.hedge_ratio(ly, lx, method="huber").beta)
    assert math.isfinite(A.rolling_hedge_ratio(ly, lx, 60).dropna().iloc[-1])
    assert math.isfinite(A.cointegration(ly, lx).pvalue)
    assert np.isfinite(A.kalman_hedge_ratio(ly, lx)["beta"]).all()
    r = A.returns(ba["close"])
    f = A.garch_forecast(r, horizon=10, interval="1s")
    assert np.isfinite(f.variance).all()
    # the live twins, fed bar by bar, land on the batch values
    pair = S.PairIndicators(window=60)
    for a, b in zip(prices["BTCUSDT"], prices["ETHUSDT"], strict=True):
        pair.update(a, b)
    ref = A.rolling_hedge_ratio(ly, lx, 60).iloc[-1]
    assert pair.snapshot()["hedge_ratio"] == pytest.approx(ref, rel=1e-9)
