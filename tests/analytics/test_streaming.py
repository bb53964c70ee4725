"""Every streaming class equals its batch twin after every update (hypothesis, 1e-9).

Tolerance: |stream - batch| <= 1e-9 * max(|batch|, s), where s is the natural scale of the
statistic: 0 (pure relative) for EMA, RSI, mean and std; 1 for z-score and correlation
(dimensionless, and zero up to rounding when the latest value sits on the mean); and
std(y)/std(x) over the window for the hedge ratio (|beta| <= that bound).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lq.analytics as A
from lq.analytics import streaming as S
from lq.errors import ValidationError

RTOL = 1e-9


@st.composite
def price_paths(draw, min_size=1, max_size=250):
    """Tick-grid random walks (0.01 ticks) with constant stretches and NaN gaps."""
    n = draw(st.integers(min_size, max_size))
    start = draw(st.integers(1, 10_000_000))
    steps = draw(st.lists(st.integers(-40, 40), min_size=n, max_size=n))
    flat = draw(st.lists(st.booleans(), min_size=n, max_size=n))  # True -> no move
    steps = [0 if f else s for s, f in zip(steps, flat, strict=True)]
    ticks = np.maximum(start + np.cumsum(steps), 1)
    x = np.round(ticks * 0.01, 2)
    gaps = draw(st.lists(st.integers(0, n - 1), max_size=max(1, n // 8)))
    x[gaps] = np.nan
    return x


def _feed(obj, *series):
    out = np.empty(series[0].size)
    for i in range(out.size):
        obj.update(*(s[i] for s in series))
        out[i] = obj.value
    return out


def _same(stream, batch, scale=0.0):
    batch = np.asarray(batch, dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(stream), np.isnan(batch))
    ok = ~np.isnan(batch)
    err = np.abs(stream[ok] - batch[ok])
    bound = RTOL * np.maximum(np.abs(batch[ok]), scale)
    assert (err <= bound).all(), (stream[ok][err > bound], batch[ok][err > bound])


@settings(max_examples=100, deadline=None)
@given(x=price_paths(), span=st.integers(1, 30))
def test_ema_equals_batch(x, span):
    _same(_feed(S.EMA(span), x), A.ema(x, span))


@settings(max_examples=100, deadline=None)
@given(x=price_paths(), window=st.integers(1, 20))
def test_rsi_equals_batch(x, window):
    _same(_feed(S.RSI(window), x), A.rsi(x, window))


@settings(max_examples=100, deadline=None)
@given(x=price_paths(), window=st.integers(1, 40))
def test_rolling_mean_equals_batch(x, window):
    _same(_feed(S.RollingMean(window), x), A.rolling_mean(x, window))


@settings(max_examples=100, deadline=None)
@given(x=price_paths(), window=st.integers(2, 40), ddof=st.sampled_from([0, 1]))
def test_rolling_std_equals_batch(x, window, ddof):
    _same(_feed(S.RollingStd(window, ddof=ddof), x), A.rolling_std(x, window, ddof=ddof))


@settings(max_examples=100, deadline=None)
@given(x=price_paths(), window=st.integers(2, 40))
def test_zscore_equals_batch(x, window):
    _same(_feed(S.ZScore(window), x), A.zscore(x, window), scale=1.0)


@st.composite
def pairs(draw):
    x = draw(price_paths(min_size=2))
    noise = draw(price_paths(min_size=x.size, max_size=x.size))
    k = draw(st.sampled_from([0.0, 0.5, 2.0]))
    y = np.round(k * x + noise, 2)  # NaN where either has a gap
    return y, x


@settings(max_examples=100, deadline=None)
@given(yx=pairs(), window=st.integers(2, 40))
def test_rolling_hedge_ratio_equals_batch(yx, window):
    y, x = yx
    batch = A.rolling_hedge_ratio(y, x, window)
    ok = np.isfinite(x) & np.isfinite(y)
    sy = A.rolling_std(np.where(ok, y, np.nan), window)
    sx = A.rolling_std(np.where(ok, x, np.nan), window)
    stream = _feed(S.RollingHedgeRatio(window), y, x)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(np.isnan(batch), 0.0, sy / sx)
    np.testing.assert_array_equal(np.isnan(stream), np.isnan(batch))
    good = ~np.isnan(batch)
    err = np.abs(stream - batch)[good]
    assert (err <= RTOL * np.maximum(np.abs(batch[good]), scale[good])).all()


@settings(max_examples=100, deadline=None)
@given(yx=pairs(), window=st.integers(2, 40))
def test_rolling_correlation_equals_batch(yx, window):
    y, x = yx
    _same(_feed(S.RollingCorrelation(window), y, x), A.rolling_correlation(y, x, window), 1.0)


@settings(max_examples=100, deadline=None)
@given(yx=pairs(), delta=st.sampled_from([0.0, 1e-4, 1e-2]))
def test_kalman_hedge_ratio_equals_batch(yx, delta):
    y, x = np.log(yx[0].clip(0.01)), np.log(yx[1])  # the filter runs on log prices
    batch = A.kalman_hedge_ratio(y, x, delta=delta)["beta"].to_numpy()
    _same(_feed(S.KalmanHedgeRatio(delta=delta), y, x), batch, scale=1.0)


def test_nan_update_is_skipped_and_value_unchanged():
    z = S.ZScore(3)
    for v in (1.0, 2.0, 4.0):
        z.update(v)
    before = z.value
    z.update(math.nan)
    z.update(math.inf)
    assert z.value == before and z.count == 3


def test_constant_stretch_gives_nan_zscore_never_inf_even_after_large_moves():
    z = S.ZScore(5)
    for v in [60_000.0, 61_000.0, 59_000.0, 60_500.0] + [60_123.45] * 10:
        z.update(v)
        assert not math.isinf(z.value)
    assert math.isnan(z.value)
    s = S.RollingStd(5)
    for v in [1e6, -1e6, 3.0, 3.0, 3.0, 3.0, 3.0]:
        s.update(v)
    assert s.value == 0.0


def test_hand_computed_pair_values():
    h, c = S.RollingHedgeRatio(3), S.RollingCorrelation(3)
    for x in (1.0, 2.0, 4.0, 7.0):
        h.update(2.0 * x + 1.0, x)
        c.update(-x, x)
    assert h.value == pytest.approx(2.0, rel=1e-14) and h.alpha == pytest.approx(1.0, rel=1e-13)
    assert c.value == -1.0


def test_indicator_sets_update_every_member():
    rng = np.random.default_rng(0)
    px = 100 * np.exp(np.cumsum(0.001 * rng.standard_normal(400)))
    py = 50 * np.exp(np.log(px / 100) * 1.2 + 0.0005 * rng.standard_normal(400))
    sym, pair = S.SymbolIndicators(window=50), S.PairIndicators(window=100)
    for a, b in zip(py, px, strict=True):
        sym.update(b)
        pair.update(a, b)
    snap = sym.snapshot()
    assert snap["sma"] == pytest.approx(A.sma(px, 50)[-1], rel=1e-9)
    assert snap["rsi"] == pytest.approx(A.rsi(px, 14)[-1], rel=1e-9)
    p = pair.snapshot()
    ref = A.rolling_hedge_ratio(np.log(py), np.log(px), 100)[-1]
    assert p["hedge_ratio"] == pytest.approx(ref, rel=1e-9)
    assert all(math.isfinite(v) for v in p.values())


def test_bad_parameters_are_refused():
    with pytest.raises(ValidationError, match="window=0"):
        S.ZScore(0)
    with pytest.raises(ValidationError, match=r"delta=1\.5"):
        S.KalmanHedgeRatio(delta=1.5)


@settings(max_examples=100, deadline=None)
@given(
    x=price_paths(min_size=2),
    lam=st.floats(0.5, 0.99),
    interval=st.sampled_from(["1s", "1m", "5m"]),
)
def test_ewma_vol_equals_batch(x, lam, interval):
    r = np.diff(np.log(x))  # NaN wherever either price is missing
    _same(
        _feed(S.EWMAVol(interval=interval, lam=lam), r), A.ewma_vol(r, interval=interval, lam=lam)
    )


def test_ewma_vol_refuses_a_bad_lambda():
    with pytest.raises(ValidationError, match="lam"):
        S.EWMAVol(interval="1s", lam=1.0)
