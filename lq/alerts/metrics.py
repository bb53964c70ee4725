"""Streaming metric state per rule, built on :mod:`lq.analytics.streaming` (O(1) per sample).

Two parts, both pure (no I/O, no clocks):

* :class:`Sampler` turns trades into samples on a clock of ``sample`` seconds of exchange
  time: the last price of each bucket, stamped with the bucket's **end** (``sample=0``: every
  trade is a sample, stamped with its own time). A pair sampler emits, at the end of every
  bucket in which either leg traded, both legs' last prices (carried forward), once both have
  traded. This is exactly "1 s bars, outer-joined and forward-filled", which is what
  :mod:`lq.alerts.history` reads from the store, so live and history see the same samples.
* A metric (``make_metric(rule)``) takes those samples: ``update(ts, prices)`` then
  ``value``. Every statistic comes from :mod:`lq.analytics.streaming` (``ZScore``, ``RSI``,
  ``RollingMean``, ``RollingHedgeRatio``, ``KalmanHedgeRatio``, ``RollingCorrelation``); GARCH
  from :func:`lq.analytics.garch_forecast` at a slow cadence (see :class:`GarchVolMetric`).

Samples with ``ts <= last_ts`` are ignored, so a metric warmed up from stored history can
join a live sampler without counting a sample twice.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

from lq.alerts.rules import Rule
from lq.analytics import streaming as st

__all__ = [
    "DislocationMetric",
    "GarchVolMetric",
    "Metric",
    "Sampler",
    "VenueSampler",
    "make_metric",
]

_NAN = math.nan
_SECONDS_PER_YEAR = 365 * 24 * 3600


class Metric(Protocol):
    """A rule's metric: fed samples, read ``value``."""

    last_ts: int

    def update(self, ts: int, prices: tuple[float, ...]) -> None: ...

    @property
    def value(self) -> float: ...


class Sampler:
    """Trades -> samples for one clock (``symbols``, ``sample_us``).

    ``on_trade(leg, price, ts)`` returns ``(sample_ts, prices)`` when a bucket closes (or on
    every trade when ``sample_us == 0``), else None. Late trades (an earlier bucket than the
    current one) are ignored.

    Examples
    --------
    >>> s = Sampler(n_legs=1, sample_us=1_000_000)
    >>> s.on_trade(0, 10.0, 100), s.on_trade(0, 11.0, 900_000), s.on_trade(0, 12.0, 1_200_000)
    (None, None, (1000000, (11.0,)))
    """

    __slots__ = ("_bucket", "_dirty", "_last", "_n", "_us")

    def __init__(self, *, n_legs: int, sample_us: int) -> None:
        self._n = n_legs
        self._us = sample_us
        self._last = [_NAN] * n_legs
        self._bucket = -1
        self._dirty = False

    def on_trade(self, leg: int, price: float, ts: int) -> tuple[int, tuple[float, ...]] | None:
        us = self._us
        last = self._last
        if us == 0:
            last[leg] = price
            if self._n == 1:
                return ts, (price,)
            return (ts, tuple(last)) if last[0] == last[0] and last[1] == last[1] else None
        b = ts // us
        if b == self._bucket:
            last[leg] = price
            self._dirty = True
            return None
        if b < self._bucket:
            return None
        out = None
        if self._dirty and all(v == v for v in last):
            out = ((self._bucket + 1) * us, tuple(last))
        self._bucket = b
        last[leg] = price
        self._dirty = True
        return out


class VenueSampler(Sampler):
    """A pair sampler for one asset on two venues: like :class:`Sampler`, and each sample also
    carries when each leg last traded, as the open time (µs) of that trade's bucket:
    ``(ts, (p_a, p_b, bucket_a, bucket_b))``, so a metric can leave out a leg whose price is
    stale (the venue stopped trading) instead of comparing it as if it were current.

    Examples
    --------
    >>> s = VenueSampler(n_legs=2, sample_us=1_000_000)
    >>> s.on_trade(0, 100.0, 100), s.on_trade(1, 101.0, 200), s.on_trade(0, 102.0, 1_500_000)
    (None, None, (1000000, (100.0, 101.0, 0.0, 0.0)))
    >>> s.on_trade(0, 103.0, 2_100_000)                 # leg b last traded in bucket 0
    (2000000, (102.0, 101.0, 1000000.0, 0.0))
    """

    __slots__ = ("_seen",)

    def __init__(self, *, n_legs: int, sample_us: int) -> None:
        if n_legs != 2 or sample_us <= 0:
            raise ValueError("a venue sampler has two legs and a time clock")
        super().__init__(n_legs=n_legs, sample_us=sample_us)
        self._seen = [0, 0]

    def on_trade(self, leg: int, price: float, ts: int) -> tuple[int, tuple[float, ...]] | None:
        us = self._us
        b = ts // us
        if b < self._bucket:
            return None
        seen = self._seen
        out = None
        if (
            b != self._bucket
            and self._dirty
            and self._last[0] == self._last[0]
            and (self._last[1] == self._last[1])
        ):
            p = self._last
            out = ((self._bucket + 1) * us, (p[0], p[1], float(seen[0]), float(seen[1])))
        self._bucket = b
        self._last[leg] = price
        self._dirty = True
        seen[leg] = b * us
        return out


