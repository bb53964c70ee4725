"""Ruin: an account whose equity reaches zero is liquidated, stops trading, and looks ruined.

Before this, bar returns were ``equity.pct_change()``: once equity was negative a further loss
read as a gain, and a run that lost 130 % of its capital reported Sharpe > 0 while a sweep's
PSR/DSR ranked bankrupt parameter sets among the good ones. References: a 6-bar case worked out
by hand, the bar-by-bar twin (:mod:`lq.backtest.reference`), and vectorbt (``Portfolio.
from_orders`` fed the engine's own fills; its returns use ``get_return_nb``, which divides by
``|value|``) in ``test_ruin_vectorbt.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lq.backtest import Costs, Sizing, Stops, check_lookahead, run_backtest, sweep, walk_forward
from lq.backtest.engine import _simulate_once, prepare
from lq.backtest.metrics import returns_from_equity, ruin_position, sharpe_ratio
from lq.backtest.reference import reference_backtest, reference_simulate
from lq.backtest.runs import record_sweep
from lq.backtest.strategies import resolve_strategy

from ._data import make_bars, random_bars

TOL = 1e-9
ZSCORE = {"lookback": 60, "entry": 2, "exit": 0.5, "stop": None}
COSTS = Costs(fee_bps=2, slippage_bps=1)


def always_long(data: pd.DataFrame, params: dict) -> pd.Series:
    return pd.Series(1.0, index=data.index)


@pytest.fixture(scope="module")
def bars_100k_seed0() -> pd.DataFrame:
    """The issue's case: 100k one-minute bars of a seeded random walk (0.1 % per bar)."""
    return random_bars(100_000, seed=0, vol=0.001)


# --------------------------------------------------------------------- the 6-bar hand case
def test_six_bar_hand_case_is_liquidated_at_the_next_open_and_stops_trading():
    # capital 1000, 10x leverage: 10,000 notional / close 100 = 100 units, bought at bar 1's
    # open 100 (no costs). Equity at the closes: 1000, 1000, 1000, 1000 + 100 * (95 - 100) =
    # 500, 1000 + 100 * (88 - 100) = -200 -> ruined at bar 4's close; sold at bar 5's open
    # (= bar 4's close, 88): cash -200, flat. Without the liquidation bar 5 would be
    # 1000 + 100 * (85 - 100) = -500, and pct_change would call -200 -> -500 a +150 % gain.
    bars = make_bars([100, 100, 100, 95, 88, 85])
    res = run_backtest(
        bars, always_long, costs=Costs(fee_bps=0), sizing=Sizing(notional=10_000), capital=1000
    )
    np.testing.assert_allclose(res.equity, [1000, 1000, 1000, 500, -200, -200], atol=TOL)
    assert res.positions.iloc[:, 0].tolist() == [0, 100, 100, 100, 100, 0]
    # returns: (500 - 1000) / 1000 = -0.5; (-200 - 500) / 500 = -1.4; then flat: 0
    np.testing.assert_allclose(res.returns, [0, 0, 0, -0.5, -1.4, 0], atol=TOL)
    assert res.ruined and res.ruined_at == bars.index[4]
    tr = res.trades.iloc[0]
    assert len(res.trades) == 1 and tr["exit_reason"] == "liquidation"
    assert tr["exit_time"] == bars.index[5] and tr["pnl"] == pytest.approx(-1200, abs=TOL)
    m = res.metrics
    assert m.ruined and m.ruined_at == bars.index[4].isoformat()
    assert m.total_return == pytest.approx(-1.2, abs=TOL)  # -200 / 1000 - 1
    assert m.max_drawdown == pytest.approx(-1.2, abs=TOL)  # -200 / peak 1000 - 1
    assert m.sharpe == -math.inf and m.sortino == -math.inf and m.calmar == -math.inf
    assert m.cagr == -1.0 and m.psr == 0.0
    assert m.caveats == {}  # the verdict is "ruined", not "short sample"
    # the twin walks the same bars one at a time and liquidates the same way
    prep = prepare(bars, Costs(fee_bps=0))
    twin = reference_simulate(
        targets=np.ones((6, 1)),
        open_=prep.open_,
        close=prep.close,
        slippage=prep.slippage,
        fee_rate=0.0,
        sizing=Sizing(notional=10_000),
        stops=Stops(),
        capital=1000.0,
        periods_per_year=prep.periods_per_year,
        index=prep.index,
        symbols=prep.symbols,
    )
    np.testing.assert_allclose(twin.equity, res.equity, atol=TOL)
    assert twin.trades["exit_reason"].tolist() == ["liquidation"]


