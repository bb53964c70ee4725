"""O(1)-per-update twins of the batch statistics, for the live path.

Protocol (every class)
----------------------
* ``update(value)`` (``update(y, x)`` for pairs) mutates the state and returns ``None``.
* ``value`` (a property) reads the current statistic; ``nan`` until enough valid data.
* A NaN/inf input is **skipped**: the state is unchanged (the batch twins do the same, and
  repeat the last output at a missing position), so ``value`` after ``update(nan)`` equals
  the batch output at that position.
* ``count`` is the number of valid updates seen.

Windowed classes hold their own ring buffer (no ``revert`` call needed). Window moments are
updated with the sliding Welford recurrences; all-equal windows are detected with a run
counter and report exactly zero variance; and the moments are recomputed exactly from the
buffer (``math.fsum``, two-pass) every ``max(window, 64)`` updates and whenever a second
moment drops below 1e-6 of its peak since the last recompute (the cancellation guard).
That keeps agreement with the batch functions to about 1e-12 relative, at amortised O(1).

Each class equals its batch twin (tested with hypothesis to 1e-9 relative):

=====================  ====================================================
class                  batch twin
=====================  ====================================================
EMA                    :func:`lq.analytics.ema`
RSI                    :func:`lq.analytics.rsi`
RollingMean            :func:`lq.analytics.rolling_mean` / ``sma``
RollingStd             :func:`lq.analytics.rolling_std`
ZScore                 :func:`lq.analytics.zscore`
RollingHedgeRatio      :func:`lq.analytics.rolling_hedge_ratio`
RollingCorrelation     :func:`lq.analytics.rolling_correlation`
KalmanHedgeRatio       :func:`lq.analytics.kalman_hedge_ratio`
EWMAVol                :func:`lq.analytics.ewma_vol`
=====================  ====================================================
"""

from __future__ import annotations

import math
from typing import Literal

from lq.errors import ValidationError

from ._common import check_int

__all__ = [
    "EMA",
    "RSI",
    "EWMAVol",
    "KalmanHedgeRatio",
    "PairIndicators",
    "RollingCorrelation",
    "RollingHedgeRatio",
    "RollingMean",
    "RollingStd",
    "SymbolIndicators",
    "ZScore",
]

_NAN = math.nan
_GUARD = 1e-6


class EMA:
    """Exponential moving average, ``alpha = 2 / (span + 1)``, seeded with the first value.

    Examples
    --------
    >>> e = EMA(3, min_periods=1)
    >>> for v in (1.0, 2.0, 3.0):
    ...     e.update(v)
    >>> e.value
    2.25
    """

    __slots__ = ("_alpha", "_denom", "_keep", "_min", "_v", "count")

    def __init__(self, span: int, *, min_periods: int | None = None) -> None:
        span = check_int(span, "span")
        self._min = span if min_periods is None else check_int(min_periods, "min_periods")
        self._alpha = 2.0 / (span + 1.0)
        self._keep = 1.0 - self._alpha
        self._denom = self._keep + self._alpha
        self._v = _NAN
        self.count = 0

    def update(self, x: float) -> None:
        """Add one observation (NaN/inf skipped)."""
        if x - x != 0.0:
            return
        if self.count == 0:
            self._v = x
        elif self._v != x:
            self._v = (self._keep * self._v + self._alpha * x) / self._denom
        self.count += 1

    @property
    def value(self) -> float:
        """Current EMA (NaN before ``min_periods`` valid values)."""
        return self._v if self.count >= self._min else _NAN


