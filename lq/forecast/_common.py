"""Private helpers of :mod:`lq.forecast`: bar times, checks shared by the modules."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lq.errors import ValidationError

__all__ = ["bar_times_us", "check_bars", "check_positive_int", "infer_interval_us"]


def bar_times_us(bars: pd.DataFrame) -> np.ndarray:
    """Bar open times as int64 µs since the epoch (UTC), from the ``ts`` column or the index."""
    if "ts" in bars.columns:
        return np.ascontiguousarray(bars["ts"].to_numpy(dtype=np.int64))
    idx = bars.index
    if isinstance(idx, pd.DatetimeIndex):
        if idx.tz is None:
            raise ValidationError("bars.index", "naive", "expected a tz-aware (UTC) DatetimeIndex")
        return np.ascontiguousarray(idx.tz_convert("UTC").as_unit("us").asi8)
    raise ValidationError(
        "bars", type(idx).__name__, "expected a ts column (µs) or a UTC DatetimeIndex"
    )


def infer_interval_us(bars: pd.DataFrame) -> int:
    """The bar interval: ``attrs["interval_us"]`` if set, else the smallest time step."""
    given = bars.attrs.get("interval_us")
    if given:
        return int(given)
    ts = bar_times_us(bars)
    if ts.size < 2:
        raise ValidationError("bars", ts.size, "need at least two bars to infer their interval")
    step = int(np.diff(ts).min())
    if step <= 0:
        raise ValidationError("bars.index", "unsorted", "bar times must strictly increase")
    return step


def check_bars(bars: Any, columns: tuple[str, ...] | list[str], *, what: str) -> pd.DataFrame:
    """Refuse anything but a bars DataFrame with ``columns`` and increasing times."""
    if not isinstance(bars, pd.DataFrame):
        raise ValidationError("bars", type(bars).__name__, "expected a bars DataFrame")
    missing = [c for c in columns if c not in bars.columns]
    if missing:
        raise ValidationError("bars.columns", list(bars.columns), f"{what} needs {missing}")
    ts = bar_times_us(bars)
    if ts.size > 1 and not bool(np.all(np.diff(ts) > 0)):
        raise ValidationError("bars.index", "unsorted", "bar times must strictly increase")
    return bars


def check_positive_int(value: Any, field: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValidationError(field, value, f"must be an integer >= {minimum}")
    return int(value)
