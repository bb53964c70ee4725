"""Private helpers shared by the analytics modules: input coercion, checks, the NaN policy.

The NaN policy of every windowed or recursive statistic in :mod:`lq.analytics` is *skip*:
a missing value (NaN or ±inf) leaves the state unchanged, windows count valid observations
only, and the output at a missing position repeats the last output. :func:`on_valid` applies
that policy to any function of a gap-free array.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from lq.errors import ValidationError

from ._typing import Float64Array

__all__ = [
    "as_array",
    "check_choice",
    "check_int",
    "check_positive_prices",
    "ffill_positions",
    "on_valid",
    "on_valid_pair",
    "scatter",
    "wrap",
]


def as_array(x: Any, field: str) -> tuple[Float64Array, pd.Index | None, Any]:
    """Return ``(float64 values, index or None, name)`` for a Series, array or list."""
    if isinstance(x, pd.DataFrame):
        raise ValidationError(field, type(x).__name__, "expected one column (a Series)")
    if isinstance(x, pd.Series):
        values = x.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, x.index, x.name
    try:
        values = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValidationError(field, type(x).__name__, f"not numeric: {exc}") from None
    if values.ndim != 1:
        raise ValidationError(field, values.shape, "expected a one-dimensional series")
    return values, None, None


def wrap(values: Float64Array, index: pd.Index | None, name: Any = None) -> Any:
    """Return ``values`` as a Series on ``index`` if the input was a Series, else the array."""
    if index is None:
        return values
    return pd.Series(values, index=index, name=name)


def check_int(value: Any, field: str, *, minimum: int = 1) -> int:
    """Refuse a window/lag/span that is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValidationError(field, value, f"must be an integer >= {minimum}")
    return int(value)


def check_choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    """Refuse a string option outside ``choices``."""
    if value not in choices:
        raise ValidationError(field, value, f"must be one of {', '.join(map(repr, choices))}")
    return str(value)


def check_positive_prices(values: Float64Array, field: str) -> None:
    """Raise :class:`ValidationError` naming the first non-positive price."""
    bad = values <= 0.0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValidationError(
            field, float(values[i]), f"prices must be > 0 (first offending value at position {i})"
        )


def ffill_positions(mask: np.ndarray) -> np.ndarray:
    """For each position, the index of the last position <= it where ``mask`` is True (or -1)."""
    idx = np.where(mask, np.arange(mask.size), -1)
    return np.maximum.accumulate(idx) if idx.size else idx


def scatter(out_valid: Float64Array, mask: np.ndarray) -> Float64Array:
    """Place results computed on ``values[mask]`` back at full length, forward-filled."""
    out = np.empty(mask.size)
    if out_valid.size == 0:
        out.fill(np.nan)
        return out
    first = int(np.argmax(mask))  # positions before the first valid one stay NaN
    out[:first] = np.nan
    if out_valid.size == mask.size - first:  # only leading gaps (a warm-up): no gather
        out[first:] = out_valid
        return out
    # the rank of the last valid position at or before each position (>= 0 from `first`)
    rank = np.cumsum(mask[first:], dtype=np.intp)
    rank -= 1
    np.take(out_valid, rank, out=out[first:])
    return out


def on_valid(values: Float64Array, fn: Callable[[Float64Array], Float64Array]) -> Float64Array:
    """Apply ``fn`` to the finite values only; missing positions repeat the last output."""
    mask = np.isfinite(values)
    if mask.all():
        return np.asarray(fn(values), dtype=np.float64)
    return scatter(np.asarray(fn(values[mask]), dtype=np.float64), mask)


def on_valid_pair(
    y: Float64Array,
    x: Float64Array,
    fn: Callable[[Float64Array, Float64Array], Float64Array],
) -> Float64Array:
    """Like :func:`on_valid` for two aligned series: a row counts when both are finite."""
    mask = np.isfinite(y) & np.isfinite(x)
    if mask.all():
        return np.asarray(fn(y, x), dtype=np.float64)
    return scatter(np.asarray(fn(y[mask], x[mask]), dtype=np.float64), mask)
