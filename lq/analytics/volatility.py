"""Volatility: realised and EWMA volatility annualised for crypto's 24x365 calendar; GARCH.

Annualisation: crypto trades every second of the year, so a bar interval of ``d`` seconds
has ``periods_per_year = 365 * 24 * 3600 / d`` bars (31,536,000 for 1 s bars, 525,600 for
1 m bars) and an annualised volatility is ``per-bar vol * sqrt(periods_per_year)``.
Realised volatility assumes a zero mean (the realised-variance convention): per-bar
variance = mean of squared returns.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from arch import arch_model

from lq.errors import ValidationError

from ._common import as_array, check_choice, check_int, on_valid, wrap
from ._typing import ArrayLike1D, Float64Array, GarchDist, GarchMean, GarchModel
from .bars import interval_us

__all__ = [
    "GarchForecast",
    "ewma_vol",
    "garch_forecast",
    "periods_per_year",
    "realized_vol",
]

log = logging.getLogger(__name__)

_SECONDS_PER_YEAR_US = 365 * 24 * 3600 * 1_000_000


def periods_per_year(interval: str | pd.Timedelta | int) -> float:
    """Bars per year for ``interval`` on a 24x365 calendar.

    Examples
    --------
    >>> periods_per_year("1m")
    525600.0
    """
    return _SECONDS_PER_YEAR_US / interval_us(interval)


def realized_vol(
    returns: ArrayLike1D,
    *,
    interval: str | pd.Timedelta | int,
    window: int | None = None,
) -> Any:
    """Annualised realised volatility ``sqrt(mean(r**2) * periods_per_year(interval))``.

    Parameters
    ----------
    returns : Series or ndarray
        Per-bar (log) returns; missing values are skipped.
    interval : str, Timedelta or int µs
        The bar interval of ``returns`` (``"1s"``, ``"1m"``...).
    window : int, optional
        None: one number over the whole sample. Otherwise a rolling series over the last
        ``window`` valid returns (NaN during warm-up).

    Examples
    --------
    >>> round(realized_vol(np.array([0.001, -0.001]), interval="1m"), 6)
    0.724983
    """
    ppy = periods_per_year(interval)
    v, index, name = as_array(returns, "returns")
    if window is None:
        ok = v[np.isfinite(v)]
        if ok.size == 0:
            return math.nan
        return float(math.sqrt(float(np.mean(ok * ok)) * ppy))
    window = check_int(window, "window")

    def fn(a: Float64Array) -> Float64Array:
        ms = pd.Series(a * a).rolling(window, min_periods=window).mean().to_numpy(copy=True)
        return np.sqrt(np.maximum(ms, 0.0) * ppy)

    return wrap(on_valid(v, fn), index, name)


def ewma_vol(
    returns: ArrayLike1D,
    *,
    interval: str | pd.Timedelta | int,
    lam: float = 0.94,
    min_periods: int = 1,
) -> Any:
    """Annualised EWMA (RiskMetrics) volatility.

    ``var[t] = lam * var[t-1] + (1 - lam) * r[t]**2`` seeded with ``r[0]**2``; the value at
    ``t`` uses returns up to and including ``t`` (the forecast for ``t + 1``).

    Examples
    --------
    >>> v = ewma_vol(np.array([0.01, 0.0]), interval=31_536_000_000_000, lam=0.5)
    >>> v.round(6).tolist()   # one bar per year: no annualisation factor
    [0.01, 0.007071]
    """
    if not 0.0 < lam < 1.0:
        raise ValidationError("lam", lam, "must be in (0, 1)")
    mp = check_int(min_periods, "min_periods")
    ppy = periods_per_year(interval)
    v, index, name = as_array(returns, "returns")

    def fn(a: Float64Array) -> Float64Array:
        var = pd.Series(a * a).ewm(alpha=1.0 - lam, adjust=False).mean().to_numpy(copy=True)
        var[: mp - 1] = np.nan
        return np.sqrt(var * ppy)

    return wrap(on_valid(v, fn), index, name)


@dataclass(frozen=True, slots=True)
class GarchForecast:
    """A fitted GARCH-family model and its variance forecast.

    ``params`` are in the units of the rescaled data ``returns * scale`` (as ``arch``
    reports them); ``variance``/``volatility`` are per-bar, in the original units, for
    horizons 1..h; ``annualized_volatility`` uses ``interval`` when one was given.
    """

    model: str
    dist: str
    params: dict[str, float]
    scale: float
    variance: Float64Array
    volatility: Float64Array
    annualized_volatility: Float64Array | None
    loglikelihood: float
    aic: float
    converged: bool
    nobs: int


def _rescale_factor(v: Float64Array) -> float:
    sd = float(np.std(v))
    if not (sd > 0.0 and math.isfinite(sd)):
        raise ValidationError("returns", sd, "has zero or undefined variance")
    # a power of ten that puts the std in [1, 10): arch works best with variance in 1..1000
    return float(10.0 ** (-math.floor(math.log10(sd))))


def garch_forecast(
    returns: ArrayLike1D,
    *,
    model: GarchModel = "garch",
    dist: GarchDist = "normal",
    mean: GarchMean = "constant",
    horizon: int = 10,
    interval: str | pd.Timedelta | int | None = None,
    simulations: int = 1000,
    seed: int = 0,
) -> GarchForecast:
    """Fit GARCH(1,1), GJR-GARCH(1,1,1) or EGARCH(1,1,1) with ``arch`` and forecast variance.

    The input (returns, or changes of a spread) is multiplied by a power of ten so its std
    lies in [1, 10) before ``arch`` sees it (``arch`` warns and optimises poorly on badly
    scaled data); forecasts are scaled back.

    Parameters
    ----------
    returns : Series or ndarray
        Per-bar returns or spread changes; missing values are dropped. At least 100.
    model : {"garch", "gjr", "egarch"}
    dist : {"normal", "t"}
    mean : {"constant", "zero"}
    horizon : int
        Steps ahead (>= 1).
    interval : optional
        Bar interval, to also report annualised volatility.
    simulations, seed : int
        EGARCH multi-step forecasts have no closed form and are simulated with this seed.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> f = garch_forecast(0.001 * rng.standard_normal(1000), horizon=3)
    >>> f.variance.shape
    (3,)
    """
    check_choice(model, "model", ("garch", "gjr", "egarch"))
    check_choice(dist, "dist", ("normal", "t"))
    check_choice(mean, "mean", ("constant", "zero"))
    horizon = check_int(horizon, "horizon")
    v, _, _ = as_array(returns, "returns")
    v = v[np.isfinite(v)]
    if v.size < 100:
        raise ValidationError("returns", v.size, "need at least 100 valid returns for GARCH")
    scale = _rescale_factor(v)
    am = arch_model(
        v * scale,
        mean="Constant" if mean == "constant" else "Zero",
        vol="EGARCH" if model == "egarch" else "GARCH",
        p=1,
        o=0 if model == "garch" else 1,
        q=1,
        dist="normal" if dist == "normal" else "t",
        rescale=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = am.fit(disp="off", show_warning=False, options={"maxiter": 200})
    if res.convergence_flag != 0:
        log.warning("garch_forecast: optimiser did not converge (flag %s)", res.convergence_flag)
    if model == "egarch" and horizon > 1:
        rng = np.random.default_rng(seed)
        fc = res.forecast(
            horizon=horizon,
            reindex=False,
            method="simulation",
            simulations=simulations,
            rng=lambda size: rng.standard_normal(size),
        )
    else:
        fc = res.forecast(horizon=horizon, reindex=False)
    variance = np.asarray(fc.variance.to_numpy()[-1], dtype=np.float64) / scale**2
    vol = np.sqrt(variance)
    ann = None if interval is None else vol * math.sqrt(periods_per_year(interval))
    return GarchForecast(
        model=model,
        dist=dist,
        params={str(k): float(p) for k, p in res.params.items()},
        scale=scale,
        variance=variance,
        volatility=vol,
        annualized_volatility=ann,
        loglikelihood=float(res.loglikelihood),
        aic=float(res.aic),
        converged=res.convergence_flag == 0,
        nobs=int(v.size),
    )
