"""lq's estimators recover the local exchange simulator's known hedge ratio (beta = 0.8 on log prices)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from lq.analytics import adf, cointegration, half_life, hedge_ratio, rolling_hedge_ratio, spread
from lq.exchange import SimulatorParams, SimulatorSource
from lq.exchange.market import QuoteIn

T0 = 1_723_161_240_000_000


@pytest.fixture(scope="module")
def simulated_pair() -> tuple[pd.Series, pd.Series]:
    """10 simulated minutes of 1 s mid prices (log), as the exchange's own test sets them up."""
    params = SimulatorParams(rate=2.0, vol_calm=2e-3, vol_stressed=2e-3, spread_half_life=5.0)
    src = SimulatorSource(symbols=["BTCUSDT", "ETHUSDT"], seed=5, start_time_us=T0, params=params)
    assert src.pairs == {"ETHUSDT": ("BTCUSDT", 0.8)}
    end = T0 + 600 * 1_000_000
    mids: dict[str, dict[int, float]] = {"BTCUSDT": {}, "ETHUSDT": {}}
    for at, it in itertools.takewhile(lambda x: x[0] < end, src.items()):
        if isinstance(it, QuoteIn):
            mids[it.symbol][at // 1_000_000] = (float(it.bid) + float(it.ask)) / 2
    secs = sorted(set(mids["BTCUSDT"]) & set(mids["ETHUSDT"]))
    x = pd.Series(np.log([mids["BTCUSDT"][s] for s in secs]), index=secs)
    y = pd.Series(np.log([mids["ETHUSDT"][s] for s in secs]), index=secs)
    return y, x


@pytest.mark.parametrize("method", ["ols", "huber", "kalman"])
def test_estimators_recover_the_simulators_hedge_ratio(simulated_pair, method):
    y, x = simulated_pair
    # tolerance 0.02: about 6 standard errors of the OLS slope on this sample (see the
    # exchange's simulator test for the derivation); Kalman's last state within the same
    assert hedge_ratio(y, x, method=method).beta == pytest.approx(0.8, abs=0.02)


def test_rolling_hedge_ratio_and_cointegration_see_the_simulated_relation(simulated_pair):
    y, x = simulated_pair
    beta = rolling_hedge_ratio(y, x, 300).dropna()
    assert float(np.median(beta)) == pytest.approx(0.8, abs=0.03)
    assert cointegration(y, x).pvalue < 0.01  # Engle-Granger finds the relation
    s = spread(y, x, 0.8)
    assert adf(s).pvalue < 0.01
    # the simulator's spread half-life is 5 s (SimulatorParams(spread_half_life=5.0)); the
    # estimate from 600 noisy 1 s samples is within a factor of two
    assert 2.5 < half_life(s) < 10.0
