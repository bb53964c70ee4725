"""Pairs statistics: hedge ratios, spread, unit-root and cointegration tests, half-life, Hurst.

Wraps statsmodels (OLS, RLM, adfuller, coint, coint_johansen). Pair inputs are aligned
first (see :func:`lq.analytics.align_prices`); rows where either side is missing are
dropped. Functions that return a single result raise :class:`~lq.errors.ValidationError`
when the input is too short; windowed functions return NaN during warm-up instead.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from statsmodels.regression.linear_model import OLS
from statsmodels.robust.norms import HuberT
from statsmodels.robust.robust_linear_model import RLM
from statsmodels.tsa.stattools import adfuller, coint
from statsmodels.tsa.vector_ar.vecm import coint_johansen

from lq.errors import ValidationError

from ._common import (
    as_array,
    check_choice,
    check_int,
    check_positive_prices,
    on_valid_pair,
    scatter,
    wrap,
)
from ._typing import ArrayLike1D, Float64Array, HedgeMethod
from .rolling import rolling_comoments

__all__ = [
    "ADFResult",
    "CointegrationResult",
    "HedgeRatio",
    "JohansenResult",
    "adf",
    "cointegration",
    "half_life",
    "hedge_ratio",
    "hurst",
    "johansen",
    "kalman_hedge_ratio",
    "rolling_hedge_ratio",
    "scan_pairs",
    "spread",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HedgeRatio:
    """``y ≈ alpha + beta * x`` as estimated by ``method`` on ``nobs`` rows."""

    beta: float
    alpha: float
    method: str
    nobs: int


@dataclass(frozen=True, slots=True)
class ADFResult:
    """Augmented Dickey-Fuller test (statsmodels ``adfuller``). H0: a unit root."""

    statistic: float
    pvalue: float
    critical_values: dict[str, float]
    lags: int
    nobs: int


@dataclass(frozen=True, slots=True)
class CointegrationResult:
    """Engle-Granger two-step test (statsmodels ``coint``). H0: no cointegration.

    ``hedge_ratio``/``alpha`` are the first-step OLS of y on x with a constant.
    """

    statistic: float
    pvalue: float
    critical_values: dict[str, float]
    hedge_ratio: float
    alpha: float
    nobs: int


@dataclass(frozen=True, slots=True)
class JohansenResult:
    """Johansen test (statsmodels ``coint_johansen``) for several series.

    ``trace_crit``/``max_eig_crit`` have one row per null rank r = 0..k-1 and columns for
    90/95/99 %. ``rank`` is the number of cointegrating relations the trace test accepts at
    95 %. ``eigenvectors`` columns are the cointegrating vectors, strongest first.
    """

    trace_stat: Float64Array
    trace_crit: Float64Array
    max_eig_stat: Float64Array
    max_eig_crit: Float64Array
    eigenvalues: Float64Array
    eigenvectors: Float64Array
    rank: int
    columns: tuple[str, ...] = field(default=())


def _pair(y: ArrayLike1D, x: ArrayLike1D, *, min_obs: int) -> tuple[Float64Array, Float64Array]:
    vy, _, _ = as_array(y, "y")
    vx, _, _ = as_array(x, "x")
    if vx.size != vy.size:
        raise ValidationError("x", vx.size, f"length differs from y ({vy.size}); align first")
    ok = np.isfinite(vy) & np.isfinite(vx)
    vy, vx = vy[ok], vx[ok]
    if vy.size < min_obs:
        raise ValidationError("y", vy.size, f"need at least {min_obs} valid rows")
    return vy, vx


def _const(x: Float64Array) -> Float64Array:
    return np.column_stack((np.ones_like(x), x))


def hedge_ratio(
    y: ArrayLike1D,
    x: ArrayLike1D,
    *,
    method: HedgeMethod = "ols",
    delta: float = 1e-4,
    obs_var: float = 1e-3,
) -> HedgeRatio:
    """Hedge ratio ``beta`` (and intercept ``alpha``) of ``y`` on ``x``.

    Parameters
    ----------
    y, x : Series or ndarray
        Aligned series (usually log prices). Rows with a missing value are dropped.
    method : {"ols", "huber", "kalman"}
        ``ols``: statsmodels OLS with a constant. ``huber``: statsmodels RLM with Huber's T
        norm (robust to outliers). ``kalman``: the last filtered state of
        :func:`kalman_hedge_ratio`.
    delta, obs_var : float
        Kalman only: state noise ``delta / (1 - delta)`` per step and observation variance.

    Examples
    --------
    >>> x = np.arange(10.0)
    >>> round(hedge_ratio(2.0 + 0.5 * x, x).beta, 12)
    0.5
    """
    check_choice(method, "method", ("ols", "huber", "kalman"))
    vy, vx = _pair(y, x, min_obs=3)
    if np.ptp(vx) == 0.0:
        raise ValidationError("x", float(vx[0]), "is constant; the hedge ratio is undefined")
    if method == "kalman":
        k = kalman_hedge_ratio(vy, vx, delta=delta, obs_var=obs_var)
        return HedgeRatio(float(k["beta"].iloc[-1]), float(k["alpha"].iloc[-1]), method, vy.size)
    model = OLS(vy, _const(vx)) if method == "ols" else RLM(vy, _const(vx), M=HuberT())
    params = model.fit().params
    return HedgeRatio(float(params[1]), float(params[0]), method, vy.size)


def _rolling_beta(y: Float64Array, x: Float64Array, window: int) -> Float64Array:
    _, var_x, cov = rolling_comoments(y, x, window, need_var_y=False)
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = cov / var_x
    beta[~(var_x > 0.0)] = np.nan
    return beta


def rolling_hedge_ratio(y: ArrayLike1D, x: ArrayLike1D, window: int) -> Any:
    """OLS slope of ``y`` on ``x`` (with a constant) over the last ``window`` valid rows.

    Equals statsmodels ``RollingOLS(y, add_constant(x), window).fit().params`` slope. Runs in
    O(n) with numerically stable rolling moments; NaN during warm-up and when ``x`` is
    constant over the window.

    Examples
    --------
    >>> x = np.array([1.0, 2.0, 3.0, 4.0, 6.0])
    >>> rolling_hedge_ratio(3.0 * x + 1.0, x, 3)
    array([nan, nan,  3.,  3.,  3.])
    """
    window = check_int(window, "window", minimum=2)
    vy, index, name = as_array(y, "y")
    vx, _, _ = as_array(x, "x")
    if vx.size != vy.size:
        raise ValidationError("x", vx.size, f"length differs from y ({vy.size}); align first")
    return wrap(on_valid_pair(vy, vx, lambda a, b: _rolling_beta(a, b, window)), index, name)


def _kalman(
    y: Float64Array, x: Float64Array, delta: float, obs_var: float, initial_var: float
) -> tuple[Float64Array, Float64Array]:
    """The filter recursion over gap-free arrays, in the scalar form (2x2 algebra unrolled).

    Written out the same way as :class:`lq.analytics.streaming.KalmanHedgeRatio` so the two
    agree to the last bit; the independent checks are against statsmodels ``RecursiveLS``
    and expanding least squares (``delta = 0``).
    """
    n = y.size
    q = delta / (1.0 - delta)
    b = a = 0.0
    p11 = p22 = float(initial_var)
    p12 = 0.0
    betas, alphas = np.empty(n), np.empty(n)
    for t, (yt, xt) in enumerate(zip(y.tolist(), x.tolist(), strict=True)):
        p11 += q
        p22 += q
        f0 = p11 * xt + p12
        f1 = p12 * xt + p22
        s = xt * f0 + f1 + obs_var
        k0, k1 = f0 / s, f1 / s
        e = yt - (b * xt + a)
        b += k0 * e
        a += k1 * e
        p11, p12, p22 = p11 - k0 * f0, p12 - k0 * f1, p22 - k1 * f1
        betas[t], alphas[t] = b, a
    return betas, alphas


def kalman_hedge_ratio(
    y: ArrayLike1D,
    x: ArrayLike1D,
    *,
    delta: float = 1e-4,
    obs_var: float = 1e-3,
    initial_var: float = 1e4,
) -> pd.DataFrame:
    """Time-varying hedge ratio from a Kalman filter (random-walk ``beta`` and ``alpha``).

    Model: ``y[t] = beta[t] * x[t] + alpha[t] + e[t]``, ``e ~ N(0, obs_var)``;
    ``(beta, alpha)[t] = (beta, alpha)[t-1] + w[t]``, ``w ~ N(0, delta / (1 - delta) * I)``;
    prior ``(0, 0)`` with covariance ``initial_var * I``. ``delta = 0`` gives recursive
    least squares. The row at ``t`` is the filtered state after seeing ``y[t]`` (use
    ``.shift(1)`` for a look-ahead-free trading signal). Missing rows are skipped.

    Returns
    -------
    pandas.DataFrame
        Columns ``beta``, ``alpha`` on y's index (RangeIndex for arrays).

    Examples
    --------
    >>> x = np.linspace(1.0, 2.0, 200)
    >>> kalman_hedge_ratio(0.5 + 2.0 * x, x, delta=0.0, obs_var=1e-6)["beta"].iloc[-1].round(4)
    np.float64(2.0)
    """
    if not (0.0 <= delta < 1.0):
        raise ValidationError("delta", delta, "must be in [0, 1)")
    if not obs_var > 0.0:
        raise ValidationError("obs_var", obs_var, "must be > 0")
    vy, index, _ = as_array(y, "y")
    vx, _, _ = as_array(x, "x")
    if vx.size != vy.size:
        raise ValidationError("x", vx.size, f"length differs from y ({vy.size}); align first")
    ok = np.isfinite(vy) & np.isfinite(vx)
    betas, alphas = _kalman(vy[ok], vx[ok], delta, obs_var, initial_var)
    out = {"beta": scatter(betas, ok), "alpha": scatter(alphas, ok)}
    return pd.DataFrame(out, index=index if index is not None else pd.RangeIndex(vy.size))


def spread(y: ArrayLike1D, x: ArrayLike1D, beta: Any, *, alpha: Any = 0.0) -> Any:
    """The spread ``y - alpha - beta * x``; ``beta``/``alpha`` may be scalars or series.

    Examples
    --------
    >>> spread(np.array([3.0, 5.0]), np.array([1.0, 2.0]), 2.0, alpha=1.0)
    array([0., 0.])
    """
    vy, index, name = as_array(y, "y")
    vx, _, _ = as_array(x, "x")
    if vx.size != vy.size:
        raise ValidationError("x", vx.size, f"length differs from y ({vy.size}); align first")
    b = beta.to_numpy(dtype=np.float64) if isinstance(beta, pd.Series) else np.asarray(beta)
    a = alpha.to_numpy(dtype=np.float64) if isinstance(alpha, pd.Series) else np.asarray(alpha)
    return wrap(vy - a - b * vx, index, name)


def _finite(x: ArrayLike1D, field_name: str, min_obs: int) -> Float64Array:
    v, _, _ = as_array(x, field_name)
    v = v[np.isfinite(v)]
    if v.size < min_obs:
        raise ValidationError(field_name, v.size, f"need at least {min_obs} valid values")
    return v


def adf(
    x: ArrayLike1D,
    *,
    regression: Literal["c", "ct", "ctt", "n"] = "c",
    maxlag: int | None = None,
    autolag: Literal["AIC", "BIC", "t-stat"] | None = "AIC",
) -> ADFResult:
    """Augmented Dickey-Fuller unit-root test (wraps statsmodels ``adfuller``).

    Parameters
    ----------
    x : Series or ndarray
        Missing values are dropped.
    regression : {"c", "ct", "ctt", "n"}
        Deterministic terms.
    maxlag : int, optional
        Largest lag (statsmodels' ``12 * (n / 100) ** 0.25`` when None).
    autolag : {"AIC", "BIC", "t-stat"} or None
        Lag selection; None uses exactly ``maxlag`` lags (much faster on long series).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> adf(rng.standard_normal(500)).pvalue < 0.01
    True
    """
    v = _finite(x, "x", 10)
    if np.ptp(v) == 0.0:
        raise ValidationError("x", float(v[0]), "is constant; the ADF test is undefined")
    res = adfuller(v, maxlag=maxlag, regression=regression, autolag=autolag, result_object=False)
    return ADFResult(
        statistic=float(res[0]),
        pvalue=float(res[1]),
        critical_values={k: float(c) for k, c in res[4].items()},
        lags=int(res[2]),
        nobs=int(res[3]),
    )


def cointegration(
    y: ArrayLike1D,
    x: ArrayLike1D,
    *,
    trend: Literal["c", "ct", "ctt", "n"] = "c",
    maxlag: int | None = None,
    autolag: Literal["aic", "bic", "t-stat"] | None = "aic",
) -> CointegrationResult:
    """Engle-Granger cointegration test of ``y`` on ``x`` (wraps statsmodels ``coint``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.cumsum(rng.standard_normal(1000))
    >>> cointegration(1.0 + 2.0 * x + rng.standard_normal(1000), x).pvalue < 0.01
    True
    """
    vy, vx = _pair(y, x, min_obs=10)
    stat, pvalue, crit = coint(vy, vx, trend=trend, maxlag=maxlag, autolag=autolag)
    params = OLS(vy, _const(vx)).fit().params
    return CointegrationResult(
        statistic=float(stat),
        pvalue=float(pvalue),
        critical_values={"1%": float(crit[0]), "5%": float(crit[1]), "10%": float(crit[2])},
        hedge_ratio=float(params[1]),
        alpha=float(params[0]),
        nobs=int(vy.size),
    )


def johansen(data: pd.DataFrame, *, det_order: int = 0, k_ar_diff: int = 1) -> JohansenResult:
    """Johansen cointegration test for two or more series (wraps ``coint_johansen``).

    Parameters
    ----------
    data : DataFrame
        One column per series (rows with any missing value are dropped).
    det_order : int
        -1 no deterministic terms, 0 constant, 1 linear trend.
    k_ar_diff : int
        Lagged differences in the VECM.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.cumsum(rng.standard_normal(1000))
    >>> df = pd.DataFrame({"y": 2.0 * x + rng.standard_normal(1000), "x": x})
    >>> johansen(df).rank
    1
    """
    if not isinstance(data, pd.DataFrame) or data.shape[1] < 2:
        raise ValidationError("data", getattr(data, "shape", None), "need a DataFrame, >= 2 cols")
    clean = data.astype(np.float64).dropna()
    if len(clean) < 10 + k_ar_diff:
        raise ValidationError("data", len(clean), "too few complete rows")
    res = coint_johansen(clean.to_numpy(), det_order, k_ar_diff)
    rank = 0
    for stat, crit in zip(res.lr1, res.cvt[:, 1], strict=True):
        if stat > crit:
            rank += 1
        else:
            break
    return JohansenResult(
        trace_stat=np.asarray(res.lr1),
        trace_crit=np.asarray(res.cvt),
        max_eig_stat=np.asarray(res.lr2),
        max_eig_crit=np.asarray(res.cvm),
        eigenvalues=np.asarray(res.eig),
        eigenvectors=np.asarray(res.evec),
        rank=rank,
        columns=tuple(map(str, clean.columns)),
    )


def half_life(x: ArrayLike1D) -> float:
    """Mean-reversion half-life of a spread, in bars.

    Fits ``diff(s)[t] = a + b * s[t-1]`` by OLS (statsmodels) so ``phi = 1 + b`` is the
    AR(1) coefficient, and returns ``log(0.5) / log(phi)``: ``inf`` when ``phi >= 1`` (no
    mean reversion), NaN when ``phi <= 0`` (the sign flips every bar).

    Examples
    --------
    >>> s = 0.5 ** np.arange(30.0)   # deviation halves every bar
    >>> round(half_life(s), 9)
    1.0
    """
    v = _finite(x, "spread", 10)
    if np.ptp(v) == 0.0:
        raise ValidationError("spread", float(v[0]), "is constant; half-life is undefined")
    b = float(OLS(np.diff(v), _const(v[:-1])).fit().params[1])
    phi = 1.0 + b
    if phi >= 1.0:
        return math.inf
    if phi <= 0.0:
        return math.nan
    return math.log(0.5) / math.log(phi)


def hurst(x: ArrayLike1D, *, max_lag: int = 100, n_lags: int = 20) -> float:
    """Hurst exponent from the scaling of lagged differences, ``std(x[t+k] - x[t]) ~ k**H``.

    0.5 for a random walk, < 0.5 mean-reverting, > 0.5 trending. Uses ``n_lags``
    log-spaced lags in ``[2, max_lag]`` and a least-squares slope on the log-log points.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> round(hurst(np.cumsum(rng.standard_normal(10_000))), 1)   # a random walk
    0.5
    """
    max_lag = check_int(max_lag, "max_lag", minimum=3)
    v = _finite(x, "x", 2 * max_lag)
    lags = np.unique(np.geomspace(2, max_lag, check_int(n_lags, "n_lags", minimum=2)).astype(int))
    tau = np.array([np.std(v[k:] - v[:-k]) for k in lags])
    if not (tau > 0).all():
        raise ValidationError("x", float(v[0]), "is constant over a lag; Hurst is undefined")
    return float(np.polyfit(np.log(lags), np.log(tau), 1)[0])


def scan_pairs(
    prices: pd.DataFrame,
    *,
    transform: Literal["log", "none"] = "log",
    autolag: Literal["aic", "bic", "t-stat"] | None = "aic",
    maxlag: int | None = None,
) -> pd.DataFrame:
    """Rank every pair of N symbols by Engle-Granger p-value, then half-life.

    Each unordered pair is tested in both directions (y on x and x on y) and the direction
    with the smaller p-value is kept.

    Parameters
    ----------
    prices : DataFrame
        One column per symbol, aligned (see :func:`align_prices`).
    transform : {"log", "none"}
        Test log prices (default) or the prices as given.

    Returns
    -------
    pandas.DataFrame
        Columns ``y, x, pvalue, statistic, hedge_ratio, alpha, half_life``, best first.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> x = np.exp(np.cumsum(0.01 * rng.standard_normal(800)) + 4)
    >>> df = pd.DataFrame({"A": x * np.exp(0.01 * rng.standard_normal(800)), "B": x,
    ...                    "C": np.exp(np.cumsum(0.01 * rng.standard_normal(800)) + 4)})
    >>> sorted(scan_pairs(df).iloc[0][["y", "x"]])
    ['A', 'B']
    """
    check_choice(transform, "transform", ("log", "none"))
    if not isinstance(prices, pd.DataFrame) or prices.shape[1] < 2:
        raise ValidationError("prices", getattr(prices, "shape", None), "need >= 2 columns")
    data = prices.astype(np.float64).dropna()
    if transform == "log":
        for c in data.columns:
            check_positive_prices(data[c].to_numpy(), f"prices[{c!r}]")
        data = np.log(data)
    rows = []
    for a, b in itertools.combinations(data.columns, 2):
        best = None
        for ycol, xcol in ((a, b), (b, a)):
            res = cointegration(data[ycol], data[xcol], autolag=autolag, maxlag=maxlag)
            if best is None or res.pvalue < best[2].pvalue:
                best = (ycol, xcol, res)
        assert best is not None
        ycol, xcol, res = best
        s = data[ycol].to_numpy() - res.alpha - res.hedge_ratio * data[xcol].to_numpy()
        rows.append(
            {
                "y": ycol,
                "x": xcol,
                "pvalue": res.pvalue,
                "statistic": res.statistic,
                "hedge_ratio": res.hedge_ratio,
                "alpha": res.alpha,
                "half_life": half_life(s),
            }
        )
    out = pd.DataFrame(
        rows, columns=["y", "x", "pvalue", "statistic", "hedge_ratio", "alpha", "half_life"]
    )
    return out.sort_values(["pvalue", "half_life"], kind="stable").reset_index(drop=True)
