"""Retention: old ticks leave, bars and results stay, imported history stays; disk space
really comes back.

What leaves. ``what="ticks"`` deletes trades, aggregated trades, book tickers and dead
letters older than the cutoff; ``what="bars"`` deletes 1 s and 1 m bars and klines (never the
bars of seconds whose ticks are still stored). Rows that ``lq import`` or an upload brought
in are kept (their ranges are in ``imported_ranges``, see :mod:`lq.store.provenance`) unless
``include_imported=True`` (``lq purge --include-imported``).

How, fast. Deletes are index-range deletes of the complement of the imported ranges, per
symbol, in chunks of ``chunk`` rows (short write transactions, so readers and the
collector's own batches are never blocked for long). Ticks have no time index (the 1 s bars
hold each second's trade-id range), so the ids to delete come from the 1 m rollup's id
ranges and the primary key; the other tables use their ``(symbol, ts)`` index. A purge
therefore never scans the rows it keeps: its cost follows what it deletes and the number
of minutes of bars, not the amount of imported history.

Vacuum strategy. New databases are created with ``auto_vacuum=INCREMENTAL``. After deleting,
``PRAGMA incremental_vacuum`` hands the freed pages back to the file system and a checkpoint
truncates the WAL. A file created without incremental auto-vacuum (by another tool) only gets
its space back from a full ``VACUUM``, which ``purge(..., vacuum="full")`` runs (it rewrites
the file: slow, and it needs as much free disk again).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from lq.errors import StoreError, ValidationError
from lq.store.writer import Writer

__all__ = ["PURGE_REQUEST_SUFFIX", "PurgeResult", "purge", "request_purge", "serve_purge_request"]

#: A purge request waiting in ``<db>.inbox/`` for the running collector.
PURGE_REQUEST_SUFFIX = ".purge.json"
_WHATS = ("ticks", "bars")
_VACUUMS = ("incremental", "full", "none")
_SEC = 1_000_000
_MIN = 60_000_000
_NEVER = -(2**63)

log = logging.getLogger(__name__)

#: table -> (time column, imported-range kind protecting it, bucket of a row in µs)
_TABLES_BY_WHAT: dict[str, tuple[tuple[str, str, str, int], ...]] = {
    "ticks": (
        ("ticks", "ts", "ticks", 0),
        ("agg_trades", "ts", "agg_trades", 0),
        ("book_tickers", "ts", "book_tickers", 0),
    ),
    "bars": (
        ("bars_1s", "ts", "bars", _SEC),
        ("bars_1m", "ts", "bars", _MIN),
        ("klines", "open_time", "klines", 0),
    ),
}


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What a purge did. ``kept_imported``: rows older than the cutoff that were kept because
    an import brought them in (counted only when asked: ``purge(..., count_kept=True)``)."""

    deleted: dict[str, int]
    bytes_before: int
    bytes_after: int
    seconds: float
    kept_imported: dict[str, int] = field(default_factory=dict)

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
    include_imported: bool = False,
    count_kept: bool = False,
) -> PurgeResult:
    """Delete rows older than ``older_than_us`` (µs since the epoch) and reclaim the space.

    ``what="ticks"`` removes trades, aggregated trades, book tickers and old dead letters;
    bars, klines, alert history and backtest runs stay. ``what="bars"`` removes 1 s and 1 m bars
    and klines (their own, usually much longer, retention), but never the bars of seconds whose
    ticks are still stored (time-range tick reads find their trade ids through the bars).
    Imported rows stay unless ``include_imported`` (then their ranges are trimmed too).
    ``count_kept`` also counts the imported rows older than the cutoff that were kept.
    """
    if what not in _WHATS:
        raise ValidationError("what", what, f"expected one of {_WHATS}")
    if vacuum not in _VACUUMS:
        raise ValidationError("vacuum", vacuum, f"expected one of {_VACUUMS}")
    t0 = time.perf_counter()
    conn = writer.conn
    before = _size(writer)
    deleted: dict[str, int] = {}
    kept: dict[str, int] = {}
    for table, col, kind, bucket in _TABLES_BY_WHAT[what]:
        deleted[table] = 0
        for symbol in _symbols(conn, table):
            spans = {} if include_imported else _spans(conn, kind, symbol, bucket)
            if table == "ticks":
                deleted[table] += _purge_ticks(conn, symbol, older_than_us, spans, chunk)
            else:
                deleted[table] += _purge_by_time(
                    conn, table, col, symbol, older_than_us, spans, bucket, chunk
                )
            if count_kept and not include_imported:
                n = _count_kept(conn, table, col, symbol, older_than_us, spans)
                if n:
                    kept[table] = kept.get(table, 0) + n
    if what == "ticks":
        deleted["dead_letters"] = _delete_chunked(
            conn,
            "dead_letters",
            "recv_ts < ?" + ("" if include_imported else " AND source != 'import'"),
            [older_than_us],
            chunk,
        )
    if include_imported:
        _trim_ranges(conn, [k for _t, _c, k, _b in _TABLES_BY_WHAT[what]], older_than_us)
    if vacuum == "incremental":
        conn.executescript("PRAGMA incremental_vacuum;")  # executescript steps it to the end
    elif vacuum == "full":
        conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    after = _size(writer)
    log.info(
        "purged %s older than %d%s: %s, %d -> %d bytes",
        what,
        older_than_us,
        " (imported rows too)" if include_imported else "",
        deleted,
        before,
        after,
    )
    return PurgeResult(deleted, before, after, time.perf_counter() - t0, kept)


