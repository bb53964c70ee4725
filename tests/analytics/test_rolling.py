import math

import numpy as np
import pandas as pd
import pytest

from lq.analytics import rolling_correlation, rolling_mean, rolling_std, zscore


def _prices(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    return pd.Series(np.round(60_000 + np.cumsum(rng.integers(-50, 51, n)) * 0.01, 2))


def _exact(x, w, i, ddof=1):
    win = x[i - w + 1 : i + 1]
    m = math.fsum(win) / w
    return m, math.sqrt(math.fsum((win - m) ** 2) / (w - ddof))


def test_rolling_mean_and_std_match_pandas_and_an_exact_two_pass():
    x = _prices()
    # reference 1: pandas rolling (ddof=1); rtol 1e-7 because pandas' running sums at a level
    # of 60,000 are only good to ~1e-8 there (ours is closer to the exact reference below)
    np.testing.assert_allclose(rolling_mean(x, 50), x.rolling(50).mean(), rtol=1e-12)
    np.testing.assert_allclose(rolling_std(x, 50), x.rolling(50).std(), rtol=1e-7)
    # reference 2: exact two-pass with math.fsum at every 97th point, rtol 1e-10
    v, sd = x.to_numpy(), rolling_std(x, 50).to_numpy()
    for i in range(49, v.size, 97):
        assert sd[i] == pytest.approx(_exact(v, 50, i)[1], rel=1e-10)


def test_zscore_hand_computed_with_ddof_1():
    # window [1,2,3]: mean 2, sample std 1 -> z = 1; [2,3,3]: mean 8/3, std 0.57735 -> 0.57735
    z = zscore(np.array([1.0, 2.0, 3.0, 3.0]), 3)
    assert z[2] == pytest.approx(1.0, rel=1e-14)
    assert z[3] == pytest.approx((3 - 8 / 3) / math.sqrt(1 / 3), rel=1e-12)


def test_constant_series_zscore_is_nan_never_inf():
    x = np.concatenate([np.linspace(1, 2, 10), np.full(30, 7.0)])
    z = zscore(x, 5)
    assert not np.isinf(z).any()
    assert np.isnan(z[-26:]).all()
    assert (rolling_std(x, 5)[-26:] == 0.0).all()
    assert (rolling_mean(x, 5)[-26:] == 7.0).all()


def test_windows_count_valid_observations_and_nan_positions_repeat():
    x = pd.Series([1.0, np.nan, 3.0, np.nan, np.nan, 5.0])
    # valid 1,3,5: window 2 -> 2 at pos 2, repeated at 3-4, then 4 at pos 5
    np.testing.assert_allclose(rolling_mean(x, 2), [np.nan, np.nan, 2, 2, 2, 4])


def test_too_short_input_is_all_nan():
    assert np.isnan(zscore(np.array([1.0, 2.0]), 5)).all()


def test_rolling_correlation_matches_pandas():
    rng = np.random.default_rng(3)
    a = pd.Series(rng.normal(size=2000))
    b = 0.5 * a + pd.Series(rng.normal(size=2000))
    # reference: pandas rolling corr, rtol 1e-10 (inputs near zero mean: pandas is exact here)
    np.testing.assert_allclose(rolling_correlation(a, b, 100), a.rolling(100).corr(b), rtol=1e-10)


def test_large_inputs_match_exact_two_pass_and_are_causal():
    # n * window > 4e6 takes the O(n) block-anchored path: prices near 60,000 with a jump
    # and constant stretches in both series (exact zeros / NaN there, like the exact path)
    from lq.analytics import rolling_hedge_ratio

    rng = np.random.default_rng(7)
    n, w = 12_000, 500
    x = np.round(60_000 + np.cumsum(rng.normal(0, 5, n)), 2)
    x[6_000:] += 3_000.0
    x[8_000:8_700] = x[8_000]
    y = np.round(3_000 + 0.05 * x + np.cumsum(rng.normal(0, 1, n)), 2)
    y[10_000:10_800] = y[10_000]
    beta, z = rolling_hedge_ratio(y, x, w), zscore(x, w)
    sd, mean = rolling_std(x, w), rolling_mean(x, w)
    assert np.isnan(beta[: w - 1]).all() and np.isnan(z[: w - 1]).all()
    for i in [*range(w - 1, n, 41), 8_699, 8_750, 10_799, 10_900]:
        xs, ys = x[i - w + 1 : i + 1], y[i - w + 1 : i + 1]
        mx, my = math.fsum(xs) / w, math.fsum(ys) / w
        sxx, sxy = math.fsum((xs - mx) ** 2), math.fsum((xs - mx) * (ys - my))
        if np.ptp(xs) == 0:
            assert np.isnan(beta[i]) and np.isnan(z[i]) and sd[i] == 0.0 and mean[i] == x[i]
            continue
        assert beta[i] == (0.0 if np.ptp(ys) == 0 else pytest.approx(sxy / sxx, rel=1e-10))
        m, s = _exact(x, w, i)
        assert mean[i] == pytest.approx(m, rel=1e-14)
        assert sd[i] == pytest.approx(s, rel=1e-10)
        assert z[i] == pytest.approx((x[i] - m) / s, rel=1e-10, abs=1e-10)
    # every value at t uses data <= t only: a truncated input gives the same prefix, bit for bit
    k = 9_321
    np.testing.assert_array_equal(rolling_hedge_ratio(y[:k], x[:k], w), beta[:k])
    np.testing.assert_array_equal(zscore(x[:k], w), z[:k])
