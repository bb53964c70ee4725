"""The single writer: batched, idempotent inserts, one transaction per batch.

Every row is checked at the door against :mod:`lq.feeds.invariants`, the same rules the
parser applies, so rows from any source (live, REST backfill, import, replay) obey them: ids
within int64, prices and quantities finite and within sane bounds, times in 2009..2100,
exchange symbols, aggTrade ``0 <= f <= l``, uncrossed books, complete and consistent klines.
A refused row goes to ``dead_letters`` with the reason and never aborts the rest of its batch. Inserts are ``INSERT OR IGNORE`` on the natural key,
so writing the same batch twice stores nothing new and says so in the counts.

1-second bars are derived from ``ticks`` inside the same transaction, for exactly the
seconds the batch touched, so they are right however the trades arrive (late backfill,
duplicates, restarts): there is one way to make a bar, from the stored ticks.

No batch can poison the next. If writing a batch raises for a reason that is not a failure
of the database itself (a value SQLite cannot bind, a bar that breaks a constraint...), the
batch is written again in one transaction that splits it in halves under savepoints until
each offending event stands alone; those go to ``dead_letters`` with the error, the rest is
stored. Only a failure of the database itself (:func:`storage_failure`: disk full, I/O
error, read-only, locked, corrupt, the file or its WAL deleted or replaced) raises, as
:class:`~lq.errors.StorageFailedError` with SQLite's own words, and then nothing of the
batch is stored: the caller keeps it and retries.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from lq.errors import StorageFailedError
from lq.feeds.events import (
    MAX_DEAD_RAW,
    MAX_REASON,
    AggTrade,
    BookResync,
    BookTicker,
    BookTop,
    Duplicate,
    Gap,
    Kline,
    Rejected,
    Trade,
    capped_raw,
)
from lq.feeds.invariants import (
    MAX_TS,  # noqa: F401 - re-exported: the store's time bounds are the invariants'
    MIN_TS,  # noqa: F401
    agg_trade_problem,
    book_resync_problem,
    book_ticker_problem,
    book_top_problem,
    kline_problem,
    trade_problem,
)
from lq.feeds.sequencer import TRADE_IDS_NOT_AGGREGATES
from lq.store.lock import WriterLock
from lq.store.sqlite import connect_writer, insert_many

__all__ = [
    "Batch",
    "BatchResult",
    "WriteResult",
    "Writer",
    "storage_failure",
    "validate_trade",
]

log = logging.getLogger(__name__)

validate_trade = trade_problem
"""The reason a trade row is refused, or None (:func:`lq.feeds.invariants.trade_problem`)."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one insert did: ``new + duplicates + rejected == offered``."""

    new: int = 0
    duplicates: int = 0
    rejected: int = 0

    def __add__(self, other: WriteResult) -> WriteResult:
        return WriteResult(
            self.new + other.new,
            self.duplicates + other.duplicates,
            self.rejected + other.rejected,
        )


@dataclass(slots=True)
class Batch:
    """Everything the collector flushes at once; written in a single transaction."""

    trades: list[Trade] = field(default_factory=list)
    agg_trades: list[AggTrade] = field(default_factory=list)
    book_tickers: list[BookTicker] = field(default_factory=list)
    klines: list[Kline] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    book_tops: list[BookTop] = field(default_factory=list)
    book_resyncs: list[BookResync] = field(default_factory=list)
    #: trades the feed dropped as already delivered, to check against the stored ones (not
    #: rows: not counted in ``len``, not spilled)
    echoes: list[Duplicate] = field(default_factory=list)

    def __len__(self) -> int:
        return (
            len(self.trades)
            + len(self.agg_trades)
            + len(self.book_tickers)
            + len(self.klines)
            + len(self.gaps)
            + len(self.rejected)
            + len(self.book_tops)
            + len(self.book_resyncs)
        )

    def add(self, event: object) -> None:
        """Route one feed event to its list (events the store does not keep are ignored)."""
        if isinstance(event, Trade):
            self.trades.append(event)
        elif isinstance(event, BookTicker):
            self.book_tickers.append(event)
        elif isinstance(event, AggTrade):
            self.agg_trades.append(event)
        elif isinstance(event, Kline):
            self.klines.append(event)
        elif isinstance(event, Gap):
            self.gaps.append(event)
        elif isinstance(event, Rejected):
            self.rejected.append(event)
        elif isinstance(event, BookTop):
            self.book_tops.append(event)
        elif type(event) is Duplicate:
            self.echoes.append(event)
        elif isinstance(event, BookResync):
            self.book_resyncs.append(event)


@dataclass(frozen=True, slots=True)
class BatchResult:
    trades: WriteResult
    agg_trades: WriteResult
    book_tickers: WriteResult
    klines: WriteResult
    bars: int
    dead_letters: int
    seconds: float
    new_by_exchange: dict[str, int] = field(default_factory=dict)
    """New rows (trades, aggregate trades, book tickers, klines) per ``exchange`` label: what
    each feed of a collector of several venues added (its "no new rows" detector)."""
    book_tops: WriteResult = WriteResult()
    """Book snapshots (``book_snapshots``); resync records are not counted here."""
    echo_conflicts: dict[str, int] = field(default_factory=dict)
    """Per ``exchange`` label: trades a feed dropped as duplicates that were not (another price
    or quantity for a stored id; dead letters now): its duplicate count is that much too high."""


# SQLite primary result codes that mean the database itself cannot take writes now (as opposed
# to a row it refuses: SQLITE_CONSTRAINT 19, SQLITE_MISMATCH 20, SQLITE_TOOBIG 18, SQLITE_RANGE 25)
_DB_FAILURES = {
    1: "SQLITE_ERROR",  # no such table, cannot start a transaction...: the schema or the file
    3: "SQLITE_PERM",
    5: "SQLITE_BUSY",
    6: "SQLITE_LOCKED",
    7: "SQLITE_NOMEM",
    8: "SQLITE_READONLY",
    10: "SQLITE_IOERR",
    11: "SQLITE_CORRUPT",
    13: "SQLITE_FULL",
    14: "SQLITE_CANTOPEN",
    15: "SQLITE_PROTOCOL",
    23: "SQLITE_AUTH",
    26: "SQLITE_NOTADB",
}