def test_a_loss_on_negative_equity_is_a_loss():
    # hand: 1000 -> -200 is -1.2; -200 -> -500 loses 300 more on a base of |-200|: -1.5
    # (pct_change says +1.5); -500 -> -400 gains 100: +0.2; 0 -> 0 is 0, 0 -> 5 is +inf
    e = pd.Series([1000.0, -200.0, -500.0, -400.0, 0.0, 0.0, 5.0])
    np.testing.assert_allclose(
        returns_from_equity(e), [-1.2, -1.5, 0.2, 1.0, 0.0, math.inf], atol=TOL
    )
    assert e.pct_change().iloc[2] == pytest.approx(1.5)  # the old reading of the same loss
    assert ruin_position(e) == 1 and ruin_position(pd.Series([1.0, 2.0])) == -1


def test_one_bar_from_zero_to_positive_keeps_the_run_ruined():
    # hand: 100 units bought at 100 with capital 1000 at 10x; bar 2's close 90 -> equity 0
    # exactly (ruin is "at or below zero"); the liquidation at bar 3's open of 95 gives cash
    # 500 back, but the account stays liquidated and the run stays ruined.
    bars = make_bars([100, 100, 90, 99], [100, 100, 100, 95])
    res = run_backtest(
        bars, always_long, costs=Costs(fee_bps=0), sizing=Sizing(notional=10_000), capital=1000
    )
    np.testing.assert_allclose(res.equity, [1000, 1000, 0, 500], atol=TOL)
    assert res.ruined and res.metrics.sharpe == -math.inf and res.metrics.cagr == -1.0


# ------------------------------------------------------------------- the issue's 100k case
def test_issue_case_lost_130_percent_and_reported_a_positive_sharpe(bars_100k_seed0):
    """What the engine reported before: the same targets without liquidation."""
    prep = prepare(bars_100k_seed0, COSTS)
    fn, _name, params = resolve_strategy("zscore_reversion", ZSCORE)
    w = fn(prep.strategy_input, params).to_numpy(dtype=float)[:, None]
    old = _simulate_once(
        targets=np.nan_to_num(w),
        open_=prep.open_,
        close=prep.close,
        slippage=prep.slippage,
        fee_rate=COSTS.fee_rate,
        sizing=Sizing(),
        stops=Stops(),
        capital=10_000.0,
        periods_per_year=prep.periods_per_year,
        forced=None,
        liquidate_from=None,
    )
    equity = pd.Series(old.equity, index=prep.index)
    assert equity.iloc[-1] / 10_000 - 1 == pytest.approx(-1.305, abs=1e-3)
    assert sharpe_ratio(equity.pct_change().dropna(), periods_per_year=prep.periods_per_year) > 0
    # the sign-correct returns of the same path are not a winner
    assert sharpe_ratio(returns_from_equity(equity), periods_per_year=prep.periods_per_year) < 0


def test_issue_case_is_ruined_liquidated_and_looks_ruined(bars_100k_seed0):
    res = run_backtest(bars_100k_seed0, "zscore_reversion", ZSCORE, costs=COSTS)
    m = res.metrics
    assert res.ruined
    t = res.equity.index.get_loc(res.ruined_at)
    assert res.equity.iloc[t] <= 0 < res.equity.iloc[:t].min()
    # nothing is held after the liquidation fill, and equity stays at what was left
    assert (res.positions.iloc[t + 1 :] == 0).all().all()
    assert res.equity.iloc[t + 1 :].nunique() == 1
    assert res.trades["exit_reason"].iloc[-1] == "liquidation"
    assert (res.trades["entry_time"] <= res.ruined_at).all()
    assert m.total_return == pytest.approx(res.equity.iloc[-1] / 10_000 - 1, abs=TOL)
    assert m.total_return <= -1.0
    assert (m.sharpe, m.sortino, m.calmar, m.cagr, m.psr) == (
        -math.inf,
        -math.inf,
        -math.inf,
        -1.0,
        0.0,
    )
    # the stored summary says so too
    d = res.to_dict()["metrics"]
    assert d["ruined"] is True and d["ruined_at"] == res.ruined_at.isoformat()
    assert '"sharpe":"-inf"' in res.to_json()


