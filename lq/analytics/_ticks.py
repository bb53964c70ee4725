"""Private: one venue's irregular price (or quantity) series -> sorted int64 µs times + values.

Accepted shapes (the same for every cross-venue function, so a reader's output goes in as is):

* a ``pd.Series`` indexed by a tz-aware ``DatetimeIndex`` (converted to UTC µs) or by int µs;
* a ``pd.DataFrame`` with a ``ts`` column (int µs, as ``Store.ticks`` / ``Store.book_tickers``
  return) and the value columns the caller asks for (``price``; ``bid`` and ``ask`` for a mid);
* a tuple ``(ts, values)`` of array-likes (µs).

Rows are put in time order by a *stable* sort (rows sharing a time keep their input order, so
"the last of them" is well defined); rows whose value is NaN/inf are skipped (lq's NaN policy).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from lq.errors import ValidationError

from ._typing import Float64Array, PriceSource

__all__ = [
    "Ticks",
    "as_ticks",
    "as_venue_ticks",
    "asof",
    "check_names",
    "frame_column",
    "frame_ts",
    "time_index",
    "time_us",
]

Int64Array = np.ndarray


class Ticks:
    """Sorted times (int64 µs) and finite float64 values of one series (plain container)."""

    __slots__ = ("ts", "values")

    def __init__(self, ts: Int64Array, values: Float64Array) -> None:
        self.ts = ts
        self.values = values

    def __len__(self) -> int:
        return int(self.ts.size)


def _index_us(index: pd.Index, field: str) -> Int64Array:
    if isinstance(index, pd.DatetimeIndex):
        if index.tz is None:
            raise ValidationError(
                field,
                "naive DatetimeIndex",
                "times must be UTC: use s.tz_localize('UTC') (or int µs since the epoch)",
            )
        return np.asarray(index.tz_convert("UTC").as_unit("us").asi8, dtype=np.int64)
    if pd.api.types.is_integer_dtype(index.dtype):
        return np.asarray(index, dtype=np.int64)
    raise ValidationError(
        field,
        type(index).__name__,
        "index must be a tz-aware DatetimeIndex or int µs since the epoch",
    )


def _times(t: Any, field: str) -> Int64Array:
    """Tuple times: int µs, or datetimes (a DatetimeIndex must be tz-aware; numpy datetime64
    values are UTC by definition), never a datetime's raw nanoseconds read as µs."""
    if isinstance(t, pd.DatetimeIndex | pd.Series) and isinstance(
        t.dtype, pd.DatetimeTZDtype | np.dtypes.DateTime64DType
    ):
        return _index_us(pd.DatetimeIndex(t), field)
    arr = np.asarray(t)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[us]").astype(np.int64)
    if arr.dtype.kind == "f" and arr.size and not np.array_equal(arr, np.floor(arr)):
        raise ValidationError(field, "float times", "times must be whole µs since the epoch")
    return arr.astype(np.int64)


def frame_column(df: pd.DataFrame, name: str, field: str) -> Float64Array:
    if name not in df.columns:
        raise ValidationError(
            field, list(map(str, df.columns)), f"no {name!r} column (need 'ts' and {name!r})"
        )
    try:
        return df[name].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ValidationError(field, name, f"column is not numeric: {exc}") from None


def frame_ts(df: pd.DataFrame, field: str) -> Int64Array:
    if "ts" in df.columns:
        col = df["ts"]
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            return _index_us(pd.DatetimeIndex(col), field)
        if not pd.api.types.is_integer_dtype(col.dtype):
            raise ValidationError(field, str(col.dtype), "'ts' must be int µs since the epoch")
        return col.to_numpy(dtype=np.int64)
    return _index_us(df.index, field)


