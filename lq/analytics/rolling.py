"""Windowed statistics: rolling mean, standard deviation and z-score.

Conventions
-----------
* ``window`` counts **valid observations**: NaN/inf are skipped (they do not enter the
  window), and the output at a missing position repeats the last output.
* A value is produced once the window is full (``window`` valid observations), NaN before.
* Standard deviations use ``ddof=1`` (the sample estimator, pandas' default) unless a
  function says otherwise; a window whose values are all equal has std exactly 0.
* ``zscore(x, window)[t] = (x[t] - mean) / std`` over the window **ending at and
  including** ``t``; a constant window gives NaN, never ±inf.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lq.errors import ValidationError

from ._common import as_array, check_int, on_valid, on_valid_pair, wrap
from ._typing import ArrayLike1D, Float64Array

__all__ = ["rolling_correlation", "rolling_mean", "rolling_std", "zscore"]


#: Below this many element-operations (n * window) windows are computed exactly by two-pass
#: sums; above it, by pandas' compensated O(n) rolling moments on chunk-shifted values.
_EXACT_WORK = 4_000_000


def _chunks(n: int, window: int) -> list[tuple[int, int]]:
    """Output ranges ``[start, end)`` processed with one shift each (see :func:`_shifted`)."""
    size = max(64 * window, 1 << 16)
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def _shifted(v: Float64Array, window: int, stat: str, ddof: int = 1) -> Float64Array:
    """pandas' rolling mean/var, run chunk by chunk on values minus the chunk's first value.

    Both statistics are shift-equivariant, so subtracting a constant per chunk (each chunk
    re-reads the ``window - 1`` values before it) changes nothing mathematically; it keeps
    the magnitudes at the local range (not e.g. 60,000) and restarts pandas' running sums,
    which brings agreement with an exact two-pass computation from ~1e-8 to ~1e-13.
    """
    out = np.full(v.size, np.nan)
    if v.size * window <= _EXACT_WORK and v.size >= window:
        ends = np.arange(window - 1, v.size)
        if stat in ("mean", "dev"):
            out[ends] = _exact_windows(v, v, window, ends, stat)
        else:
            out[ends] = _exact_windows(v, v, window, ends, "cov") * (window - 1) / (window - ddof)
        return out
    for s, e in _chunks(v.size, window):
        lo = max(s - window + 1, 0)
        shift = v[s]
        r = pd.Series(v[lo:e] - shift).rolling(window, min_periods=window)
        if stat == "mean":
            part = r.mean().to_numpy() + shift
        elif stat == "dev":  # x[t] - mean[t], both at the local scale
            part = (v[lo:e] - shift) - r.mean().to_numpy()
        else:
            part = r.var(ddof=ddof).to_numpy()
        out[s:e] = part[s - lo :]
    return out


def _mean(v: Float64Array, window: int) -> Float64Array:
    out = _shifted(v, window, "mean")
    # an all-equal window has exactly that mean
    if window > 1 and v.size >= window:
        same = _run_lengths(v) >= window
        out[same] = v[same]
    return out


def _var(
    v: Float64Array, window: int, ddof: int, runs: np.ndarray | None = None, *, exact0: bool = True
) -> Float64Array:
    """Rolling variance; all-equal windows give exactly 0 when ``exact0`` (``runs`` may be
    the precomputed :func:`_run_lengths` of ``v``)."""
    if window <= ddof:
        return np.full(v.size, np.nan)
    out = _shifted(v, window, "var", ddof)
    if exact0 and window > 1 and v.size >= window:
        out[(_run_lengths(v) if runs is None else runs) >= window] = 0.0
    return np.maximum(out, 0.0, out=out, where=~np.isnan(out))


def _run_lengths(v: Float64Array) -> np.ndarray:
    """Length of the run of equal values ending at each position."""
    n = v.size
    change = np.empty(n, dtype=bool)
    change[:1] = True
    np.not_equal(v[1:], v[:-1], out=change[1:])
    start = np.maximum.accumulate(np.where(change, np.arange(n), 0))
    return np.arange(n) - start + 1


def rolling_mean(x: ArrayLike1D, window: int) -> Any:
    """Mean of the last ``window`` valid observations.

    Parameters
    ----------
    x : Series or ndarray
    window : int
        Number of valid observations (>= 1).

    Returns
    -------
    Same kind as ``x``; NaN until ``window`` valid values have been seen.

    Examples
    --------
    >>> rolling_mean(np.array([1.0, 2.0, np.nan, 6.0]), 2)
    array([nan, 1.5, 1.5, 4. ])
    """
    window = check_int(window, "window")
    v, index, name = as_array(x, "x")
    return wrap(on_valid(v, lambda a: _mean(a, window)), index, name)


def rolling_std(x: ArrayLike1D, window: int, *, ddof: int = 1) -> Any:
    """Standard deviation of the last ``window`` valid observations (``ddof=1`` default).

    Examples
    --------
    >>> rolling_std(np.array([1.0, 3.0, 5.0, 5.0, 5.0]), 3)
    array([       nan,        nan, 2.        , 1.15470054, 0.        ])
    """
    window = check_int(window, "window")
    ddof = check_int(ddof, "ddof", minimum=0)
    v, index, name = as_array(x, "x")
    return wrap(on_valid(v, lambda a: np.sqrt(_var(a, window, ddof))), index, name)


def _zscore(a: Float64Array, window: int, ddof: int) -> Float64Array:
    sd = np.sqrt(_var(a, window, ddof))
    dev = _shifted(a, window, "dev")
    with np.errstate(invalid="ignore", divide="ignore"):
        z = dev / sd
    z[~(sd > 0.0)] = np.nan
    return z


def zscore(x: ArrayLike1D, window: int, *, ddof: int = 1) -> Any:
    """Rolling z-score ``(x - mean) / std`` over the window ending at each point.

    Parameters
    ----------
    x : Series or ndarray
    window : int
        Number of valid observations (>= 2 for ``ddof=1``).
    ddof : int
        Delta degrees of freedom of the std (default 1, the sample std).

    Returns
    -------
    Same kind as ``x``. NaN during warm-up and wherever the window is constant.

    Examples
    --------
    >>> zscore(np.array([1.0, 2.0, 3.0, 3.0, 3.0]), 3)
    array([       nan,        nan, 1.        , 0.57735027,        nan])
    """
    window = check_int(window, "window")
    ddof = check_int(ddof, "ddof", minimum=0)
    v, index, name = as_array(x, "x")
    return wrap(on_valid(v, lambda a: _zscore(a, window, ddof)), index, name)


def _scale(a: Float64Array) -> float:
    s = float(np.std(a)) if a.size else 1.0
    return s if np.isfinite(s) and s > 0 else 1.0


def rolling_comoments(
    y: Float64Array, x: Float64Array, window: int, *, need_var_y: bool = True
) -> tuple[Float64Array | None, Float64Array, Float64Array]:
    """Rolling ``(var_y, var_x, cov_xy)`` (ddof=1) of gap-free aligned arrays.

    Small inputs (``n * window <= 4e6``) use exact two-pass window sums. Larger ones take
    the covariance from the polarisation identity on globally scaled series,
    ``cov = sx*sy*(var(x/sx + y/sy) - var(x/sx - y/sy)) / 4``, so every term is a
    numerically stable rolling variance (pandas' compensated sliding Welford on
    chunk-shifted values) rather than a difference of raw products (which loses all digits
    at prices near 60,000). Windows where the identity is ill-conditioned are recomputed
    exactly. ``var_y`` is None when not ``need_var_y``.
    """
    rx, ry = _run_lengths(x), _run_lengths(y)
    const = (rx >= window) | (ry >= window) if window > 1 else np.zeros(x.size, dtype=bool)
    var_x = _var(x, window, 1, rx)
    var_y = _var(y, window, 1, ry) if need_var_y else None
    if x.size * window <= _EXACT_WORK:
        cov = np.full(x.size, np.nan)
        if x.size >= window:
            ends = np.arange(window - 1, x.size)
            cov[ends] = _exact_windows(y, x, window, ends, "cov")
            cov[const] = 0.0
        return var_y, var_x, cov
    sx, sy = _scale(x), _scale(y)
    xs, ys = x * (1.0 / sx), y * (1.0 / sy)
    u = np.add(xs, ys)
    np.subtract(xs, ys, out=xs)
    var_u = _var(u, window, 1, exact0=False)
    var_v = _var(xs, window, 1, exact0=False)
    cov = var_u - var_v
    cov *= sx * sy / 4.0
    # The identity loses digits where the window's variance ratio is far from the global
    # one: the rounding error is ~eps * sx*sy*(var_u + var_v), compared with sqrt(var_x *
    # var_y). Those windows (rare in market data) are recomputed exactly (two-pass).
    # Without var_y, a rough var_y from the identity is enough for this check.
    tot = np.add(var_u, var_v, out=u)
    if var_y is None:
        vy = tot * 0.5
        vy -= var_x * (1.0 / (sx * sx))
        vy *= sy * sy
    else:
        vy = var_y.copy()
    vy *= var_x
    with np.errstate(invalid="ignore", divide="ignore"):
        # cond <= limit  <=>  (sx*sy*tot)^2 <= limit^2 * var_x * var_y  (no sqrt, no divide)
        tot *= sx * sy
        tot *= tot
        ok = tot <= vy * (_COND_LIMIT * _COND_LIMIT)
    bad = np.flatnonzero(~ok & ~np.isnan(var_u) & ~const)
    if bad.size:
        cov[bad] = _exact_windows(y, x, window, bad, "cov")
    cov[const] = 0.0  # covariance with a constant is exactly 0
    return var_y, var_x, cov


_COND_LIMIT = 100.0


def _exact_windows(
    y: Float64Array, x: Float64Array, window: int, ends: np.ndarray, stat: str
) -> Float64Array:
    """Two-pass statistics of the windows ending at ``ends`` (vectorised, chunked):
    ``"mean"`` of ``x``, ``"dev"`` = last value minus the mean, or the sample (ddof=1)
    ``"cov"`` of ``x`` and ``y``."""
    out = np.empty(ends.size)
    back = np.arange(window - 1, -1, -1)
    step = max(1, 2_000_000 // window)
    for s in range(0, ends.size, step):
        idx = ends[s : s + step, None] - back
        xs = x[idx]
        if stat in ("mean", "dev"):
            # mean of the window minus its last value: exact deviations at the local scale
            last = xs[:, -1]
            d = (xs - last[:, None]).mean(axis=1)
            out[s : s + step] = last + d if stat == "mean" else -d
            continue
        dx = xs - xs.mean(axis=1, keepdims=True)
        if y is x:
            out[s : s + step] = (dx * dx).sum(axis=1) / (window - 1)
        else:
            ys = y[idx]
            dy = ys - ys.mean(axis=1, keepdims=True)
            out[s : s + step] = (dx * dy).sum(axis=1) / (window - 1)
    return out


def _corr(y: Float64Array, x: Float64Array, window: int) -> Float64Array:
    var_y, var_x, cov = rolling_comoments(y, x, window)
    assert var_y is not None
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(var_x * var_y)
    r[~((var_x > 0.0) & (var_y > 0.0))] = np.nan
    return np.clip(r, -1.0, 1.0)


def rolling_correlation(y: ArrayLike1D, x: ArrayLike1D, window: int) -> Any:
    """Pearson correlation of the last ``window`` rows where both series are valid.

    NaN during warm-up and when either side is constant over the window.

    Examples
    --------
    >>> rolling_correlation(np.array([1.0, 2.0, 3.0, 5.0]), np.array([2.0, 4.0, 6.0, 7.0]), 3)
    array([       nan,        nan, 1.        , 0.92857143])
    """
    window = check_int(window, "window", minimum=2)
    vy, index, name = as_array(y, "y")
    vx, _, _ = as_array(x, "x")
    if vx.size != vy.size:
        raise ValidationError("x", vx.size, f"length differs from y ({vy.size}); align first")
    return wrap(on_valid_pair(vy, vx, lambda a, b: _corr(a, b, window)), index, name)