# -- the pieces ----------------------------------------------------------------------------------
#: (exchange, interval) -> [(first_key, last_key, first_ts, last_ts)]; interval is "" but for klines
Spans = dict[tuple[str, str], list[tuple[int, int, int, int]]]


def _symbols(conn: sqlite3.Connection, table: str) -> list[str]:
    """Distinct symbols of a table whose primary key leads with the symbol: one index seek
    per symbol (a skip-scan), not a table scan."""
    rows = conn.execute(
        f"""WITH RECURSIVE s(sym) AS (
                SELECT min(symbol) FROM {table}
                UNION ALL
                SELECT (SELECT min(symbol) FROM {table} WHERE symbol > s.sym) FROM s
                WHERE s.sym IS NOT NULL)
            SELECT sym FROM s WHERE sym IS NOT NULL"""
    ).fetchall()
    return [r[0] for r in rows]


def _spans(conn: sqlite3.Connection, kind: str, symbol: str, bucket: int) -> Spans:
    """Imported ranges of ``kind`` for ``symbol`` per exchange label; the time span widened
    to whole buckets (a bar that overlaps an imported run stays)."""
    try:
        rows = conn.execute(
            "SELECT exchange, interval, first_key, last_key, first_ts, last_ts FROM imported_ranges"
            " WHERE what = ? AND symbol = ? ORDER BY first_ts",
            (kind, symbol),
        ).fetchall()
    except sqlite3.OperationalError:  # no such table: a file older than v6 (never here)
        return {}
    out: Spans = {}
    for exch, interval, fk, lk, ft, lt in rows:
        lo = ft // bucket * bucket if bucket else ft
        out.setdefault((exch, interval), []).append((fk, lk, lo, lt))
    return out


def _groups(
    spans: Spans, klines: bool = False
) -> list[tuple[str, list[Any], list[tuple[int, int, int, int]]]]:
    """``(condition, params, spans)``: each exchange label (and interval) with imported ranges
    on its own, then everything else with none."""
    out: list[tuple[str, list[Any], list[tuple[int, int, int, int]]]] = []
    for (exch, interval), ss in spans.items():
        if klines:
            out.append(("exchange = ? AND interval = ?", [exch, interval], ss))
        else:
            out.append(("exchange = ?", [exch], ss))
    if not spans:
        out.append(("1", [], []))
    elif klines:
        cond = " AND ".join(["NOT (exchange = ? AND interval = ?)"] * len(spans))
        out.append((cond, [x for pair in spans for x in pair], []))
    else:
        exchanges = [e for e, _i in spans]
        out.append((f"exchange NOT IN ({','.join('?' * len(exchanges))})", exchanges, []))
    return out