def test_engine_and_bar_by_bar_twin_agree_on_a_ruined_run():
    # 4x leverage and 10 bps a fill: the zscore strategy trades the account into the ground
    bars = random_bars(3000, seed=11, vol=0.004)
    kw = {"costs": Costs(fee_bps=10, slippage_bps=2), "sizing": Sizing(notional=40_000)}
    params = {"lookback": 20, "entry": 1.0, "exit": 0.0}
    res = run_backtest(bars, "zscore_reversion", params, **kw)
    ref = reference_backtest(bars, "zscore_reversion", params, **kw)
    assert res.ruined
    np.testing.assert_allclose(res.equity, ref.equity, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(res.positions, ref.positions, rtol=1e-9, atol=1e-9)
    assert res.trades["exit_reason"].tolist() == ref.trades["exit_reason"].tolist()


def test_liquidation_is_causal():
    bars = random_bars(3000, seed=11, vol=0.004)
    kw = {"costs": Costs(fee_bps=10, slippage_bps=2), "sizing": Sizing(notional=40_000)}
    params = {"lookback": 20, "entry": 1.0, "exit": 0.0}
    assert run_backtest(bars, "zscore_reversion", params, **kw).ruined
    assert check_lookahead(bars, "zscore_reversion", params, **kw).passed


def test_benchmark_can_be_ruined_too():
    # buy-and-hold of an asset that goes to (almost) nothing, paying fees: never > 0 again
    closes = np.r_[100.0, 100.0, np.linspace(90, 1e-6, 20)]
    res = run_backtest(
        make_bars(closes), always_long, costs=Costs(fee_bps=10), sizing=Sizing(notional=10_000)
    )
    assert res.benchmark_metrics.ruined == (res.benchmark.min() <= 0)


# ----------------------------------------------------------------------- sweeps and ranking
GRID = {"lookback": [20, 60], "entry": [0.75, 1.0, 2.0], "exit": [0.0, 0.5]}


@pytest.fixture(scope="module")
def ruinous_sweep() -> pd.DataFrame:
    # 5x leverage, 3 bps a fill: low entries trade often and go bankrupt, high ones survive
    bars = random_bars(20_000, seed=3, vol=0.001)
    return sweep(
        bars,
        "zscore_reversion",
        GRID,
        costs=COSTS,
        sizing=Sizing(notional=50_000),
        workers=2,
        progress="off",
    )


def test_ruined_sets_rank_last_with_no_probability_of_skill(ruinous_sweep):
    t = ruinous_sweep
    ruined = t["ruined"].to_numpy(dtype=bool)
    assert 0 < ruined.sum() < len(t), "the grid should mix ruined and surviving sets"
    assert t.attrs["ruined"] == ruined.sum() and t.attrs["n_trials"] == len(t)
    # survivors first, ruined last; survivors by dsr descending
    first_ruined = int(np.argmax(ruined))
    assert not ruined[:first_ruined].any() and ruined[first_ruined:].all()
    alive = t.iloc[:first_ruined]["dsr"].to_numpy(dtype=float)
    assert (np.diff(alive[np.isfinite(alive)]) <= 0).all()
    bad = t[ruined]
    assert (bad["psr"] == 0).all() and (bad["dsr"] == 0).all()
    assert (bad["sharpe"] == -math.inf).all() and (bad["cagr"] == -1.0).all()
    assert bad["ruined_at"].notna().all() and t[~ruined]["ruined_at"].isna().all()


def test_a_stored_sweep_never_names_a_ruined_set_best(ruinous_sweep, tmp_path):
    from lq.store.writer import Writer

    db = tmp_path / "lq.sqlite"
    Writer(db).close()
    # even if a ruined set came first in the table, the stored best is a survivor
    flipped = ruinous_sweep.sort_values("ruined", ascending=False, kind="stable")
    flipped.attrs = dict(ruinous_sweep.attrs)
    run = record_sweep(db, flipped, strategy="zscore_reversion", grid=GRID)
    best = ruinous_sweep[ruinous_sweep["id"] == run.metrics["result_id"]].iloc[0]
    assert not best["ruined"]
    assert run.metrics["ruined_trials"] == int(ruinous_sweep["ruined"].sum())


def test_walk_forward_never_chooses_a_ruined_set():
    bars = random_bars(6000, seed=3, vol=0.001)
    wf = walk_forward(
        bars,
        "zscore_reversion",
        GRID,
        train_bars=3000,
        test_bars=1500,
        costs=COSTS,
        sizing=Sizing(notional=50_000),
    )
    assert np.isfinite(wf.windows["objective"]).all()


def test_walk_forward_that_goes_bust_out_of_sample_stops_and_is_ruined():
    # every set is ruinous at 10x leverage and 10 bps: the first test window goes bust
    bars = random_bars(4000, seed=11, vol=0.004)
    wf = walk_forward(
        bars,
        "zscore_reversion",
        {"lookback": [20], "entry": [1.0], "exit": [0.0]},
        train_bars=1000,
        test_bars=1000,
        costs=Costs(fee_bps=10, slippage_bps=2),
        sizing=Sizing(notional=100_000),
    )
    assert wf.metrics.ruined and wf.metrics.sharpe == -math.inf
    assert len(wf.windows) < 3  # later windows were not traded
    assert wf.equity.iloc[-1] <= 0
