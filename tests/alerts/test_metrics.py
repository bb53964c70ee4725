"""Each live metric equals its batch twin in lq.analytics (and, through it, statsmodels /
pandas) on a seeded series; the sampler equals 1 s bars built by ``resample_bars``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lq.alerts.metrics import Sampler, make_metric
from lq.alerts.rules import Rule
from lq.analytics import (
    realized_vol,
    resample_bars,
    rolling_correlation,
    rolling_hedge_ratio,
    rsi,
    spread,
    zscore,
)
from lq.analytics.streaming import PairIndicators

S = 1_000_000
RTOL = 1e-9  # the streaming classes agree with their batch twins to ~1e-12 relative
ATOL = 1e-9  # z-scores near 0 are differences of O(1) numbers: compare absolutely there


def _pair(n: int = 600, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lx = np.log(60_000.0) + np.cumsum(2e-4 * rng.standard_normal(n))
    u = np.zeros(n)
    for i in range(1, n):
        u[i] = 0.97 * u[i - 1] + 5e-4 * rng.standard_normal()
    ly = np.log(3000.0) + 0.8 * (lx - lx[0]) + u
    return np.exp(ly), np.exp(lx)


def _run(rule: Rule, cols: tuple[np.ndarray, ...]) -> np.ndarray:
    m = make_metric(rule)
    out = np.empty(len(cols[0]))
    for i in range(len(cols[0])):
        m.update((i + 1) * S, tuple(float(c[i]) for c in cols))
        out[i] = m.value
    return out


def _close(a: np.ndarray, b: np.ndarray) -> None:
    assert np.array_equal(np.isnan(a), np.isnan(b)), (np.isnan(a).sum(), np.isnan(b).sum())
    ok = ~np.isnan(a)
    assert ok.sum() > 100
    np.testing.assert_allclose(a[ok], b[ok], rtol=RTOL, atol=ATOL)


def test_spread_zscore_ols_equals_rolling_ols_spread_then_zscore():
    y, x = _pair()
    w = 50
    rule = Rule(name="s", metric="spread_zscore", symbol="ETHUSDT/BTCUSDT", threshold=2.0,
                window=w)  # fmt: skip
    live = _run(rule, (y, x))
    ly, lx = np.log(y), np.log(x)
    beta = rolling_hedge_ratio(ly, lx, w)
    # alpha_t = mean(y) - beta_t mean(x) over the same window (OLS with a constant)
    alpha = (
        pd.Series(ly).rolling(w).mean().to_numpy()
        - beta * pd.Series(lx).rolling(w).mean().to_numpy()
    )
    sp = spread(ly, lx, beta, alpha=alpha)
    ref = zscore(sp[~np.isnan(sp)], w)
    ref = np.concatenate([np.full(np.isnan(sp).sum(), np.nan), ref])
    _close(live, ref)
    # and the dashboard's streaming PairIndicators gives the same number
    p = PairIndicators(window=w)
    for yy, xx in zip(y, x, strict=True):
        p.update(yy, xx)
    assert live[-1] == pytest.approx(p.snapshot()["spread_zscore"], rel=1e-12)


def test_zscore_rsi_realized_vol_and_correlation_equal_batch_twins():
    y, x = _pair(seed=9)
    w = 40
    z = _run(Rule(name="z", metric="zscore", symbol="BTCUSDT", threshold=1.0, window=w), (x,))
    _close(z, zscore(x, w))
    r = _run(Rule(name="r", metric="rsi", symbol="BTCUSDT", threshold=70.0, window=14), (x,))
    _close(r, rsi(x, 14))
    v = _run(Rule(name="v", metric="volatility", symbol="BTCUSDT", threshold=1.0, window=w,
                  sample=5.0), (x,))  # fmt: skip
    rets = np.diff(np.log(x), prepend=np.nan)
    _close(v, realized_vol(rets, interval="5s", window=w))
    c = _run(Rule(name="c", metric="correlation", symbol="ETHUSDT/BTCUSDT", threshold=0.5,
                  window=w), (y, x))  # fmt: skip
    _close(c, rolling_correlation(np.diff(np.log(y), prepend=np.nan),
                                  np.diff(np.log(x), prepend=np.nan), w))  # fmt: skip


def test_return_and_hedge_drift_by_hand():
    p = np.array([100.0, 101.0, 99.0, 102.0, 104.0])
    ret = _run(Rule(name="r", metric="return", symbol="BTCUSDT", threshold=0.01,
                    lookback=2), (p,))  # fmt: skip
    # log(p[t] / p[t-2]), NaN for the first two
    expected = np.array(
        [np.nan, np.nan, math.log(99 / 100), math.log(102 / 101), math.log(104 / 99)]
    )
    _close_small(ret, expected)
    y, x = _pair(seed=4)
    d = _run(Rule(name="d", metric="hedge_drift", symbol="ETHUSDT/BTCUSDT", threshold=0.1,
                  window=30, lookback=10), (y, x))  # fmt: skip
    beta = rolling_hedge_ratio(np.log(y), np.log(x), 30)
    _close(d, beta - np.roll(beta, 10) * np.where(np.arange(len(beta)) >= 10, 1, np.nan))


def _close_small(a, b):
    assert np.array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=1e-12)


def test_sampler_emits_the_close_of_each_bucket_like_resample_bars():
    rng = np.random.default_rng(5)
    n = 3000
    ts = np.sort(1_700_000_000 * S + rng.integers(0, 120 * S, n))
    price = 100 + np.cumsum(rng.standard_normal(n))
    s = Sampler(n_legs=1, sample_us=S)
    got = [out for t, p in zip(ts, price, strict=True) if (out := s.on_trade(0, float(p), int(t)))]
    bars = resample_bars(pd.DataFrame({"ts": ts, "price": price, "qty": 1.0}), "1s")
    # every bucket but the last (still open) is emitted, stamped with its end
    assert [g[0] for g in got] == (bars["ts"].to_numpy()[:-1] + S).tolist()
    assert [g[1][0] for g in got] == bars["close"].to_numpy()[:-1].tolist()


def test_pair_sampler_forward_fills_the_quiet_leg():
    s = Sampler(n_legs=2, sample_us=S)
    seq = [(1, 10.0, 0), (0, 5.0, S // 2), (1, 11.0, S + 1), (1, 12.0, 2 * S + 1), (0, 6.0, 3 * S)]
    got = [out for leg, p, t in seq if (out := s.on_trade(leg, p, t))]
    # bucket 0 closes with (5, 10); bucket 1 only X traded -> Y carried forward;
    # bucket 2 likewise
    assert got == [(S, (5.0, 10.0)), (2 * S, (5.0, 11.0)), (3 * S, (5.0, 12.0))]


def test_samples_at_or_before_the_last_one_are_ignored():
    m = make_metric(Rule(name="p", metric="price", symbol="BTCUSDT", threshold=1.0))
    m.update(5 * S, (10.0,))
    m.update(5 * S, (11.0,))
    m.update(4 * S, (12.0,))
    assert m.value == 10.0
