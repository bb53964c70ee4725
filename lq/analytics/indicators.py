"""Technical indicators: SMA, EMA, Bollinger bands and Wilder's RSI.

All follow the package NaN policy (missing values are skipped, the output at a missing
position repeats the last output) and return the same kind as their input.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ._common import as_array, check_int, on_valid, wrap
from ._typing import ArrayLike1D, Float64Array
from .rolling import _mean, _var, rolling_mean

__all__ = ["bollinger", "ema", "rsi", "sma"]


def sma(x: ArrayLike1D, window: int) -> Any:
    """Simple moving average over ``window`` valid observations (same as :func:`rolling_mean`).

    Examples
    --------
    >>> sma(np.array([1.0, 2.0, 3.0, 4.0]), 2)
    array([nan, 1.5, 2.5, 3.5])
    """
    return rolling_mean(x, window)


def _ema(a: Float64Array, alpha: float, min_periods: int) -> Float64Array:
    out = pd.Series(a).ewm(alpha=alpha, adjust=False).mean().to_numpy(copy=True)
    out[: min_periods - 1] = np.nan
    return out


def ema(x: ArrayLike1D, span: int, *, min_periods: int | None = None) -> Any:
    """Exponential moving average with ``alpha = 2 / (span + 1)``.

    The recursive form ``e[t] = (1 - alpha) * e[t-1] + alpha * x[t]`` seeded with the first
    valid value (pandas ``ewm(span, adjust=False)``).

    Parameters
    ----------
    x : Series or ndarray
    span : int
        >= 1.
    min_periods : int, optional
        Valid observations needed before a value is reported (default ``span``).

    Examples
    --------
    >>> ema(np.array([1.0, 2.0, 3.0]), 3, min_periods=1)
    array([1.  , 1.5 , 2.25])
    """
    span = check_int(span, "span")
    mp = span if min_periods is None else check_int(min_periods, "min_periods")
    v, index, name = as_array(x, "x")
    return wrap(on_valid(v, lambda a: _ema(a, 2.0 / (span + 1.0), mp)), index, name)


def bollinger(x: ArrayLike1D, window: int = 20, *, k: float = 2.0, ddof: int = 0) -> pd.DataFrame:
    """Bollinger bands: rolling mean ± ``k`` rolling standard deviations.

    Uses ``ddof=0`` by default (John Bollinger's definition, as in TA-Lib).

    Returns
    -------
    pandas.DataFrame
        Columns ``middle, upper, lower, percent_b`` (``(x - lower) / (upper - lower)``,
        NaN when the bands collapse), on the input's index (a RangeIndex for arrays).

    Examples
    --------
    >>> bollinger(np.array([1.0, 2.0, 3.0]), 3, k=1.0)["upper"].round(4).tolist()[-1]
    2.8165
    """
    window = check_int(window, "window")
    ddof = check_int(ddof, "ddof", minimum=0)
    v, index, _ = as_array(x, "x")
    mid = on_valid(v, lambda a: _mean(a, window))
    sd = on_valid(v, lambda a: np.sqrt(_var(a, window, ddof)))
    upper, lower = mid + k * sd, mid - k * sd
    xf = on_valid(v, lambda a: a)
    with np.errstate(invalid="ignore", divide="ignore"):
        pb = np.where(upper > lower, (xf - lower) / (upper - lower), np.nan)
    return pd.DataFrame(
        {"middle": mid, "upper": upper, "lower": lower, "percent_b": pb},
        index=index if index is not None else pd.RangeIndex(v.size),
    )


def _rsi(p: Float64Array, n: int) -> Float64Array:
    out = np.full(p.size, np.nan)
    if p.size <= n:
        return out
    d = np.diff(p)
    gain, loss = np.maximum(d, 0.0), np.maximum(-d, 0.0)
    alpha = 1.0 / n
    ag = _ema(np.concatenate(([gain[:n].sum() / n], gain[n:])), alpha, 1)
    al = _ema(np.concatenate(([loss[:n].sum() / n], loss[n:])), alpha, 1)
    tot = ag + al
    with np.errstate(invalid="ignore", divide="ignore"):
        out[n:] = np.where(tot > 0.0, 100.0 * ag / tot, 50.0)
    return out


def rsi(x: ArrayLike1D, window: int = 14) -> Any:
    """Relative Strength Index with Wilder's smoothing (the standard definition).

    The first average gain/loss is the simple mean of the first ``window`` price changes;
    afterwards ``avg = avg + (change - avg) / window``. ``RSI = 100 * avg_gain /
    (avg_gain + avg_loss)`` (= ``100 - 100 / (1 + RS)``); 100 when there were no losses,
    50 when there was no change at all. The first value is at position ``window``.

    Examples
    --------
    >>> rsi(np.array([1.0, 2.0, 1.0, 2.0]), 2).tolist()
    [nan, nan, 50.0, 75.0]
    """
    window = check_int(window, "window")
    v, index, name = as_array(x, "x")
    return wrap(on_valid(v, lambda a: _rsi(a, window)), index, name)