class EWMAVol:
    """Annualised EWMA (RiskMetrics) volatility of returns.

    ``var = lam * var + (1 - lam) * r**2``, seeded with the first ``r**2``; ``value`` is
    ``sqrt(var * bars per year)`` on a 24x365 calendar for ``interval``, the same numbers as
    :func:`lq.analytics.ewma_vol` at every position.

    Examples
    --------
    >>> v = EWMAVol(interval=31_536_000_000_000, lam=0.5)  # one bar per year: no scaling
    >>> for r in (0.01, 0.0):
    ...     v.update(r)
    >>> round(v.value, 6)
    0.007071
    """

    __slots__ = ("_lam", "_min", "_ppy", "_var", "count")

    def __init__(self, *, interval: str | int, lam: float = 0.94, min_periods: int = 1) -> None:
        from lq.analytics.bars import interval_us  # only here: keep this module light

        if not 0.0 < lam < 1.0:
            raise ValidationError("lam", lam, "must be in (0, 1)")
        self._lam = lam
        self._min = check_int(min_periods, "min_periods")
        self._ppy = 31_536_000_000_000 / interval_us(interval)
        self._var = _NAN
        self.count = 0

    def update(self, r: float) -> None:
        """Add one return (NaN/inf skipped)."""
        if r - r != 0.0:
            return
        if self.count == 0:
            self._var = r * r
        else:
            self._var = self._lam * self._var + (1.0 - self._lam) * r * r
        self.count += 1

    @property
    def value(self) -> float:
        """Current annualised volatility (NaN before ``min_periods`` returns)."""
        return math.sqrt(self._var * self._ppy) if self.count >= self._min else _NAN


class RSI:
    """Wilder's RSI; first value after ``window`` price changes.

    Examples
    --------
    >>> r = RSI(2)
    >>> for p in (1.0, 2.0, 1.0, 2.0):
    ...     r.update(p)
    >>> r.value
    75.0
    """

    __slots__ = ("_ag", "_al", "_alpha", "_denom", "_keep", "_n", "_prev", "_sg", "_sl", "count")

    def __init__(self, window: int = 14) -> None:
        self._n = check_int(window, "window")
        self._alpha = 1.0 / self._n
        self._keep = 1.0 - self._alpha
        self._denom = self._keep + self._alpha
        self._prev = _NAN
        self._sg = self._sl = 0.0
        self._ag = self._al = _NAN
        self.count = 0

    def update(self, price: float) -> None:
        """Add one price (NaN/inf skipped)."""
        if price - price != 0.0:
            return
        self.count += 1
        if self.count == 1:
            self._prev = price
            return
        d = price - self._prev
        self._prev = price
        g = d if d > 0.0 else 0.0
        lo = -d if d < 0.0 else 0.0
        k = self.count - 1  # number of changes seen
        n = self._n
        if k < n:
            self._sg += g
            self._sl += lo
        elif k == n:
            self._ag = (self._sg + g) / n
            self._al = (self._sl + lo) / n
        else:
            if self._ag != g:
                self._ag = (self._keep * self._ag + self._alpha * g) / self._denom
            if self._al != lo:
                self._al = (self._keep * self._al + self._alpha * lo) / self._denom

    @property
    def value(self) -> float:
        """Current RSI in [0, 100] (50 if prices never changed; NaN during warm-up)."""
        ag = self._ag
        if ag != ag:
            return _NAN
        tot = ag + self._al
        return 100.0 * ag / tot if tot > 0.0 else 50.0


