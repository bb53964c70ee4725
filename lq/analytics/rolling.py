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

from lq.errors import ValidationError

from ._common import as_array, check_int, on_valid, on_valid_pair, wrap
from ._typing import ArrayLike1D, Float64Array

__all__ = ["rolling_correlation", "rolling_mean", "rolling_std", "zscore"]


#: Below this many element-operations (n * window) windows are computed exactly by two-pass
#: sums; above it, by block-anchored O(n) window sums (:func:`_block_moments`).
_EXACT_WORK = 4_000_000

#: Relative accuracy demanded of every centred window sum on the O(n) path: a window whose
#: first-order rounding-error bound exceeds this fraction of its value is recomputed exactly.
_TOL = 1e-10

#: Elements per chunk of blocks (keeps the temporaries of one chunk in cache).
_CHUNK = 1 << 15


def _blocks(v: Float64Array, r0: int, r1: int, w: int) -> tuple[Float64Array, Float64Array]:
    """Rows ``r0..r1-1`` of ``v`` cut into blocks of ``w`` (the last one padded with its
    final value; padding is only ever read by outputs past the end), minus each block's
    first value (the block's *anchor*, returned as a column)."""
    lo, hi = r0 * w, r1 * w
    if hi <= v.size:
        seg = v[lo:hi].reshape(r1 - r0, w)
    else:
        flat = np.empty((r1 - r0) * w)
        flat[: v.size - lo] = v[lo:]
        flat[v.size - lo :] = v[-1]
        seg = flat.reshape(r1 - r0, w)
    c = seg[:, :1].copy()
    return seg - c, c


class _Sums:
    """Window sums of one chunk of blocks, relative to the anchor of the block holding the
    window's last value. Row ``i`` of the arrays is block ``r0 + 1 + i`` of the chunk,
    column ``o`` the window ending at offset ``o`` of that block: a prefix ``0..o`` of the
    block plus the suffix ``o+1..w-1`` of the block before (``na = w-1-o`` values, none
    for ``o = w-1``), the suffix moved to the block's anchor by the exact shift identities.
    All arrays are full-width (contiguous), which numpy processes fastest."""

    __slots__ = ("a1", "c", "d", "dl", "m", "mean", "s", "w1")

    def __init__(
        self, d: Float64Array, c: Float64Array, w: int, na: Float64Array, inv_k: float
    ) -> None:
        p1 = np.cumsum(d, axis=1)
        p2 = np.multiply(d, d)
        np.cumsum(p2, axis=1, out=p2)
        dl = c[:-1] - c[1:]  # anchor of block k-1 minus anchor of block k, per row
        a1 = p1[:-1, -1:] - p1[:-1]  # suffix sums of block k-1 (its own anchor)
        a2 = p2[:-1, -1:] - p2[:-1]
        nd = na * dl
        w1 = p1[1:]
        w1 += a1
        w1 += nd
        nd *= dl
        w2 = p2[1:]
        w2 += a2
        w2 += nd
        # every term entering the window's sum of squares is at most twice this in magnitude
        # (|2 dl a1| <= a2 + na dl^2): the rounding-error bound, times 1 / tolerance
        m = np.multiply(w2, 2.0 * inv_k)
        np.multiply(a1, 2.0 * dl, out=a2)
        w2 += a2
        mean = w1 * (1.0 / w)  # window mean minus the anchor
        s = np.multiply(w1, mean, out=a2)
        np.subtract(w2, s, out=s)  # centred sum of squares
        self.d, self.c, self.dl, self.a1, self.w1 = d, c[1:], dl, a1, w1
        self.m, self.s, self.mean = m, s, mean

    def cross(self, other: _Sums, na: Float64Array) -> Float64Array:
        """Centred sum of cross products with ``other`` (same blocks)."""
        pxy = np.multiply(self.d, other.d)
        np.cumsum(pxy, axis=1, out=pxy)
        axy = pxy[:-1, -1:] - pxy[:-1]
        wxy = pxy[1:]
        wxy += axy
        np.multiply(self.a1, other.dl, out=axy)
        wxy += axy
        np.multiply(other.a1, self.dl, out=axy)
        wxy += axy
        np.multiply(na, self.dl * other.dl, out=axy)
        wxy += axy
        np.multiply(self.w1, other.mean, out=axy)
        return np.subtract(wxy, axy, out=axy)


