"""Lead-lag across venues: lagged correlation and Hayashi-Yoshida, against independent references.

References: pandas ``Series.corr`` on shifted series and statsmodels ``ccf`` (lagged
correlation); a hand-computed Hayashi-Yoshida sum with the overlapping intervals written out;
numpy's realised covariance on common timestamps; a naive O(n·m) double loop over all
interval pairs written from the definition (Hayashi & Yoshida 2005, eq. (1.2)); and a
simulated pair with a known 300 ms lead (Hoffmann, Rosenbaum & Yoshida 2013).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.tsa.stattools import ccf

import lq.analytics as A
from lq.errors import ValidationError

T0 = 1_700_000_000_000_000  # µs


# -- Hayashi-Yoshida: hand-computed ----------------------------------------------------------


def test_hayashi_yoshida_hand_computed_example():
    # HY = Σ_i Σ_j Δa(I_i) Δb(J_j) 1{I_i ∩ J_j ≠ ∅}, intervals half-open (t_{i-1}, t_i]
    # (Hayashi & Yoshida 2005). Prices, transform="none", times in µs.
    a = (np.array([0, 3, 5, 9]), np.array([100.0, 102.0, 101.0, 104.0]))
    b = (np.array([1, 2, 6, 8, 12]), np.array([50.0, 51.0, 49.0, 52.0, 53.0]))
    # a: I1=(0,3] Δ=+2   I2=(3,5] Δ=-1   I3=(5,9] Δ=+3
    # b: J1=(1,2] Δ=+1   J2=(2,6] Δ=-2   J3=(6,8] Δ=+3   J4=(8,12] Δ=+1
    # (s,t] and (u,v] meet iff s < v and u < t:
    #   I1 meets J1, J2          -> +2 * (+1 - 2)     = -2
    #   I2 meets J2              -> -1 * (-2)         = +2
    #   I3 meets J2, J3, J4      -> +3 * (-2 + 3 + 1) = +6
    hy = A.hayashi_yoshida(a, b, transform="none")
    assert hy.covariance == 6.0
    assert hy.variance_a == 4 + 1 + 9
    assert hy.variance_b == 1 + 4 + 9 + 1
    assert hy.correlation == pytest.approx(6 / np.sqrt(14 * 15), rel=1e-15)
    assert (hy.nobs_a, hy.nobs_b) == (4, 5)


def test_hayashi_yoshida_shift_moves_b_back_by_theta():
    a = (np.array([0, 3, 5, 9]), np.array([100.0, 102.0, 101.0, 104.0]))
    b = (np.array([1, 2, 6, 8, 12]), np.array([50.0, 51.0, 49.0, 52.0, 53.0]))
    # θ = 1: b's times become 0, 1, 5, 7, 11:
    #   J1=(0,1] +1, J2=(1,5] -2, J3=(5,7] +3, J4=(7,11] +1
    #   I1=(0,3] meets J1, J2     -> +2 * (+1 - 2)  = -2
    #   I2=(3,5] meets J2         -> -1 * (-2)      = +2   ((5,7] starts at 5: not < 5)
    #   I3=(5,9] meets J3, J4     -> +3 * (3 + 1)   = +12
    assert A.hayashi_yoshida(a, b, shift=1, transform="none").covariance == 12.0
    contrast = A.hayashi_yoshida_contrast(a, b, [0, 1], transform="none")
    assert contrast["covariance"].tolist() == [6.0, 12.0]


def test_hayashi_yoshida_collapses_ticks_sharing_a_timestamp_to_the_last():
    # a has two ticks at t=3 (102 then 103): the move 100 -> 103 happens on (0, 3]
    a = (np.array([0, 3, 3, 9]), np.array([100.0, 102.0, 103.0, 104.0]))
    b = (np.array([1, 4]), np.array([50.0, 52.0]))
    # I1=(0,3] Δ=+3, I2=(3,9] Δ=+1; J1=(1,4] Δ=+2 meets both -> 3*2 + 1*2 = 8
    hy = A.hayashi_yoshida(a, b, transform="none")
    assert hy.covariance == 8.0
    assert hy.nobs_a == 3


def test_hayashi_yoshida_log_prices_hand_computed():
    a = (np.array([0, 2, 4]), np.array([100.0, 110.0, 99.0]))
    b = (np.array([1, 3]), np.array([200.0, 210.0]))
    # one b-interval (1,3] meets both a-intervals: (ln 1.1 + ln 0.9) * ln 1.05
    expected = (np.log(110 / 100) + np.log(99 / 110)) * np.log(210 / 200)
    assert A.hayashi_yoshida(a, b).covariance == pytest.approx(expected, rel=1e-12)


# -- Hayashi-Yoshida: equal to realised covariance, and to the naive definition ---------------


def test_hayashi_yoshida_equals_realised_covariance_on_common_timestamps():
    rng = np.random.default_rng(7)
    ts = T0 + np.cumsum(rng.integers(1, 500_000, 5_000))
    pa = 60_000 * np.exp(np.cumsum(rng.normal(0, 1e-4, ts.size)))
    pb = 3_000 * np.exp(np.cumsum(rng.normal(0, 2e-4, ts.size)))
    hy = A.hayashi_yoshida((ts, pa), (ts, pb))
    # numpy reference: realised covariance Σ Δlog a · Δlog b on the common times
    ra, rb = np.diff(np.log(pa)), np.diff(np.log(pb))
    assert hy.covariance == pytest.approx(np.sum(ra * rb), rel=1e-10)
    assert hy.variance_a == pytest.approx(np.sum(ra * ra), rel=1e-10)
    assert hy.correlation == pytest.approx(
        np.sum(ra * rb) / np.sqrt(np.sum(ra * ra) * np.sum(rb * rb)), rel=1e-10
    )


def naive_hy(ta, xa, tb, xb, theta=0):
    """O(n·m) Hayashi-Yoshida from the definition: every pair of intervals, last tick per
    timestamp, b's times shifted by -theta. Independent of the library's telescoping sums."""

    def last_per_time(t, x):
        out: dict[int, float] = {}
        for ti, xi in zip(t.tolist(), x.tolist(), strict=True):
            out[ti] = xi
        keys = sorted(out)
        return keys, [out[k] for k in keys]

    ta_, xa_ = last_per_time(ta, xa)
    tb_, xb_ = last_per_time(tb, xb)
    tb_ = [t - theta for t in tb_]
    total = 0.0
    for i in range(1, len(ta_)):
        s, t, da = ta_[i - 1], ta_[i], xa_[i] - xa_[i - 1]
        for j in range(1, len(tb_)):
            u, v = tb_[j - 1], tb_[j]
            if s < v and u < t:
                total += da * (xb_[j] - xb_[j - 1])
    return total


@st.composite
def tick_pairs(draw):
    n = draw(st.integers(2, 40))
    m = draw(st.integers(2, 40))
    ta = draw(st.lists(st.integers(0, 60), min_size=n, max_size=n))  # ties and shared times
    tb = draw(st.lists(st.integers(0, 60), min_size=m, max_size=m))
    xa = draw(st.lists(st.integers(-50, 50), min_size=n, max_size=n))
    xb = draw(st.lists(st.integers(-50, 50), min_size=m, max_size=m))
    theta = draw(st.integers(-70, 70))
    return (np.array(ta), np.array(xa, float), np.array(tb), np.array(xb, float), theta)


@settings(max_examples=300, deadline=None)
@given(tick_pairs())
def test_hayashi_yoshida_equals_the_naive_double_loop(pair):
    ta, xa, tb, xb, theta = pair
    if np.unique(ta).size < 2 or np.unique(tb).size < 2:
        with pytest.raises(ValidationError, match="distinct observation times"):
            A.hayashi_yoshida((ta, xa), (tb, xb), transform="none")
        return
    # integer prices: every partial sum is exact, so the two must agree exactly
    got = A.hayashi_yoshida((ta, xa), (tb, xb), shift=theta, transform="none").covariance
    assert got == naive_hy(np.sort(ta, kind="stable"), xa[np.argsort(ta, kind="stable")],
                           np.sort(tb, kind="stable"), xb[np.argsort(tb, kind="stable")],
                           theta)  # fmt: skip


def test_hayashi_yoshida_accepts_series_and_store_frames_alike():
    rng = np.random.default_rng(3)
    ta = T0 + np.sort(rng.choice(10_000_000, 300, replace=False))
    tb = T0 + np.sort(rng.choice(10_000_000, 200, replace=False))
    pa = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, ta.size)))
    pb = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, tb.size)))
    ref = A.hayashi_yoshida((ta, pa), (tb, pb)).covariance
    sa = pd.Series(pa, index=pd.to_datetime(ta, unit="us", utc=True))
    fb = pd.DataFrame({"ts": tb, "trade_id": np.arange(tb.size), "price": pb, "qty": 1.0})
    assert A.hayashi_yoshida(sa, fb).covariance == ref
    # tuple times given as datetimes are converted to µs, never read as raw nanoseconds
    dt = pd.to_datetime(ta, unit="us", utc=True)
    assert A.hayashi_yoshida((dt, pa), (tb, pb)).covariance == ref
    assert A.hayashi_yoshida((dt.tz_localize(None).to_numpy(), pa), (tb, pb)).covariance == ref
    with pytest.raises(ValidationError, match="whole µs"):
        A.hayashi_yoshida((ta + 0.5, pa), (tb, pb))
    # unsorted input is put in time order first
    perm = rng.permutation(ta.size)
    assert A.hayashi_yoshida((ta[perm], pa[perm]), (tb, pb)).covariance == pytest.approx(ref)
    # mid quotes from bid/ask columns
    quotes = pd.DataFrame({"ts": tb, "bid": pb - 0.01, "ask": pb + 0.01})
    mid = A.hayashi_yoshida((ta, pa), quotes, price="mid").covariance
    assert mid == pytest.approx(A.hayashi_yoshida((ta, pa), (tb, pb)).covariance, rel=1e-6)


def test_hayashi_yoshida_refuses_bad_input_with_the_field_named():
    idx = pd.date_range("2024-01-01", periods=3, freq="1s")  # naive: not UTC
    with pytest.raises(ValidationError, match="tz_localize"):
        A.hayashi_yoshida(pd.Series([1.0, 2.0, 3.0], index=idx), ([0, 1], [1.0, 2.0]))
    with pytest.raises(ValidationError, match="b=1: need >= 2"):
        A.hayashi_yoshida(([0, 1], [1.0, 2.0]), ([5], [1.0]))
    with pytest.raises(ValidationError, match="prices must be > 0"):
        A.hayashi_yoshida(([0, 1], [1.0, -2.0]), ([0, 1], [1.0, 2.0]))
    with pytest.raises(ValidationError, match="transform"):
        A.hayashi_yoshida(([0, 1], [1.0, 2.0]), ([0, 1], [1.0, 2.0]), transform="sqrt")
    with pytest.raises(ValidationError, match="shift"):
        A.hayashi_yoshida(([0, 1], [1.0, 2.0]), ([0, 1], [1.0, 2.0]), shift="soon")


def test_hayashi_yoshida_of_a_constant_series_is_zero_with_nan_correlation():
    hy = A.hayashi_yoshida(([0, 1, 2], [5.0, 5.0, 5.0]), ([0, 2], [1.0, 2.0]))
    assert hy.covariance == 0.0
    assert np.isnan(hy.correlation)


# -- lagged correlation ------------------------------------------------------------------------


def test_lagged_correlation_equals_pandas_corr_on_shifted_series():
    rng = np.random.default_rng(11)
    n = 2_000
    a = rng.standard_normal(n)
    b = 0.6 * np.r_[np.zeros(3), a[:-3]] + 0.8 * rng.standard_normal(n)  # a leads by 3
    a[rng.choice(n, 40, replace=False)] = np.nan
    b[rng.choice(n, 40, replace=False)] = np.nan
    got = A.lagged_correlation(a, b, 8)
    sa, sb = pd.Series(a), pd.Series(b)
    for k in range(-8, 9):
        # pandas reference: corr(a[t], b[t+k]) = sa.corr(sb.shift(-k)), pairwise complete
        assert got[k] == pytest.approx(sa.corr(sb.shift(-k)), rel=1e-12, abs=1e-15), k
    assert got.idxmax() == 3


def test_lagged_correlation_agrees_with_statsmodels_ccf():
    # statsmodels ccf(x, y)[k] = corr(x[t+k], y[t]) with full-sample means and stds and the
    # overlap count as denominator (adjusted=True): equal to per-lag Pearson up to O(k/n).
    rng = np.random.default_rng(5)
    n = 50_000
    a = rng.standard_normal(n)
    b = 0.5 * np.r_[np.zeros(2), a[:-2]] + rng.standard_normal(n)
    got = A.lagged_correlation(a, b, 5)
    fwd = ccf(b, a, adjusted=True, fft=True, nlags=6)  # lag k >= 0: corr(b[t+k], a[t])
    back = ccf(a, b, adjusted=True, fft=True, nlags=6)  # lag -k: corr(a[t+k], b[t])
    for k in range(0, 6):
        assert got[k] == pytest.approx(fwd[k], abs=2e-3)
        assert got[-k] == pytest.approx(back[k], abs=2e-3)


def test_lagged_correlation_is_nan_on_constant_data_and_aligns_series():
    flat = A.lagged_correlation(np.ones(10), np.arange(10.0), 2)
    assert flat.isna().all()
    idx = pd.date_range("2024", periods=6, freq="1s", tz="UTC")
    a = pd.Series([1.0, -1.0, 2.0, -2.0, 1.0, 0.5], index=idx)
    b = pd.Series([9.0, 1.0, -1.0, 2.0, -2.0, 1.0, 0.5], index=idx.insert(0, idx[0] - idx.freq))
    out = A.lagged_correlation(a, b, [0])  # inner join on time: b's extra first row drops
    assert out[0] == pytest.approx(a.corr(b.reindex(idx)))
    with pytest.raises(ValidationError, match="length differs"):
        A.lagged_correlation(np.ones(3), np.ones(4))


# -- a simulated pair with a known lead -----------------------------------------------------


def simulated_pair(seed, *, seconds=1800.0, rate_a=5.0, rate_b=3.0, lead=0.3):
    """Venue B's efficient log price is venue A's delayed by ``lead`` seconds; each venue
    observes it at its own Poisson times with iid noise. Brownian motion simulated exactly at
    the union of the needed times."""
    rng = np.random.default_rng(seed)
    ta = np.sort(rng.uniform(0, seconds, rng.poisson(rate_a * seconds)))
    tb = np.sort(rng.uniform(0, seconds, rng.poisson(rate_b * seconds)))
    need = np.concatenate([ta, tb - lead])  # B at t sees X(t - lead)
    order = np.argsort(need)
    dt = np.diff(need[order], prepend=need[order][0])
    x = np.empty(need.size)
    x[order] = np.cumsum(1e-4 * np.sqrt(dt) * rng.standard_normal(need.size))
    pa = 60_000 * np.exp(x[: ta.size] + 2e-5 * rng.standard_normal(ta.size))
    pb = 60_000 * np.exp(x[ta.size :] + 2e-5 * rng.standard_normal(tb.size))
    return (T0 + (ta * 1e6).astype(np.int64), pa), (T0 + (tb * 1e6).astype(np.int64), pb)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_both_estimators_recover_a_300ms_lead(seed):
    a, b = simulated_pair(seed)
    # HRY contrast on a 10 ms grid: with 5 and 3 ticks/s the contrast's peak is flat over a
    # fraction of the mean tick spacing; 30 seeds (10..39) all fell within ±40 ms.
    hy = A.lead_lag(a, b, max_lag="1s", step="10ms", names=("binance", "kraken"))
    assert abs(hy.lag_us - 300_000) <= 60_000, hy.text
    assert hy.leader == "binance"
    assert hy.lead_lag_ratio > 2
    assert hy.covariance is not None and hy.covariance.index.equals(hy.correlation.index)
    # lagged correlation of 100 ms returns: the peak within one grid step of 300 ms
    xc = A.lead_lag(a, b, method="correlation", max_lag="1s", step="100ms",
                    names=("binance", "kraken"))  # fmt: skip
    assert abs(xc.lag_us - 300_000) <= 100_000, xc.text
    assert xc.leader == "binance" and xc.covariance is None
    # swapped inputs: the lag changes sign and the leader is still binance
    back = A.lead_lag(b, a, max_lag="1s", step="10ms", names=("kraken", "binance"))
    assert back.lag_us == -hy.lag_us and back.leader == "binance"
    assert "binance leads kraken by" in back.text


def test_lead_lag_contrast_equals_hayashi_yoshida_at_each_shift():
    a, b = simulated_pair(4, seconds=120.0)
    ll = A.lead_lag(a, b, max_lag="200ms", step="50ms")
    for lag, corr in ll.correlation.items():
        assert corr == pytest.approx(A.hayashi_yoshida(a, b, shift=int(lag)).correlation)
    assert ll.correlation.index.tolist() == [-200_000, -150_000, -100_000, -50_000, 0, 50_000,
                                             100_000, 150_000, 200_000]  # fmt: skip


def test_lead_lag_correlation_method_matches_pandas_on_the_sampled_grid():
    a, b = simulated_pair(5, seconds=300.0)
    ll = A.lead_lag(a, b, method="correlation", max_lag="500ms", step="100ms")
    # reference: pandas previous-tick sampling (merge_asof backward) on the common span
    sa = pd.Series(a[1], index=pd.to_datetime(a[0], unit="us", utc=True))
    sb = pd.Series(b[1], index=pd.to_datetime(b[0], unit="us", utc=True))
    lo = max(sa.index[0], sb.index[0]).ceil("100ms")
    hi = min(sa.index[-1], sb.index[-1]).floor("100ms")
    grid = pd.DataFrame({"time": pd.date_range(lo, hi, freq="100ms")})
    pa = pd.merge_asof(grid, sa.rename("p").reset_index().rename(columns={"index": "time"}),
                       on="time")["p"]  # fmt: skip
    pb = pd.merge_asof(grid, sb.rename("p").reset_index().rename(columns={"index": "time"}),
                       on="time")["p"]  # fmt: skip
    ra, rb = np.log(pa).diff(), np.log(pb).diff()
    for k in range(-5, 6):
        assert ll.correlation[k * 100_000] == pytest.approx(ra.corr(rb.shift(-k)), rel=1e-9)
    assert ll.nobs == (grid.shape[0] - 1,) * 2


def test_lead_lag_without_any_lead_reports_neither():
    rng = np.random.default_rng(9)
    t = T0 + np.arange(0, 60_000_000, 100_000)
    p = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, t.size)))
    ll = A.lead_lag((t, p), (t, p), max_lag="300ms", step="100ms", names=("x", "y"))
    assert ll.lag_us == 0 and ll.leader is None and ll.peak == pytest.approx(1.0)
    assert ll.text.startswith("neither leads")
    assert ll.lag == pd.Timedelta(0)


def test_lead_lag_refuses_bad_options():
    a = ([0, 1, 2], [1.0, 2.0, 3.0])
    with pytest.raises(ValidationError, match="method"):
        A.lead_lag(a, a, method="granger")
    with pytest.raises(ValidationError, match="step"):
        A.lead_lag(a, a, step="-10ms")
    with pytest.raises(ValidationError, match="grid points"):
        A.lead_lag(a, a, method="correlation", step="1s")