def storage_failure(exc: BaseException) -> str | None:
    """Why ``exc`` is a failure of the database itself, or ``None`` when it is about the rows.

    A failure of the database (disk full, I/O error, read-only, locked, corrupt, the file
    replaced) stops writing until it clears; anything else (a value that cannot be bound, a
    constraint a bar breaks) is about the rows, which the writer isolates into dead letters.
    The reason is SQLite's own message (``"database or disk is full"``).
    """
    if isinstance(exc, StorageFailedError):
        return exc.reason
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None:  # raised by the sqlite3 module: a closed connection, or a bad value
            return str(exc) if "closed" in str(exc).lower() else None
        return str(exc) if code & 0xFF in _DB_FAILURES else None
    if isinstance(exc, (OSError, MemoryError)):
        return f"{type(exc).__name__}: {exc}"
    return None


_ITEM_FIELDS = (
    "gaps",
    "trades",
    "agg_trades",
    "book_tickers",
    "klines",
    "rejected",
    "book_tops",
    "book_resyncs",
)
_ITEM_LABEL = {
    "book_tops": "book snapshot",
    "book_resyncs": "book resync",
    "gaps": "gap",
    "trades": "trade",
    "agg_trades": "aggTrade",
    "book_tickers": "bookTicker",
    "klines": "kline",
    "rejected": "rejected frame",
}


def _items(batch: Batch) -> Iterator[tuple[str, object]]:
    for name in _ITEM_FIELDS:
        for ev in getattr(batch, name):
            yield name, ev


def _halves(batch: Batch) -> tuple[Batch, Batch]:
    items = list(_items(batch))
    mid = len(items) // 2
    out = (Batch(), Batch())
    for k, (name, ev) in enumerate(items):
        getattr(out[k >= mid], name).append(ev)
    return out


def _clean(text: object) -> str:
    """Text SQLite can always store (lone surrogates and the like escaped)."""
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(slots=True)
class _Acc:
    trades: WriteResult = WriteResult()
    agg_trades: WriteResult = WriteResult()
    book_tickers: WriteResult = WriteResult()
    klines: WriteResult = WriteResult()
    book_tops: WriteResult = WriteResult()
    bars: int = 0
    dead: int = 0
    by_exchange: dict[str, int] = field(default_factory=dict)
    echo_conflicts: dict[str, int] = field(default_factory=dict)

    def add(self, o: _Acc) -> None:
        for ex, n in o.by_exchange.items():
            self.by_exchange[ex] = self.by_exchange.get(ex, 0) + n
        for ex, n in o.echo_conflicts.items():
            self.echo_conflicts[ex] = self.echo_conflicts.get(ex, 0) + n
        self.trades += o.trades
        self.agg_trades += o.agg_trades
        self.book_tickers += o.book_tickers
        self.klines += o.klines
        self.book_tops += o.book_tops
        self.bars += o.bars
        self.dead += o.dead

    def result(self, seconds: float) -> BatchResult:
        return BatchResult(
            self.trades,
            self.agg_trades,
            self.book_tickers,
            self.klines,
            self.bars,
            self.dead,
            seconds,
            self.by_exchange,
            self.book_tops,
            self.echo_conflicts,
        )


def _insert_counted(
    conn: sqlite3.Connection,
    head: str,
    rows: list[tuple[Any, ...]],
    ncols: int,
    by: dict[str, int],
    *,
    tail: str = "",
) -> int:
    """:func:`insert_many` of ``rows`` (whose first column is ``exchange``), counting the new
    rows of each exchange label into ``by``; returns the new rows. A batch of one label (the
    common case) is one insert; several labels are inserted one label at a time, each in the
    order given (a kline's newest update still wins), so each label's count is exact."""
    if not rows:
        return 0
    first = rows[0][0]
    if all(r[0] == first for r in rows):
        groups: dict[str, list[tuple[Any, ...]]] = {first: rows}
    else:
        groups = {}
        for r in rows:
            groups.setdefault(r[0], []).append(r)
    total = 0
    for ex, part in groups.items():
        before = conn.total_changes
        insert_many(conn, head, part, ncols, tail=tail)
        new = conn.total_changes - before
        if new:
            by[ex] = by.get(ex, 0) + new
        total += new
    return total


_REFUSED = WriteResult(0, 0, 1)
_DEAD = "INSERT INTO dead_letters (recv_ts, exchange, source, reason, raw) VALUES (?, ?, ?, ?, ?)"
_DEDUPED_DEAD = (
    "INSERT INTO dead_letters (recv_ts, exchange, source, reason, raw)"
    " SELECT ?1, ?2, ?3, ?4, ?5 WHERE NOT EXISTS (SELECT 1 FROM dead_letters"
    " WHERE recv_ts = ?1 AND exchange = ?2 AND reason = ?4 AND raw = ?5 AND id <= ?6)"
)  # ?6: the highest id before this batch, so that two equal dead letters of one batch stay two
_Ident = tuple[int, int]


def _ident(path: Path) -> _Ident | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


# 1 s bars of one (exchange, symbol) for the seconds [?3, ?4), from the ticks whose ids lie in
# [?5, ?6] (the caller widens that range to cover every tick already stored in those seconds,
# using the bars' own first_id/last_id). Open/close: the prices of the lowest/highest trade id.
_BARS_SQL = """
INSERT OR REPLACE INTO bars_1s (exchange, symbol, ts, open, high, low, close, volume,
                                quote_volume, trades, vwap, first_id, last_id)
SELECT ?1, ?2, agg.sec * 1000000, o.price, agg.h, agg.l, c.price, agg.v, agg.qv, agg.n,
       agg.qv / agg.v, agg.first_id, agg.last_id
FROM (
    SELECT ts / 1000000 AS sec, max(price) AS h, min(price) AS l, sum(qty) AS v,
           sum(price * qty) AS qv, count(*) AS n, min(trade_id) AS first_id, max(trade_id) AS last_id
    FROM ticks
    WHERE symbol = ?2 AND trade_id BETWEEN ?5 AND ?6 AND exchange = ?1 AND ts >= ?3 AND ts < ?4
    GROUP BY sec
) AS agg
JOIN ticks AS o ON o.symbol = ?2 AND o.trade_id = agg.first_id AND o.exchange = ?1
JOIN ticks AS c ON c.symbol = ?2 AND c.trade_id = agg.last_id AND c.exchange = ?1
"""

# the id range of the ticks already stored in the seconds [?3, ?4)
_STORED_IDS_SQL = """
SELECT min(first_id), max(last_id) FROM bars_1s
WHERE symbol = ?2 AND ts >= ?3 AND ts < ?4 AND exchange = ?1
"""

