"""Targets: what a forecast made at bar ``t``'s close is scored against.

A forecast is made with data up to bar ``t``'s close and is about the bars after it, up
to the **horizon**:

* ``horizon=h`` (an int): the next ``h`` bars, ``t+1 .. t+h`` (bars that exist: seconds
  without trades have no 1 s bar, so ``h`` bars may span more than ``h`` seconds);
* ``horizon="30s"`` (a duration): the bars whose open time is at most 30 s after bar
  ``t``'s open, i.e. the bars closing within 30 s of bar ``t``'s close.

Kinds (``log`` returns of closes throughout):

``"sign"``
    1 if ``log(close[end] / close[t]) > 0``, 0 if it is < 0. A zero move is dropped
    (``zero="drop"``, NaN) or counted as not up (``zero="down"``).
``"return"``
    ``log(close[end] / close[t])``.
``"volatility"``
    realised volatility over the horizon, ``sqrt(sum of squared bar log returns t+1..end)``
    (not annualised).

A target is *known* once the horizon has passed in the data: for a bar horizon, once bar
``t + h`` exists; for a time horizon, once a bar opening at or after ``open[t] + horizon``
exists. Unknown targets are NaN (the last rows). :attr:`Target.end` holds the position of
the bar whose close resolves each target; walk-forward uses it to purge training rows whose
label reaches into the test period.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import numpy as np
import pandas as pd

from lq.backtest._config import Config, check_choice
from lq.errors import ValidationError
from lq.forecast._common import bar_times_us, check_bars

__all__ = ["Target", "TargetKind", "TargetSpec", "make_target"]

TargetKind = Literal["sign", "return", "volatility"]
ZeroPolicy = Literal["drop", "down"]
Task = Literal["classification", "regression"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TargetSpec(Config):
    """What to forecast.

    Parameters
    ----------
    kind
        ``"sign"``, ``"return"`` or ``"volatility"`` (see the module docstring).
    horizon
        Bars (an int >= 1) or a duration of exchange time (``"30s"``, ``"5m"``).
    zero
        For ``"sign"``: ``"drop"`` a zero move (the row is not scored) or count it as
        ``"down"`` (not up).
    """

    kind: TargetKind = "sign"
    horizon: int | str = 1
    zero: ZeroPolicy = "drop"

    def _validate(self) -> None:
        check_choice("TargetSpec", "kind", self.kind, ("sign", "return", "volatility"))
        check_choice("TargetSpec", "zero", self.zero, ("drop", "down"))
        h = self.horizon
        if isinstance(h, bool) or not isinstance(h, int | str):
            raise ValidationError("TargetSpec.horizon", h, "expected bars (int) or e.g. '30s'")
        if isinstance(h, int) and h < 1:
            raise ValidationError("TargetSpec.horizon", h, "must be >= 1 bar")
        if isinstance(h, str):
            self.horizon_us  # noqa: B018 - raises on a bad duration

    @property
    def task(self) -> Task:
        """``"classification"`` for sign targets, else ``"regression"``."""
        return "classification" if self.kind == "sign" else "regression"

    @property
    def horizon_us(self) -> int | None:
        """The horizon in µs for a time horizon, None for a bar horizon."""
        if isinstance(self.horizon, int):
            return None
        from lq.analytics.bars import interval_us

        try:
            return interval_us(self.horizon)
        except ValidationError:
            raise ValidationError(
                "TargetSpec.horizon", self.horizon, "expected bars (int) or e.g. '30s', '5m'"
            ) from None

    def horizon_bars(self, interval_us: int) -> float:
        """The horizon in bar intervals (``horizon`` itself for a bar horizon)."""
        hu = self.horizon_us
        return float(self.horizon) if hu is None else hu / float(interval_us)

    def overlap(self, interval_us: int) -> int:
        """How many consecutive targets share bars (>= 1): the ``h`` of the DM test."""
        return max(1, math.ceil(self.horizon_bars(interval_us) - 1e-9))

    def describe(self) -> str:
        h = f"{self.horizon} bars" if isinstance(self.horizon, int) else self.horizon
        return f"{self.kind} over {h}"


@dataclasses.dataclass(frozen=True)
class Target:
    """A target series and where each value is resolved.

    Attributes
    ----------
    y
        The target per bar (NaN when unknown or dropped), on the bars' index.
    end
        Position of the bar whose close resolves the target (-1 when not yet known).
    end_ts
        Close time (µs) of that bar: when the target becomes known (-1 when unknown).
    spec
        The :class:`TargetSpec`.
    """

    y: pd.Series
    end: np.ndarray
    end_ts: np.ndarray
    spec: TargetSpec


def _end_positions(ts: np.ndarray, spec: TargetSpec) -> np.ndarray:
    n = ts.size
    pos = np.arange(n)
    hu = spec.horizon_us
    if hu is None:
        end = pos + int(spec.horizon)
        end[end > n - 1] = -1
        return end
    if n == 0:
        return pos
    end = np.searchsorted(ts, ts + hu, side="right") - 1
    end[ts[-1] < ts + hu] = -1  # a later bar may still arrive inside the horizon
    return end


def _window_sums(x: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """``x[start:stop].sum()`` per row (``stop > start``), exact per window (no cumsum)."""
    if start.size == 0:
        return np.zeros(0)
    idx = np.empty(2 * start.size, dtype=np.intp)
    idx[0::2] = start
    idx[1::2] = stop
    xp = np.append(x, 0.0)  # stop may be len(x)
    return np.add.reduceat(xp, idx)[0::2]


def make_target(bars: pd.DataFrame, spec: TargetSpec | None = None, **kw: Any) -> Target:
    """The target of every bar (see the module docstring).

    Parameters
    ----------
    bars
        Bars with a ``close`` column, indexed by open time (UTC) or with a ``ts`` column.
    spec
        A :class:`TargetSpec`, or its fields as keywords (``kind=``, ``horizon=``, ``zero=``).

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=4, freq="1s", tz="UTC")
    >>> bars = pd.DataFrame({"close": [1.0, 2.0, 2.0, 1.0]}, index=idx)
    >>> make_target(bars, kind="sign").y.tolist()
    [1.0, nan, 0.0, nan]
    >>> make_target(bars, kind="return", horizon="2s").end.tolist()
    [2, 3, -1, -1]
    """
    if spec is None:
        spec = TargetSpec(**kw)
    elif kw or not isinstance(spec, TargetSpec):
        raise ValidationError(
            "spec", type(spec).__name__, "give a TargetSpec or keywords, not both"
        )
    check_bars(bars, ("close",), what="a target")
    close = bars["close"].to_numpy(dtype=np.float64)
    if close.size and not bool(np.all(np.isfinite(close) & (close > 0))):
        raise ValidationError("bars.close", "non-positive", "closes must be finite and > 0")
    ts = bar_times_us(bars)
    n = close.size
    end = _end_positions(ts, spec)
    known = end >= 0
    lc = np.log(close)
    y = np.full(n, np.nan)
    rows = np.flatnonzero(known)
    e = end[rows]
    if spec.kind in ("sign", "return"):
        r = lc[e] - lc[rows]
        if spec.kind == "return":
            y[rows] = r
        else:
            s = np.where(r > 0, 1.0, 0.0)
            if spec.zero == "drop":
                s[r == 0] = np.nan
            y[rows] = s
    else:
        r1 = np.empty(n)
        r1[:1] = 0.0
        r1[1:] = np.diff(lc)
        sq = r1 * r1
        moved = e > rows
        out = np.zeros(rows.size)
        if moved.any():
            out[moved] = _window_sums(sq, rows[moved] + 1, e[moved] + 1)
        y[rows] = np.sqrt(np.maximum(out, 0.0))
    step = int(bars.attrs.get("interval_us") or (np.diff(ts).min() if n > 1 else 0))
    end_ts = np.where(known, ts[np.maximum(end, 0)] + step, -1).astype(np.int64)
    return Target(
        y=pd.Series(y, index=bars.index, name=f"target_{spec.kind}"),
        end=end.astype(np.int64),
        end_ts=end_ts,
        spec=spec,
    )
