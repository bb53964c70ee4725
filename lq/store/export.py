"""Export a selection of the store to CSV or Parquet (``lq export``, the dashboard's download).

Refused before anything is written: a symbol the store does not hold for that kind (the
error lists the ones it does), and a file name whose suffix is not ``.csv``, ``.parquet`` or
``.pq`` (or does not match ``fmt``): a ``.xlsx`` file full of CSV text helps no one.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Literal

import pandas as pd

from lq.errors import ValidationError
from lq.store.reader import Store, TimeLike, to_us_range

__all__ = [
    "FORMATS",
    "KINDS",
    "SUFFIXES",
    "export",
    "format_for",
    "known_symbols",
    "select",
    "to_bytes",
]

Kind = Literal["ticks", "bars", "book_tickers"]
Format = Literal["csv", "parquet"]
KINDS: tuple[str, ...] = ("ticks", "bars", "book_tickers")
FORMATS: tuple[str, ...] = ("csv", "parquet")
#: File suffix -> format.
SUFFIXES: dict[str, str] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def format_for(path: str | os.PathLike[str], fmt: str | None = None) -> Format:
    """The format to write ``path`` in: from its suffix, which must agree with ``fmt``."""
    p = Path(path)
    suffix = p.suffix.lower()
    if fmt is not None and fmt not in FORMATS:
        raise ValidationError("format", fmt, f"expected one of {list(FORMATS)}")
    by_suffix = SUFFIXES.get(suffix)
    if by_suffix is None:
        raise ValidationError(
            "out",
            str(p),
            f"unknown file type {suffix or '(no suffix)'!r}: lq writes CSV (.csv) or Parquet "
            "(.parquet, .pq); name the file accordingly",
        )
    if fmt is not None and fmt != by_suffix:
        raise ValidationError(
            "format", fmt, f"{p.name} is a {by_suffix} file name: use --format {by_suffix} "
            f"or name the file *.{'csv' if fmt == 'csv' else 'parquet'}"
        )  # fmt: skip
    return by_suffix  # type: ignore[return-value]


def known_symbols(store: Store, kind: str) -> list[str]:
    """Symbols the store holds rows of ``kind`` for, sorted."""
    if kind == "book_tickers":
        rows = store.conn.execute(
            """WITH RECURSIVE s(sym) AS (
                   SELECT min(symbol) FROM book_tickers
                   UNION ALL
                   SELECT (SELECT min(symbol) FROM book_tickers WHERE symbol > s.sym) FROM s
                   WHERE s.sym IS NOT NULL)
               SELECT sym FROM s WHERE sym IS NOT NULL"""
        ).fetchall()
        return sorted(r[0] for r in rows)
    return store.symbols()


_LABELS_SQL = {
    "ticks": "SELECT DISTINCT exchange FROM ticks WHERE symbol = ?",
    "bars": "SELECT DISTINCT exchange FROM bars_1s WHERE symbol = ?"
    " UNION SELECT DISTINCT exchange FROM klines WHERE symbol = ?",
    "book_tickers": "SELECT DISTINCT exchange FROM book_tickers WHERE symbol = ?",
}


def exchange_labels(store: Store, kind: str, symbol: str) -> list[str]:
    """The ``exchange`` labels holding rows of ``kind`` for ``symbol``, sorted."""
    sql = _LABELS_SQL[kind]
    args = [symbol] * sql.count("?")
    return sorted(r[0] for r in store.conn.execute(sql, args).fetchall())


def select(
    store: Store,
    kind: Kind,
    symbol: str,
    *,
    interval: str = "1s",
    start: TimeLike = None,
    end: TimeLike = None,
    exchange: str | None = None,
    choose_with: str = "--exchange LABEL",
) -> pd.DataFrame:
    """The rows to export, with a readable UTC ``time`` column first, then ``symbol`` and
    ``exchange``.

    One series is one exchange label: a symbol stored under several labels (a live venue
    and the local exchange, or two venues spelling it alike) needs ``exchange``; its rows
    are never spliced together.

    Raises :class:`~lq.errors.ValidationError` for a symbol without rows of ``kind``, and
    for a symbol under several labels without ``exchange`` (or with one it is not under);
    ``choose_with`` names the control that picks the label where the caller offers one (the
    CLI's ``--exchange LABEL``, the dashboard's menu).
    """
    if kind not in KINDS:
        raise ValidationError("kind", kind, f"expected one of {list(KINDS)}")
    to_us_range(start, end)  # a start at or after the end is refused, not "0 rows"
    sym = symbol.upper()
    known = known_symbols(store, kind)
    if sym not in known:
        raise ValidationError(
            "symbol",
            symbol,
            f"no {kind.replace('_', ' ')} of {sym} in {store.path}; stored: "
            f"{', '.join(known) if known else 'none (collect or import data first)'}",
        )
    labels = exchange_labels(store, kind, sym)
    if exchange is None:
        if len(labels) > 1:
            raise ValidationError(
                "symbol",
                symbol,
                f"{kind.replace('_', ' ')} of {sym} are stored from {len(labels)} exchanges "
                f"({', '.join(labels)}); choose one with {choose_with}",
            )
        exchange = labels[0] if labels else None
    elif exchange not in labels:
        raise ValidationError(
            "exchange" if choose_with != "--exchange LABEL" else "--exchange",
            exchange,
            f"no {kind.replace('_', ' ')} of {sym} under this label; stored under: "
            f"{', '.join(labels) if labels else 'none'}",
        )
    if kind == "ticks":
        df = store.ticks(symbol, start, end, exchange=exchange)
        df.insert(0, "time", pd.to_datetime(df["ts"], unit="us", utc=True))
    elif kind == "bars":
        df = store.bars(symbol, interval, start, end, exchange=exchange).reset_index()
    elif kind == "book_tickers":
        df = store.book_tickers(symbol, start, end, exchange=exchange)
        df.insert(0, "time", pd.to_datetime(df["ts"], unit="us", utc=True))
    else:
        raise ValidationError("kind", kind, "expected 'ticks', 'bars' or 'book_tickers'")
    df.insert(1, "symbol", sym)
    df.insert(2, "exchange", exchange)
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
    exchange: str | None = None,
) -> int:
    """Write the selection to ``path``; returns the row count.

    The format follows the suffix (``.csv``, ``.parquet``/``.pq``); ``fmt``, if given, must
    agree with it (:func:`format_for`). Nothing is written when the symbol or the name is
    refused.
    """
    p = Path(path)
    fmt = format_for(p, fmt)
    df = select(store, kind, symbol, interval=interval, start=start, end=end, exchange=exchange)
    data = to_bytes(df, fmt)
    tmp = p.with_name(p.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(p)  # never leave a half-written file under the real name
    return len(df)
