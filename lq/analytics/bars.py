"""Bars and returns: resample ticks or bars to OHLCV + VWAP at any interval, align symbols.

Conventions
-----------
* Input times are int64 microseconds since the Unix epoch, UTC (column ``ts``).
* A bar's ``ts`` is its **open** time, aligned to the epoch (``ts // step * step``).
* Output bars are indexed by a tz-aware UTC :class:`pandas.DatetimeIndex` named ``time``
  (the bar open time) and keep the ``ts`` column as int64 µs.
* An interval with no trade produces **no bar** (no empty rows); see :func:`align_prices`
  for how two symbols with different bar times are put side by side.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from lq.errors import ValidationError

from ._common import as_array, check_choice, check_positive_prices, wrap
from ._typing import FillPolicy, ReturnKind

__all__ = ["BAR_COLUMNS", "align_prices", "interval_us", "resample_bars", "returns"]

#: Columns of a bar frame, in order.
BAR_COLUMNS: tuple[str, ...] = (
    "ts",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "vwap",
)

_UNIT_US = {"us": 1, "ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000}
_UNIT_US["d"] = 24 * _UNIT_US["h"]
_UNIT_US["w"] = 7 * _UNIT_US["d"]
_INTERVAL_RE = re.compile(r"^\s*(\d+)\s*(us|ms|s|m|h|d|w)\s*$")


def interval_us(interval: str | pd.Timedelta | int) -> int:
    """Length of a bar interval in microseconds.

    Parameters
    ----------
    interval : str, pandas.Timedelta or int
        Binance-style ``"1s"``, ``"5m"`` (``m`` is minutes), ``"1h"``, ``"1d"``, ``"1w"``,
        ``"250ms"``; a Timedelta; or an int number of microseconds.

    Returns
    -------
    int
        The interval in µs (> 0).

    Examples
    --------
    >>> interval_us("5m")
    300000000
    """
    if isinstance(interval, pd.Timedelta):
        us = int(interval / pd.Timedelta(microseconds=1))
    elif isinstance(interval, int | np.integer) and not isinstance(interval, bool):
        us = int(interval)
    elif isinstance(interval, str) and (m := _INTERVAL_RE.match(interval)):
        us = int(m.group(1)) * _UNIT_US[m.group(2)]
    else:
        raise ValidationError(
            "interval", interval, "expected e.g. '1s', '1m', '5m', '1h', '1d', a Timedelta or µs"
        )
    if us <= 0:
        raise ValidationError("interval", interval, "must be positive")
    return us


def _ts_of(data: pd.DataFrame) -> np.ndarray:
    if "ts" in data.columns:
        return data["ts"].to_numpy(dtype=np.int64)
    if isinstance(data.index, pd.DatetimeIndex):
        idx = data.index if data.index.tz is not None else data.index.tz_localize("UTC")
        return idx.as_unit("us").asi8.astype(np.int64)
    raise ValidationError("data", list(data.columns), "needs a 'ts' column (int64 µs UTC)")


def _time_index(ts: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(ts.astype("datetime64[us]"), name="time").tz_localize("UTC")


def resample_bars(data: pd.DataFrame, interval: str | pd.Timedelta | int) -> pd.DataFrame:
    """Build OHLCV + VWAP bars at ``interval`` from ticks or from finer bars.

    Parameters
    ----------
    data : pandas.DataFrame
        Either ticks with columns ``ts`` (int64 µs UTC), ``price``, ``qty`` (``trade_id``
        optional, ignored), or bars with columns ``ts, open, high, low, close, volume`` and
        optionally ``quote_volume, trades, vwap`` (``ts`` = bar open time). Rows need not be
        sorted (a stable sort by ``ts`` is applied when they are not).
    interval : str, pandas.Timedelta or int
        Target interval, see :func:`interval_us`. Bars are aligned to the epoch.

    Returns
    -------
    pandas.DataFrame
        Indexed by a tz-aware UTC DatetimeIndex ``time`` (bar open). From ticks the columns
        are :data:`BAR_COLUMNS`; from bars, the input's columns. ``volume`` is the base
        quantity, ``quote_volume`` the sum of price x qty, ``vwap`` = quote_volume / volume
        (NaN when volume is 0). Intervals without data produce no row.

    Raises
    ------
    ValidationError
        Unknown layout, bad interval, or a non-positive tick price.

    Examples
    --------
    >>> ticks = pd.DataFrame({"ts": [0, 400_000, 1_200_000], "price": [10.0, 12.0, 11.0],
    ...                       "qty": [1.0, 1.0, 2.0]})
    >>> resample_bars(ticks, "1s")[["open", "high", "close", "volume", "vwap"]].to_numpy()
    array([[10., 12., 12.,  2., 11.],
           [11., 11., 11.,  2., 11.]])
    """
    step = interval_us(interval)
    if not isinstance(data, pd.DataFrame):
        raise ValidationError("data", type(data).__name__, "expected a pandas DataFrame")
    cols = set(data.columns)
    is_ticks = {"price", "qty"} <= cols
    if not is_ticks and not {"open", "high", "low", "close", "volume"} <= cols:
        raise ValidationError(
            "data",
            sorted(map(str, cols)),
            "expected ticks (ts, price, qty) or bars (ts, open, high, low, close, volume)",
        )
    ts = _ts_of(data)
    order = None
    if ts.size > 1 and (np.diff(ts) < 0).any():
        order = np.argsort(ts, kind="stable")
        ts = ts[order]

    def col(name: str) -> np.ndarray:
        v = data[name].to_numpy(dtype=np.float64)
        return v if order is None else v[order]

    n = ts.size
    bucket = (ts // step) * step
    if n:
        starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    else:
        starts = np.zeros(0, dtype=np.int64)
    ends = np.concatenate((starts[1:], [n])).astype(np.int64) - 1 if n else starts
    out: dict[str, Any] = {"ts": bucket[starts]}
    if is_ticks:
        price, qty = col("price"), col("qty")
        check_positive_prices(price, "price")
        if n == 0:
            empty = {c: np.zeros(0) for c in BAR_COLUMNS}
            empty["ts"] = np.zeros(0, dtype=np.int64)
            empty["trades"] = np.zeros(0, dtype=np.int64)
            return pd.DataFrame(empty, index=_time_index(empty["ts"]))
        quote_t = np.add.reduceat(price * qty, starts)
        volume = np.add.reduceat(qty, starts)
        out |= {
            "open": price[starts],
            "high": np.maximum.reduceat(price, starts),
            "low": np.minimum.reduceat(price, starts),
            "close": price[ends],
            "volume": volume,
            "quote_volume": quote_t,
            "trades": np.diff(np.concatenate((starts, [n]))).astype(np.int64),
        }
        with np.errstate(invalid="ignore", divide="ignore"):
            out["vwap"] = np.where(volume > 0, quote_t / volume, np.nan)
        return pd.DataFrame(out, index=_time_index(out["ts"]))[list(BAR_COLUMNS)]

    if n == 0:
        return data.iloc[:0].set_axis(_time_index(np.zeros(0, dtype=np.int64)))
    volume = np.add.reduceat(col("volume"), starts)
    out |= {
        "open": col("open")[starts],
        "high": np.maximum.reduceat(col("high"), starts),
        "low": np.minimum.reduceat(col("low"), starts),
        "close": col("close")[ends],
        "volume": volume,
    }
    quote: np.ndarray | None = None
    if "quote_volume" in cols:
        quote = np.add.reduceat(col("quote_volume"), starts)
        out["quote_volume"] = quote
    elif "vwap" in cols:
        quote = np.add.reduceat(np.nan_to_num(col("vwap")) * col("volume"), starts)
    if "trades" in cols:
        trades = data["trades"].to_numpy()
        out["trades"] = np.add.reduceat(trades if order is None else trades[order], starts)
    if "vwap" in cols:
        if quote is None:
            out["vwap"] = np.full(starts.size, np.nan)
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                out["vwap"] = np.where(volume > 0, quote / volume, np.nan)
    keep = [c for c in data.columns if c in out]
    return pd.DataFrame({c: out[c] for c in keep}, index=_time_index(out["ts"]))


def returns(prices: Any, *, kind: ReturnKind = "log") -> Any:
    """Simple or log returns of a price series (or of each column of a DataFrame).

    ``r[t] = p[t] / p[t-1] - 1`` (simple) or ``log(p[t] / p[t-1])`` (log), between
    consecutive positions; the first value, and any value next to a missing price, is NaN.

    Parameters
    ----------
    prices : Series, DataFrame or ndarray
        Strictly positive prices (NaN allowed).
    kind : {"log", "simple"}
        Which return.

    Returns
    -------
    Same kind as ``prices``.

    Raises
    ------
    ValidationError
        ``kind`` unknown or a price <= 0 (names the value and its position).

    Examples
    --------
    >>> returns(np.array([100.0, 110.0, 99.0]), kind="simple")
    array([ nan,  0.1, -0.1])
    """
    check_choice(kind, "kind", ("simple", "log"))
    if isinstance(prices, pd.DataFrame):
        return prices.apply(lambda s: returns(s, kind=kind))
    values, index, name = as_array(prices, "prices")
    check_positive_prices(values, "prices")
    out = np.full(values.size, np.nan)
    if values.size > 1:
        ratio = values[1:] / values[:-1]
        out[1:] = np.log(ratio) if kind == "log" else ratio - 1.0
    return wrap(out, index, name)


def align_prices(
    frames: Mapping[str, pd.DataFrame | pd.Series],
    *,
    column: str = "close",
    fill: FillPolicy = "ffill",
) -> pd.DataFrame:
    """Put several symbols' bars side by side on a common bar-time index.

    Fill policy
    -----------
    ``"ffill"`` (default): outer join on bar time; a symbol without a bar at a time keeps
    its last price (no trade means the price did not change); rows before every symbol has
    a first price are dropped. ``"drop"``: inner join, only bar times where every symbol has
    a bar. Values are never back-filled (no look-ahead).

    Parameters
    ----------
    frames : mapping of symbol -> bars DataFrame (or price Series)
        Each indexed by bar time (as returned by :func:`resample_bars`).
    column : str
        Which bar column to take from a DataFrame (default ``close``).
    fill : {"ffill", "drop"}
        The policy above.

    Returns
    -------
    pandas.DataFrame
        One column per symbol, in the mapping's order, indexed by bar time.

    Examples
    --------
    >>> t = pd.to_datetime([0, 1, 2], unit="s", utc=True)
    >>> a = pd.Series([1.0, 2.0, 3.0], index=t)
    >>> b = pd.Series([10.0, 30.0], index=t[[0, 2]])
    >>> align_prices({"A": a, "B": b})["B"].tolist()
    [10.0, 10.0, 30.0]
    """
    check_choice(fill, "fill", ("ffill", "drop"))
    if len(frames) == 0:
        raise ValidationError("frames", {}, "need at least one symbol")
    cols = {}
    for sym, f in frames.items():
        s = f[column] if isinstance(f, pd.DataFrame) else f
        if s.index.has_duplicates:
            raise ValidationError(f"frames[{sym!r}]", "index", "bar times must be unique")
        cols[sym] = s.astype(np.float64)
    out = pd.concat(cols, axis=1, join="outer" if fill == "ffill" else "inner", sort=True)
    if fill == "ffill":
        out = out.ffill().dropna(how="any")
    return out
