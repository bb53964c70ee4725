"""The engine's fills replayed through vectorbt: the same equity, returns and Sharpe.

vectorbt (``Portfolio.from_orders``) is an independent implementation of cash, fills and fees;
fed the engine's own fills (quantities, prices with slippage, fee rate) its account value must
equal the engine's equity, and its returns (``ReturnsAccessor.from_value``, which divides by
``|value|`` like :func:`lq.backtest.metrics.returns_from_equity`) the engine's returns. vectorbt
refuses to spend cash it does not have, so the account is given ``BIG`` extra cash that is
subtracted again; ``BIG`` is small enough (1e5) to keep float64 round-off below 1e-9.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lq.backtest import Costs, Sizing, Stops, run_backtest
from lq.backtest.engine import Simulation, prepare, run_prepared
from lq.backtest.strategies import resolve_strategy

from ._data import random_bars

vbt = pytest.importorskip("vectorbt")
from vectorbt.returns.accessors import ReturnsAccessor  # noqa: E402

pytestmark = pytest.mark.slow  # importing vectorbt compiles numba kernels (~20 s)

BIG = 1e5
ZSCORE = {"lookback": 60, "entry": 2, "exit": 0.5, "stop": None}
COSTS = Costs(fee_bps=2, slippage_bps=1)


def _sim(bars: pd.DataFrame, params: dict, costs: Costs) -> Simulation:
    prep = prepare(bars, costs)
    fn, name, fp = resolve_strategy("zscore_reversion", params)
    return run_prepared(
        prep, fn, name, fp, costs=costs, sizing=Sizing(), stops=Stops(), capital=10_000.0
    )


def _vectorbt_value(bars: pd.DataFrame, sim: Simulation, costs: Costs) -> pd.Series:
    n = len(bars)
    size = np.full(n, np.nan)
    price = np.full(n, np.nan)
    size[sim.fill_bars] = sim.fill_qty[:, 0]
    price[sim.fill_bars] = sim.fill_prices[:, 0]
    pf = vbt.Portfolio.from_orders(
        bars["close"],
        size=size,
        size_type="amount",
        price=price,
        fees=costs.fee_rate,
        init_cash=10_000.0 + BIG,
        freq="1min",
    )
    return pf.value() - BIG


def test_ruined_run_equals_vectorbt_on_equity_and_returns_and_is_worse_on_sharpe():
    bars = random_bars(100_000, seed=0, vol=0.001)  # the bars_100k_seed0
    res = run_backtest(bars, "zscore_reversion", ZSCORE, costs=COSTS)
    sim = _sim(bars, ZSCORE, COSTS)
    value = _vectorbt_value(bars, sim, COSTS)
    assert res.ruined
    np.testing.assert_allclose(res.equity.to_numpy(), value.to_numpy(), rtol=0, atol=1e-6)
    ret = ReturnsAccessor.from_value(value, init_value=10_000.0, freq="1min", year_freq="365 days")
    np.testing.assert_allclose(res.returns.to_numpy(), ret.obj.to_numpy(), rtol=0, atol=1e-8)
    vbt_sharpe = float(ret.sharpe_ratio())
    assert vbt_sharpe < 0  # vectorbt says: a loser
    assert res.metrics.sharpe == -math.inf <= vbt_sharpe  # lq: ruined, the worst there is


def test_surviving_run_has_vectorbts_sharpe():
    bars = random_bars(20_000, seed=5, vol=0.001)
    params = {"lookback": 60, "entry": 2.0, "exit": 0.5}
    costs = Costs(fee_bps=0.5)
    res = run_backtest(bars, "zscore_reversion", params, costs=costs)
    sim = _sim(bars, params, costs)
    value = _vectorbt_value(bars, sim, costs)
    assert not res.ruined
    np.testing.assert_allclose(res.equity.to_numpy(), value.to_numpy(), rtol=1e-12, atol=1e-7)
    # the engine's Sharpe skips the first bar (no return yet): so does this one
    r = value.pct_change().iloc[1:]
    ref = r.vbt.returns(freq="1min", year_freq="365 days").sharpe_ratio()
    assert res.metrics.sharpe == pytest.approx(float(ref), rel=1e-7)