def as_ticks(
    x: Any, field: str, *, columns: tuple[str, ...] = ("price",), combine: str = "first"
) -> Ticks:
    """Coerce one series. ``columns`` are the DataFrame value columns; with two columns
    ``combine="mid"`` returns their mean (bid/ask -> mid)."""
    if isinstance(x, tuple) and len(x) == 2:
        try:
            ts = _times(x[0], field)
            values = np.asarray(x[1], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                field, "tuple", f"expected (int µs times, values): {exc}"
            ) from None
        if ts.ndim != 1 or ts.shape != values.shape:
            raise ValidationError(
                field, (ts.shape, values.shape), "times and values must be 1-D of equal length"
            )
    elif isinstance(x, pd.Series):
        ts = _index_us(x.index, field)
        try:
            values = x.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise ValidationError(field, x.dtype, f"not numeric: {exc}") from None
    elif isinstance(x, pd.DataFrame):
        ts = frame_ts(x, field)
        if combine == "mid":
            values = (frame_column(x, columns[0], field) + frame_column(x, columns[1], field)) / 2.0
        else:
            values = frame_column(x, columns[0], field)
    else:
        raise ValidationError(
            field,
            type(x).__name__,
            "expected a time-indexed Series, a DataFrame with 'ts' and value columns, "
            "or a (ts, values) tuple",
        )
    ok = np.isfinite(values)
    if not ok.all():
        ts, values = ts[ok], values[ok]
    if ts.size > 1 and (np.diff(ts) < 0).any():
        order = np.argsort(ts, kind="stable")
        ts, values = ts[order], values[order]
    return Ticks(np.ascontiguousarray(ts), np.ascontiguousarray(values))


def as_venue_ticks(x: Any, field: str, price: PriceSource) -> Ticks:
    """A venue's prices: ``price="last"`` reads a Series or a ``price`` column (trades);
    ``price="mid"`` reads a Series of mids or ``(bid + ask) / 2`` from ``bid``/``ask`` columns."""
    if price == "mid":
        if isinstance(x, pd.DataFrame):
            if "price" in x.columns and not {"bid", "ask"} <= set(x.columns):
                raise ValidationError(
                    field, "price column", "price='mid' needs 'bid' and 'ask' columns"
                )
            return as_ticks(x, field, columns=("bid", "ask"), combine="mid")
        return as_ticks(x, field)
    if price == "last":
        if isinstance(x, pd.DataFrame) and "price" not in x.columns and "bid" in x.columns:
            raise ValidationError(
                field, "bid/ask columns", "price='last' needs a 'price' column; use price='mid'"
            )
        return as_ticks(x, field)
    raise ValidationError("price", price, "must be one of 'last', 'mid'")


def check_names(prices: Any, field: str, minimum: int = 2) -> list[str]:
    """Venue names of a mapping of venue -> series (at least ``minimum``)."""
    if not isinstance(prices, Mapping):
        raise ValidationError(field, type(prices).__name__, "expected a mapping venue -> series")
    names = [str(k) for k in prices]
    if len(names) < minimum:
        raise ValidationError(field, names, f"need at least {minimum} venues")
    return names


def time_index(ts: Int64Array) -> pd.DatetimeIndex:
    """A tz-aware UTC DatetimeIndex named ``time`` (µs resolution) for int µs times."""
    return pd.DatetimeIndex(
        np.asarray(ts, dtype=np.int64).astype("datetime64[us]"), name="time"
    ).tz_localize("UTC")


def time_us(value: Any, field: str) -> int | None:
    """A time as int µs since the epoch (UTC); ints are µs, zone-less strings/datetimes are UTC
    (as ``lq.store``'s readers take them); ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationError(field, value, "expected a time, not a bool")
    if isinstance(value, int | np.integer):
        return int(value)
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValidationError(field, value, f"not a time: {exc}") from None
    if ts is pd.NaT:
        raise ValidationError(field, value, "not a time")
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value // 1000)


def asof(t: Ticks, times: Int64Array, max_age: int | None = None) -> Float64Array:
    """The last value at or before each time (NaN before the first one, or when the last one
    is more than ``max_age`` µs old). Rows sharing a time: the last in input order."""
    out = np.full(times.size, np.nan)
    if not len(t):
        return out
    pos = np.searchsorted(t.ts, times, side="right") - 1
    ok = pos >= 0
    if max_age is not None:
        ok &= (times - t.ts[np.maximum(pos, 0)]) <= max_age
    out[ok] = t.values[pos[ok]]
    return out
