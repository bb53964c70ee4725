"""The spill: where a collector keeps the events a failing database cannot take.

``<db>.spill/`` (or any directory) holds append-only files, one per outage and process, named
``<20-digit number>-<pid>.lqspill`` so that sorting the names gives the order they were
written in. A file is ``LQSPILL1\\n`` followed by records; a record is one batch of events::

    <u32 little-endian: payload length> <u32: CRC-32 of the payload> <payload>

The payload is a zlib-compressed msgpack array of eight lists (gaps, trades, aggTrades, book
tickers, klines, rejected frames, book snapshots, book resyncs; files written before the
order books end after the sixth), each event a msgspec struct encoded by field name, so
every float, int and string comes back exactly as it went in. Each record is written with
one ``write`` and flushed to disk (``fsync``) before the collector counts it as spilled.

Crash safety: a record whose length, CRC or decoding is wrong can only be the last one of a
file whose writer died mid-write (files are never appended to by another process); the
reader stops there and reports the bytes it ignored. An event msgpack cannot carry (an int
of 2^64 or more, a string with a lone surrogate) is spilled as a rejected frame naming the
problem, so it ends in ``dead_letters`` instead of vanishing.

Re-import (:func:`import_spill`) goes file by file, record by record, each record in its own
transaction, and remembers its progress in ``<file>.done`` (the number of records committed).
A record committed just before a crash, and not yet counted there, is imported again with
dead letters deduplicated, so a re-import stores every event exactly once; everything else
is idempotent by key. A fully imported file is deleted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from lq.errors import StorageFailedError
from lq.feeds.events import AggTrade, BookResync, BookTicker, BookTop, Gap, Kline, Rejected, Trade
from lq.store.writer import Batch, BatchResult, Writer

__all__ = [
    "SpillFile",
    "SpillImport",
    "import_spill",
    "pending_files",
    "read_spill",
    "spill_dir_for",
]

log = logging.getLogger(__name__)

MAGIC = b"LQSPILL1\n"
SUFFIX = ".lqspill"
_HEAD = struct.Struct("<II")
_MAX_RECORD = 1 << 30  # a length beyond this is a torn header, not a record


class _Record(msgspec.Struct, array_like=True):
    gaps: list[Gap]
    trades: list[Trade]
    agg_trades: list[AggTrade]
    book_tickers: list[BookTicker]
    klines: list[Kline]
    rejected: list[Rejected]
    # added with the order books: older files' records end before these (decoded as empty)
    book_tops: list[BookTop] = []
    book_resyncs: list[BookResync] = []


_FIELDS: tuple[str, ...] = _Record.__struct_fields__  # the record's order is the format
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(_Record)


def spill_dir_for(db: str | os.PathLike[str]) -> Path:
    """The default spill directory of a database: ``<db>.spill/`` beside it."""
    return Path(str(db) + ".spill")


def _encode(batch: Batch) -> bytes:
    try:
        body = _enc.encode(_Record(*(getattr(batch, f) for f in _FIELDS)))
    except (OverflowError, UnicodeEncodeError, TypeError, ValueError, msgspec.EncodeError):
        body = _enc.encode(_Record(*_encodable(batch)))  # type: ignore[arg-type]
    return zlib.compress(body, 1)


def _encodable(batch: Batch) -> list[list[object]]:
    """The batch's lists with every event msgpack cannot carry replaced by a rejected frame
    that names the problem (it will be a dead letter, never silently lost)."""
    out: list[list[object]] = [[] for _ in _FIELDS]
    for k, name in enumerate(_FIELDS):
        for ev in getattr(batch, name):
            try:
                _enc.encode(ev)
            except (OverflowError, UnicodeEncodeError, TypeError, ValueError) as exc:
                raw = ascii(repr(ev))
                recv = getattr(ev, "recv_ts", 0)
                out[5].append(
                    Rejected(
                        raw=raw,
                        reason=f"{type(ev).__name__} could not be spilled: {type(exc).__name__}: "
                        f"{exc}",
                        recv_ts=recv if type(recv) is int and 0 <= recv < 2**63 else 0,
                        exchange=ascii(getattr(ev, "exchange", "?"))[1:-1],
                    )
                )
            else:
                out[k].append(ev)
    return out


def _decode(payload: bytes) -> Batch:
    rec = _dec.decode(zlib.decompress(payload))
    return Batch(
        trades=rec.trades,
        agg_trades=rec.agg_trades,
        book_tickers=rec.book_tickers,
        klines=rec.klines,
        gaps=rec.gaps,
        rejected=rec.rejected,
        book_tops=rec.book_tops,
        book_resyncs=rec.book_resyncs,
    )


class SpillFile:
    """One append-only spill file, created on the first :meth:`append`.

    Parameters
    ----------
    directory
        Where the file goes (created if needed).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path: Path | None = None
        self.records = 0
        self.events = 0
        self.bytes = 0
        self._fd: int | None = None

    def append(self, batch: Batch) -> int:
        """Write one batch as a record and flush it to disk; returns the bytes written.

        Raises ``OSError`` (disk full...) with nothing half-counted: a partly written record
        is cut off again, or at worst ignored by the reader as a torn tail.
        """
        data = _encode(batch)
        rec = _HEAD.pack(len(data), zlib.crc32(data)) + data
        fd = self._open()
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(rec)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
        self.records += 1
        self.events += len(batch)
        self.bytes += len(rec)
        return len(rec)

    def _open(self) -> int:
        if self._fd is not None:
            return self._fd
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{_next_number(self.directory):020d}-{os.getpid()}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            os.write(fd, MAGIC)
            os.fsync(fd)
            with contextlib.suppress(OSError):  # the new name itself must survive a crash
                dfd = os.open(self.directory, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        self._fd, self.path = fd, path
        return fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _next_number(directory: Path) -> int:
    """A file number above every existing one (and the clock in ns, normally)."""
    top = 0
    for p in directory.glob("*" + SUFFIX):
        with contextlib.suppress(ValueError):
            top = max(top, int(p.name.split("-", 1)[0]))
    return max(time.time_ns(), top + 1)


def pending_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The spill files of a directory in the order they were written."""
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted(d.glob("*" + SUFFIX), key=lambda p: p.name)


@dataclass
class _ReadResult:
    torn_bytes: int = 0
    torn_at: int | None = None


def read_spill(path: str | os.PathLike[str], tail: _ReadResult | None = None) -> Iterator[Batch]:
    """The batches of a spill file, in order, read one record at a time; a torn or corrupt
    tail is skipped (its size and offset put in ``tail``)."""
    tail = tail if tail is not None else _ReadResult()
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(len(MAGIC))
        if head != MAGIC:
            if MAGIC.startswith(head):  # died while writing the header
                tail.torn_bytes, tail.torn_at = len(head), 0
                return
            raise ValueError(f"{path}: not an lq spill file (no {MAGIC!r} header)")
        pos = len(MAGIC)
        while pos < size:
            h = f.read(_HEAD.size)
            if len(h) < _HEAD.size:
                break
            n, crc = _HEAD.unpack(h)
            if n > _MAX_RECORD or n > size - pos - _HEAD.size:
                break
            body = f.read(n)
            if len(body) < n or zlib.crc32(body) != crc:
                break
            try:
                batch = _decode(body)
            except (zlib.error, msgspec.DecodeError, msgspec.ValidationError):
                break
            pos += _HEAD.size + n
            yield batch
        if pos < size:
            tail.torn_bytes, tail.torn_at = size - pos, pos


@dataclass
class SpillImport:
    """What :func:`import_spill` did."""

    files: int = 0
    records: int = 0
    events: int = 0
    trades_new: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    torn_bytes: int = 0
    batches: list[tuple[Batch, BatchResult]] = field(default_factory=list)
    """The records committed, with their results (kept only with ``keep_batches``)."""
    seconds: float = 0.0

    def summary(self) -> str:
        torn = f"; a torn last record ({self.torn_bytes} bytes) ignored" if self.torn_bytes else ""
        return (
            f"{self.events:,} events from {self.records:,} records of {self.files} spill file(s)"
            f" re-imported ({self.trades_new:,} new trades, {self.duplicates:,} already stored,"
            f" {self.dead_letters:,} dead letters) in {self.seconds:.2f} s{torn}"
        )


def _done_path(path: Path) -> Path:
    return path.with_name(path.name + ".done")


def _read_done(path: Path) -> int:
    try:
        return int(_done_path(path).read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _write_done(path: Path, records: int) -> None:
    p = _done_path(path)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, f"{records:020d}\n".encode(), 0)
        os.fsync(fd)
    finally:
        os.close(fd)


def import_spill(
    writer: Writer,
    directory: str | os.PathLike[str],
    *,
    skip: Path | None = None,
    keep_batches: bool = False,
    max_records: int | None = None,
) -> tuple[SpillImport, bool]:
    """Re-import the spill files of ``directory`` into ``writer``, oldest first.

    Parameters
    ----------
    skip
        A file still being written (left alone).
    keep_batches
        Keep every committed record with its result in ``report.batches`` (the collector
        accounts for them and runs its hooks).
    max_records
        Stop after this many records (the collector imports in slices between flushes).

    Returns
    -------
    (report, finished)
        ``finished`` is False when records remain (``max_records`` reached).

    Raises
    ------
    StorageFailedError
        The database failed; what was committed so far stays committed and counted.
    """
    rep = SpillImport()
    t0 = time.perf_counter()
    try:
        return _import(writer, directory, skip, keep_batches, max_records, rep)
    except StorageFailedError as exc:
        exc.partial = rep  # type: ignore[attr-defined]  # what was committed before it failed
        raise
    finally:
        rep.seconds = time.perf_counter() - t0


def _import(
    writer: Writer,
    directory: str | os.PathLike[str],
    skip: Path | None,
    keep_batches: bool,
    max_records: int | None,
    rep: SpillImport,
) -> tuple[SpillImport, bool]:
    budget = max_records
    for path in pending_files(directory):
        if skip is not None and path == skip:
            continue
        done = _read_done(path)
        tail = _ReadResult()
        uncertain = True  # the first record after the mark may have been committed
        k = -1
        finished_file = True
        try:
            _check_header(path)
        except ValueError as exc:  # not a spill file: set it aside, never block the rest
            bad = path.with_name(path.name + ".unreadable")
            os.replace(path, bad)
            log.error("%s; renamed to %s", exc, bad.name)
            continue
        except OSError as exc:
            raise StorageFailedError(f"spill file unreadable: {exc}", path=str(path)) from exc
        for k, batch in enumerate(_reading(path, tail)):
            if k < done:
                continue
            if budget is not None and budget <= 0:
                finished_file = False
                break
            res = writer.write_batch(batch, dedupe_dead_letters=uncertain)
            rep.records += 1
            rep.events += len(batch)
            rep.trades_new += res.trades.new
            rep.duplicates += res.trades.duplicates
            rep.dead_letters += res.dead_letters
            if keep_batches:
                rep.batches.append((batch, res))
            try:
                _write_done(path, k + 1)
                uncertain = False
            except OSError as exc:  # the record is committed; its mark is not
                log.warning("%s: progress mark not written (%s)", path, exc)
                uncertain = True
            if budget is not None:
                budget -= 1
        if not finished_file:
            return rep, False
        if tail.torn_bytes:
            rep.torn_bytes += tail.torn_bytes
            log.warning(
                "%s: a torn last record (%d bytes at offset %s) was ignored: its writer "
                "died while writing it, so its events were never counted as spilled",
                path,
                tail.torn_bytes,
                tail.torn_at,
            )
        rep.files += 1
        path.unlink()
        with contextlib.suppress(FileNotFoundError):
            _done_path(path).unlink()
        log.info("spill file %s re-imported (%d records) and removed", path.name, k + 1)
    return rep, True


def _check_header(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(len(MAGIC))
    if head != MAGIC and not MAGIC.startswith(head):
        raise ValueError(f"{path}: not an lq spill file (no {MAGIC!r} header)")


def _reading(path: Path, tail: _ReadResult) -> Iterator[Batch]:
    """:func:`read_spill`, a read error being a storage failure (retried, never skipped)."""
    try:
        yield from read_spill(path, tail)
    except OSError as exc:
        raise StorageFailedError(f"spill file unreadable: {exc}", path=str(path)) from exc
