"""Parameter sweeps: pool results equal single runs; PSR/DSR columns; heatmap pivot."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lq.backtest import (
    Costs,
    grid,
    probabilistic_sharpe_ratio,
    run_backtest,
    sweep,
    sweep_heatmap,
)
from lq.backtest.metrics import _psr, expected_max_sharpe, returns_from_equity
from lq.errors import ValidationError

from ._data import random_bars, random_pair


def test_grid_is_the_cartesian_product():
    g = grid(entry=[1.0, 2.0], exit=[0.0, 0.5, 0.7])
    assert (
        len(g) == 6 and g[0] == {"entry": 1.0, "exit": 0.0} and g[-1] == {"entry": 2.0, "exit": 0.7}
    )


def test_sweep_on_two_processes_equals_single_backtests():
    pair = random_pair(1500, seed=21)
    params = {"entry": [1.0, 1.5, 2.0], "lookback": [30, 60]}
    costs = Costs(fee_bps=5)
    table = sweep(
        pair,
        "pairs_zscore",
        params,
        base_params={"exit": 0.2},
        costs=costs,
        workers=2,
        progress="off",
    )
    serial = sweep(
        pair,
        "pairs_zscore",
        params,
        base_params={"exit": 0.2},
        costs=costs,
        workers=1,
        progress="off",
    )
    assert len(table) == 6
    assert table["trial"].tolist() == serial["trial"].tolist()
    np.testing.assert_allclose(table["sharpe"], serial["sharpe"], rtol=0, atol=0)
    for row in table.itertuples():
        res = run_backtest(
            pair,
            "pairs_zscore",
            {"entry": row.entry, "lookback": row.lookback, "exit": 0.2},
            costs=costs,
        )
        # same numbers as a single run (identical arithmetic: exact)
        assert row.sharpe == res.metrics.sharpe or (
            math.isnan(row.sharpe) and math.isnan(res.metrics.sharpe)
        )
        assert row.total_return == res.metrics.total_return
        assert row.number_of_trades == res.metrics.number_of_trades
        assert row.id == res.id  # a sweep row and a single run share the content-hash id
        r = returns_from_equity(res.equity)
        assert row.psr == pytest.approx(probabilistic_sharpe_ratio(r), rel=1e-12)


def test_sweep_deflates_the_sharpe_by_the_number_of_trials():
    bars = random_bars(2000, seed=22)
    table = sweep(
        bars,
        "ma_crossover",
        {"fast": [3, 5, 8, 13], "slow": [21, 34, 55]},
        workers=1,
        progress="off",
    )
    sr = table["sharpe_bar"].to_numpy()
    # Bailey & Lopez de Prado (2014): SR0 from N trials and the variance of their Sharpe
    sr0 = expected_max_sharpe(n_trials=12, sharpe_variance=float(np.var(sr, ddof=1)))
    assert table.attrs["expected_max_sharpe"] == pytest.approx(sr0, rel=1e-12)
    for row in table.itertuples():
        want = _psr(row.sharpe_bar, sr0, row.n_returns, row.skew, row.kurtosis)
        assert row.dsr == pytest.approx(want, rel=1e-12)
        assert row.dsr <= row.psr
    assert table["dsr"].is_monotonic_decreasing  # best first


def test_sweep_refuses_a_bad_parameter_set_before_running_anything():
    with pytest.raises(ValidationError, match=r"MACrossoverParams\.fast"):
        sweep(
            random_bars(100, 1),
            "ma_crossover",
            [{"fast": 5}, {"fast": 80}],
            workers=2,
            progress="off",
        )


def test_sweep_heatmap_pivots_a_metric_over_two_parameters():
    table = sweep(
        random_bars(500, 3),
        "ma_crossover",
        {"fast": [3, 5], "slow": [20, 30, 40]},
        workers=1,
        progress="off",
    )
    hm = sweep_heatmap(table, x="slow", y="fast", metric="sharpe")
    assert hm.shape == (2, 3)
    row = table[(table["fast"] == 5) & (table["slow"] == 30)].iloc[0]
    assert hm.loc[5, 30] == row["sharpe"]
    with pytest.raises(ValidationError, match="metric"):
        sweep_heatmap(table, x="slow", y="fast", metric="nope")


def test_sweep_shows_a_progress_bar(capsys):
    sweep(
        random_bars(200, 4),
        "ma_crossover",
        {"fast": [3, 5], "slow": [20]},
        workers=1,
        progress="bar",
    )
    assert "2/2" in capsys.readouterr().err


def test_a_notebook_strategy_function_runs_in_the_pool():
    def momentum(data, params):
        return (data["close"].pct_change(params["n"]) > 0).astype(float)

    table = sweep(
        random_bars(400, 5), momentum, [{"n": 5}, {"n": 10}, {"n": 20}], workers=2, progress="off"
    )
    assert len(table) == 3 and table["number_of_trades"].gt(0).all()
