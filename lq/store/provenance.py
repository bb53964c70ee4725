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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = [
    "ImportedRange",
    "What",
    "batch_ranges",
    "imported_ranges",
    "last_collected_ids",
    "ranges_of",
    "record_batch",
    "runs",
]

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
    keys = np.asarray(keys, dtype=np.int64)
    ts = np.asarray(ts, dtype=np.int64)
    by_key = by == "key"
    order = None
    lead = keys if by_key else ts
    if lead.size > 1 and (np.diff(lead) < 0).any():
        order = np.argsort(lead, kind="stable")
        keys, ts = keys[order], ts[order]
    step = np.diff(keys if by_key else ts)
    starts = np.concatenate(([0], np.flatnonzero(step > join) + 1))
    return list(
        zip(
            np.minimum.reduceat(keys, starts).tolist(),
            np.maximum.reduceat(keys, starts).tolist(),
            np.minimum.reduceat(ts, starts).tolist(),
            np.maximum.reduceat(ts, starts).tolist(),
            strict=True,
        )
    )


#: how each kind of row forms runs: (join, by); klines join at their interval
_RUNS: dict[str, tuple[int | None, Literal["key", "ts"]]] = {
    "ticks": (1, "key"),
    "bars": (1, "key"),
    "agg_trades": (1, "key"),
    "book_tickers": (BOOK_PAUSE_US, "ts"),
    "klines": (None, "key"),
}


def ranges_of(
    what: str,
    exchange: str,
    symbol: str,
    keys: np.ndarray,
    ts: np.ndarray,
    *,
    interval: str = "",
) -> list[ImportedRange]:
    """The runs of one table's rows of one exchange label and symbol (arrays of keys and
    exchange times), as ranges to record. ``what="ticks"`` also gives the ``bars`` ranges."""
    join, by = _RUNS[what]
    if join is None:
        from lq.analytics.bars import interval_us

        join = _interval_step(interval, interval_us)
    found = runs(keys, ts, join=join, by=by)
    whats = ("ticks", "bars") if what == "ticks" else (what,)
    return [
        ImportedRange(w, exchange, symbol, interval, fk, lk, ft, lt)
        for w in whats
        for fk, lk, ft, lt in found
    ]


def batch_ranges(batch: object) -> list[ImportedRange]:
    """The runs of a :class:`~lq.store.writer.Batch` (see the module docstring)."""
    out: list[ImportedRange] = []
    tables = (
        ("ticks", "trades", "trade_id"),
        ("agg_trades", "agg_trades", "agg_id"),
        ("book_tickers", "book_tickers", "update_id"),
        ("klines", "klines", "open_time"),
    )
    for what, attr, key in tables:
        groups: dict[tuple[str, str, str], list[Any]] = {}
        for ev in getattr(batch, attr):
            groups.setdefault((ev.exchange, ev.symbol, getattr(ev, "interval", "")), []).append(ev)
        for (exch, sym, interval), evs in groups.items():
            keys = np.fromiter((getattr(e, key) for e in evs), np.int64, len(evs))
            ts = keys if what == "klines" else np.fromiter((e.ts for e in evs), np.int64, len(evs))
            out += ranges_of(what, exch, sym, keys, ts, interval=interval)
    return out


def _interval_step(interval: str, interval_us: Any) -> int:
    try:
        return int(interval_us(interval))
    except Exception:  # an interval lq cannot read: runs of one kline each
        return 0


def record_batch(
    conn: sqlite3.Connection,
    batch: object,
    source: str,
    ranges: Sequence[ImportedRange] | None = None,
) -> int:
    """Record the runs of ``batch`` (or the ``ranges`` already computed for it) before it is
    written, merging them with the stored ranges.

    One short transaction; returns the number of ranges added or extended (0 when the batch
    lies entirely inside ranges already recorded, e.g. a re-import)."""
    found = batch_ranges(batch) if ranges is None else list(ranges)
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


_INT_MAX = 2**63 - 1


def _merge(conn: sqlite3.Connection, r: ImportedRange, source: str, now: int) -> int:
    col, gap = _join(r)
    lo, hi = (r.first_key, r.last_key) if col == "key" else (r.first_ts, r.last_ts)
    rows = conn.execute(
        f"SELECT id, first_key, last_key, first_ts, last_ts FROM imported_ranges"
        f" WHERE what = ? AND symbol = ? AND exchange = ? AND interval = ?"
        f" AND first_{col} <= ? AND last_{col} >= ?",
        # bounds clamped to SQLite's INTEGER: the largest id (2**63 - 1) is a valid key
        (
            r.what,
            r.symbol,
            r.exchange,
            r.interval,
            min(hi + gap, _INT_MAX),
            max(lo - gap, -_INT_MAX - 1),
        ),
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


def last_collected_ids(conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
    """Highest trade id per (exchange, symbol) outside every imported run: where a restarted
    feed should resume. (``Writer.last_trade_ids`` takes the highest stored id, so after
    importing old history of a symbol the live feed would see a hole from the file's last
    id to now.) A few index seeks per symbol."""
    out: dict[tuple[str, str], int] = {}
    rows = conn.execute(
        "SELECT exchange, symbol, max(trade_id) FROM ticks GROUP BY exchange, symbol"
    ).fetchall()
    for exch, sym, top in rows:
        runs_ = [
            (r.first_key, r.last_key)
            for r in imported_ranges(conn, "ticks", sym)
            if r.exchange == exch
        ]
        cur: int | None = int(top)
        while cur is not None:
            inside = next((a for a, b in runs_ if a <= cur <= b), None)
            if inside is None:
                out[(exch, sym)] = cur
                break
            got = conn.execute(
                "SELECT max(trade_id) FROM ticks WHERE symbol = ? AND trade_id < ? AND exchange = ?",
                (sym, inside, exch),
            ).fetchone()[0]
            cur = None if got is None else int(got)
    return out
