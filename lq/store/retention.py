"""Retention: old ticks leave, bars and results stay; disk space really comes back.

Vacuum strategy. New databases are created with ``auto_vacuum=INCREMENTAL``. A purge
deletes in chunks of ``chunk`` rows (short write transactions, so readers and the collector's
own batches are never blocked for long), then runs ``PRAGMA incremental_vacuum`` to hand the
freed pages back to the file system, and truncates the WAL with a checkpoint. A file created
without incremental auto-vacuum (by another tool) only gets its space back from a full
``VACUUM``, which ``purge(..., vacuum="full")`` runs (it rewrites the file: slow, and it needs
as much free disk again).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

from lq.store.writer import Writer

__all__ = ["PurgeResult", "purge"]

log = logging.getLogger(__name__)

_TABLES_BY_WHAT = {
    "ticks": (
        ("ticks", "ts"),
        ("agg_trades", "ts"),
        ("book_tickers", "ts"),
        ("dead_letters", "recv_ts"),
    ),
    "bars": (("bars_1s", "ts"), ("bars_1m", "ts"), ("klines", "open_time")),
}


@dataclass(frozen=True, slots=True)
class PurgeResult:
    deleted: dict[str, int]
    bytes_before: int
    bytes_after: int
    seconds: float

    @property
    def bytes_freed(self) -> int:
        return self.bytes_before - self.bytes_after


def purge(
    writer: Writer,
    older_than_us: int,
    *,
    what: Literal["ticks", "bars"] = "ticks",
    chunk: int = 50_000,
    vacuum: Literal["incremental", "full", "none"] = "incremental",
) -> PurgeResult:
    """Delete rows older than ``older_than_us`` (µs since the epoch) and reclaim the space.

    ``what="ticks"`` removes trades, aggregated trades, book tickers and old dead letters;
    bars, klines, alert history and backtest runs stay. ``what="bars"`` removes 1 s and 1 m bars
    and klines (their own, usually much longer, retention), but never the bars of seconds whose
    ticks are still stored (time-range tick reads find their trade ids through the bars).
    """
    t0 = time.perf_counter()
    conn = writer.conn
    if what == "bars":
        # time-range tick reads find their ids through the bars: bars never leave before
        # the ticks of their seconds
        oldest_tick = conn.execute("SELECT min(ts) FROM ticks").fetchone()[0]
        if oldest_tick is not None:
            older_than_us = min(older_than_us, oldest_tick // 1_000_000 * 1_000_000)
    before = _size(writer)
    deleted: dict[str, int] = {}
    for table, col in _TABLES_BY_WHAT[what]:
        # a 1 m bar leaves only when its whole minute is older than the cutoff
        cutoff = older_than_us // 60_000_000 * 60_000_000 if table == "bars_1m" else older_than_us
        total = 0
        while True:
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.execute(
                f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {col} < ? LIMIT ?)",
                (cutoff, chunk),
            )
            conn.execute("COMMIT")
            total += cur.rowcount
            if cur.rowcount < chunk:
                break
        deleted[table] = total
    if vacuum == "incremental":
        conn.executescript("PRAGMA incremental_vacuum;")  # executescript steps it to the end
    elif vacuum == "full":
        conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    after = _size(writer)
    log.info(
        "purged %s older than %d: %s, %d -> %d bytes", what, older_than_us, deleted, before, after
    )
    return PurgeResult(deleted, before, after, time.perf_counter() - t0)


def _size(writer: Writer) -> int:
    total = 0
    for suffix in ("", "-wal"):
        p = writer.path.with_name(writer.path.name + suffix)
        if p.exists():
            total += p.stat().st_size
    return total