# 1-minute rollup of the 1 s bars for the minutes [?3, ?4)
_BARS_1M_SQL = """
INSERT OR REPLACE INTO bars_1m (exchange, symbol, ts, open, high, low, close, volume,
                                quote_volume, trades, vwap, first_id, last_id)
SELECT ?1, ?2, g.m, o.open, g.h, g.l, c.close, g.v, g.qv, g.n, g.qv / g.v, g.fid, g.lid
FROM (SELECT ts / 60000000 * 60000000 AS m, min(ts) AS fts, max(ts) AS lts, max(high) AS h,
             min(low) AS l, sum(volume) AS v, sum(quote_volume) AS qv, sum(trades) AS n,
             min(first_id) AS fid, max(last_id) AS lid
      FROM bars_1s WHERE symbol = ?2 AND ts >= ?3 AND ts < ?4 AND exchange = ?1 GROUP BY m) AS g
JOIN bars_1s AS o ON o.symbol = ?2 AND o.ts = g.fts AND o.exchange = ?1
JOIN bars_1s AS c ON c.symbol = ?2 AND c.ts = g.lts AND c.exchange = ?1
"""

_KLINE_VALUES = (
    "close_time", "open", "high", "low", "close", "volume", "quote_volume", "trades",
    "taker_buy_volume", "taker_buy_quote_volume", "closed",
)  # fmt: skip
_KLINE_UPSERT = (
    " ON CONFLICT (symbol, interval, open_time, exchange) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _KLINE_VALUES)
    + f" WHERE ({', '.join('klines.' + c for c in _KLINE_VALUES)})"
    + f" IS NOT ({', '.join('excluded.' + c for c in _KLINE_VALUES)})"
)

_SEC = 1_000_000
_MIN = 60_000_000
_CLUSTER_GAP = 60 * _SEC  # seconds further apart than this are refreshed separately


