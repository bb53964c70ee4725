"""Look-ahead check and walk-forward."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lq.backtest import (
    Costs,
    Sizing,
    Stops,
    check_lookahead,
    run_backtest,
    walk_forward,
)

from ._data import random_bars, random_pair


def peeking(data: pd.DataFrame, params: dict) -> pd.Series:
    """Deliberately leaky: goes long when the *next* close is higher."""
    nxt = data["close"].shift(-1)
    return np.sign(nxt - data["close"]).fillna(0.0)


def peeking_pair(data: dict, params: dict) -> pd.DataFrame:
    """Leaky in a subtle way: z-score against the full-sample mean and std of the spread."""
    y, x = (np.log(f["close"]) for f in data.values())
    s = y - x
    z = (s - s.mean()) / s.std()
    w = pd.DataFrame(0.0, index=s.index, columns=list(data))
    w.iloc[:, 0] = np.where(z > 1, -0.5, np.where(z < -1, 0.5, 0.0))
    w.iloc[:, 1] = -w.iloc[:, 0]
    return w


def test_lookahead_check_flags_a_strategy_that_reads_the_next_close():
    bars = random_bars(600, seed=1)
    report = check_lookahead(bars, peeking, cuts=3)
    assert not report.passed and not report
    assert report.first_difference is not None
    # the first decision that differs is the one at the cut itself (it read bar cut + 1)
    assert report.first_difference == report.cuts[0]
    assert not report.details["targets_equal"].any()


def test_lookahead_check_flags_full_sample_normalisation():
    report = check_lookahead(random_pair(600, seed=2), peeking_pair, cuts=3)
    assert not report.passed
    assert report.first_difference < report.cuts[0]  # it changes decisions long before a cut


@pytest.mark.parametrize(
    "strategy,params",
    [
        ("zscore_reversion", {"lookback": 30, "entry": 1.5, "stop": 3.0}),
        ("rsi_reversion", {"window": 14}),
        ("ma_crossover", {"fast": 5, "slow": 30, "kind": "ema"}),
    ],
)
def test_lookahead_check_passes_the_built_in_single_asset_strategies(strategy, params):
    report = check_lookahead(
        random_bars(800, seed=3),
        strategy,
        params,
        cuts=4,
        sizing=Sizing(method="volatility_target", vol_lookback=40),
        stops=Stops(stop_loss=0.01, time_stop_bars=30),
    )
    assert report.passed, report.details


@pytest.mark.parametrize("hedge", ["ols", "kalman", "huber"])
def test_lookahead_check_passes_the_pairs_strategy(hedge):
    params = {"lookback": 40, "entry": 1.5, "hedge": hedge, "hedge_lookback": 80}
    report = check_lookahead(
        random_pair(800, seed=4), "pairs_zscore", params, cuts=3, costs=Costs(slippage_bps=2)
    )
    assert report.passed, report.details
    assert len(report.cuts) == 3


def test_walk_forward_picks_in_sample_best_and_stitches_out_of_sample_equity():
    bars = random_bars(1200, seed=6)
    grid = {"fast": [3, 8], "slow": [20, 40]}
    costs = Costs(fee_bps=5)
    wf = walk_forward(
        bars, "ma_crossover", grid, train_bars=400, test_bars=300, objective="sharpe", costs=costs
    )
    w = wf.windows
    # windows: train [0,400) test [400,700); train [300,700) test [700,1000);
    # train [600,1000) test [1000,1200)
    assert w["test_start"].tolist() == [bars.index[400], bars.index[700], bars.index[1000]]
    assert w["test_end"].tolist() == [bars.index[699], bars.index[999], bars.index[1199]]
    assert wf.equity.index.equals(bars.index[400:])
    level = 10_000.0
    for row, start in zip(w.itertuples(), (0, 300, 600), strict=True):
        train = bars.iloc[start : start + 400]
        # independent in-sample choice: run every set and take the best Sharpe
        scores = []
        for fast in grid["fast"]:
            for slow in grid["slow"]:
                p = {"fast": fast, "slow": slow}
                scores.append(
                    (run_backtest(train, "ma_crossover", p, costs=costs).metrics.sharpe, p)
                )
        best = max(scores, key=lambda s: s[0])
        assert row.params == best[1]
        assert row.objective == pytest.approx(best[0], rel=1e-12)
        # out of sample: trained bars only warm up; the test window's return compounds
        end = min(start + 700, 1200)
        oos = run_backtest(
            bars.iloc[start:end],
            "ma_crossover",
            row.params,
            costs=costs,
            trade_from=bars.index[start + 400],
            at_end="close",
        )
        r = oos.equity.iloc[-1] / oos.equity.iloc[399] - 1
        assert oos.equity.iloc[399] == 10_000.0  # flat before the test window
        assert row.test_return == pytest.approx(r, rel=1e-12)
        level *= 1 + r
        assert wf.equity.loc[row.test_end] == pytest.approx(level, rel=1e-12)
    assert (wf.trades["entry_time"] >= bars.index[400]).all()
    assert wf.metrics.bars == 800


def test_walk_forward_refuses_a_train_window_longer_than_the_data():
    from lq.errors import ValidationError

    with pytest.raises(ValidationError, match="train_bars"):
        walk_forward(
            random_bars(100, 1), "ma_crossover", {"fast": [3]}, train_bars=200, test_bars=50
        )