class _Window:
    """Mean and sum of squared deviations over the last ``window`` valid values."""

    __slots__ = (
        "_buf",
        "_c",
        "_ddof",
        "_every",
        "_last",
        "_m2",
        "_mean",
        "_n",
        "_peak",
        "_pos",
        "_run",
        "_since",
        "_w",
        "count",
    )

    def __init__(self, window: int, ddof: int = 1) -> None:
        self._w = check_int(window, "window")
        self._ddof = check_int(ddof, "ddof", minimum=0)
        self._buf = [0.0] * self._w
        self._pos = self._n = self._run = self._since = 0
        self._mean = self._m2 = self._peak = 0.0
        self._c = _NAN  # anchor: moments are kept for values minus _c (local magnitudes)
        self._last = _NAN
        self._every = max(self._w, 64)
        self.count = 0

    def update(self, x: float) -> None:
        """Add one observation (NaN/inf skipped)."""
        if x - x != 0.0:
            return
        self.count += 1
        self._run = self._run + 1 if x == self._last else 1
        self._last = x
        if self.count == 1:
            self._c = x
        w, n, pos, mean, c = self._w, self._n, self._pos, self._mean, self._c
        buf = self._buf
        if n < w:
            buf[pos] = x
            n += 1
            self._n = n
            d = x - c - mean
            mean += d / n
            m2 = self._m2 + d * (x - c - mean)
        else:
            old = buf[pos] - c
            buf[pos] = x
            xc = x - c
            new = mean + (xc - old) / w
            m2 = self._m2 + (xc - old) * (xc - new + old - mean)
            mean = new
        pos += 1
        self._pos = 0 if pos == w else pos
        if self._run >= n:
            self._c, self._mean, self._m2 = x, 0.0, 0.0
        else:
            self._mean = mean
            self._m2 = m2 if m2 > 0.0 else 0.0
            if m2 > self._peak:
                self._peak = m2
        self._since += 1
        if self._since >= self._every or self._m2 < _GUARD * self._peak:
            self._exact()

    def _exact(self) -> None:
        self._since = 0
        if self._run >= self._n:
            self._c, self._mean, self._m2, self._peak = self._last, 0.0, 0.0, 0.0
            return
        c = self._last
        vals = [v - c for v in self._buf[: self._n]]
        mean = math.fsum(vals) / self._n
        self._c, self._mean = c, mean
        self._m2 = self._peak = math.fsum([(v - mean) * (v - mean) for v in vals])

    @property
    def mean(self) -> float:
        """Window mean (NaN until the window is full)."""
        return self._c + self._mean if self._n == self._w else _NAN

    @property
    def std(self) -> float:
        """Window standard deviation with the class's ``ddof``."""
        if self._n < self._w or self._w <= self._ddof:
            return _NAN
        return math.sqrt(self._m2 / (self._w - self._ddof))

    @property
    def zscore(self) -> float:
        """``(last - mean) / std``; NaN for a constant window."""
        if self._n < self._w or self._m2 == 0.0 or self._w <= self._ddof:
            return _NAN
        return (self._last - self._c - self._mean) / math.sqrt(self._m2 / (self._w - self._ddof))


class RollingMean(_Window):
    """Mean of the last ``window`` valid values (twin of ``rolling_mean``/``sma``).

    Examples
    --------
    >>> m = RollingMean(2)
    >>> for v in (1.0, 2.0, float("nan"), 6.0):
    ...     m.update(v)
    >>> m.value
    4.0
    """

    __slots__ = ()

    def __init__(self, window: int) -> None:
        super().__init__(window, 0)

    @property
    def value(self) -> float:
        """Current mean."""
        return self.mean


class RollingStd(_Window):
    """Standard deviation of the last ``window`` valid values (``ddof=1`` default).

    Examples
    --------
    >>> s = RollingStd(3)
    >>> for v in (1.0, 3.0, 5.0):
    ...     s.update(v)
    >>> s.value
    2.0
    """

    __slots__ = ()

    def __init__(self, window: int, *, ddof: int = 1) -> None:
        super().__init__(window, ddof)

    @property
    def value(self) -> float:
        """Current standard deviation."""
        return self.std


class ZScore(_Window):
    """Z-score of the latest value against the window ending at it (``ddof=1`` default).

    Examples
    --------
    >>> z = ZScore(3)
    >>> for v in (1.0, 2.0, 3.0):
    ...     z.update(v)
    >>> z.value
    1.0
    """

    __slots__ = ()

    def __init__(self, window: int, *, ddof: int = 1) -> None:
        super().__init__(window, ddof)

    @property
    def value(self) -> float:
        """Current z-score (NaN for a constant window)."""
        return self.zscore


