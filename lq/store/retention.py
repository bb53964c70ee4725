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

import json
import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from lq.errors import StoreError, ValidationError
from lq.store.writer import Writer

__all__ = ["PURGE_REQUEST_SUFFIX", "PurgeResult", "purge", "request_purge", "serve_purge_request"]

#: A purge request waiting in ``<db>.inbox/`` for the running collector.
PURGE_REQUEST_SUFFIX = ".purge.json"
_WHATS = ("ticks", "bars")
_VACUUMS = ("incremental", "full", "none")

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
    if what not in _WHATS:
        raise ValidationError("what", what, f"expected one of {_WHATS}")
    if vacuum not in _VACUUMS:
        raise ValidationError("vacuum", vacuum, f"expected one of {_VACUUMS}")
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
    part.write_text(json.dumps({"older_than_us": older_than_us, "what": what, "vacuum": vacuum}))
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
