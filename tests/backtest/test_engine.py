"""Hand-computed small cases: fills at the next open, fees, slippage, sizing, stops, PnL."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from lq.backtest import Costs, Sizing, Stops, run_backtest
from lq.backtest.strategies import pair_weights
from lq.errors import BacktestError, ValidationError

from ._data import make_bars, random_bars

# every number in this file is worked out by hand in the comments; tolerance 1e-9 absolute
# (the arithmetic has ~12 significant digits of float64 round-off at these magnitudes)
TOL = 1e-9


def fixed(series: list[float]):
    """A user strategy that returns fixed target weights (the notebook way)."""

    def strategy(data: pd.DataFrame, params: dict) -> pd.Series:
        return pd.Series(series, index=data.index)

    return strategy


def test_signal_at_close_fills_at_next_open_with_fee_and_slippage():
    bars = make_bars([100, 100, 102, 104, 101], [100, 100, 101, 103, 102])
    res = run_backtest(
        bars,
        fixed([0, 1, 1, 0, 0]),
        costs=Costs(fee_bps=10, slippage_bps=10),
        sizing=Sizing(notional=1000),
        capital=10_000,
    )
    # decision at bar 1's close: 1000 / close 100 = 10 units, bought at bar 2's open:
    # 101 * 1.001 = 101.101; notional 1011.01, fee 1.01101 -> cash 8987.97899
    # bar 2 equity 8987.97899 + 10 * 102; bar 3 + 10 * 104
    # decision at bar 3: sell at bar 4's open 102 * 0.999 = 101.898: +1018.98 - fee 1.01898
    expected = [10_000, 10_000, 10_007.97899, 10_027.97899, 10_005.94001]
    np.testing.assert_allclose(res.equity.to_numpy(), expected, rtol=0, atol=TOL)
    assert res.positions.iloc[:, 0].tolist() == [0, 0, 10, 10, 0]
    assert len(res.trades) == 1
    tr = res.trades.iloc[0]
    assert tr["entry_time"] == bars.index[2] and tr["exit_time"] == bars.index[4]
    # 10 * (101.898 - 101.101) - 1.01101 - 1.01898 = 5.94001
    assert tr["pnl"] == pytest.approx(5.94001, abs=TOL)
    assert tr["fees"] == pytest.approx(1.01101 + 1.01898, abs=TOL)
    assert res.metrics.fees_paid == pytest.approx(2.02999, abs=TOL)
    # turnover: (1011.01 + 1018.98) / 10000
    assert res.metrics.turnover == pytest.approx(0.202999, abs=TOL)
    assert res.metrics.number_of_trades == 1
    assert res.metrics.win_rate == 1.0
    # exposure: positions held on bars 2 and 3 of 5
    assert res.metrics.exposure == pytest.approx(0.4)


def test_target_on_the_last_bar_is_never_filled():
    bars = make_bars([100, 101, 102])
    res = run_backtest(bars, fixed([0, 0, 1]), costs=Costs(fee_bps=10))
    assert res.positions.iloc[:, 0].tolist() == [0, 0, 0]
    assert res.equity.tolist() == [10_000, 10_000, 10_000]
    assert res.trades.empty


def test_flip_from_long_to_short_pays_fees_on_both_legs_and_splits_them_between_trades():
    bars = make_bars([100, 105, 115, 118], [100, 100, 110, 120])
    res = run_backtest(
        bars, fixed([1, -1, -1, -1]), costs=Costs(fee_bps=10), sizing=Sizing(notional=1000)
    )
    # t0: +1000/100 = 10 units, filled at t1's open 100 (fee 1) -> cash 8999
    # t1: -1000/105 = -9.5238095238 units; t2's fill sells 19.5238095238 at 110
    #     (+2147.619047619, fee 2.147619047619) -> cash 11144.471428571
    short = 1000 / 105
    cash2 = 8999 + (10 + short) * 110 * (1 - 0.001)
    expected = [10_000, 8999 + 10 * 105, cash2 - short * 115, cash2 - short * 118]
    np.testing.assert_allclose(res.equity.to_numpy(), expected, rtol=0, atol=TOL)
    assert res.fees.iloc[2] == pytest.approx((10 + short) * 110 * 0.001, abs=TOL)
    t1, t2 = res.trades.itertuples()
    # the flip's fee is split by notional closed (1100) and opened (1047.619...):
    # close share = 2.147619 * 1100 / 2147.619 = 1.1
    assert t1.pnl == pytest.approx(10 * (110 - 100) - 1.0 - 1.1, abs=TOL)
    assert t2.pnl == pytest.approx(-short * (118 - 110) - short * 110 * 0.001, abs=TOL)
    assert t2.open and t2.exit_reason == "open"
    assert t1.side == 1 and t2.side == -1
    # the trades add up to the account's PnL
    assert t1.pnl + t2.pnl == pytest.approx(res.equity.iloc[-1] - 10_000, abs=TOL)


def test_half_spread_slippage_uses_the_quote_standing_at_the_fill():
    # the quotes are each bar's closing quote; bar 2's open is filled at bar 1's quote
    # 99.8 / 100.2 (half spread 0.2 on mid 100 = 0.2 %), bar 3's open at bar 2's quote
    # 99.95 / 100.05 (0.05 %)
    bars = make_bars(
        [100, 100, 100, 100],
        [100, 100, 100, 100],
        bid=[99.9, 99.8, 99.95, 99.0],
        ask=[100.1, 100.2, 100.05, 101.0],
    )
    res = run_backtest(
        bars,
        fixed([0, 1, 0, 0]),
        costs=Costs(fee_bps=0, slippage="half_spread"),
        sizing=Sizing(notional=1000),
    )
    # buy 10 at 100 * 1.002 = 100.2 (bar 2); sell 10 at 100 * (1 - 0.0005) = 99.95 (bar 3)
    assert res.trades.iloc[0]["entry_price_asset"] == pytest.approx(100.2, abs=TOL)
    assert res.trades.iloc[0]["exit_price_asset"] == pytest.approx(99.95, abs=TOL)
    assert res.equity.iloc[-1] == pytest.approx(10_000 + 10 * (99.95 - 100.2), abs=TOL)


def test_half_spread_without_bid_ask_columns_is_refused_naming_the_columns():
    with pytest.raises(ValidationError, match="columns"):
        run_backtest(make_bars([1, 2, 3]), fixed([0, 1, 0]), costs=Costs(slippage="half_spread"))


def test_stop_loss_fires_on_a_close_and_exits_at_the_next_open():
    bars = make_bars([100, 100, 96, 94.5, 95, 96], [100, 100, 100, 94, 93, 95])
    res = run_backtest(
        bars,
        fixed([1] * 6),
        costs=Costs(fee_bps=0),
        sizing=Sizing(notional=1000),
        stops=Stops(stop_loss=0.05),
    )
    # 10 units from bar 1's open 100 (gross entry notional 1000, stop at -50):
    # close 96 -> -40 (hold); close 94.5 -> -55 (stop) -> sold at bar 4's open 93
    assert res.positions.iloc[:, 0].tolist() == [0, 10, 10, 10, 0, 0]
    expected = [10_000, 10_000, 9960, 9945, 9930, 9930]
    np.testing.assert_allclose(res.equity.to_numpy(), expected, rtol=0, atol=TOL)
    tr = res.trades.iloc[0]
    assert tr["exit_reason"] == "stop_loss"
    assert tr["pnl"] == pytest.approx(-70, abs=TOL)  # worse than the stop: the gap is real


def test_time_stop_closes_after_the_given_number_of_bars_and_stays_flat():
    bars = make_bars([100, 101, 102, 103, 104, 105])
    res = run_backtest(bars, fixed([1] * 6), costs=Costs(fee_bps=0), stops=Stops(time_stop_bars=2))
    # entered at bar 1's open, held during bars 1 and 2, sold at bar 3's open
    held = (res.positions.iloc[:, 0] != 0).tolist()
    assert held == [False, True, True, False, False, False]
    assert res.trades.iloc[0]["exit_reason"] == "time_stop"
    assert res.trades.iloc[0]["bars"] == 2


def test_new_target_after_a_stop_opens_a_new_position():
    bars = make_bars([100, 101, 102, 103, 104, 105, 106])
    res = run_backtest(
        bars,
        fixed([1, 1, 1, 1, -1, -1, -1]),
        costs=Costs(fee_bps=0),
        stops=Stops(time_stop_bars=1),
    )
    # run 1 (decided bar 0): held bar 1 only; run 2 (decided bar 4): held bar 5 only
    held = res.positions.iloc[:, 0].to_numpy() != 0
    assert held.tolist() == [False, True, False, False, False, True, False]


def test_volatility_target_sizes_from_past_returns_only():
    closes = [100.0, 101.0, 99.99, 100.9899, 101.0]
    bars = make_bars(closes, freq="1D")
    res = run_backtest(
        bars,
        fixed([0, 0, 1, 1, 1]),
        costs=Costs(fee_bps=0),
        sizing=Sizing(method="volatility_target", target_volatility=0.2, vol_lookback=2),
        capital=10_000,
    )
    # at bar 2 the last two returns are +1 % and -1 %: sample std 0.0141421356 (stdev below),
    # annualised over 365 daily bars; notional = 10000 * 0.2 / vol; units = notional / 99.99
    r = [closes[1] / closes[0] - 1, closes[2] / closes[1] - 1]
    vol = statistics.stdev(r) * math.sqrt(365)
    units = 10_000 * 0.2 / vol / closes[2]
    assert res.positions.iloc[3, 0] == pytest.approx(units, rel=1e-12)


def test_volatility_target_does_not_trade_before_enough_history():
    bars = make_bars([100.0, 101.0, 102.0, 101.0], freq="1D")
    res = run_backtest(
        bars,
        fixed([1, 1, 1, 1]),
        sizing=Sizing(method="volatility_target", vol_lookback=3),
    )
    # the run starts at bar 0, where no return exists: size 0, so no trade at all
    assert (res.positions.to_numpy() == 0).all()


def test_pair_legs_are_filled_together_with_dollar_neutral_weights():
    y = make_bars([200, 200, 210, 220], [200, 200, 202, 215])
    x = make_bars([50, 50, 51, 49], [50, 50, 50.5, 50])

    def half_half(data, params):
        w = pd.DataFrame(0.0, index=data["Y"].index, columns=["Y", "X"])
        w.iloc[1:2] = [0.5, -0.5]
        return w

    res = run_backtest(
        {"Y": y, "X": x}, half_half, costs=Costs(fee_bps=10), sizing=Sizing(notional=1000)
    )
    # decided at bar 1: Y 500/200 = 2.5 units, X -500/50 = -10 units, filled at bar 2's opens
    # 202 and 50.5 (fee 0.001 * (505 + 505) = 1.01); closed at bar 3's opens 215 and 50
    # (fee 0.001 * (537.5 + 500) = 1.0375)
    assert res.positions.loc[y.index[2]].tolist() == [2.5, -10.0]
    pnl = 2.5 * (215 - 202) - 10 * (50 - 50.5) - 1.01 - 1.0375
    assert res.trades.iloc[0]["pnl"] == pytest.approx(pnl, abs=TOL)
    assert res.equity.iloc[-1] == pytest.approx(10_000 + pnl, abs=TOL)


def test_pair_weights_make_the_x_notional_beta_times_the_y_notional():
    # beta 2: w_y = 1 / 3, w_x = -2 / 3 (gross 1); short the spread flips both signs
    assert pair_weights(2.0, 1.0, "beta") == pytest.approx((1 / 3, -2 / 3))
    assert pair_weights(2.0, -1.0, "beta") == pytest.approx((-1 / 3, 2 / 3))
    assert pair_weights(2.0, 1.0, "dollar") == (0.5, -0.5)
    assert pair_weights(float("nan"), 1.0, "beta") == (0.0, 0.0)


def test_at_end_close_sells_the_open_position_on_the_last_bar():
    bars = make_bars([100, 101, 102, 103], [100, 100, 101, 104])
    res = run_backtest(
        bars,
        fixed([1, 1, 1, 1]),
        costs=Costs(fee_bps=0),
        at_end="close",
        sizing=Sizing(notional=1000),
    )
    # bought 10 at bar 1's open 100, sold at bar 3's open 104
    assert res.positions.iloc[-1, 0] == 0
    assert res.trades.iloc[0]["exit_reason"] == "end"
    assert res.trades["pnl"].sum() == pytest.approx(res.equity.iloc[-1] - 10_000, abs=TOL)
    assert res.equity.iloc[-1] == pytest.approx(10_040, abs=TOL)


def test_trade_from_keeps_earlier_bars_flat():
    bars = make_bars([100, 101, 102, 103, 104])
    res = run_backtest(bars, fixed([1, 1, 1, 1, 1]), trade_from=bars.index[2])
    # decisions before bar 2 are forced flat: the first fill is bar 3's open
    assert (res.positions.iloc[:3, 0] == 0).all() and res.positions.iloc[3, 0] > 0


def test_trades_add_up_to_the_equity_change_on_random_data():
    bars = random_bars(2000, seed=3)
    res = run_backtest(
        bars,
        "zscore_reversion",
        {"lookback": 30, "entry": 1.5},
        costs=Costs(fee_bps=7.5, slippage_bps=3),
        at_end="close",
    )
    # source: accounting identity; tolerance 1e-6 on ~1e4 (round-off of ~200 fills)
    assert res.trades["pnl"].sum() == pytest.approx(res.equity.iloc[-1] - 10_000, abs=1e-6)
    assert res.trades["fees"].sum() == pytest.approx(res.fees.sum(), abs=1e-6)


def test_buy_and_hold_benchmark_buys_at_the_second_open_with_costs():
    bars = make_bars([100, 110, 121], [100, 100, 110])
    res = run_backtest(bars, fixed([0, 0, 0]), costs=Costs(fee_bps=10), capital=10_000)
    # 10000 / 100 = 100 units at bar 1's open 100, fee 10: equity 9990 + 100 * close
    assert res.benchmark.tolist() == pytest.approx([10_000, 9_990 + 100 * 10, 9_990 + 2_100])


def test_strategy_returning_the_wrong_index_is_refused():
    bars = make_bars([1, 2, 3])
    with pytest.raises(BacktestError, match="indexed like the bars"):
        run_backtest(bars, lambda d, p: pd.Series([1.0, 0.0]), {})


def test_a_failing_user_strategy_is_reported_with_its_name_and_params():
    def broken(data, params):
        raise KeyError("close_price")

    with pytest.raises(BacktestError, match=r"broken.*\{'a': 1\}"):
        run_backtest(make_bars([1, 2, 3]), broken, {"a": 1})


def test_unknown_strategy_parameter_is_refused_naming_it():
    with pytest.raises(ValidationError, match=r"ZScoreReversionParams\.lookbak"):
        run_backtest(random_bars(50, 1), "zscore_reversion", {"lookbak": 20})


def test_bars_with_a_non_positive_price_are_refused_naming_the_bar():
    bars = make_bars([100, -1, 100], [100, 100, 100])
    with pytest.raises(ValidationError, match=r"data\['asset'\]\.close=-1\.0.*00:01:00"):
        run_backtest(bars, fixed([0, 0, 0]))


def test_result_round_trips_to_json_with_a_stable_content_hash_id():
    bars = random_bars(300, seed=5)
    a = run_backtest(bars, "ma_crossover", {"fast": 5, "slow": 20})
    b = run_backtest(bars, "ma_crossover", {"fast": 5, "slow": 20})
    c = run_backtest(bars, "ma_crossover", {"fast": 6, "slow": 20})
    assert a.id == b.id != c.id
    import json

    summary = json.loads(a.to_json())
    assert summary["id"] == a.id
    assert summary["config"]["params"] == {
        "fast": 5,
        "slow": 20,
        "kind": "sma",
        "direction": "long_short",
    }
    from lq.backtest import BacktestConfig

    assert BacktestConfig.from_dict(summary["config"]) == a.config
    assert a.summary().loc["sharpe", "strategy"] == a.metrics.sharpe
    full = json.loads(a.to_json(detail="full"))
    assert len(full["series"]["equity"]) == 300
    assert len(full["trades"]["pnl"]) == len(a.trades)


def test_to_json_is_strict_json_with_null_for_undefined_metrics():
    import json

    res = run_backtest(random_bars(50, 1), fixed([0.0] * 50))

    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    out = json.loads(res.to_json(detail="full"), parse_constant=no_constants)
    assert out["metrics"]["sharpe"] is None  # no trades: Sharpe undefined
    assert out["metrics"]["number_of_trades"] == 0
