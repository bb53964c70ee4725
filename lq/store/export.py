"""Export a selection of the store to CSV or Parquet (``lq export``, the dashboard's download)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Literal

import pandas as pd

from lq.errors import ValidationError
from lq.store.reader import Store, TimeLike

__all__ = ["export", "select", "to_bytes"]

Kind = Literal["ticks", "bars", "book_tickers"]
Format = Literal["csv", "parquet"]


def select(
    store: Store,
    kind: Kind,
    symbol: str,
    *,
    interval: str = "1s",
    start: TimeLike = None,
    end: TimeLike = None,
) -> pd.DataFrame:
    """The rows to export, with a readable UTC ``time`` column first."""
    if kind == "ticks":
        df = store.ticks(symbol, start, end)
        df.insert(0, "time", pd.to_datetime(df["ts"], unit="us", utc=True))
    elif kind == "bars":
        df = store.bars(symbol, interval, start, end).reset_index()
    elif kind == "book_tickers":
        df = store.book_tickers(symbol, start, end)
        df.insert(0, "time", pd.to_datetime(df["ts"], unit="us", utc=True))
    else:
        raise ValidationError("kind", kind, "expected 'ticks', 'bars' or 'book_tickers'")
    df.insert(1, "symbol", symbol.upper())
    return df


def to_bytes(df: pd.DataFrame, fmt: Format) -> bytes:
    """Serialise a frame as CSV (ISO times, UTF-8) or Parquet (zstd)."""
    if fmt == "csv":
        return df.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ").encode()
    if fmt == "parquet":
        buf = io.BytesIO()
        df.to_parquet(buf, index=False, compression="zstd")
        return buf.getvalue()
    raise ValidationError("format", fmt, "expected 'csv' or 'parquet'")


def export(
    store: Store,
    kind: Kind,
    symbol: str,
    path: str | os.PathLike[str],
    *,
    fmt: Format | None = None,
    interval: str = "1s",
    start: TimeLike = None,
    end: TimeLike = None,
) -> int:
    """Write the selection to ``path`` (format from ``fmt`` or the suffix); returns the row count."""
    p = Path(path)
    fmt = fmt or ("parquet" if p.suffix.lower() in (".parquet", ".pq") else "csv")
    df = select(store, kind, symbol, interval=interval, start=start, end=end)
    data = to_bytes(df, fmt)
    tmp = p.with_name(p.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(p)  # never leave a half-written file under the real name
    return len(df)