class _PairWindow:
    """Co-moments of ``(y, x)`` over the last ``window`` rows where both are valid.

    Moments are kept for ``x - _ax`` and ``y - _ay`` (anchors reset at each exact
    recompute), so the arithmetic runs at the local range of the data, not at its level.
    """

    __slots__ = (
        "_ax",
        "_ay",
        "_bx",
        "_by",
        "_every",
        "_lx",
        "_ly",
        "_mx",
        "_mxx",
        "_mxy",
        "_my",
        "_myy",
        "_n",
        "_pos",
        "_px",
        "_py",
        "_rx",
        "_ry",
        "_since",
        "_w",
        "count",
    )

    def __init__(self, window: int) -> None:
        self._w = check_int(window, "window", minimum=2)
        self._bx = [0.0] * self._w
        self._by = [0.0] * self._w
        self._pos = self._n = self._rx = self._ry = self._since = 0
        self._mx = self._my = self._mxx = self._myy = self._mxy = 0.0
        self._px = self._py = 0.0
        self._ax = self._ay = 0.0
        self._lx = self._ly = _NAN
        self._every = max(self._w, 64)
        self.count = 0

    def update(self, y: float, x: float) -> None:
        """Add one row (skipped unless both values are finite)."""
        if x - x != 0.0 or y - y != 0.0:
            return
        self.count += 1
        if self.count == 1:
            self._ax, self._ay = x, y
        self._rx = self._rx + 1 if x == self._lx else 1
        self._ry = self._ry + 1 if y == self._ly else 1
        self._lx, self._ly = x, y
        w, n, pos = self._w, self._n, self._pos
        mx, my = self._mx, self._my
        xc, yc = x - self._ax, y - self._ay
        if n < w:
            self._bx[pos] = x
            self._by[pos] = y
            n += 1
            self._n = n
            dx, dy = xc - mx, yc - my
            mx += dx / n
            my += dy / n
            mxx = self._mxx + dx * (xc - mx)
            myy = self._myy + dy * (yc - my)
            mxy = self._mxy + dx * (yc - my)
        else:
            ox, oy = self._bx[pos] - self._ax, self._by[pos] - self._ay
            self._bx[pos] = x
            self._by[pos] = y
            ddx, ddy = xc - ox, yc - oy
            ux, uy, vx, vy = xc - mx, yc - my, ox - mx, oy - my
            mxx = self._mxx + ux * ux - vx * vx - ddx * ddx / w
            myy = self._myy + uy * uy - vy * vy - ddy * ddy / w
            mxy = self._mxy + ux * uy - vx * vy - ddx * ddy / w
            mx += ddx / w
            my += ddy / w
        pos += 1
        self._pos = 0 if pos == w else pos
        cx, cy = self._rx >= n, self._ry >= n
        if cx:
            self._ax, mx, mxx, mxy = x, 0.0, 0.0, 0.0
        elif mxx < 0.0:
            mxx = 0.0
        if cy:
            self._ay, my, myy, mxy = y, 0.0, 0.0, 0.0
        elif myy < 0.0:
            myy = 0.0
        self._mx, self._my, self._mxx, self._myy, self._mxy = mx, my, mxx, myy, mxy
        if mxx > self._px:
            self._px = mxx
        if myy > self._py:
            self._py = myy
        self._since += 1
        if (
            self._since >= self._every
            or (mxx < _GUARD * self._px and not cx)
            or (myy < _GUARD * self._py and not cy)
        ):
            self._exact()

    def _exact(self) -> None:
        self._since = 0
        n = self._n
        cx, cy = self._rx >= n, self._ry >= n
        ax, ay = self._lx, self._ly
        xs = [v - ax for v in self._bx[:n]]
        ys = [v - ay for v in self._by[:n]]
        mx = 0.0 if cx else math.fsum(xs) / n
        my = 0.0 if cy else math.fsum(ys) / n
        dxs = [v - mx for v in xs]
        dys = [v - my for v in ys]
        self._ax, self._ay, self._mx, self._my = ax, ay, mx, my
        self._mxx = 0.0 if cx else math.fsum([a * a for a in dxs])
        self._myy = 0.0 if cy else math.fsum([b * b for b in dys])
        self._mxy = 0.0 if (cx or cy) else math.fsum([a * b for a, b in zip(dxs, dys, strict=True)])
        self._px, self._py = self._mxx, self._myy