class _Base:
    __slots__ = ("last_ts",)

    def __init__(self) -> None:
        self.last_ts = -1


class PriceMetric(_Base):
    __slots__ = ("_v",)

    def __init__(self) -> None:
        super().__init__()
        self._v = _NAN

    def update(self, ts: int, prices: tuple[float, ...]) -> None:
        if ts <= self.last_ts:
            return
        self.last_ts = ts
        self._v = prices[0]

    @property
    def value(self) -> float:
        return self._v


class ReturnMetric(_Base):
    """Log return over the last ``lookback`` samples."""

    __slots__ = ("_buf",)

    def __init__(self, lookback: int) -> None:
        super().__init__()
        self._buf: deque[float] = deque(maxlen=lookback + 1)

    def update(self, ts: int, prices: tuple[float, ...]) -> None:
        if ts <= self.last_ts or not prices[0] > 0.0:
            return
        self.last_ts = ts
        self._buf.append(math.log(prices[0]))

    @property
    def value(self) -> float:
        b = self._buf
        return b[-1] - b[0] if len(b) == b.maxlen else _NAN


class _Wrap(_Base):
    """A one-input streaming statistic fed the price."""

    __slots__ = ("_s",)

    def __init__(self, stat: st.ZScore | st.RSI) -> None:
        super().__init__()
        self._s = stat

    def update(self, ts: int, prices: tuple[float, ...]) -> None:
        if ts <= self.last_ts:
            return
        self.last_ts = ts
        self._s.update(prices[0])

    @property
    def value(self) -> float:
        return self._s.value


class RealizedVolMetric(_Base):
    """``sqrt(mean(r^2 over window) * samples_per_year)``: twin of ``realized_vol(window=)``."""

    __slots__ = ("_m", "_ppy", "_prev")

    def __init__(self, window: int, sample_s: float) -> None:
        super().__init__()
        self._m = st.RollingMean(window)
        self._ppy = _SECONDS_PER_YEAR / sample_s
        self._prev = _NAN

    def update(self, ts: int, prices: tuple[float, ...]) -> None:
        if ts <= self.last_ts or not prices[0] > 0.0:
            return
        self.last_ts = ts
        lp = math.log(prices[0])
        if self._prev == self._prev:
            r = lp - self._prev
            self._m.update(r * r)
        self._prev = lp

    @property
    def value(self) -> float:
        m = self._m.value
        return math.sqrt(max(m, 0.0) * self._ppy) if m == m else _NAN


class GarchVolMetric(_Base):
    """GARCH(1,1) one-step volatility forecast, annualised; refitted every ``refit`` samples.

    A fit takes tens of milliseconds, too slow for the per-tick path: ``update`` only keeps
    the last ``window`` log returns and counts samples; when :attr:`due` is true the caller
    runs :meth:`fit` (the engine: on a worker thread, at most one fit per rule in flight;
    history: inline) and then reads ``value``. Live, a GARCH rule is therefore evaluated at
    the cadence of its refits, stamped with the sample time of the last return used.
    """

    __slots__ = ("_n", "_prev", "_refit", "_rets", "_sample_s", "_v", "fit_ts")

    def __init__(self, window: int, refit: int, sample_s: float) -> None:
        super().__init__()
        self._rets: deque[float] = deque(maxlen=window)
        self._refit = refit
        self._sample_s = sample_s
        self._prev = _NAN
        self._n = 0
        self._v = _NAN
        self.fit_ts = -1

    def update(self, ts: int, prices: tuple[float, ...]) -> None:
        if ts <= self.last_ts or not prices[0] > 0.0:
            return
        self.last_ts = ts
        lp = math.log(prices[0])
        if self._prev == self._prev:
            self._rets.append(lp - self._prev)
            self._n += 1
        self._prev = lp

    @property
    def due(self) -> bool:
        """A full window and ``refit`` new returns since the last fit."""
        return len(self._rets) == self._rets.maxlen and self._n >= self._refit

    def take(self) -> tuple[int, list[float]]:
        """The returns to fit and their sample time; resets the refit counter."""
        self._n = 0
        return self.last_ts, list(self._rets)

    def fit(self, returns: list[float]) -> float:
        """Fit and return the annualised one-step volatility (pure; safe on a thread)."""
        from lq.analytics import garch_forecast

        try:
            f = garch_forecast(returns, horizon=1, interval=round(self._sample_s * 1_000_000))
        except Exception:  # a flat or degenerate window: no value this time
            return _NAN
        ann = f.annualized_volatility
        return float(ann[0]) if ann is not None else _NAN

    def set_value(self, ts: int, v: float) -> None:
        self.fit_ts = ts
        self._v = v

    @property
    def value(self) -> float:
        return self._v