def _complement(lo: int, hi: int, holes: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """``[lo, hi]`` minus the closed intervals ``holes``, as closed intervals."""
    out = []
    cur = lo
    for a, b in sorted(holes):
        if b < cur:
            continue
        if a > hi:
            break
        if a > cur:
            out.append((cur, a - 1))
        cur = max(cur, b + 1)
    if cur <= hi:
        out.append((cur, hi))
    return out


def _purge_ticks(
    conn: sqlite3.Connection, symbol: str, cutoff: int, spans: Spans, chunk: int
) -> int:
    """Trades of ``symbol`` older than ``cutoff``, outside the imported trade-id runs.

    The trade ids to look at come from the 1 m bars of the old minutes (each holds the id
    range of its ticks, written in the same transaction), so only the primary key is walked."""
    total = 0
    for cond, params, ss in _groups(spans):
        lo, hi = conn.execute(
            f"SELECT min(first_id), max(last_id) FROM bars_1m WHERE symbol = ? AND ts < ? AND {cond}",
            [symbol, cutoff, *params],
        ).fetchone()
        if lo is None:
            continue
        for a, b in _complement(int(lo), int(hi), [(fk, lk) for fk, lk, _l, _h in ss]):
            total += _delete_chunked(
                conn,
                "ticks",
                f"symbol = ? AND trade_id BETWEEN ? AND ? AND {cond} AND ts < ?",
                [symbol, a, b, *params, cutoff],
                chunk,
            )
    return total


def _purge_by_time(
    conn: sqlite3.Connection,
    table: str,
    col: str,
    symbol: str,
    cutoff: int,
    spans: Spans,
    bucket: int,
    chunk: int,
) -> int:
    """Rows of ``symbol`` older than ``cutoff`` outside the imported time spans, through the
    table's ``(symbol, time)`` index."""
    total = 0
    for cond, params, ss in _groups(spans, klines=table == "klines"):
        for a, b in _complement(_NEVER, cutoff - 1, [(lo, hi) for _k, _l, lo, hi in ss]):
            end = b + 1  # exclusive
            if table in ("bars_1s", "bars_1m"):
                end = _bars_end(conn, symbol, cond, params, a, end)
                if table == "bars_1m":
                    # a 1 m bar leaves only when its whole minute is older than the cutoff
                    end = end // _MIN * _MIN
                    a = -(-a // _MIN) * _MIN if a != _NEVER else a
            if end <= a:
                continue
            total += _delete_chunked(
                conn,
                table,
                f"symbol = ? AND {col} >= ? AND {col} < ? AND {cond}",
                [symbol, a, end, *params],
                chunk,
            )
    return total


def _bars_end(
    conn: sqlite3.Connection, symbol: str, cond: str, params: list[Any], lo: int, end: int
) -> int:
    """``end``, moved back to the second of the oldest tick still stored in the seconds of the
    bars in ``[lo, end)``: time-range tick reads find their ids through the bars, so the bars
    of stored ticks stay. (Those seconds all start at or after ``lo``.)"""
    ids = conn.execute(
        "SELECT min(first_id), max(last_id) FROM bars_1s WHERE symbol = ? AND ts >= ? AND ts < ?"
        f" AND {cond}",
        [symbol, lo, end, *params],
    ).fetchone()
    if ids[0] is None:
        return end
    oldest = conn.execute(
        f"SELECT min(ts) FROM ticks WHERE symbol = ? AND trade_id BETWEEN ? AND ? AND {cond}"
        " AND ts >= ? AND ts < ?",
        [symbol, ids[0], ids[1], *params, lo, -(-end // _SEC) * _SEC],
    ).fetchone()[0]
    return end if oldest is None else min(end, int(oldest) // _SEC * _SEC)


def _count_kept(
    conn: sqlite3.Connection, table: str, col: str, symbol: str, cutoff: int, spans: Spans
) -> int:
    """Rows older than ``cutoff`` inside imported ranges (what the purge kept)."""
    n = 0
    for cond, params, ss in _groups(spans, klines=table == "klines"):
        for fk, lk, lo, hi in ss:
            if lo >= cutoff:
                continue
            if table == "ticks":
                q = f"SELECT count(*) FROM ticks WHERE symbol = ? AND trade_id BETWEEN ? AND ? AND {cond} AND ts < ?"
                args = [symbol, fk, lk, *params, cutoff]
            else:
                q = f"SELECT count(*) FROM {table} WHERE symbol = ? AND {col} >= ? AND {col} <= ? AND {cond}"
                args = [symbol, lo, min(hi, cutoff - 1), *params]
            n += int(conn.execute(q, args).fetchone()[0])
    return n


def _delete_chunked(
    conn: sqlite3.Connection, table: str, where: str, params: Sequence[Any], chunk: int
) -> int:
    total = 0
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.execute(
                f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {where} LIMIT ?)",
                [*params, chunk],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        total += cur.rowcount
        if cur.rowcount < chunk:
            return total


def _trim_ranges(conn: sqlite3.Connection, kinds: Sequence[str], cutoff: int) -> None:
    """After purging imported rows too: ranges wholly older than the cutoff go, ranges across
    it start at it."""
    marks = ",".join("?" * len(kinds))
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            f"DELETE FROM imported_ranges WHERE what IN ({marks}) AND last_ts < ?", [*kinds, cutoff]
        )
        conn.execute(
            f"UPDATE imported_ranges SET first_ts = ? WHERE what IN ({marks}) AND first_ts < ?",
            [cutoff, *kinds, cutoff],
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _size(writer: Writer) -> int:
    total = 0
    for suffix in ("", "-wal"):
        p = writer.path.with_name(writer.path.name + suffix)
        if p.exists():
            total += p.stat().st_size
    return total


# -- purging while a collector runs ------------------------------------------------------------
# The collector is the database's one writer, so a purge asked for while it runs is a request
# file in its inbox (``<db>.inbox/``, where uploads wait too). The collector runs it on its
# writer thread between batches and answers in ``<db>.inbox/results/<request>.json``.
def _inbox(db: str | os.PathLike[str]) -> Path:
    return Path(str(db) + ".inbox")


def request_purge(
    db: str | os.PathLike[str],
    older_than_us: int,
    *,
    what: Literal["ticks", "bars"] = "ticks",
    vacuum: Literal["incremental", "full", "none"] = "incremental",
    include_imported: bool = False,
    count_kept: bool = False,
    timeout: float = 300.0,
    poll: float = 0.1,
) -> PurgeResult:
    """Ask the collector that writes ``db`` to purge, and wait for its answer.

    Raises :class:`~lq.errors.StoreError` if no answer comes within ``timeout`` seconds (the
    request is withdrawn if the collector has not taken it yet) or if the collector's purge
    failed (its message is in the error).
    """
    if what not in _WHATS:
        raise ValidationError("what", what, f"expected one of {_WHATS}")
    if vacuum not in _VACUUMS:
        raise ValidationError("vacuum", vacuum, f"expected one of {_VACUUMS}")
    box = _inbox(db)
    (box / "results").mkdir(parents=True, exist_ok=True)
    stem = f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}"
    request = box / (stem + PURGE_REQUEST_SUFFIX)
    part = box / (stem + ".part")
    part.write_text(
        json.dumps(
            {
                "older_than_us": older_than_us,
                "what": what,
                "vacuum": vacuum,
                "include_imported": bool(include_imported),
                "count_kept": bool(count_kept),
            }
        )
    )
    part.rename(request)  # the collector never sees half a request
    answer = box / "results" / (stem + ".json")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answer.exists():
            got = json.loads(answer.read_text())
            answer.unlink(missing_ok=True)
            if "error" in got:
                raise StoreError(f"the collector's purge failed: {got['error']}")
            return PurgeResult(**got)
        time.sleep(poll)
    try:
        request.unlink()
        state = "the request was withdrawn"
    except FileNotFoundError:
        state = "it is running and will finish on its own"
    raise StoreError(
        f"{db}: the running collector did not answer the purge request within {timeout:.0f} s"
        f" ({state}); is it stuck? `lq status` shows its state"
    )


def serve_purge_request(writer: Writer, request: Path) -> PurgeResult | None:
    """Run one purge request from the inbox (the collector calls this) and answer it."""
    answer = (
        request.parent / "results" / (request.name.removesuffix(PURGE_REQUEST_SUFFIX) + ".json")
    )
    answer.parent.mkdir(exist_ok=True)
    result: PurgeResult | None = None
    try:
        spec = json.loads(request.read_text())
        result = purge(
            writer,
            int(spec["older_than_us"]),
            what=spec.get("what", "ticks"),
            vacuum=spec.get("vacuum", "incremental"),
            include_imported=bool(spec.get("include_imported", False)),
            count_kept=bool(spec.get("count_kept", False)),
        )
        body: dict[str, object] = asdict(result)
    except Exception as exc:  # a bad request is answered, never fatal to the collector
        log.exception("purge request %s failed", request.name)
        body = {"error": f"{type(exc).__name__}: {exc}"}
    tmp = answer.with_name(answer.name + ".part")
    tmp.write_text(json.dumps(body))
    tmp.rename(answer)
    request.unlink(missing_ok=True)
    return result