class RollingHedgeRatio(_PairWindow):
    """OLS slope of ``y`` on ``x`` (with constant) over the last ``window`` valid rows.

    Twin of :func:`lq.analytics.rolling_hedge_ratio`; ``alpha`` is the intercept.

    Examples
    --------
    >>> h = RollingHedgeRatio(3)
    >>> for x in (1.0, 2.0, 4.0):
    ...     h.update(3.0 * x + 1.0, x)
    >>> round(h.value, 12), round(h.alpha, 12)
    (3.0, 1.0)
    """

    __slots__ = ()

    @property
    def value(self) -> float:
        """Current hedge ratio (NaN in warm-up or when x is constant)."""
        if self._n < self._w or self._mxx == 0.0:
            return _NAN
        return self._mxy / self._mxx

    @property
    def alpha(self) -> float:
        """Current intercept ``mean(y) - beta * mean(x)``."""
        return self._ay + self._my - self.value * (self._ax + self._mx)


class RollingCorrelation(_PairWindow):
    """Pearson correlation over the last ``window`` valid rows (twin of
    :func:`lq.analytics.rolling_correlation`).

    Examples
    --------
    >>> c = RollingCorrelation(3)
    >>> for y, x in ((1.0, 2.0), (2.0, 4.0), (3.0, 6.0)):
    ...     c.update(y, x)
    >>> c.value
    1.0
    """

    __slots__ = ()

    @property
    def value(self) -> float:
        """Current correlation in [-1, 1] (NaN when either side is constant)."""
        if self._n < self._w or self._mxx == 0.0 or self._myy == 0.0:
            return _NAN
        r = self._mxy / math.sqrt(self._mxx * self._myy)
        return 1.0 if r > 1.0 else (-1.0 if r < -1.0 else r)


class KalmanHedgeRatio:
    """Kalman-filter hedge ratio with random-walk ``(beta, alpha)``; twin of
    :func:`lq.analytics.kalman_hedge_ratio` (same model and parameters).

    ``value`` is the filtered ``beta`` after the last update; ``alpha`` the intercept;
    ``prior_spread`` the last innovation ``y - (beta * x + alpha)`` computed *before* the
    update (a look-ahead-free spread).

    Examples
    --------
    >>> k = KalmanHedgeRatio(delta=0.0, obs_var=1e-6)
    >>> for i in range(200):
    ...     x = 1.0 + i / 199
    ...     k.update(0.5 + 2.0 * x, x)
    >>> round(k.value, 4)
    2.0
    """

    __slots__ = ("_a", "_b", "_p11", "_p12", "_p22", "_q", "_r", "count", "prior_spread")

    def __init__(
        self, *, delta: float = 1e-4, obs_var: float = 1e-3, initial_var: float = 1e4
    ) -> None:
        if not (0.0 <= delta < 1.0):
            raise ValidationError("delta", delta, "must be in [0, 1)")
        if not obs_var > 0.0:
            raise ValidationError("obs_var", obs_var, "must be > 0")
        self._q = delta / (1.0 - delta)
        self._r = obs_var
        self._b = self._a = 0.0
        self._p11 = self._p22 = float(initial_var)
        self._p12 = 0.0
        self.count = 0
        self.prior_spread = _NAN

    def update(self, y: float, x: float) -> None:
        """Filter one row (skipped unless both values are finite)."""
        if x - x != 0.0 or y - y != 0.0:
            return
        self.count += 1
        q = self._q
        p11, p12, p22 = self._p11 + q, self._p12, self._p22 + q
        f0 = p11 * x + p12
        f1 = p12 * x + p22
        s = x * f0 + f1 + self._r
        k0, k1 = f0 / s, f1 / s
        e = y - (self._b * x + self._a)
        self.prior_spread = e
        self._b += k0 * e
        self._a += k1 * e
        self._p11 = p11 - k0 * f0
        self._p12 = p12 - k0 * f1
        self._p22 = p22 - k1 * f1

    @property
    def value(self) -> float:
        """Filtered hedge ratio (NaN before the first update)."""
        return self._b if self.count else _NAN

    @property
    def alpha(self) -> float:
        """Filtered intercept."""
        return self._a if self.count else _NAN


