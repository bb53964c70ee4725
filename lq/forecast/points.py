"""What the live forecast path hands on: a forecast made, a forecast resolved, and the loss of
one row. No heavy imports (the collector loads this module whether or not a model is
deployed; :mod:`lq.forecast.live` and the lab load scikit-learn, statsmodels and arch)."""

from __future__ import annotations

import dataclasses
import math

__all__ = ["MIN_RESOLVED", "ForecastPoint", "Resolved", "point_loss"]

_EPS = 1e-15
#: Resolved forecasts needed before the live edge is reported: the Forecast tab's warning
#: and a ``forecast`` alert rule on ``output="edge"`` wait for this many (an edge from a
#: handful of forecasts is noise).
MIN_RESOLVED = 30


def point_loss(kind: str, y: float, f: float) -> float:
    """One row's primary loss (see :func:`lq.forecast.losses`)."""
    if kind == "sign":
        p = min(max(f, _EPS), 1.0 - _EPS)
        return -(y * math.log(p) + (1.0 - y) * math.log1p(-p))
    if kind == "return":
        return (y - f) ** 2
    v = max(f, 1e-300) ** 2
    return math.log(v) + y * y / v


@dataclasses.dataclass(frozen=True, slots=True)
class ForecastPoint:
    """A forecast made at a bar's close: ``ts`` is the bar's open time (µs), ``value`` the
    model's forecast and ``baseline`` the baseline's (NaN while features warm up)."""

    model: str
    symbol: str
    ts: int
    close_ts: int
    value: float
    baseline: float
    edge: float
    resolved: int


@dataclasses.dataclass(frozen=True, slots=True)
class Resolved:
    """What happened to the forecast of bar ``ts``: the realised target and both losses."""

    model: str
    ts: int
    realised: float
    loss: float
    baseline_loss: float
    hit: float
    baseline_hit: float
