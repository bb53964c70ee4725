import numpy as np
import pandas as pd
import pytest

from lq.analytics import bollinger, ema, rsi, sma

# StockCharts' worked RSI example ("RSI" ChartSchool article, cs-rsi.xls), 14 periods
CLOSES = [
    44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08, 45.89, 46.03,
    45.61, 46.28, 46.28, 46.00, 46.03, 46.41, 46.22, 45.64, 46.21, 46.25, 45.71, 46.45,
    45.78, 45.35, 44.03, 44.18, 44.22, 44.57, 43.42, 42.66, 43.13,
]  # fmt: skip
STOCKCHARTS_RSI = [
    70.53, 66.32, 66.55, 69.41, 66.36, 57.97, 62.93, 63.26, 56.06, 62.38, 54.71, 50.42,
    39.99, 41.46, 41.87, 45.46, 37.30, 33.08, 37.77,
]  # fmt: skip


def test_rsi_first_value_worked_by_hand():
    # first 14 changes: gains sum 3.34... by hand: gains = .06+.72+.5+.27+.32+.42+.24+.14+.67
    # = 3.34 -> avg 0.238571; losses = .25+.54+.19+.42 = 1.40 -> avg 0.1; RSI = 100*3.34/4.74
    # = 70.464; StockCharts' spreadsheet gives 70.53 because it rounds the averages to 2 dp
    r = rsi(np.array(CLOSES), 14)
    assert np.isnan(r[:14]).all()
    assert r[14] == pytest.approx(100 * 3.34 / 4.74, abs=1e-9)


def test_rsi_matches_the_stockcharts_worked_example():
    # tolerance 0.15 RSI points: the published table rounds intermediate averages
    r = rsi(pd.Series(CLOSES), 14)
    np.testing.assert_allclose(r.iloc[14:].to_numpy(), STOCKCHARTS_RSI, atol=0.15)


def test_rsi_constant_series_is_50_and_all_gains_is_100():
    assert rsi(np.full(20, 3.0), 14)[-1] == 50.0
    assert rsi(np.arange(1.0, 21.0), 14)[-1] == 100.0


def test_ema_matches_pandas_ewm_and_hand_case():
    rng = np.random.default_rng(0)
    x = pd.Series(rng.normal(size=500).cumsum())
    ref = x.ewm(span=10, adjust=False).mean()  # reference: pandas
    out = ema(x, 10)
    assert out.iloc[:9].isna().all()
    np.testing.assert_allclose(out.iloc[9:], ref.iloc[9:], rtol=1e-14)
    # hand: alpha = 0.5 -> 1, 1.5, 2.25
    np.testing.assert_allclose(ema(np.array([1.0, 2.0, 3.0]), 3, min_periods=1), [1, 1.5, 2.25])


def test_sma_and_bollinger_match_pandas_rolling():
    rng = np.random.default_rng(1)
    x = pd.Series(60_000 + rng.normal(size=1000).cumsum())
    np.testing.assert_allclose(sma(x, 20), x.rolling(20).mean(), rtol=1e-12)
    bb = bollinger(x, 20, k=2.0)  # reference: pandas rolling std with ddof=0
    sd = x.rolling(20).std(ddof=0)
    np.testing.assert_allclose(bb["upper"], x.rolling(20).mean() + 2 * sd, rtol=1e-12)
    np.testing.assert_allclose(bb["lower"], x.rolling(20).mean() - 2 * sd, rtol=1e-12)


def test_bollinger_hand_case_and_collapsed_bands():
    # hand: [1,2,3] mean 2, population std sqrt(2/3) = 0.816497
    bb = bollinger(np.array([1.0, 2.0, 3.0, 3.0, 3.0, 3.0]), 3, k=1.0)
    assert bb["upper"].iloc[2] == pytest.approx(2 + np.sqrt(2 / 3), rel=1e-12)
    assert bb["upper"].iloc[-1] == bb["lower"].iloc[-1] == 3.0
    assert np.isnan(bb["percent_b"].iloc[-1])


def test_nan_inputs_are_skipped_and_the_last_value_repeats():
    x = np.array([1.0, 2.0, np.nan, 3.0, 4.0])
    # hand: window 2 over valid values 1,2,3,4 -> 1.5, 2.5, 3.5; the NaN repeats 1.5
    np.testing.assert_allclose(sma(x, 2), [np.nan, 1.5, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(rsi(x, 2), [np.nan, np.nan, np.nan, 100.0, 100.0])


def test_too_short_input_gives_nan_not_an_error():
    assert np.isnan(rsi(np.array([1.0, 2.0]), 14)).all()
    assert np.isnan(sma(np.array([1.0]), 5)).all()