class SpreadZMetric(_Base):
    """Z-score of the log spread ``y - alpha - beta x`` (as :class:`PairIndicators` for ols)."""

    __slots__ = ("_h", "_kalman", "_z")

    def __init__(self, window: int, method: str) -> None:
        super().__init__()
        self._kalman = method == "kalman"
        self._h: st.RollingHedgeRatio | st.KalmanHedgeRatio = (
            st.KalmanHedgeRatio() if self._kalman else st.RollingHedgeRatio(window)
        )
        self._z = st.ZScore(window)

    def update(self, ts: int, prices: tuple[float, ...]) -> None:
        y, x = prices
        if ts <= self.last_ts or not (y > 0.0 and x > 0.0):
            return
        self.last_ts = ts
        y, x = math.log(y), math.log(x)
        h = self._h
        h.update(y, x)
        b = h.value
        if b == b:
            self._z.update(y - h.alpha - b * x)

    @property
    def value(self) -> float:
        return self._z.value

    @property
    def hedge_ratio(self) -> float:
        """The current beta of ``log y`` on ``log x`` (NaN while warming up)."""
        return self._h.value


class CorrelationMetric(_Base):
    """Rolling correlation of the legs' log returns."""

    __slots__ = ("_c", "_px", "_py")

    def __init__(self, window: int) -> None:
        super().__init__()
        self._c = st.RollingCorrelation(window)
        self._py = self._px = _NAN

    def update(self, ts: int, prices: tuple[float, ...]) -> None:
        y, x = prices
        if ts <= self.last_ts or not (y > 0.0 and x > 0.0):
            return
        self.last_ts = ts
        ly, lx = math.log(y), math.log(x)
        if self._py == self._py:
            self._c.update(ly - self._py, lx - self._px)
        self._py, self._px = ly, lx

    @property
    def value(self) -> float:
        return self._c.value


class HedgeDriftMetric(_Base):
    """``beta_t - beta_{t - lookback}`` of the log-price hedge ratio."""

    __slots__ = ("_betas", "_h")

    def __init__(self, window: int, method: str, lookback: int) -> None:
        super().__init__()
        self._h: st.RollingHedgeRatio | st.KalmanHedgeRatio = (
            st.KalmanHedgeRatio() if method == "kalman" else st.RollingHedgeRatio(window)
        )
        self._betas: deque[float] = deque(maxlen=lookback + 1)

    def update(self, ts: int, prices: tuple[float, ...]) -> None:
        y, x = prices
        if ts <= self.last_ts or not (y > 0.0 and x > 0.0):
            return
        self.last_ts = ts
        self._h.update(math.log(y), math.log(x))
        b = self._h.value
        if b == b:
            self._betas.append(b)

    @property
    def value(self) -> float:
        b = self._betas
        return b[-1] - b[0] if len(b) == b.maxlen else _NAN


class DislocationMetric(_Base):
    """Dislocation in bps of venue ``a`` against reference venue ``b``: ``(p_a / p_b - 1)
    · 1e4`` on each leg's last price, raw (each in its own quote currency), NaN while either
    leg has not traded within ``max_age_us`` of the sample time (samples from
    :class:`VenueSampler`). The same formula as :func:`lq.analytics.dislocation` (simple).
    """

    __slots__ = ("_age", "_v")

    def __init__(self, max_age_us: int) -> None:
        super().__init__()
        self._age = max_age_us
        self._v = _NAN

    def update(self, ts: int, prices: tuple[float, ...]) -> None:
        if ts <= self.last_ts:
            return
        self.last_ts = ts
        pa, pb, ba, bb = prices
        oldest = ts - self._age
        if ba < oldest or bb < oldest or not (pa > 0.0 and pb > 0.0):
            self._v = _NAN
            return
        self._v = (pa / pb - 1.0) * 1e4

    @property
    def value(self) -> float:
        return self._v


class EventMetric(_Base):
    """Staleness / unfilled gap: the engine sets the value directly."""

    __slots__ = ("_v",)

    def __init__(self) -> None:
        super().__init__()
        self._v = _NAN

    def update(self, ts: int, prices: tuple[float, ...]) -> None:
        if ts <= self.last_ts:
            return
        self.last_ts = ts
        self._v = prices[0]

    @property
    def value(self) -> float:
        return self._v


def make_metric(rule: Rule) -> Metric:
    """A fresh metric state for ``rule``."""
    m, w = rule.metric, rule.window
    if m == "price":
        return PriceMetric()
    if m == "return":
        return ReturnMetric(rule.effective_lookback)
    if m == "zscore":
        return _Wrap(st.ZScore(w))
    if m == "rsi":
        return _Wrap(st.RSI(w))
    if m == "volatility":
        if rule.vol_method == "garch":
            return GarchVolMetric(w, rule.refit, rule.sample)
        return RealizedVolMetric(w, rule.sample)
    if m == "spread_zscore":
        return SpreadZMetric(w, rule.hedge_method)
    if m == "correlation":
        return CorrelationMetric(w)
    if m == "hedge_drift":
        return HedgeDriftMetric(w, rule.hedge_method, rule.effective_lookback)
    if m == "dislocation_bps":
        return DislocationMetric(rule.max_age_samples * rule.sample_us)
    return EventMetric()
