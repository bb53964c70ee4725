"""The vectorised engine equals the bar-by-bar reference on seeded random data.

Reference: :mod:`lq.backtest.reference` (indicators from the streaming twins, everything else
one bar at a time). Tolerances: equity and positions to 1e-9 relative (the two paths differ
only by float round-off in the rolling statistics, ~1e-12 relative); trade count, times and
exit reasons exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lq.backtest import Costs, Sizing, Stops, run_backtest, threshold_positions
from lq.backtest.reference import reference_backtest, threshold_positions_loop

from ._data import random_bars, random_pair

N = 1500

CASES = [
    ("pairs_zscore", {"lookback": 40, "entry": 1.5, "exit": 0.3, "stop": 3.0}),
    (
        "pairs_zscore",
        {"lookback": 40, "entry": 1.0, "exit": 0.0, "stop": None, "neutral": "dollar"},
    ),
    ("pairs_zscore", {"lookback": 40, "entry": 1.5, "hedge": "kalman"}),
    (
        "pairs_zscore",
        {"lookback": 40, "entry": 1.5, "hedge": "huber", "hedge_lookback": 60, "hedge_refit": 20},
    ),
    ("zscore_reversion", {"lookback": 30, "entry": 1.5, "exit": 0.2, "stop": 3.0}),
    ("zscore_reversion", {"lookback": 20, "entry": 2.0, "direction": "long_only"}),
    ("rsi_reversion", {"window": 14, "lower": 35, "upper": 65}),
    ("ma_crossover", {"fast": 5, "slow": 30, "kind": "sma"}),
    ("ma_crossover", {"fast": 8, "slow": 21, "kind": "ema", "direction": "long_only"}),
]
SETTINGS = [
    (Costs(fee_bps=10), Sizing(), Stops()),
    (
        Costs(fee_bps=7.5, slippage_bps=2),
        Sizing(method="volatility_target", vol_lookback=50),
        Stops(stop_loss=0.004, time_stop_bars=25),
    ),
    (Costs(fee_bps=5, slippage="half_spread"), Sizing(notional=2500), Stops(stop_loss=0.01)),
]


def _data(strategy: str, seed: int):
    if strategy == "pairs_zscore":
        pair = random_pair(N, seed)
        for f in pair.values():  # a recorded spread for the half-spread case
            f["bid"], f["ask"] = f["close"] * 0.9998, f["close"] * 1.0002
        return pair
    return random_bars(N, seed)


@pytest.mark.parametrize(
    "strategy,params", CASES, ids=[f"{s}-{i}" for i, (s, _) in enumerate(CASES)]
)
@pytest.mark.parametrize("setting", range(len(SETTINGS)))
def test_vectorised_engine_equals_the_bar_by_bar_reference(strategy, params, setting):
    costs, sizing, stops = SETTINGS[setting]
    data = _data(strategy, seed=100 + setting)
    fast = run_backtest(data, strategy, params, costs=costs, sizing=sizing, stops=stops)
    slow = reference_backtest(data, strategy, params, costs=costs, sizing=sizing, stops=stops)
    assert len(fast.trades) > 5, "the case must trade to test anything"
    np.testing.assert_allclose(fast.equity.to_numpy(), slow.equity.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(
        fast.positions.to_numpy(), slow.positions.to_numpy(), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(fast.fees.to_numpy(), slow.fees.to_numpy(), rtol=1e-9, atol=1e-12)
    assert len(fast.trades) == len(slow.trades)
    assert (fast.trades["entry_time"].to_numpy() == slow.trades["entry_time"].to_numpy()).all()
    assert (fast.trades["exit_time"].to_numpy() == slow.trades["exit_time"].to_numpy()).all()
    assert fast.trades["exit_reason"].tolist() == slow.trades["exit_reason"].tolist()
    np.testing.assert_allclose(
        fast.trades["pnl"].to_numpy(), slow.trades["pnl"].to_numpy(), rtol=1e-9, atol=1e-9
    )


def test_stops_fire_in_the_equivalence_cases():
    # guard: the stop settings above must actually exercise both stop kinds
    seen: set[str] = set()
    for setting in (1, 2):
        _, sizing, stops = SETTINGS[setting]
        for strategy, params in CASES:
            res = run_backtest(
                _data(strategy, seed=100 + setting), strategy, params, sizing=sizing, stops=stops
            )
            seen |= set(res.trades["exit_reason"])
    assert {"signal", "stop_loss", "time_stop", "open"} <= seen


@settings(max_examples=200, deadline=None)
@given(
    x=st.lists(st.one_of(st.floats(-6, 6), st.just(float("nan"))), min_size=0, max_size=60),
    entry=st.floats(0.5, 2.5),
    exit_=st.floats(0.0, 0.49),
    stop=st.one_of(st.none(), st.floats(2.6, 5.0)),
    direction=st.sampled_from(["long_short", "long_only"]),
)
def test_threshold_positions_equals_its_loop_twin(x, entry, exit_, stop, direction):
    rule = dict(
        long_entry=-entry,
        short_entry=entry,
        long_exit=-exit_,
        short_exit=exit_,
        stop_above=stop,
        stop_below=None if stop is None else -stop,
        direction=direction,
    )
    a = threshold_positions(np.array(x, dtype=float), **rule)
    b = threshold_positions_loop(np.array(x, dtype=float), **rule)
    assert a.tolist() == b.tolist()


def test_pairs_strategy_freezes_the_hedge_ratio_while_a_position_is_open():
    from lq.backtest.strategies import pairs_indicators, pairs_zscore

    pair = random_pair(800, 9)
    params = {"lookback": 40, "entry": 1.5}
    w = pairs_zscore(pair, params)
    beta = pairs_indicators(pair, params)["beta"].to_numpy()
    wy = w["YYY"].to_numpy()
    wx = w["XXX"].to_numpy()
    change = np.r_[True, (wy[1:] != wy[:-1]) | (wx[1:] != wx[:-1])]
    starts = np.flatnonzero(change & (wy != 0))
    assert starts.size > 3
    for s in starts:  # weights at each entry follow that bar's beta: |w_x / w_y| = beta
        assert -wx[s] / wy[s] == pytest.approx(beta[s], rel=1e-12)
    # and stay fixed for the whole run although beta moves
    runs = np.cumsum(change)
    for r in np.unique(runs):
        seg = runs == r
        assert np.ptp(wy[seg]) == 0 and np.ptp(wx[seg]) == 0
