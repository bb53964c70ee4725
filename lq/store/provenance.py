"""Imported history: the ranges of rows ``lq import`` stored, which retention keeps.

Public-data files are always older than the tick retention (7 days by default), so without
this the collector's next purge deleted an import moments after it succeeded. Before each
chunk of an import is written, the importer records here, per table, exchange label and
symbol, the *runs* the chunk contains:

==============  =======================================  ==========================================
what            a run is                                  a row is kept when
==============  =======================================  ==========================================
ticks           contiguous trade ids                      its trade id is in the run (exact)
bars            the same runs (1 s / 1 m bars of them)    its bar overlaps the run's time span
agg_trades      contiguous aggregate-trade ids            its exchange time is in the run's span
book_tickers    updates with no pause longer than 60 s    its exchange time is in the run's span
klines          consecutive open times of one interval    its open time is in the run (exact)
==============  =======================================  ==========================================

Trade and aggregate-trade ids are contiguous on Binance, so a run's span holds no trade of
that market that the file did not hold: the kept rows are the imported ones (plus, at most,
rows received live for the very same trades). Live rows outside every run are purged as
before. Adjacent and overlapping runs are merged, so a 2 GB file is one or a few ranges
and re-importing a file changes nothing. Ranges are written *before* their rows (a crash in
between protects nothing that exists; the re-run converges), so an imported row is never
unprotected.

Why ranges and not a per-row flag: the flag would add a column to the hot tables and make
every purge scan the protected rows to skip them; ranges turn a purge into index-range
deletes of the complement (:mod:`lq.store.retention`), whose cost does not grow with the
amount of imported history.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["ImportedRange", "What", "batch_ranges", "imported_ranges", "record_batch", "runs"]

What = Literal["ticks", "bars", "agg_trades", "book_tickers", "klines"]
#: book-ticker runs end at a pause longer than this (µs): update ids are not contiguous
BOOK_PAUSE_US = 60_000_000


@dataclass(frozen=True, slots=True)
class ImportedRange:
    what: str
    exchange: str
    symbol: str
    interval: str
    first_key: int
    last_key: int
    first_ts: int
    last_ts: int


def runs(
    keys: np.ndarray, ts: np.ndarray, *, join: int, by: Literal["key", "ts"]
) -> list[tuple[int, int, int, int]]:
    """Split rows into runs: ``(first_key, last_key, first_ts, last_ts)``.

    ``by="key"``: sorted by key, a run ends where the next key is more than ``join`` above;
    ``by="ts"``: sorted by time, a run ends at a pause longer than ``join`` µs.
    """
    if keys.size == 0:
        return []
    order = np.argsort(keys if by == "key" else ts, kind="stable")
    k, t = keys[order], ts[order]
    step = np.diff(k if by == "key" else t)
    cuts = np.flatnonzero(step > join) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [k.size])) - 1
    out = []
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        out.append(
            (
                int(k[s : e + 1].min()),
                int(k[s : e + 1].max()),
                int(t[s : e + 1].min()),
                int(t[s : e + 1].max()),
            )
        )
    return out


def _group(
    rows: Iterable[tuple[str, str, str, int, int]],
) -> dict[tuple[str, str, str], tuple[list[int], list[int]]]:
    out: dict[tuple[str, str, str], tuple[list[int], list[int]]] = {}
    for exch, sym, interval, key, ts in rows:
        g = out.get((exch, sym, interval))
        if g is None:
            g = out[(exch, sym, interval)] = ([], [])
        g[0].append(key)
        g[1].append(ts)
    return out


def batch_ranges(batch: object) -> list[ImportedRange]:
    """The runs of a :class:`~lq.store.writer.Batch` (see the module docstring)."""
    from lq.analytics.bars import interval_us

    out: list[ImportedRange] = []

    def add(what: str, groups: dict, *, join: int | None, by: Literal["key", "ts"]) -> None:
        for (exch, sym, interval), (keys, ts) in groups.items():
            j = join if join is not None else _interval_step(interval, interval_us)
            for fk, lk, ft, lt in runs(
                np.asarray(keys, dtype=np.int64), np.asarray(ts, dtype=np.int64), join=j, by=by
            ):
                out.append(ImportedRange(what, exch, sym, interval, fk, lk, ft, lt))

    trades = _group((t.exchange, t.symbol, "", t.trade_id, t.ts) for t in batch.trades)  # type: ignore[attr-defined]
    add("ticks", trades, join=1, by="key")
    add("bars", trades, join=1, by="key")
    aggs = _group((a.exchange, a.symbol, "", a.agg_id, a.ts) for a in batch.agg_trades)  # type: ignore[attr-defined]
    add("agg_trades", aggs, join=1, by="key")
    books = _group((b.exchange, b.symbol, "", b.update_id, b.ts) for b in batch.book_tickers)  # type: ignore[attr-defined]
    add("book_tickers", books, join=BOOK_PAUSE_US, by="ts")
    klines = _group(
        (k.exchange, k.symbol, k.interval, k.open_time, k.open_time)
        for k in batch.klines  # type: ignore[attr-defined]
    )
    add("klines", klines, join=None, by="key")
    return out


def _interval_step(interval: str, interval_us: object) -> int:
    try:
        return int(interval_us(interval))  # type: ignore[operator]
    except Exception:  # an interval pandas cannot read: runs of one kline each
        return 0


def record_batch(conn: sqlite3.Connection, batch: object, source: str) -> int:
    """Record the runs of ``batch`` (before writing it), merging with the stored ranges.

    One short transaction; returns the number of ranges added or extended (0 when the batch
    lies entirely inside ranges already recorded, e.g. a re-import)."""
    found = batch_ranges(batch)
    if not found:
        return 0
    now = time.time_ns() // 1000
    changed = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for r in found:
            changed += _merge(conn, r, source, now)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return changed


def _join(r: ImportedRange) -> tuple[str, int]:
    """The column two runs are joined on, and by how much they may be apart."""
    if r.what == "book_tickers":
        return "ts", BOOK_PAUSE_US
    if r.what == "klines":
        from lq.analytics.bars import interval_us

        return "key", _interval_step(r.interval, interval_us)
    return "key", 1


def _merge(conn: sqlite3.Connection, r: ImportedRange, source: str, now: int) -> int:
    col, gap = _join(r)
    lo, hi = (r.first_key, r.last_key) if col == "key" else (r.first_ts, r.last_ts)
    rows = conn.execute(
        f"SELECT id, first_key, last_key, first_ts, last_ts FROM imported_ranges"
        f" WHERE what = ? AND symbol = ? AND exchange = ? AND interval = ?"
        f" AND first_{col} <= ? AND last_{col} >= ?",
        (r.what, r.symbol, r.exchange, r.interval, hi + gap, lo - gap),
    ).fetchall()
    fk, lk, ft, lt = r.first_key, r.last_key, r.first_ts, r.last_ts
    for _id, a, b, c, d in rows:
        fk, lk, ft, lt = min(fk, a), max(lk, b), min(ft, c), max(lt, d)
    if len(rows) == 1 and tuple(rows[0][1:]) == (fk, lk, ft, lt):
        return 0  # already covered
    if rows:
        conn.execute(
            f"DELETE FROM imported_ranges WHERE id IN ({','.join('?' * len(rows))})",
            [x[0] for x in rows],
        )
    conn.execute(
        "INSERT INTO imported_ranges (what, exchange, symbol, interval, first_key, last_key,"
        " first_ts, last_ts, source, updated_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (r.what, r.exchange, r.symbol, r.interval, fk, lk, ft, lt, source, now),
    )
    return 1


def imported_ranges(
    conn: sqlite3.Connection, what: str | None = None, symbol: str | None = None
) -> list[ImportedRange]:
    """The recorded ranges (all, or of one table and/or symbol), ordered by time."""
    clauses, params = [], []
    if what is not None:
        clauses.append("what = ?")
        params.append(what)
    if symbol is not None:
        clauses.append("symbol = ?")
        params.append(symbol)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    try:
        rows = conn.execute(
            "SELECT what, exchange, symbol, interval, first_key, last_key, first_ts, last_ts"
            f" FROM imported_ranges{where} ORDER BY what, symbol, exchange, first_ts",
            params,
        ).fetchall()
    except sqlite3.OperationalError:  # a reader on a file older than v6
        return []
    return [ImportedRange(*row) for row in rows]
