"""Lead-lag between two venues (or two assets): lagged correlation on a grid, Hayashi-Yoshida.

Sign convention, everywhere: a **positive lag means the first series (``a``) leads** ``b``.

* :func:`lagged_correlation` — Pearson correlation of ``a[t]`` with ``b[t + k]`` for each lag
  ``k`` (in steps) on an aligned regular grid: ``pd.Series(a).corr(pd.Series(b).shift(-k))``.
* :func:`hayashi_yoshida` — the Hayashi-Yoshida (2005) covariance of two asynchronously
  observed price series, with no sampling grid::

      HY = sum_i sum_j  Δa(I_i) Δb(J_j) 1{I_i ∩ J_j ≠ ∅}

  where ``I_i = (t_{i-1}, t_i]`` are the intervals between consecutive observation times of
  ``a`` (``J_j`` for ``b``) and ``Δa(I_i) = x(t_i) - x(t_{i-1})`` with ``x = log(price)``.
  The b-intervals that meet ``I_i`` are consecutive, so their increments telescope to one
  difference of ``b``'s path: computed with two binary searches per interval, O((n + m) log m),
  never O(n·m). The correlation divides by ``sqrt(sum Δa² · sum Δb²)`` (each series' realised
  variance on its own ticks).
* :func:`lead_lag` — the lag that maximises |correlation| over a grid of lags, by either
  estimator. For Hayashi-Yoshida this is the contrast of Hoffmann, Rosenbaum & Yoshida (2013):
  ``b``'s timestamps are shifted by ``-θ`` (``J_j - θ``) and ``θ̂ = argmax_θ |HY(θ)|``. It also
  reports the lead-lag ratio of Huth & Abergel (2014), ``LLR = Σ_{θ>0} ρ(θ)² / Σ_{θ<0} ρ(θ)²``
  (> 1: ``a`` leads).

Observations sharing a timestamp are collapsed to the last of them (a zero-length interval
meets nothing, so keeping them would drop their price change). NaN/inf prices are skipped.

References
----------
Hayashi, T. & Yoshida, N. (2005). On covariance estimation of non-synchronously observed
diffusion processes. Bernoulli 11(2), 359-379.
Hoffmann, M., Rosenbaum, M. & Yoshida, N. (2013). Estimation of the lead-lag parameter from
non-synchronous data. Bernoulli 19(2), 426-461.
Huth, N. & Abergel, F. (2014). High frequency lead/lag relationships: empirical facts.
Journal of Empirical Finance 26, 41-58.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lq.errors import ValidationError

from ._common import as_array, check_choice, check_int, check_positive_prices
from ._ticks import Ticks, as_venue_ticks
from ._typing import Float64Array, LeadLagMethod, PriceSource, PriceTransform

__all__ = [
    "HayashiYoshida",
    "LeadLag",
    "hayashi_yoshida",
    "hayashi_yoshida_contrast",
    "lagged_correlation",
    "lead_lag",
]


def duration_us(value: Any, field: str) -> int:
    """A signed duration in µs: int µs, a Timedelta, or a string such as ``"300ms"``/``"-1s"``."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    td = value
    if isinstance(value, str):
        try:
            td = pd.Timedelta(value)
        except ValueError:
            td = None
    if isinstance(td, pd.Timedelta) and td is not pd.NaT:
        return int(td // pd.Timedelta(microseconds=1))
    raise ValidationError(
        field, value, "expected a duration: '300ms', '-2s', int µs or a Timedelta"
    )


# -- lagged correlation on a grid ---------------------------------------------------------------


def _lags(lags: int | Iterable[int], field: str = "lags") -> np.ndarray:
    if isinstance(lags, int | np.integer):
        k = check_int(lags, field, minimum=0)
        return np.arange(-k, k + 1, dtype=np.int64)
    out = np.asarray(lags if isinstance(lags, np.ndarray) else list(lags), dtype=np.int64)
    if out.ndim != 1 or out.size == 0:
        raise ValidationError(field, lags, "expected an int K (lags -K..K) or a list of ints")
    return out.astype(np.int64)


def _dot(x: Float64Array, y: Float64Array) -> float:
    """Σ x·y by numpy's pairwise summation (no BLAS call: BLAS threads stall on a loaded
    machine, and pairwise sums carry less rounding than a running sum)."""
    return float(np.multiply(x, y).sum())


def _pearson(x: Float64Array, y: Float64Array) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.all():
        x, y = x[ok], y[ok]
    if x.size < 2:
        return float("nan")
    xc = x - x.mean()
    yc = y - y.mean()
    sxx = _dot(xc, xc)
    syy = _dot(yc, yc)
    if sxx == 0.0 or syy == 0.0:
        return float("nan")
    return _dot(xc, yc) / float(np.sqrt(sxx * syy))


def _lagged(x: Float64Array, y: Float64Array, lags: np.ndarray) -> Float64Array:
    n = x.size
    out = np.full(lags.size, np.nan)
    for i, k in enumerate(lags.tolist()):
        if abs(k) >= n:
            continue
        if k >= 0:
            out[i] = _pearson(x[: n - k], y[k:])
        else:
            out[i] = _pearson(x[-k:], y[: n + k])
    return out


def lagged_correlation(a: Any, b: Any, lags: int | Iterable[int] = 10) -> pd.Series:
    """Correlation of ``a[t]`` with ``b[t + k]`` for each lag ``k`` (in grid steps).

    Parameters
    ----------
    a, b : Series or array
        Returns on the same regular grid (equal length; two Series are aligned on their index,
        inner join). NaN rows are skipped pairwise, per lag.
    lags : int or list of int
        ``K`` for the lags ``-K..K``, or the lags themselves.

    Returns
    -------
    Series
        Pearson correlation per lag (index ``lag``, in steps); NaN where fewer than 2 valid
        pairs or a side is constant. A peak at ``k > 0`` means ``a`` leads ``b`` by ``k``
        steps. Equal to ``pd.Series(a).corr(pd.Series(b).shift(-k))`` for every ``k``.

    Examples
    --------
    >>> a = np.array([0.0, 1.0, 0.0, -1.0, 0.0, 2.0, 0.0, -2.0])
    >>> b = np.r_[0.0, a[:-1]]  # b repeats a one step later: a leads by 1
    >>> lagged_correlation(a, b, 1).round(3).to_dict()
    {-1: -0.95, 0: 0.0, 1: 1.0}
    """
    if isinstance(a, pd.Series) and isinstance(b, pd.Series) and not a.index.equals(b.index):
        both = pd.concat([a, b], axis=1, join="inner")
        a, b = both.iloc[:, 0], both.iloc[:, 1]
    x, _, _ = as_array(a, "a")
    y, _, _ = as_array(b, "b")
    if x.size != y.size:
        raise ValidationError("b", y.size, f"length differs from a ({x.size}): align them first")
    k = _lags(lags)
    return pd.Series(_lagged(x, y, k), index=pd.Index(k, name="lag"), name="correlation")


# -- Hayashi-Yoshida ----------------------------------------------------------------------------


def _path(t: Ticks, field: str, transform: PriceTransform) -> tuple[np.ndarray, Float64Array]:
    """Distinct observation times and the path (log price relative to the first, or price)."""
    ts, v = t.ts, t.values
    if ts.size:
        keep = np.empty(ts.size, dtype=bool)
        keep[:-1] = ts[1:] != ts[:-1]  # the last observation of each timestamp
        keep[-1] = True
        ts, v = ts[keep], v[keep]
    if ts.size < 2:
        raise ValidationError(field, int(ts.size), "need >= 2 distinct observation times")
    if transform == "log":
        check_positive_prices(v, field)
        return ts, np.log(v / v[0])
    return ts, v - v[0]


def _overlap_sums(ta: np.ndarray, tb: np.ndarray, yb: Float64Array, theta: int) -> Float64Array:
    """For each a-interval (ta[i-1], ta[i]], the sum of b's increments over the b-intervals
    (tb[j-1] - θ, tb[j] - θ] that meet it (telescoped: yb[hi] - yb[lo - 1])."""
    m = tb.size
    s = ta + theta if theta else ta
    # J_j meets I_i  <=>  tb[j] - θ > ta[i-1]  and  tb[j-1] - θ < ta[i]
    lo = np.searchsorted(tb, s[:-1], side="right")  # first j with tb[j] > ta[i-1] + θ
    hi = np.searchsorted(tb, s[1:], side="left")  # j - 1 < #{tb < ta[i] + θ}
    np.maximum(lo, 1, out=lo)
    np.minimum(hi, m - 1, out=hi)
    out = yb[hi] - yb[lo - 1]
    out[lo > hi] = 0.0
    return out


@dataclass(frozen=True, slots=True)
class HayashiYoshida:
    """Hayashi-Yoshida covariance and correlation of two asynchronous series.

    ``variance_a``/``variance_b`` are the realised variances ``Σ Δ²`` on each series' own
    observation times; ``nobs_a``/``nobs_b`` count distinct observation times; ``shift_us``
    is the shift θ applied to ``b``'s times (``J - θ``); ``transform`` is ``"log"`` (log
    prices) or ``"none"`` (prices).
    """

    covariance: float
    correlation: float
    variance_a: float
    variance_b: float
    nobs_a: int
    nobs_b: int
    shift_us: int
    transform: str


def _prepare(
    a: Any, b: Any, price: PriceSource, transform: PriceTransform
) -> tuple[np.ndarray, Float64Array, Float64Array, np.ndarray, Float64Array, Float64Array]:
    check_choice(transform, "transform", ("log", "none"))
    ta, xa = _path(as_venue_ticks(a, "a", price), "a", transform)
    tb, yb = _path(as_venue_ticks(b, "b", price), "b", transform)
    return ta, xa, np.diff(xa), tb, yb, np.diff(yb)


def hayashi_yoshida(
    a: Any,
    b: Any,
    *,
    shift: int | str | pd.Timedelta = 0,
    transform: PriceTransform = "log",
    price: PriceSource = "last",
) -> HayashiYoshida:
    """Hayashi-Yoshida covariance/correlation of two asynchronously observed price series.

    Parameters
    ----------
    a, b : Series, DataFrame or (ts, price) tuple
        Each venue's observations: a Series indexed by UTC time (or int µs), a frame with
        ``ts`` and ``price`` columns (``Store.ticks``), or ``(ts µs, price)`` arrays.
    shift : duration
        θ: ``b``'s observation times are moved by ``-θ`` (``"300ms"``, ``"-1s"``, µs).
        With ``a`` leading ``b`` by θ, ``HY(θ)`` is where the covariance concentrates.
    transform : {"log", "none"}
        Increments of log prices (default) or of prices.
    price : {"last", "mid"}
        Read ``price`` (trades), or ``(bid + ask) / 2`` from ``bid``/``ask`` columns.

    Returns
    -------
    HayashiYoshida

    Examples
    --------
    Prices (not logs); a is seen at times 0, 2, 4 and b at 1, 3. The one b-interval (1, 3]
    meets both a-intervals (0, 2] and (2, 4]:

    >>> a = (np.array([0, 2, 4]), np.array([10.0, 11.0, 13.0]))   # Δa = 1, 2
    >>> b = (np.array([1, 3]), np.array([20.0, 23.0]))            # Δb = 3 on (1, 3]
    >>> hayashi_yoshida(a, b, transform="none").covariance        # 1*3 + 2*3
    9.0
    """
    th = duration_us(shift, "shift")
    ta, _, dx, tb, yb, dy = _prepare(a, b, price, transform)
    cov = _dot(dx, _overlap_sums(ta, tb, yb, th))
    va, vb = _dot(dx, dx), _dot(dy, dy)
    corr = cov / np.sqrt(va * vb) if va > 0.0 and vb > 0.0 else float("nan")
    return HayashiYoshida(
        covariance=cov,
        correlation=float(corr),
        variance_a=va,
        variance_b=vb,
        nobs_a=int(ta.size),
        nobs_b=int(tb.size),
        shift_us=th,
        transform=transform,
    )


def hayashi_yoshida_contrast(
    a: Any,
    b: Any,
    shifts: Iterable[int | str | pd.Timedelta],
    *,
    transform: PriceTransform = "log",
    price: PriceSource = "last",
) -> pd.DataFrame:
    """``HY(θ)`` for each shift θ (the Hoffmann-Rosenbaum-Yoshida contrast), one pass of input
    preparation for all shifts.

    Returns
    -------
    DataFrame
        Index ``lag_us`` (θ in µs); columns ``covariance`` and ``correlation``.

    Examples
    --------
    >>> t = np.arange(0, 10_000_000, 100_000)                       # every 100 ms
    >>> x = 100 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 1e-3, t.size)))
    >>> a, b = (t, x), (t[:-3] + 300_000, x[:-3])    # b = a 300 ms later (3 ticks fewer)
    >>> c = hayashi_yoshida_contrast(a, b, [0, 200_000, 300_000, 400_000])
    >>> c["correlation"].round(3).tolist()
    [0.082, -0.016, 0.985, -0.016]
    """
    ta, _, dx, tb, yb, dy = _prepare(a, b, price, transform)
    th = np.asarray([duration_us(s, "shifts") for s in shifts], dtype=np.int64)
    cov, corr = _contrast(ta, dx, tb, yb, dy, th)
    return pd.DataFrame({"covariance": cov, "correlation": corr}, index=pd.Index(th, name="lag_us"))


def _contrast(
    ta: np.ndarray, dx: Float64Array, tb: np.ndarray, yb: Float64Array, dy: Float64Array,
    shifts: np.ndarray,
) -> tuple[Float64Array, Float64Array]:  # fmt: skip
    va, vb = _dot(dx, dx), _dot(dy, dy)
    norm = np.sqrt(va * vb) if va > 0.0 and vb > 0.0 else np.nan
    cov = np.array([_dot(dx, _overlap_sums(ta, tb, yb, int(t))) for t in shifts.tolist()])
    return cov, cov / norm


# -- lead-lag -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeadLag:
    """Which of two series leads, and by how much.

    ``correlation`` is the estimator's correlation per lag (index ``lag_us``); ``lag_us`` the
    lag of the largest |correlation| (ties: the smallest |lag|); ``leader`` the leading
    series' name (``None`` when the best lag is 0 or no lag has a correlation);
    ``lead_lag_ratio`` = Σ_{lag>0} ρ² / Σ_{lag<0} ρ² (> 1: the first series leads).
    ``covariance`` per lag for Hayashi-Yoshida (``None`` for ``"correlation"``). ``nobs``:
    distinct observation times per series (Hayashi-Yoshida) or grid returns
    (``"correlation"``, both entries the same).
    """

    method: str
    names: tuple[str, str]
    correlation: pd.Series
    covariance: pd.Series | None
    lag_us: int
    peak: float
    leader: str | None
    lead_lag_ratio: float
    step_us: int
    nobs: tuple[int, int]

    @property
    def lag(self) -> pd.Timedelta:
        """The best lag as a Timedelta (positive: ``names[0]`` leads)."""
        return pd.Timedelta(self.lag_us, unit="us")

    @property
    def text(self) -> str:
        """One line for a panel, e.g. ``"okx leads coinbase by 300 ms (corr 0.62)"``."""
        if self.leader is None:
            if self.peak != self.peak:
                return f"{self.names[0]} / {self.names[1]}: no correlation at any lag"
            return (
                f"neither leads: {self.names[0]} / {self.names[1]} move together at lag 0 "
                f"(corr {self.peak:.2f}, resolution {self.step_us / 1000:g} ms)"
            )
        other = self.names[1] if self.leader == self.names[0] else self.names[0]
        return (
            f"{self.leader} leads {other} by {abs(self.lag_us) / 1000:g} ms "
            f"(corr {self.peak:.2f}, resolution {self.step_us / 1000:g} ms)"
        )


def _best(lags: np.ndarray, corr: Float64Array) -> tuple[int, float]:
    ok = np.isfinite(corr)
    if not ok.any():
        return 0, float("nan")
    mag = np.where(ok, np.abs(corr), -1.0)
    top = np.flatnonzero(mag == mag.max())
    i = int(top[np.argmin(np.abs(lags[top]))])
    return int(lags[i]), float(corr[i])


def _ratio(lags: np.ndarray, corr: Float64Array) -> float:
    c2 = np.where(np.isfinite(corr), corr * corr, 0.0)
    pos, neg = float(c2[lags > 0].sum()), float(c2[lags < 0].sum())
    if neg == 0.0:
        return float("inf") if pos > 0.0 else float("nan")
    return pos / neg


def _grid_prices(t: Ticks, grid: np.ndarray) -> Float64Array:
    """Previous-tick price at each grid time (last observation with ts <= g)."""
    pos = np.searchsorted(t.ts, grid, side="right") - 1
    return t.values[pos]  # callers start the grid at/after the first observation


def lead_lag(
    a: Any,
    b: Any,
    *,
    method: LeadLagMethod = "hayashi_yoshida",
    max_lag: int | str | pd.Timedelta = "2s",
    step: int | str | pd.Timedelta = "10ms",
    names: tuple[str, str] = ("a", "b"),
    price: PriceSource = "last",
    transform: PriceTransform = "log",
) -> LeadLag:
    """Estimate which series leads and by how much (positive lag: ``a`` leads).

    Parameters
    ----------
    a, b : Series, DataFrame or (ts, price) tuple
        The two venues' prices (see :func:`hayashi_yoshida` for the accepted shapes).
    method : {"hayashi_yoshida", "correlation"}
        ``hayashi_yoshida``: the Hoffmann-Rosenbaum-Yoshida contrast on the raw ticks, lags
        ``-max_lag..max_lag`` in steps of ``step``. ``correlation``: both series sampled at
        ``step`` (previous tick: the last price at or before each grid time, over the span
        where both have traded), log returns, and :func:`lagged_correlation` over the same lags.
    max_lag, step : duration
        The lag grid; ``max_lag`` is rounded down to a multiple of ``step``.
    names : (str, str)
        Labels of ``a`` and ``b`` (venue names) used in ``leader`` and ``text``.

    Returns
    -------
    LeadLag

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> t = np.sort(rng.choice(60_000_000, 3_000, replace=False))   # 1 min of ticks, µs
    >>> x = 100 * np.exp(np.cumsum(rng.normal(0, 1e-4, t.size)))
    >>> late = (t + 250_000, x)                                       # b: the same, 250 ms later
    >>> ll = lead_lag((t, x), late, max_lag="1s", step="50ms", names=("okx", "kraken"))
    >>> ll.leader, ll.lag_us
    ('okx', 250000)
    >>> ll.text
    'okx leads kraken by 250 ms (corr 1.00, resolution 50 ms)'
    """
    check_choice(method, "method", ("hayashi_yoshida", "correlation"))
    st = duration_us(step, "step")
    if st <= 0:
        raise ValidationError("step", step, "must be a positive duration")
    ml = duration_us(max_lag, "max_lag")
    if ml < 0:
        raise ValidationError("max_lag", max_lag, "must be >= 0")
    k = ml // st
    lags = np.arange(-k, k + 1, dtype=np.int64)
    if len(names) != 2:
        raise ValidationError("names", names, "expected two names")
    nm = (str(names[0]), str(names[1]))
    if method == "hayashi_yoshida":
        ta_, _, dx, tb_, yb, dy = _prepare(a, b, price, transform)
        cov_, corr = _contrast(ta_, dx, tb_, yb, dy, lags * st)
        cov: Float64Array | None = cov_
        nobs = (int(ta_.size), int(tb_.size))
    else:
        check_choice(transform, "transform", ("log", "none"))
        ta = as_venue_ticks(a, "a", price)
        tb = as_venue_ticks(b, "b", price)
        if len(ta) < 2 or len(tb) < 2:
            raise ValidationError(
                "a" if len(ta) < 2 else "b", min(len(ta), len(tb)), "need >= 2 prices"
            )
        lo = -(-max(int(ta.ts[0]), int(tb.ts[0])) // st) * st
        hi = min(int(ta.ts[-1]), int(tb.ts[-1])) // st * st
        grid = np.arange(lo, hi + 1, st, dtype=np.int64)
        if grid.size < 3:
            raise ValidationError(
                "step", step, f"only {grid.size} grid points where both series have prices"
            )
        pa, pb = _grid_prices(ta, grid), _grid_prices(tb, grid)
        if transform == "log":
            check_positive_prices(pa, "a")
            check_positive_prices(pb, "b")
            ra, rb = np.diff(np.log(pa)), np.diff(np.log(pb))
        else:
            ra, rb = np.diff(pa), np.diff(pb)
        corr = _lagged(ra, rb, lags)
        cov = None
        nobs = (int(ra.size), int(rb.size))
    lag_steps, peak = _best(lags, corr)
    lag_us = lag_steps * st
    leader = None if lag_us == 0 or peak != peak else (nm[0] if lag_us > 0 else nm[1])
    index = pd.Index(lags * st, name="lag_us")
    return LeadLag(
        method=method,
        names=nm,
        correlation=pd.Series(corr, index=index, name="correlation"),
        covariance=None if cov is None else pd.Series(cov, index=index, name="covariance"),
        lag_us=int(lag_us),
        peak=peak,
        leader=leader,
        lead_lag_ratio=_ratio(lags, corr),
        step_us=st,
        nobs=nobs,
    )