class SymbolIndicators:
    """The live indicator set of one symbol: EMA, RSI, rolling mean/std/z-score, Bollinger.

    One ``update(price)`` per bar (or tick); read the attributes' ``value``s or
    :meth:`snapshot`.

    Examples
    --------
    >>> s = SymbolIndicators(window=3, ema_span=2, rsi_window=2)
    >>> for p in (1.0, 2.0, 3.0):
    ...     s.update(p)
    >>> s.snapshot()["sma"]
    2.0
    """

    __slots__ = ("_k", "ema", "moments", "rsi")

    def __init__(
        self, *, window: int = 20, ema_span: int = 20, rsi_window: int = 14, k: float = 2.0
    ) -> None:
        self.ema = EMA(ema_span)
        self.rsi = RSI(rsi_window)
        self.moments = ZScore(window)
        self._k = k

    def update(self, price: float) -> None:
        """Feed one price to every indicator."""
        self.ema.update(price)
        self.rsi.update(price)
        self.moments.update(price)

    def snapshot(self) -> dict[str, float]:
        """Current values: ema, rsi, sma, std, zscore, upper, lower (std with ddof=1)."""
        m = self.moments
        mean, sd = m.mean, m.std
        return {
            "ema": self.ema.value,
            "rsi": self.rsi.value,
            "sma": mean,
            "std": sd,
            "zscore": m.zscore,
            "upper": mean + self._k * sd,
            "lower": mean - self._k * sd,
        }


class PairIndicators:
    """The live set of one pair: rolling OLS and Kalman hedge ratios, correlation, spread z.

    ``update(y, x)`` takes prices; with ``transform="log"`` (default) their logs are used.
    The spread is ``y - alpha - beta * x`` with the rolling OLS estimate at that row, and its
    z-score runs over ``window`` rows.

    Examples
    --------
    >>> p = PairIndicators(window=3, transform="none")
    >>> for x in (1.0, 2.0, 4.0):
    ...     p.update(2.0 * x, x)
    >>> round(p.snapshot()["hedge_ratio"], 12)
    2.0
    """

    __slots__ = ("_log", "correlation", "hedge", "kalman", "spread_z")

    def __init__(
        self,
        *,
        window: int = 300,
        transform: Literal["log", "none"] = "log",
        delta: float = 1e-4,
        obs_var: float = 1e-3,
    ) -> None:
        if transform not in ("log", "none"):
            raise ValidationError("transform", transform, "must be 'log' or 'none'")
        self._log = transform == "log"
        self.hedge = RollingHedgeRatio(window)
        self.correlation = RollingCorrelation(window)
        self.kalman = KalmanHedgeRatio(delta=delta, obs_var=obs_var)
        self.spread_z = ZScore(window)

    def update(self, y: float, x: float) -> None:
        """Feed one aligned pair of prices (skipped unless both are finite and > 0 for log)."""
        if self._log:
            if not (y > 0.0 and x > 0.0):
                return
            y, x = math.log(y), math.log(x)
        self.hedge.update(y, x)
        self.correlation.update(y, x)
        self.kalman.update(y, x)
        b = self.hedge.value
        if b == b:
            self.spread_z.update(y - self.hedge.alpha - b * x)

    def snapshot(self) -> dict[str, float]:
        """Current values: hedge_ratio, alpha, correlation, kalman_beta, spread_zscore."""
        return {
            "hedge_ratio": self.hedge.value,
            "alpha": self.hedge.alpha,
            "correlation": self.correlation.value,
            "kalman_beta": self.kalman.value,
            "spread_zscore": self.spread_z.value,
        }


# cross-venue twins live in their own module (issue 12); re-exported so the live path has one import
from .streaming_venues import DislocationBps  # noqa: E402

__all__ += ["DislocationBps"]