def _block_moments(
    series: tuple[Float64Array, ...], w: int, want: str = ""
) -> tuple[list[Float64Array], Float64Array | None]:
    """O(n) centred window sums of one or two gap-free series, windows of ``w`` values.

    The series is cut into blocks of ``w`` values; each block is taken relative to its own
    first value (a causal anchor: it belongs to every window ending in the block), prefix
    sums restart in every block, and a window = a prefix of its last block + a suffix of
    the block before, re-anchored by the exact shift identities. Rounding errors therefore
    never accumulate beyond two blocks. Per window, a first-order bound on the rounding
    error, ``4 * eps * (w + 2) * m`` (``m`` the magnitude of the anchored squares that
    entered), is compared with the centred sum; windows where it exceeds ``_TOL`` of it
    (among them every all-equal window, whose sum is 0) are recomputed exactly by two-pass
    (:func:`_exact_moments`).

    Returns ``([S_xx] or [S_xx, S_yy, S_xy], extra)`` at full length (NaN during warm-up),
    where ``extra`` is the window mean (``want="mean"``), the last value minus the mean
    (``want="dev"``) or None. Every output at ``t`` uses values ``<= t`` only.
    """
    n = series[0].size
    nb = -(-n // w)
    outs = [np.empty(nb * w) for _ in range(1 if len(series) == 1 else 3)]
    if want:
        outs.append(np.empty(nb * w))
    for o in outs:
        o[: w - 1] = np.nan  # warm-up
    bad = np.zeros(nb * w, dtype=bool)
    if n < w:
        return [o[:n] for o in outs[:3]], outs[-1][:n] if want else None
    na = np.arange(w - 1, -1, -1, dtype=np.float64)
    inv_k = 4.0 * np.finfo(np.float64).eps * (w + 2) / _TOL
    o2 = [o.reshape(nb, w) for o in outs]
    b2 = bad.reshape(nb, w)
    step = max(1, _CHUNK // w)
    for b0 in range(1, nb, step):  # results for blocks b0..b1-1 (block b0 - 1 re-read)
        b1 = min(b0 + step, nb)
        sums = [_Sums(*_blocks(v, b0 - 1, b1, w), w, na, inv_k) for v in series]
        res = [sm.s for sm in sums]
        for sm in sums:
            b2[b0:b1] |= sm.m > sm.s
        if len(sums) == 2:
            res.append(sums[0].cross(sums[1], na))
        if want:
            sm = sums[0]
            if want == "mean":
                sm.mean += sm.c
            else:
                np.subtract(sm.d[1:], sm.mean, out=sm.mean)
            res.append(sm.mean)
        for a, r in zip(o2, res, strict=True):
            a[b0:b1] = r
    b2[0, -1] = True  # the first window (block 0 has no predecessor): computed exactly
    ends = np.flatnonzero(bad[:n])
    if ends.size:
        fixed = _exact_moments(series, w, ends, want)
        for full, f in zip(outs, fixed, strict=True):
            full[ends] = f
    out = [o[:n] for o in outs]
    return (out[:-1], out[-1]) if want else (out, None)


def _exact_moments(
    series: tuple[Float64Array, ...], w: int, ends: np.ndarray, want: str = ""
) -> list[Float64Array]:
    """Two-pass centred sums of the windows ending at ``ends``, in the layout of
    :func:`_block_moments` (``S_xx`` or ``S_xx, S_yy, S_xy``, then mean/dev if ``want``).

    Deviations are taken from the window's last value first, so an all-equal window gives
    exactly 0 and a mean equal to that value."""
    k = 1 if len(series) == 1 else 3
    out = [np.empty(ends.size) for _ in range(k + (1 if want else 0))]
    back = np.arange(w - 1, -1, -1)
    step = max(1, (1 << 18) // w)
    for s in range(0, ends.size, step):
        idx = ends[s : s + step, None] - back
        devs = []
        for j, v in enumerate(series):
            xs = v[idx]
            last = xs[:, -1].copy()
            xs -= last[:, None]
            mu = xs.mean(axis=1)
            xs -= mu[:, None]
            devs.append(xs)
            out[j][s : s + step] = np.einsum("ij,ij->i", xs, xs)
            if want and j == 0:
                out[-1][s : s + step] = last + mu if want == "mean" else -mu
        if k == 3:
            out[2][s : s + step] = np.einsum("ij,ij->i", devs[0], devs[1])
    return out


def _small(v: Float64Array, window: int, stat: str, ddof: int = 1) -> Float64Array:
    """Rolling ``"mean"``, ``"dev"`` (last value minus the mean) or ``"var"`` by exact
    two-pass window sums (the path for ``n * window <= _EXACT_WORK``)."""
    out = np.full(v.size, np.nan)
    if v.size >= window:
        ends = np.arange(window - 1, v.size)
        if stat in ("mean", "dev"):
            out[ends] = _exact_windows(v, v, window, ends, stat)
        else:
            out[ends] = _exact_windows(v, v, window, ends, "cov") * (window - 1) / (window - ddof)
    return out


def _large(v: Float64Array, window: int) -> bool:
    return v.size * window > _EXACT_WORK


def _mean(v: Float64Array, window: int) -> Float64Array:
    if _large(v, window):  # all-equal windows are exact there already
        mean = _block_moments((v,), window, "mean")[1]
        assert mean is not None
        return mean
    out = _small(v, window, "mean")
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
    if _large(v, window):
        out = _block_moments((v,), window)[0][0]
        out *= 1.0 / (window - ddof)
    else:
        out = _small(v, window, "var", ddof)
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
    if window <= ddof:
        return np.full(a.size, np.nan)
    if _large(a, window):
        (ss,), dev = _block_moments((a,), window, "dev")
        assert dev is not None
        ss *= 1.0 / (window - ddof)
        sd = np.sqrt(ss, out=ss)
    else:
        sd = np.sqrt(_var(a, window, ddof))
        dev = _small(a, window, "dev")
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.divide(dev, sd, out=dev)
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


def rolling_comoments(
    y: Float64Array, x: Float64Array, window: int, *, need_var_y: bool = True
) -> tuple[Float64Array | None, Float64Array, Float64Array]:
    """Rolling ``(var_y, var_x, cov_xy)`` (ddof=1) of gap-free aligned arrays.

    Small inputs (``n * window <= 4e6``) use exact two-pass window sums. Larger ones use
    block-anchored O(n) window sums (:func:`_block_moments`: each block of ``window``
    values relative to its own first value, windows assembled from two blocks by exact
    shift identities, and every window whose rounding-error bound exceeds 1e-10 of its
    centred sums, all-equal windows included, recomputed exactly by two-pass). Every value
    at ``t`` uses rows ``<= t`` only. ``var_y`` is None when not ``need_var_y`` (it is
    computed either way on the large path, for the error bound, but not returned).
    """
    if x.size * window <= _EXACT_WORK:
        rx, ry = _run_lengths(x), _run_lengths(y)
        const = (rx >= window) | (ry >= window) if window > 1 else np.zeros(x.size, dtype=bool)
        var_x = _var(x, window, 1, rx)
        var_y = _var(y, window, 1, ry) if need_var_y else None
        cov = np.full(x.size, np.nan)
        if x.size >= window:
            ends = np.arange(window - 1, x.size)
            cov[ends] = _exact_windows(y, x, window, ends, "cov")
            cov[const] = 0.0
        return var_y, var_x, cov
    (sxx, syy, sxy), _ = _block_moments((x, y), window)
    inv = 1.0 / (window - 1)
    for s in (sxx, syy, sxy) if need_var_y else (sxx, sxy):
        s *= inv
        if s is not sxy:
            np.maximum(s, 0.0, out=s, where=~np.isnan(s))
    return (syy if need_var_y else None), sxx, sxy


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
