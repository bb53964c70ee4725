"""One test family per statistic: empty input, all-NaN input, and a known answer."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lq.backtest import metrics as M

IDX = pd.date_range("2024-01-01", periods=5, freq="1D", tz="UTC")
EMPTY = pd.Series([], dtype=float, index=pd.DatetimeIndex([], tz="UTC"))
NANS = pd.Series([np.nan] * 5, index=IDX)
EQUITY = pd.Series([100.0, 110.0, 99.0, 108.9, 120.0], index=IDX)
RETURNS = np.array([0.10, -0.10, 0.10, 120.0 / 108.9 - 1])
TRADES = pd.DataFrame(
    {
        "pnl": [10.0, -5.0, 20.0, -5.0, 3.0],
        "holding_time": pd.to_timedelta(["1h", "2h", "3h", "4h", "5h"]),
        "open": [False, False, False, False, True],
    }
)
NO_TRADES = TRADES.iloc[:0]
NAN_TRADES = pd.DataFrame(
    {"pnl": [np.nan, np.nan], "holding_time": pd.to_timedelta([None, None]), "open": [False, False]}
)


def test_total_return():
    assert math.isnan(M.total_return(EMPTY)) and math.isnan(M.total_return(NANS))
    assert M.total_return(EQUITY) == pytest.approx(0.2, rel=1e-12)  # 120 / 100 - 1


def test_cagr_on_a_365_day_year():
    assert math.isnan(M.cagr(EMPTY)) and math.isnan(M.cagr(NANS))
    # doubling over exactly 365 days is 100 % a year; over 730 days it is sqrt(2) - 1
    two = pd.Series([1.0, 2.0], index=pd.DatetimeIndex(["2023-01-01", "2024-01-01"], tz="UTC"))
    assert M.cagr(two) == pytest.approx(1.0, rel=1e-12)
    two.index = pd.DatetimeIndex(["2022-01-01", "2024-01-01"], tz="UTC")  # 730 days
    assert M.cagr(two) == pytest.approx(math.sqrt(2) - 1, rel=1e-12)


def test_sharpe_ratio_is_mean_over_sample_std_annualised():
    assert math.isnan(M.sharpe_ratio(EMPTY)) and math.isnan(M.sharpe_ratio(NANS))
    # reference: Python's statistics module (mean, stdev with n - 1)
    want = statistics.mean(RETURNS) / statistics.stdev(RETURNS) * math.sqrt(365)
    assert M.sharpe_ratio(RETURNS, periods_per_year=365) == pytest.approx(want, rel=1e-12)
    assert math.isnan(M.sharpe_ratio(np.array([0.01, 0.01, 0.01])))  # no variance


def test_sortino_ratio_uses_downside_deviation_against_zero():
    assert math.isnan(M.sortino_ratio(EMPTY)) and math.isnan(M.sortino_ratio(NANS))
    # hand: returns 0.02, -0.01, 0.03, -0.02: mean 0.005; downside sqrt((1e-4 + 4e-4) / 4)
    r = np.array([0.02, -0.01, 0.03, -0.02])
    want = 0.005 / math.sqrt(0.0005 / 4) * math.sqrt(8760)
    assert M.sortino_ratio(r, periods_per_year=8760) == pytest.approx(want, rel=1e-12)
    assert math.isnan(M.sortino_ratio(np.array([0.01, 0.02])))  # no losing bar


def test_max_drawdown_and_drawdown_series():
    assert math.isnan(M.max_drawdown(EMPTY)) and math.isnan(M.max_drawdown(NANS))
    # peak 110 -> trough 99: -10 %
    assert M.max_drawdown(EQUITY) == pytest.approx(-0.1, rel=1e-12)
    dd = M.drawdown_series(EQUITY)
    np.testing.assert_allclose(dd.to_numpy(), [0, 0, -0.1, 108.9 / 110 - 1, 0], atol=1e-15)
    assert M.max_drawdown(pd.Series([1.0, 2.0, 3.0], index=IDX[:3])) == 0.0


def test_max_drawdown_duration_runs_from_the_peak_to_the_recovery_or_the_end():
    assert M.max_drawdown_duration(EMPTY) is pd.NaT
    assert M.max_drawdown_duration(NANS) is pd.NaT
    # peak on day 1 (110), below it on days 2 and 3, back above on day 4: 3 days
    assert M.max_drawdown_duration(EQUITY) == pd.Timedelta(days=3)
    never = pd.Series([100, 90, 95, 99.0, 98.0], index=IDX)  # never recovers: day 0 to day 4
    assert M.max_drawdown_duration(never) == pd.Timedelta(days=4)
    assert M.max_drawdown_duration(pd.Series([1.0, 2.0], index=IDX[:2])) == pd.Timedelta(0)


def test_calmar_ratio_is_cagr_over_the_absolute_max_drawdown():
    assert math.isnan(M.calmar_ratio(EMPTY)) and math.isnan(M.calmar_ratio(NANS))
    years = 4 / 365
    want = (1.2 ** (1 / years) - 1) / 0.1
    assert M.calmar_ratio(EQUITY) == pytest.approx(want, rel=1e-9)


def test_win_rate_counts_closed_trades_only():
    assert math.isnan(M.win_rate(NO_TRADES)) and math.isnan(M.win_rate(NAN_TRADES))
    assert M.win_rate(TRADES) == pytest.approx(2 / 4)  # 10, -5, 20, -5 (the open 3 excluded)


def test_profit_factor_is_gross_profit_over_gross_loss():
    assert math.isnan(M.profit_factor(NO_TRADES)) and math.isnan(M.profit_factor(NAN_TRADES))
    assert M.profit_factor(TRADES) == pytest.approx(30 / 10)
    assert M.profit_factor(TRADES.iloc[[0, 2]]) == math.inf


def test_number_of_trades_and_average_holding_time():
    assert M.number_of_trades(NO_TRADES) == 0 and M.number_of_trades(TRADES) == 5
    assert M.number_of_trades(NAN_TRADES) == 2
    assert M.average_holding_time(NO_TRADES) is pd.NaT
    assert M.average_holding_time(NAN_TRADES) is pd.NaT
    assert M.average_holding_time(TRADES) == pd.Timedelta(hours=3)  # (1+2+3+4+5) / 5


def test_exposure_is_the_fraction_of_bars_with_a_position():
    assert math.isnan(M.exposure(pd.DataFrame())) and math.isnan(M.exposure(NANS))
    pos = pd.DataFrame({"a": [0, 1, 1, 0], "b": [0, 0, -2, -2]})
    assert M.exposure(pos) == pytest.approx(3 / 4)


def test_turnover_and_fees_paid():
    assert M.turnover(EMPTY, capital=1000) == 0.0 and M.fees_paid(EMPTY) == 0.0
    assert M.turnover(NANS, capital=1000) == 0.0 and M.fees_paid(NANS) == 0.0
    assert M.turnover(np.array([500.0, 1500.0]), capital=1000) == pytest.approx(2.0)
    assert M.fees_paid(np.array([0.5, 1.5, np.nan])) == pytest.approx(2.0)


def test_probabilistic_sharpe_matches_the_formula_with_scipy_moments():
    assert math.isnan(M.probabilistic_sharpe_ratio(EMPTY))
    assert math.isnan(M.probabilistic_sharpe_ratio(NANS))
    rng = np.random.default_rng(11)
    r = rng.standard_t(5, 500) * 0.01 + 0.001
    sr = r.mean() / r.std(ddof=1)
    g3, g4 = stats.skew(r), stats.kurtosis(r, fisher=False)
    # Bailey & Lopez de Prado (2012), eq. for PSR(SR*=0)
    want = stats.norm.cdf(sr * math.sqrt(499) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2))
    assert M.probabilistic_sharpe_ratio(r) == pytest.approx(want, rel=1e-12)


def test_deflated_sharpe_reproduces_the_paper_example():
    # Bailey & Lopez de Prado, "The Deflated Sharpe Ratio" (2014), section 4 example:
    # SR 2.5 annualised over 1250 daily returns (250/year), N = 100 trials, V = 0.5 annual,
    # skew -3, kurtosis 10 -> SR0 = 0.1132 per day and DSR = 0.9004. Tolerance 1e-3 (the
    # paper prints four digits).
    sr0 = M.expected_max_sharpe(n_trials=100, sharpe_variance=0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=1e-4)
    dsr = M._psr(2.5 / math.sqrt(250), sr0, 1250, -3.0, 10.0)
    assert dsr == pytest.approx(0.9004, abs=1e-3)
    assert math.isnan(M.deflated_sharpe_ratio(EMPTY, n_trials=10, sharpe_variance=0.1))
    assert math.isnan(M.deflated_sharpe_ratio(NANS, n_trials=10, sharpe_variance=0.1))


def test_deflated_sharpe_is_below_probabilistic_sharpe_after_many_trials():
    rng = np.random.default_rng(2)
    r = rng.normal(0.001, 0.01, 1000)
    psr = M.probabilistic_sharpe_ratio(r)
    dsr = M.deflated_sharpe_ratio(r, n_trials=50, sharpe_variance=0.002)
    assert dsr < psr
    assert M.deflated_sharpe_ratio(r, n_trials=1, sharpe_variance=0.002) == pytest.approx(psr)


def test_periods_per_year_uses_the_bar_interval_on_a_24x365_calendar():
    assert M.periods_per_year(pd.date_range("2024", periods=3, freq="1min", tz="UTC")) == 525_600
    assert M.periods_per_year(pd.date_range("2024", periods=3, freq="1h", tz="UTC")) == 8_760
    assert math.isnan(M.periods_per_year(pd.DatetimeIndex([], tz="UTC")))