class Writer:
    """The one writer of a database file (``Writer(path)`` takes the writer lock).

    Parameters
    ----------
    path
        The SQLite file; created and migrated if needed.
    lock
        Take the per-file writer lock (default). A second writer on the same file raises
        :class:`~lq.errors.WriterLockedError` naming the running process.
    source
        Label stored with dead letters (``feed``, ``import``...).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, lock: bool = True, source: str = "feed"
    ) -> None:
        self.path = Path(path)
        self.source = source
        self.wal_path = Path(str(self.path) + "-wal")
        self.shm_path = Path(str(self.path) + "-shm")
        self._shm_ident: _Ident | None = None
        self._lock = WriterLock(self.path).acquire() if lock else None
        self._db_ident: _Ident | None = None
        self._dedupe = False
        # (exchange, symbol, kind) with open gap rows; None: not counted yet
        self._open_gap_keys: set[tuple[str, str, str]] | None = None
        self._dedupe_max: int | None = None
        self._wal_ident: _Ident | None = None
        try:
            self.conn = connect_writer(self.path)
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise
        self._remember_files()

    # -- context management -------------------------------------------------------------
    def close(self) -> None:
        if getattr(self, "conn", None) is not None:
            problem = self.check_files()
            if problem is not None:  # never let our close checkpoint into or delete a new file
                try:
                    log.error("%s: %s", self.path, self.recover(problem, reopen=False))
                except (OSError, sqlite3.Error, StorageFailedError) as exc:
                    log.error("%s: %s; could not save its contents: %s", self.path, problem, exc)
            if self.conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("PRAGMA optimize")
                self.conn.close()
                self.conn = None  # type: ignore[assignment]
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public API -----------------------------------------------------------------------
    def write_trades(self, trades: Sequence[Trade]) -> WriteResult:
        """Insert trades (and refresh their 1 s bars) in one transaction."""
        return self.write_batch(Batch(trades=list(trades))).trades

    def write_book_tickers(self, tickers: Sequence[BookTicker]) -> WriteResult:
        return self.write_batch(Batch(book_tickers=list(tickers))).book_tickers

    def write_batch(self, batch: Batch, *, dedupe_dead_letters: bool = False) -> BatchResult:
        """Write everything in ``batch`` in one transaction; refused rows go to dead letters.

        Rows SQLite cannot take (a failed bind, a broken constraint) are isolated into dead
        letters with the error and the rest is stored (see the module docstring).
        ``dedupe_dead_letters`` skips dead letters already stored with the same time, reason
        and text: for a batch written again that may have been committed before (a spill
        record re-imported after a crash), so that every table stays exactly-once.

        Raises
        ------
        StorageFailedError
            The database itself failed (disk full, I/O error, read-only, locked, corrupt, the
            file or its WAL deleted or replaced). Nothing of the batch is stored.
        """
        t0 = time.perf_counter()
        self._dedupe = dedupe_dead_letters
        self._dedupe_max = None
        try:
            self.verify_files()
            return self._transaction(lambda now: self._write_rows(batch, now), t0)
        except Exception as exc:
            why = storage_failure(exc)
            if why is not None:
                raise StorageFailedError(why, path=str(self.path)) from exc
            first = exc
        log.warning(
            "a batch of %d events failed to write (%s: %s): isolating the events that cause it",
            len(batch),
            type(first).__name__,
            first,
        )
        try:
            return self._transaction(lambda now: self._isolate(batch, first, now), t0)
        except Exception as exc:  # a failure of the database while isolating, or a bug here
            why = storage_failure(exc) or f"writer: {type(exc).__name__}: {exc}"
            raise StorageFailedError(why, path=str(self.path)) from exc

    def _transaction(self, body: Callable[[int], _Acc], t0: float) -> BatchResult:
        conn = self.conn
        if conn is None:
            raise StorageFailedError("the database is not open", path=str(self.path))
        if conn.in_transaction:  # left open by a failure outside a batch
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        now = time.time_ns() // 1000
        conn.execute("BEGIN IMMEDIATE")
        try:
            acc = body(now)
            conn.execute("COMMIT")
        except BaseException:
            # SQLite rolls back by itself on SQLITE_FULL/IOERR: a second ROLLBACK would raise
            # "cannot rollback - no transaction is active" and hide the real error
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        return acc.result(time.perf_counter() - t0)

    def _write_rows(self, batch: Batch, now: int) -> _Acc:
        conn = self.conn
        dead: list[tuple[int, str, str, str, str]] = []
        acc = _Acc()
        by = acc.by_exchange
        acc.trades, rows = self._insert_trades(batch.trades, dead, now, by)
        acc.agg_trades, agg_rows = self._insert_agg_trades(batch.agg_trades, dead, now, by)
        if acc.trades.duplicates or acc.agg_trades.duplicates or batch.echoes:
            acc.trades, acc.agg_trades = self._conflicts(
                batch, rows, agg_rows, acc.trades, acc.agg_trades, dead, now, acc.echo_conflicts
            )
        acc.book_tickers = self._insert_book_tickers(batch.book_tickers, dead, now, by)
        acc.klines = self._insert_klines(batch.klines, dead, now, by)
        self._upsert_gaps(batch.gaps, now)
        if self._open_gap_keys is None or self._open_gap_keys:
            self._close_stored_ids("trade", rows, 2, now)
            self._close_stored_ids("aggTrade", agg_rows, 2, now)
        if batch.book_tops:
            acc.book_tops = self._insert_book_tops(batch.book_tops, dead, now, by)
        if batch.book_resyncs:
            self._insert_book_resyncs(batch.book_resyncs, dead, now)
        tr = acc.trades
        if not tr.new:
            acc.bars = 0
        elif tr.new == len(rows):  # every row is new: bars merge in O(batch)
            acc.bars = self._merge_bars(rows)
        else:  # some rows were already stored: recompute the touched seconds from ticks
            acc.bars = self._refresh_bars(rows)
        for r in batch.rejected:
            dead.append((r.recv_ts or now, r.exchange, self.source, r.reason, r.raw))
        if dead:
            dead = [
                d
                if len(d[4]) <= MAX_DEAD_RAW and len(d[3]) <= MAX_REASON
                else (*d[:3], capped_raw(d[3], MAX_REASON), capped_raw(d[4]))
                for d in dead
            ]
        if dead and self._dedupe:
            top = self._dedupe_top()
            conn.executemany(_DEDUPED_DEAD, [(*d, top) for d in dead])
        elif dead:
            conn.executemany(_DEAD, dead)
        acc.dead = len(dead)
        return acc

    def _isolate(self, batch: Batch, err: Exception, now: int) -> _Acc:
        """Write ``batch`` (known to fail with ``err``) halving it under savepoints until every
        offending event stands alone; those become dead letters. Runs inside one transaction."""
        acc = _Acc()
        conn = self.conn
        todo: list[tuple[Batch, Exception]] = [(batch, err)]
        while todo:
            part, why = todo.pop()
            if len(part) <= 1:
                for name, ev in _items(part):
                    self._dead_letter_event(name, ev, why, now)
                    acc.dead += 1
                    if name in ("trades", "agg_trades", "book_tickers", "klines", "book_tops"):
                        setattr(acc, name, getattr(acc, name) + _REFUSED)
                continue
            failed: list[tuple[Batch, Exception]] = []
            for half in _halves(part):
                if not len(half):
                    continue
                conn.execute("SAVEPOINT lq_isolate")
                try:
                    got = self._write_rows(half, now)
                except Exception as exc:
                    if storage_failure(exc) is not None:
                        raise
                    conn.execute("ROLLBACK TO lq_isolate")
                    conn.execute("RELEASE lq_isolate")
                    failed.append((half, exc))
                else:
                    conn.execute("RELEASE lq_isolate")
                    acc.add(got)
            todo.extend(reversed(failed))  # the earlier half first
        return acc

    def _dedupe_top(self) -> int:
        """The highest dead-letter id committed before the batch being written."""
        if self._dedupe_max is None:
            row = self.conn.execute("SELECT max(id) FROM dead_letters").fetchone()
            self._dedupe_max = int(row[0] or 0)
        return self._dedupe_max

    def _dead_letter_event(self, name: str, ev: object, err: Exception, now: int) -> None:
        """One event SQLite would not take, as a dead letter (its text escaped if need be)."""
        recv = getattr(ev, "recv_ts", 0)
        recv = recv if type(recv) is int and 0 < recv < 2**63 else now
        error = f"{type(err).__name__}: {err}"
        if type(ev) is Rejected:
            reason, raw = f"{ev.reason} (escaped: {error})", ev.raw
        else:
            reason, raw = f"{_ITEM_LABEL[name]} not storable: {error}", _raw(ev)
        exchange = getattr(ev, "exchange", "") or "?"
        row = [
            recv,
            _clean(exchange),
            _clean(self.source),
            _clean(capped_raw(reason, MAX_REASON)),
            _clean(capped_raw(raw)),
        ]
        sql = _DEAD
        if self._dedupe:
            sql = _DEDUPED_DEAD
            row.append(self._dedupe_top())
        try:
            self.conn.execute(sql, row)
        except Exception as exc:
            if storage_failure(exc) is not None:
                raise
            row[1], row[4] = ascii(row[1]), ascii(repr(ev))
            self.conn.execute(sql, row)
        log.warning("dead letter: %s", reason)

    def dead_letter(
        self, raw: str, reason: str, *, exchange: str = "binance", recv_ts: int | None = None
    ) -> None:
        """Store one refused input with its reason (outside any batch)."""
        self.conn.execute(
            "INSERT INTO dead_letters (recv_ts, exchange, source, reason, raw) VALUES (?, ?, ?, ?, ?)",
            (
                recv_ts or time.time_ns() // 1000,
                exchange,
                self.source,
                capped_raw(reason, MAX_REASON),
                capped_raw(raw),
            ),
        )

    def set_feed_status(
        self, *, exchange: str, source: str, state: str, detail: dict[str, object]
    ) -> None:
        """Publish the collector's health for readers (the dashboard's status bar)."""
        self.verify_files()
        self.conn.execute(
            "INSERT OR REPLACE INTO feed_status (exchange, source, updated_ts, state, pid, detail)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                exchange,
                source,
                time.time_ns() // 1000,
                state,
                os.getpid(),
                json.dumps(detail, default=str),
            ),
        )

    def last_trade_ids(self) -> dict[tuple[str, str], int]:
        """Highest stored trade id per (exchange, symbol): where a restarted feed resumes."""
        rows = self.conn.execute(
            "SELECT exchange, symbol, max(trade_id) FROM ticks GROUP BY exchange, symbol"
        ).fetchall()
        return {(e, s): int(t) for e, s, t in rows}

    def execute(self, sql: str, params: Iterable[object] = ()) -> sqlite3.Cursor:
        """Run one statement on the writer connection (used by alerts, backtests, retention)."""
        return self.conn.execute(sql, tuple(params))

    # -- the files under us -----------------------------------------------------------------
    def _remember_files(self) -> None:
        self._db_ident = _ident(self.path)
        self._wal_ident = _ident(self.wal_path)
        self._shm_ident = _ident(self.shm_path)

    def _close_old(self, conn: sqlite3.Connection) -> None:
        """Close a connection whose file is gone, then remove its own WAL and shared-memory
        files if they are still at the path: opened with the new file, their frames would be
        applied to it."""
        conn.close()
        self.conn = None  # type: ignore[assignment]
        for path, ident in ((self.wal_path, self._wal_ident), (self.shm_path, self._shm_ident)):
            if ident is not None and _ident(path) == ident:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def check_files(self) -> str | None:
        """What happened to the database file or its WAL since we opened them, or ``None``.

        Compares ``st_dev``/``st_ino`` of the path and of ``<db>-wal`` with those we opened:
        ``"database file deleted"``, ``"database file replaced"``, ``"WAL file deleted"``,
        ``"WAL file replaced"``. A connection writing on would write into an unlinked file.
        """
        if self.conn is None:
            return None
        db = _ident(self.path)
        if db is None:
            return "database file deleted"
        if db != self._db_ident:
            return "database file replaced"
        wal = _ident(self.wal_path)
        if self._wal_ident is None:
            self._wal_ident = wal
            return None
        if wal is None:
            return "WAL file deleted"
        if wal != self._wal_ident:
            return "WAL file replaced"
        return None

    def verify_files(self) -> None:
        """Raise :class:`~lq.errors.StorageFailedError` if :meth:`check_files` finds a problem
        (and reopen first if a failure closed the connection)."""
        if self.conn is None:
            self.reopen()
        problem = self.check_files()
        if problem is not None:
            raise StorageFailedError(problem, path=str(self.path))

    def reopen(self) -> None:
        """Open the database at our path again (after a failure closed it)."""
        if self.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self.conn.close()
            self.conn = None  # type: ignore[assignment]
        try:
            self.conn = connect_writer(self.path)
        except (sqlite3.Error, OSError) as exc:
            raise StorageFailedError(storage_failure(exc) or str(exc), path=str(self.path)) from exc
        self._remember_files()

    def recover(self, problem: str, *, reopen: bool = True) -> str:
        """Deal with what :meth:`check_files` found, losing nothing; returns what was done.

        * WAL deleted or replaced: our connection still holds the committed frames, so they
          are checkpointed into the database file, and the database is reopened with a
          fresh WAL.
        * Database file deleted: its contents (read through our open connection) are
          written back to the path, which is reopened.
        * Database file replaced: the old contents are saved to
          ``<db>.orphan-<UTC time>.sqlite``, and the new file at the path is opened (and
          migrated). Nothing is ever written into the unlinked file.

        With ``reopen=False`` (closing) the connection is closed and nothing is reopened.
        """
        conn = self.conn
        if conn is None:
            raise StorageFailedError("the database is not open", path=str(self.path))
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        if problem.startswith("WAL"):
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                raise StorageFailedError(
                    f"{problem}; its checkpoint is blocked by readers, retrying",
                    path=str(self.path),
                )
            done = (
                f"{problem}: every committed transaction was checkpointed from our open "
                "handle into the database file"
            )
            conn.close()
            self.conn = None  # type: ignore[assignment]
        elif problem == "database file deleted":
            tmp = Path(str(self.path) + ".restoring")
            self._backup_to(tmp)
            self._close_old(conn)
            if _ident(self.path) is None:
                os.replace(tmp, self.path)
                done = f"{problem}: its contents were written back to {self.path}"
            else:  # something new appeared at the path meanwhile: keep ours beside it
                orphan = self._orphan_path()
                os.replace(tmp, orphan)
                done = f"{problem}: its contents were saved to {orphan}"
        else:
            orphan = self._orphan_path()
            self._backup_to(orphan)
            self._close_old(conn)
            done = f"{problem}: the data it held is saved in {orphan}"
        if reopen:
            self.reopen()
            done += "; reopened " + str(self.path)
        return done

    def _backup_to(self, dest: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            dest.unlink()
        target = sqlite3.connect(dest)
        try:
            self.conn.backup(target)
        finally:
            target.close()

    def _orphan_path(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        return self.path.with_name(f"{self.path.name}.orphan-{stamp}.sqlite")

    # -- internals ------------------------------------------------------------------------
    def _insert_trades(
        self, trades: Sequence[Trade], dead: list, now: int, by: dict[str, int]
    ) -> tuple[WriteResult, list[tuple[Any, ...]]]:
        if not trades:
            return WriteResult(), []
        rows: list[tuple[Any, ...]] = []
        append = rows.append
        for t in trades:
            p, q, ts = t.price, t.qty, t.ts
            reason = trade_problem(t.symbol, t.trade_id, ts, p, q)
            if reason is None:
                append((t.exchange, t.symbol, t.trade_id, ts, p, q, t.is_buyer_maker, t.recv_ts))
            else:
                dead.append((t.recv_ts or now, t.exchange, self.source, "trade " + reason, _raw(t)))
        new = _insert_counted(self.conn, "INSERT OR IGNORE INTO ticks", rows, 8, by)
        return WriteResult(new, len(rows) - new, len(trades) - len(rows)), rows

    def _insert_agg_trades(
        self, aggs: Sequence[AggTrade], dead: list, now: int, by: dict[str, int]
    ) -> tuple[WriteResult, list[tuple[Any, ...]]]:
        rows: list[tuple[Any, ...]] = []
        if not aggs:
            return WriteResult(), rows
        for a in aggs:
            reason = agg_trade_problem(a)
            if reason is None:
                rows.append(
                    (
                        a.exchange,
                        a.symbol,
                        a.agg_id,
                        a.first_id,
                        a.last_id,
                        a.ts,
                        a.price,
                        a.qty,
                        a.is_buyer_maker,
                        a.recv_ts,
                    )
                )
            else:
                dead.append(
                    (a.recv_ts or now, a.exchange, self.source, "aggTrade " + reason, _raw(a))
                )
        new = _insert_counted(self.conn, "INSERT OR IGNORE INTO agg_trades", rows, 10, by)
        return WriteResult(new, len(rows) - new, len(aggs) - len(rows)), rows

    def _insert_book_tickers(
        self, tickers: Sequence[BookTicker], dead: list, now: int, by: dict[str, int]
    ) -> WriteResult:
        if not tickers:
            return WriteResult()
        rows = []
        for b in tickers:
            reason = book_ticker_problem(b)
            if reason is None:
                rows.append(
                    (
                        b.exchange,
                        b.symbol,
                        b.update_id,
                        b.ts,
                        b.bid,
                        b.bid_qty,
                        b.ask,
                        b.ask_qty,
                        b.recv_ts,
                    )
                )
            else:
                dead.append(
                    (b.recv_ts or now, b.exchange, self.source, "bookTicker " + reason, _raw(b))
                )
        new = _insert_counted(self.conn, "INSERT OR IGNORE INTO book_tickers", rows, 9, by)
        return WriteResult(new, len(rows) - new, len(tickers) - len(rows))

    def _insert_book_tops(
        self, tops: Sequence[BookTop], dead: list, now: int, by: dict[str, int]
    ) -> WriteResult:
        rows = []
        for b in tops:
            reason = book_top_problem(b)
            if reason is None:
                rows.append(
                    (
                        b.exchange,
                        b.symbol,
                        b.ts,
                        b.update_id,
                        b.recv_ts,
                        b.levels,
                        _encode_side(b.bids),
                        _encode_side(b.asks),
                    )
                )
            else:
                dead.append(
                    (b.recv_ts or now, b.exchange, self.source, "book snapshot " + reason, _raw(b))
                )
        new = _insert_counted(self.conn, "INSERT OR IGNORE INTO book_snapshots", rows, 8, by)
        return WriteResult(new, len(rows) - new, len(tops) - len(rows))

    def _insert_book_resyncs(self, resyncs: Sequence[BookResync], dead: list, now: int) -> None:
        rows = []
        for r in resyncs:
            reason = book_resync_problem(r)
            if reason is None:
                rows.append(
                    (
                        r.exchange,
                        r.symbol,
                        r.recv_ts,
                        r.ts,
                        r.reason,
                        r.detail,
                        r.book_update_id,
                        r.first_id,
                        r.last_id,
                        r.prev_last_id,
                    )
                )
            else:
                dead.append(
                    (r.recv_ts or now, r.exchange, self.source, "book resync " + reason, _raw(r))
                )
        self.conn.executemany(
            "INSERT OR IGNORE INTO book_resyncs (exchange, symbol, recv_ts, ts, reason, detail,"
            " book_update_id, first_id, last_id, prev_last_id) VALUES"
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def _insert_klines(
        self, klines: Sequence[Kline], dead: list, now: int, by: dict[str, int]
    ) -> WriteResult:
        if not klines:
            return WriteResult()
        rows = []
        for k in klines:
            reason = kline_problem(k)
            if reason is None:
                rows.append(
                    (
                        k.exchange,
                        k.symbol,
                        k.interval,
                        k.open_time,
                        k.close_time,
                        k.open,
                        k.high,
                        k.low,
                        k.close,
                        k.volume,
                        k.quote_volume,
                        k.trades,
                        k.taker_buy_volume,
                        k.taker_buy_quote_volume,
                        k.closed,
                    )
                )
            else:
                dead.append((k.recv_ts or now, k.exchange, self.source, "kline " + reason, _raw(k)))
        # a kline is updated until it closes: the newest update wins. A row equal to the
        # stored one changes nothing and counts as a duplicate (re-importing a file reports
        # 0 new); a changed one counts as new.
        new = _insert_counted(self.conn, "INSERT INTO klines", rows, 15, by, tail=_KLINE_UPSERT)
        return WriteResult(new, len(rows) - new, len(klines) - len(rows))

    def _upsert_gaps(self, gaps: Sequence[Gap], now: int) -> None:
        """Assign each gap's status to exactly its ids: the ledger holds at most one row per id
        and the last status written for it wins.

        Rows the gap overlaps are cut: their parts outside the gap keep their own status,
        reason and times; the gap's row takes the earliest ``detected_ts`` of the open
        (``found``/``unfilled``) rows it replaces, so a hole's age counts from when its ids
        were first seen missing. (Keyed by ``first_missing`` alone, an update narrower than its
        row used to drop the row's other ids, and one starting inside it left two rows.)
        """
        conn = self.conn
        for g in self._without_stored(gaps, now):
            lo, hi = g.first_missing, g.last_missing
            key = (g.exchange, g.symbol, g.kind)
            if g.status != "filled" and self._open_gap_keys is not None:
                self._open_gap_keys.add(key)
            old = conn.execute(
                "SELECT first_missing, last_missing, status, detected_ts, updated_ts, reason"
                " FROM gaps WHERE exchange = ? AND symbol = ? AND kind = ?"
                " AND first_missing <= ? AND last_missing >= ?",
                (*key, hi, lo),
            ).fetchall()
            detected = g.detected_ts
            keep: list[tuple[Any, ...]] = []
            for a, b, status, det, upd, reason in old:
                if status != "filled":
                    detected = min(detected, det)
                if a < lo:
                    keep.append((*key, a, lo - 1, status, det, upd, reason))
                if b > hi:
                    keep.append((*key, hi + 1, b, status, det, upd, reason))
            if old:
                conn.executemany(
                    "DELETE FROM gaps WHERE exchange = ? AND symbol = ? AND kind = ?"
                    " AND first_missing = ?",
                    [(*key, r[0]) for r in old],
                )
            keep.append((*key, lo, hi, g.status, detected, now, g.reason))
            conn.executemany(
                "INSERT INTO gaps (exchange, symbol, kind, first_missing, last_missing, status,"
                " detected_ts, updated_ts, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                keep,
            )

    def _conflicts(
        self,
        batch: Batch,
        rows: Sequence[tuple[Any, ...]],
        agg_rows: Sequence[tuple[Any, ...]],
        trades: WriteResult,
        aggs: WriteResult,
        dead: list,
        now: int,
        echoes: dict[str, int],
    ) -> tuple[WriteResult, WriteResult]:
        """Trades whose id is stored already (ignored by the insert, or dropped by the feed as
        duplicates) must be the stored trade: one with another price or quantity is a dead
        letter naming both (the stored one is kept), not a duplicate."""
        cands: dict[str, list[tuple[Any, ...]]] = {"trade": [], "aggTrade": []}
        if trades.duplicates:  # which rows were ignored is not known: check them all
            cands["trade"] += [(r[0], r[1], r[2], r[4], r[5], None) for r in rows]
        if aggs.duplicates:
            cands["aggTrade"] += [(r[0], r[1], r[2], r[6], r[7], None) for r in agg_rows]
        for d in batch.echoes:
            e = d.event
            if type(e) is Trade:
                cands["trade"].append((e.exchange, e.symbol, e.trade_id, e.price, e.qty, e))
            elif type(e) is AggTrade:
                cands["aggTrade"].append((e.exchange, e.symbol, e.agg_id, e.price, e.qty, e))
        found = {"trade": 0, "aggTrade": 0}
        for kind, sql in (
            ("trade", "SELECT price, qty FROM ticks WHERE exchange = ? AND symbol = ? AND trade_id = ?"),
            ("aggTrade", "SELECT price, qty FROM agg_trades WHERE exchange = ? AND symbol = ? AND agg_id = ?"),
        ):  # fmt: skip
            for exchange, symbol, i, price, qty, ev in cands[kind]:
                if type(i) is not int or not -(2**63) <= i < 2**63:
                    continue
                row = self.conn.execute(sql, (exchange, symbol, i)).fetchone()
                if row is None or (row[0] == price and row[1] == qty):
                    continue
                found[kind] += ev is None  # an ignored row: counted as a duplicate so far
                if ev is not None:  # the feed counted it as a duplicate
                    echoes[exchange] = echoes.get(exchange, 0) + 1
                why = (
                    f"{kind} {i} conflicts with the stored {kind} of that id: price {price!r} "
                    f"qty {qty!r} here, price {row[0]!r} qty {row[1]!r} stored (kept)"
                )
                src = ev if ev is not None else {"exchange": exchange, "symbol": symbol,
                                                  "id": i, "price": price, "qty": qty}  # fmt: skip
                dead.append((now, exchange, self.source, why, _raw(src)))
                log.warning("%s %s: %s", exchange, symbol, why)
        t, a = found["trade"], found["aggTrade"]
        return (
            WriteResult(trades.new, trades.duplicates - t, trades.rejected + t),
            WriteResult(aggs.new, aggs.duplicates - a, aggs.rejected + a),
        )

    def _without_stored(self, gaps: Sequence[Gap], now: int) -> list[Gap]:
        """Open gaps (``found``/``unfilled``) cut around the ids the database already holds,
        which become ``filled`` runs: a hole's trades may be stored already (an import the
        live feed's resume point does not count, an earlier backfill), and the ledger must not
        list them as missing."""
        out: list[Gap] = []
        for g in gaps:
            if (
                g.status == "filled"
                or g.kind not in ("trade", "aggTrade")
                or (g.kind == "aggTrade" and g.reason.startswith(TRADE_IDS_NOT_AGGREGATES))
            ):
                out.append(g)
                continue
            table, col = ("ticks", "trade_id") if g.kind == "trade" else ("agg_trades", "agg_id")
            have = [
                i
                for (i,) in self.conn.execute(
                    f"SELECT {col} FROM {table} WHERE exchange = ? AND symbol = ?"
                    f" AND {col} BETWEEN ? AND ? ORDER BY 1 LIMIT 100001",
                    (g.exchange, g.symbol, g.first_missing, g.last_missing),
                )
            ]
            if not have or len(have) > 100_000:  # none, or a range that is mostly data
                out.append(g)
                continue
            nxt = g.first_missing
            runs: list[list[int]] = []
            for i in have:
                if runs and i == runs[-1][1] + 1:
                    runs[-1][1] = i
                else:
                    runs.append([i, i])
            for a, b in runs:
                if a > nxt:
                    out.append(msgspec.structs.replace(g, first_missing=nxt, last_missing=a - 1))
                out.append(self._filled(g.exchange, g.symbol, g.kind, [a, b], now))
                nxt = b + 1
            if nxt <= g.last_missing:
                out.append(msgspec.structs.replace(g, first_missing=nxt))
        return out

    def _close_stored_ids(
        self, kind: str, rows: Sequence[tuple[Any, ...]], at: int, now: int
    ) -> None:
        """Mark ``filled`` every id of an open (``found``/``unfilled``) gap that this batch
        stores (``rows[i][at]`` is the id): the ledger never lists as missing an id the
        database holds, whichever way it came (a straggler after its hole was given up, a
        backfill, a re-import, a trade that arrived after a restart)."""
        if not rows:
            return
        keys = self._open_gap_keys
        if keys is None:
            keys = self._open_gap_keys = {
                (e, s, k)
                for e, s, k in self.conn.execute(
                    "SELECT DISTINCT exchange, symbol, kind FROM gaps WHERE status != 'filled'"
                )
            }
        if not any(k[2] == kind for k in keys):
            return
        wanted = {(e, s) for e, s, k in keys if k == kind}
        ids: dict[tuple[str, str], list[int]] = {}
        for r in rows:
            es = (r[0], r[1])
            if es in wanted:
                ids.setdefault(es, []).append(r[at])
        fills: list[Gap] = []
        for (exchange, symbol), got in ids.items():
            got.sort()
            spans = self.conn.execute(
                "SELECT first_missing, last_missing, reason FROM gaps WHERE exchange = ?"
                " AND symbol = ? AND kind = ? AND status != 'filled' AND first_missing <= ?"
                " AND last_missing >= ?",
                (exchange, symbol, kind, got[-1], got[0]),
            ).fetchall()
            for a, b, reason in spans:
                if kind == "aggTrade" and reason.startswith(TRADE_IDS_NOT_AGGREGATES):
                    continue  # a range of trade ids, not of aggregate ids: nothing to fill
                k = bisect.bisect_left(got, a)
                run: list[int] = []
                while k < len(got) and got[k] <= b:
                    i = got[k]
                    if run and i <= run[1] + 1:  # the next id, or the same one twice
                        run[1] = i
                    else:
                        if run:
                            fills.append(self._filled(exchange, symbol, kind, run, now))
                        run = [i, i]
                    k += 1
                if run:
                    fills.append(self._filled(exchange, symbol, kind, run, now))
        if fills:
            self._upsert_gaps(fills, now)
            self._open_gap_keys = None  # recounted at the next batch

    @staticmethod
    def _filled(exchange: str, symbol: str, kind: str, run: list[int], now: int) -> Gap:
        return Gap(
            symbol=symbol,
            kind=kind,  # type: ignore[arg-type]
            first_missing=run[0],
            last_missing=run[1],
            status="filled",
            detected_ts=now,
            exchange=exchange,
        )

    def _merge_bars(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """1 s bars for a batch whose rows are all new: the batch's own bars (numpy), merged
        with the bar already stored for any second the batch shares with earlier batches.

        Exact like :meth:`_refresh_bars` (a test checks the two agree): a new row cannot be in
        a stored bar, so highs/lows/sums combine, and open/close follow the lower/higher
        trade id. Falls back to the recompute for bars stored before v5 (no id range)."""
        conn = self.conn
        before = conn.total_changes
        for (exchange, symbol), new in _segment_bars(rows).items():
            lo, hi = int(new["ts"][0]), int(new["ts"][-1])
            stored = conn.execute(
                "SELECT ts, open, high, low, close, volume, quote_volume, trades, first_id, last_id"
                " FROM bars_1s WHERE symbol = ? AND ts >= ? AND ts <= ? AND exchange = ?",
                (symbol, lo, hi, exchange),
            ).fetchall()
            if stored:
                if any(r[8] is None for r in stored):
                    self._refresh_bars([r for r in rows if r[0] == exchange and r[1] == symbol])
                    continue
                at = {int(t): i for i, t in enumerate(new["ts"].tolist())}
                for ts, o, h, lw, c, v, qv, n, fid, lid in stored:
                    if ts not in at:
                        continue  # a second inside the range that this batch did not touch
                    b = new[at[ts]]
                    if fid < b["first_id"]:
                        b["open"], b["first_id"] = o, fid
                    if lid > b["last_id"]:
                        b["close"], b["last_id"] = c, lid
                    b["high"], b["low"] = max(h, b["high"]), min(lw, b["low"])
                    b["volume"] += v
                    b["quote_volume"] += qv
                    b["trades"] += n
                    new[at[ts]] = b
            insert_many(
                conn,
                "INSERT OR REPLACE INTO bars_1s (exchange, symbol, ts, open, high, low, close,"
                " volume, quote_volume, trades, vwap, first_id, last_id)",
                [
                    (exchange, symbol, t, o, h, lw, c, v, qv, n, qv / v, fid, lid)
                    for t, o, h, lw, c, v, qv, n, fid, lid in new.tolist()
                ],
                13,
            )
            m_lo, m_hi = lo // _MIN * _MIN, hi // _MIN * _MIN + _MIN
            conn.execute(_BARS_1M_SQL, (exchange, symbol, m_lo, m_hi))
        return conn.total_changes - before

    def _refresh_bars(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """Recompute the 1 s bars of every second the stored rows touched (and their minutes'
        1 m rollups) from the ticks table. Rows are ``(exchange, symbol, trade_id, ts, ...)``."""
        touched: dict[tuple[str, str], dict[int, list[int]]] = {}
        for r in rows:
            secs = touched.get((r[0], r[1]))
            if secs is None:
                secs = touched[(r[0], r[1])] = {}
            sec = r[3] // _SEC
            ids = secs.get(sec)
            if ids is None:
                secs[sec] = [r[2], r[2]]
            elif r[2] < ids[0]:
                ids[0] = r[2]
            elif r[2] > ids[1]:
                ids[1] = r[2]
        conn = self.conn
        before = conn.total_changes
        for (exchange, symbol), secs in touched.items():
            for lo_s, hi_s, lo_id, hi_id in _clusters(secs):
                lo, hi = lo_s * _SEC, (hi_s + 1) * _SEC
                stored_lo, stored_hi = conn.execute(
                    _STORED_IDS_SQL, (exchange, symbol, lo, hi)
                ).fetchone()
                if stored_lo is not None:
                    lo_id, hi_id = min(lo_id, stored_lo), max(hi_id, stored_hi)
                conn.execute(_BARS_SQL, (exchange, symbol, lo, hi, lo_id, hi_id))
                m_lo, m_hi = lo // _MIN * _MIN, (hi - 1) // _MIN * _MIN + _MIN
                conn.execute(_BARS_1M_SQL, (exchange, symbol, m_lo, m_hi))
        return conn.total_changes - before


def _segment_bars(rows: Sequence[tuple[Any, ...]]) -> dict[tuple[str, str], np.ndarray]:
    """The rows' own 1 s bars per (exchange, symbol), as a structured array sorted by second:
    open/close are the prices of the lowest/highest trade id of each second."""
    keys: dict[tuple[str, str], int] = {}
    kidx = np.fromiter(
        (keys.setdefault((r[0], r[1]), len(keys)) for r in rows), np.int64, len(rows)
    )
    ids = np.fromiter((r[2] for r in rows), np.int64, len(rows))
    ts = np.fromiter((r[3] for r in rows), np.int64, len(rows))
    px = np.fromiter((r[4] for r in rows), np.float64, len(rows))
    qty = np.fromiter((r[5] for r in rows), np.float64, len(rows))
    sec = ts // _SEC
    order = np.lexsort((ids, sec, kidx))
    kidx, ids, sec, px, qty = kidx[order], ids[order], sec[order], px[order], qty[order]
    starts = np.flatnonzero(np.r_[True, (kidx[1:] != kidx[:-1]) | (sec[1:] != sec[:-1])])
    ends = np.r_[starts[1:], len(order)] - 1
    out = np.empty(len(starts), dtype=_BAR_DTYPE)
    out["ts"] = sec[starts] * _SEC
    out["open"], out["close"] = px[starts], px[ends]
    out["high"] = np.maximum.reduceat(px, starts)
    out["low"] = np.minimum.reduceat(px, starts)
    out["volume"] = np.add.reduceat(qty, starts)
    out["quote_volume"] = np.add.reduceat(px * qty, starts)
    out["trades"] = ends - starts + 1
    out["first_id"], out["last_id"] = ids[starts], ids[ends]
    seg_key = kidx[starts]
    return {key: out[seg_key == k] for key, k in keys.items()}


_BAR_DTYPE = np.dtype([
    ("ts", np.int64), ("open", np.float64), ("high", np.float64), ("low", np.float64),
    ("close", np.float64), ("volume", np.float64), ("quote_volume", np.float64),
    ("trades", np.int64), ("first_id", np.int64), ("last_id", np.int64),
])  # fmt: skip


def _clusters(secs: dict[int, list[int]]) -> list[tuple[int, int, int, int]]:
    """Touched seconds grouped into runs with gaps <= 60 s: (first s, last s, min id, max id)."""
    out: list[tuple[int, int, int, int]] = []
    for sec in sorted(secs):
        lo_id, hi_id = secs[sec]
        if out and sec - out[-1][1] <= _CLUSTER_GAP // _SEC:
            a, _, c, d = out[-1]
            out[-1] = (a, sec, min(c, lo_id), max(d, hi_id))
        else:
            out.append((sec, sec, lo_id, hi_id))
    return out


_enc = msgspec.json.Encoder()


def _encode_side(levels: tuple[tuple[float, float], ...]) -> bytes:
    from lq.store.bookcodec import encode_side

    if not levels:
        return b""
    arr = np.asarray(levels, dtype=np.float64)
    return encode_side(arr[:, 0], arr[:, 1])


def _raw(obj: object) -> str:
    try:
        return _enc.encode(obj).decode()
    except (TypeError, ValueError):
        return repr(obj)
