"""``lq import``: Binance public-data files, recorded frames and OHLC CSVs into the store.

What it reads (the layout is detected from the file name and the first row; ``kind=``
overrides):

========== ========================================================================== =====
kind        columns (Binance public data, ``data.binance.vision``)                      table
========== ========================================================================== =====
trades      spot: id, price, qty, quote_qty, time, is_buyer_maker, is_best_match        ticks
            futures: id, price, qty, quote_qty, time, is_buyer_maker
aggTrades   spot: agg_id, price, qty, first_id, last_id, time, is_buyer_maker, best     agg_trades
            futures: the same without is_best_match
klines      open_time, open, high, low, close, volume, close_time, quote_volume,        klines
            count, taker_buy_base, taker_buy_quote, ignore
frames      ``<recv ns> <raw frame>`` lines (lq's ``--record`` and shared/data)         by event
ohlc        a CSV with a header: time (or timestamp/date/open_time), open, high, low,   klines
            close[, volume[, quote_volume][, trades]]; the interval is the most common
            step between rows
========== ========================================================================== =====

CSV, zip (each file inside is read) or gzip, told apart by their first bytes, with or
without a header row; times in ms or µs (detected per file by magnitude: spot files are µs
since 2025); booleans ``True``/``true``; invalid aggTrades (``f = -1``, Binance's marker for
duplicates found by its 2022 audit) are skipped and counted. Imports are idempotent (ids
and kline open times are keys): importing a file again stores nothing new and says so.

Streaming, with limits. Files and zip members are read in blocks of whole lines (4 MB),
so memory stays bounded whatever the file's size. A file is refused before anything is
read when it inflates to more than ``max_size`` bytes (4 GiB by default: ``--max-size``,
``store.import_max_size``) or, beyond 64 MiB, more than ``max_ratio`` times its compressed
size (200: ``--max-ratio``, ``store.import_max_ratio``; real CSVs compress 3-10x, zip
bombs 1000x). Zip members are measured by their headers (``zipfile`` never inflates past the
declared size, and a lie fails the CRC); a ``.gz`` file is inflated once to measure it.
A NUL byte or a line longer than 1 MB ends the import with the line named.

What is stored when a file fails part-way. Each block is parsed and checked whole, then
written in one transaction. A block that does not parse is refused with the file, line and
column named; the blocks before it stay stored, and the error says exactly which lines
those were. Writes are idempotent, so fixing the file and importing it again converges.
(A dashboard upload is checked whole before any of it is written: it commits all or
nothing.)

Imported history is kept. Before each block is written its ranges are recorded in
``imported_ranges`` (:mod:`lq.store.provenance`); automatic retention
(``store.retention_ticks``) never deletes them, only ``lq purge --include-imported`` does.

Only one process writes market data. With a collector running, ``lq import`` and the
dashboard's upload (:func:`import_upload`) drop the file into the database's inbox
(``<db>.inbox/``); the collector imports it a block at a time between its own batches
(:func:`process_inbox`), so an upload never stalls collection, and a file it refuses never
stops it: the reason goes to ``<db>.inbox/results/``, the log and ``dead_letters``.
"""

from __future__ import annotations

import argparse
import gzip
import io
import itertools
import json
import logging
import os
import re
import shutil
import sqlite3
import sys
import time
import uuid
import weakref
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pandas as pd

from lq.errors import ImportFormatError, SymbolRequiredError
from lq.feeds.events import AggTrade, Kline, Trade
from lq.store.writer import Batch, Writer

__all__ = [
    "ImportReport",
    "Limits",
    "UploadResult",
    "add_parser",
    "detect_kind",
    "import_file",
    "import_upload",
    "inbox_dir",
    "parse_size",
    "process_inbox",
    "read_file",
    "run",
]

log = logging.getLogger(__name__)

Kind = Literal["trades", "aggTrades", "klines", "frames", "ohlc"]
KINDS: tuple[str, ...] = ("trades", "aggTrades", "klines", "frames", "ohlc")
#: bytes of whole lines parsed and written at once (one transaction)
BLOCK_BYTES = 4 * 2**20
#: the collector's inbox imports smaller blocks, so each step between its batches is short
INBOX_BLOCK_BYTES = 2 * 2**20
#: events per transaction for recordings
CHUNK = 100_000
MAX_LINE = 2**20
_NAME = re.compile(
    r"^(?P<sym>[A-Z0-9_]{2,30})-(?P<what>trades|aggTrades|\d+[smhdwM]|1mo)-\d{4}-\d{2}(-\d{2})?"
)
_SYMBOL = re.compile(r"^[A-Z0-9_]{2,30}$")
_FRAME_LINE = re.compile(rb"^(?:0|\d{15,20}) [\[{]")  # 0: receive time unknown
_TRUE = {"true": True, "false": False, "1": True, "0": False}
_INTERVALS = {
    "1s": 1, "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 7200,
    "4h": 14400, "6h": 21600, "8h": 28800, "12h": 43200, "1d": 86400, "3d": 259200, "1w": 604800,
}  # fmt: skip
_INT64_MAX = 2**63 - 1
KEPT_NOTE = (
    "imported rows are kept: automatic retention (store.retention_ticks) never deletes them; "
    "`lq purge --older-than D --include-imported` does"
)


# -- limits ------------------------------------------------------------------------------------
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_SIZE_UNIT = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_size(value: str | int, *, field: str = "size") -> int:
    """``"4GB"``, ``"512MiB"``, ``"1.5g"`` or a number of bytes -> bytes (KB = 1000, KiB = 1024)."""
    if isinstance(value, bool):
        raise ImportFormatError(f"{field}={value!r}: expected a size such as '4GB'")
    if isinstance(value, int):
        n = value
    else:
        m = _SIZE.match(str(value))
        if not m:
            raise ImportFormatError(
                f"{field}={value!r}: expected a size such as 4GB, 512MiB or 10000000"
            )
        unit = (m.group(2) or "").lower()
        base = unit[:1] if unit not in ("b", "") else ""
        mult = 1024 ** ("kmgt".index(base) + 1) if "i" in unit else _SIZE_UNIT[base]
        n = int(float(m.group(1)) * mult)
    if n <= 0:
        raise ImportFormatError(f"{field}={value!r}: must be more than 0 bytes")
    return n


def _fmt_bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{int(n):,} bytes"


DEFAULT_MAX_SIZE = 4 * 2**30
DEFAULT_MAX_RATIO = 200.0


@dataclass(frozen=True, slots=True)
class Limits:
    """How much a file may inflate to. See the module docstring."""

    max_size: int = DEFAULT_MAX_SIZE
    max_ratio: float = DEFAULT_MAX_RATIO
    ratio_floor: int = 64 * 2**20  # the ratio applies only beyond this many inflated bytes

    @classmethod
    def from_settings(cls, settings: Any = None, **overrides: Any) -> Limits:
        """From ``store.import_max_size`` / ``store.import_max_ratio``; ``overrides`` that
        are not None win (the CLI flags)."""
        if settings is None:
            from lq.config import load_settings

            settings = load_settings()
        st = settings.store
        size = overrides.get("max_size") or getattr(st, "import_max_size", None)
        ratio = overrides.get("max_ratio") or getattr(st, "import_max_ratio", None)
        try:
            max_ratio = float(ratio) if ratio else DEFAULT_MAX_RATIO
        except ValueError:
            raise ImportFormatError(f"max_ratio={ratio!r}: expected a number such as 200") from None
        if not max_ratio >= 1:
            raise ImportFormatError(f"max_ratio={ratio!r}: must be at least 1")
        return cls(
            max_size=parse_size(size, field="max_size") if size else DEFAULT_MAX_SIZE,
            max_ratio=max_ratio,
        )

    def check(self, where: str, inflated: int, compressed: int | None) -> None:
        """Refuse ``inflated`` bytes (from ``compressed`` bytes, if compressed)."""
        if inflated > self.max_size:
            raise ImportFormatError(
                f"{where}: inflates to more than {_fmt_bytes(self.max_size)}, the import limit; "
                "if the file is genuine, raise it with --max-size (or store.import_max_size)"
            )
        if compressed and inflated > self.ratio_floor and inflated > self.max_ratio * compressed:
            raise ImportFormatError(
                f"{where}: {_fmt_bytes(compressed)} inflates to {_fmt_bytes(inflated)}"
                f"{'' if inflated < self.max_size else '+'} ({inflated / compressed:,.0f}x); files "
                f"inflating more than {self.max_ratio:g}x are refused as a likely zip bomb; if the "
                "file is genuine, raise the limit with --max-ratio (or store.import_max_ratio)"
            )


# -- reports -----------------------------------------------------------------------------------
@dataclass(slots=True)
class ImportReport:
    """What one file contributed."""

    path: str
    kind: str
    symbol: str
    rows: int = 0
    new: int = 0
    duplicates: int = 0
    skipped: int = 0  # invalid aggTrades (f = -1) and the like
    rejected: int = 0  # rows refused by the writer (dead letters)
    seconds: float = 0.0
    lines: int = 0  # the last line of the file whose block is stored
    notes: list[str] = field(default_factory=list)
    holes: int | None = None  # id ranges missing inside the file (None: rows without ids)
    missing_ids: int = 0  # ids in those holes (recorded in the gaps table)
    first_refusal: str = ""  # the reason of the first row/frame refused

    def summary(self) -> str:
        s = f"{self.path}: {self.kind} {self.symbol}: {self.rows:,} rows, {self.new:,} new, {self.duplicates:,} already stored"
        if self.skipped:
            s += f", {self.skipped:,} invalid skipped"
        if self.rejected:
            s += f", {self.rejected:,} refused (see dead_letters)"
        if self.holes is not None:
            s += (
                f", {self.holes:,} holes ({self.missing_ids:,} ids missing inside the file, "
                "recorded in gaps)"
                if self.holes
                else ", no holes"
            )
        return s + f" ({self.seconds:.1f} s)"

    def nothing_stored(self) -> str | None:
        """Why an import of a non-empty file stored nothing (no row new or already stored),
        or None when it stored something."""
        if self.new or self.duplicates:
            return None
        if self.rejected:
            first = f"; the first: {self.first_refusal}" if self.first_refusal else ""
            return f"nothing stored: all {self.rejected:,} rows/frames were refused{first}"
        if self.skipped:
            return f"nothing stored: all {self.skipped:,} rows were invalid and skipped"
        return "nothing stored: no trade, aggTrade, bookTicker or kline rows in it"

    def stored(self) -> str:
        """What is stored, for an import that stopped part-way."""
        if not self.rows and not self.rejected:
            return "nothing was stored"
        return (
            f"lines 1-{self.lines:,} before it are stored ({self.rows:,} rows: {self.new:,} new, "
            f"{self.duplicates:,} already stored) and stay; nothing after them was; fix the file "
            "and import it again (rows already stored are recognised)"
        )


@dataclass(frozen=True, slots=True)
class UploadResult:
    """What became of an upload: imported now, or queued at ``path`` in the inbox until the
    running collector imports it (its answer is then at :meth:`result_path`)."""

    status: Literal["imported", "queued"]
    kind: str
    symbol: str
    rows: int
    message: str
    path: Path | None = None

    def result_path(self) -> Path | None:
        return (
            None if self.path is None else self.path.parent / "results" / (self.path.name + ".json")
        )


# -- detection ---------------------------------------------------------------------------------
def _symbol_from_name(name: str) -> str | None:
    m = _NAME.match(Path(name).name)
    return m.group("sym") if m else None


def _check_symbol(symbol: str | None) -> str | None:
    if symbol is None or not str(symbol).strip():
        return None
    sym = str(symbol).strip().upper()
    if not _SYMBOL.match(sym):
        raise ImportFormatError(
            f"symbol={symbol!r}: expected 2-30 letters, digits or '_', such as BTCUSDT"
        )
    return sym


def detect_kind(name: str, first_line: str) -> Kind:
    """The layout of a file from its name and first line (see the module docstring)."""
    m = _NAME.match(Path(name).name)
    head = first_line.strip()
    if _FRAME_LINE.match(head.encode(errors="replace")):
        return "frames"
    if m:
        what = m.group("what")
        return "trades" if what == "trades" else "aggTrades" if what == "aggTrades" else "klines"
    cells = [c.strip().strip('"').lower() for c in head.split(",")]
    if cells and not _is_number(cells[0]):
        names = set(cells)
        if {"open", "high", "low", "close"} <= names and names & {
            "time",
            "timestamp",
            "date",
            "datetime",
            "open_time",
        }:
            return (
                "klines" if {"close_time", "quote_volume"} <= names or "count" in names else "ohlc"
            )
        if "agg_trade_id" in names:
            return "aggTrades"
        if "id" in names and "price" in names:
            return "trades"
    n = len(cells)
    if n == 12:
        return "klines"
    if n in (7, 6) and cells[-1] in _TRUE and cells[-2] not in _TRUE:
        return "trades"  # futures trades: ..., time, is_buyer_maker
    if n == 7 and cells[-1] in _TRUE and cells[-2] in _TRUE:
        return "trades"  # spot trades: ..., is_buyer_maker, is_best_match
    if n in (8, 7):
        return "aggTrades"
    raise ImportFormatError(
        f"{name}: cannot tell what this file is (first line {head[:80]!r}); pass --kind "
        f"({', '.join(KINDS)}) and --symbol"
    )


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


# -- bounded reading ---------------------------------------------------------------------------
class _Guard(io.RawIOBase):
    """A byte stream that counts what passes and refuses what no text file holds: a NUL
    byte (a sparse or binary file), more bytes than the limit (a member that lies), and
    corrupt compressed data (as :class:`ImportFormatError`, never a traceback)."""

    def __init__(self, raw: IO[bytes], where: str, limit: int) -> None:
        self.raw = raw
        self.where = where
        self.limit = limit
        self.done = 0  # bytes read
        self.lines = 0  # newlines read

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            data = self.raw.read(len(b))
        except (zipfile.BadZipFile, zlib.error, EOFError, gzip.BadGzipFile) as exc:
            raise ImportFormatError(
                f"{self.where}: corrupt compressed data after {self.done:,} bytes ({exc})"
            ) from None
        if not data:
            return 0
        nul = data.find(b"\x00")
        if nul >= 0:
            line = self.lines + data.count(b"\n", 0, nul) + 1
            raise ImportFormatError(
                f"{self.where}:{line}: a NUL byte at byte {self.done + nul:,}: this is not a text"
                " file (a sparse, truncated or binary file?)"
            )
        self.done += len(data)
        if self.done > self.limit:
            raise ImportFormatError(
                f"{self.where}: inflates to more than {_fmt_bytes(self.limit)}, the import "
                "limit; if the file is genuine, raise it with --max-size (or store.import_max_size)"
            )
        self.lines += data.count(b"\n")
        n = len(data)
        b[:n] = data
        return n

    def close(self) -> None:
        try:
            self.raw.close()
        finally:
            super().close()


@dataclass(slots=True)
class _Member:
    where: str  # file[!member], for messages
    name: str  # the member's own name (for detection)
    size: int  # inflated bytes (for progress)
    stream: io.BufferedReader
    guard: _Guard


def _open_members(
    p: Path, data: bytes | None, limits: Limits, name: str | None = None
) -> Iterator[_Member]:
    """Every text stream of the file: itself, its gzip content or each zip member. All limits
    are checked (every member of a zip first) before a byte of content is parsed. ``name``:
    the file's own name when ``p`` is a copy (in the inbox), for detection and messages."""
    label = name or p.name
    raw: IO[bytes] = io.BytesIO(data) if data is not None else open(p, "rb")  # noqa: SIM115
    try:
        compressed = len(data) if data is not None else os.fstat(raw.fileno()).st_size
        magic = raw.read(4)
        raw.seek(0)
        suffix = Path(label).suffix.lower()
        if magic == b"PK\x03\x04" or suffix == ".zip":
            yield from _zip_members(label, raw, limits)
        elif magic[:2] == b"\x1f\x8b" or suffix == ".gz":
            size = _gzip_size(label, raw, compressed, limits)
            raw.seek(0)
            gz = gzip.GzipFile(fileobj=raw, mode="rb")
            guard = _Guard(gz, label, limits.max_size)  # type: ignore[arg-type]
            yield _Member(
                label, label.removesuffix(".gz"), size, io.BufferedReader(guard, 1 << 20), guard
            )
        else:
            limits.check(label, compressed, None)
            guard = _Guard(raw, label, limits.max_size)
            yield _Member(label, label, compressed, io.BufferedReader(guard, 1 << 20), guard)
    finally:
        raw.close()


def _zip_members(label: str, raw: IO[bytes], limits: Limits) -> Iterator[_Member]:
    try:
        zf = zipfile.ZipFile(raw)
        infos = [i for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
        raise ImportFormatError(f"{label}: not a valid zip file ({exc})") from None
    if not infos:
        raise ImportFormatError(f"{label}: the zip file is empty")
    for i in infos:
        limits.check(f"{label}!{i.filename}", i.file_size, i.compress_size or 1)
    for i in infos:
        where = f"{label}!{i.filename}"
        try:
            fh = zf.open(i)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
            raise ImportFormatError(f"{where}: cannot be read ({exc})") from None
        # zipfile never inflates past the declared size: the guard's limit is the header's
        guard = _Guard(fh, where, min(limits.max_size, i.file_size))
        yield _Member(where, i.filename, i.file_size, io.BufferedReader(guard, 1 << 20), guard)


def _gzip_size(name: str, raw: IO[bytes], compressed: int, limits: Limits) -> int:
    """Inflate a gzip stream once to measure it, stopping as soon as a limit is passed."""
    stop = limits.max_size
    if compressed * limits.max_ratio > limits.ratio_floor:
        stop = min(stop, int(compressed * limits.max_ratio))
    size = 0
    try:
        with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            while True:
                got = len(gz.read(1 << 20))
                if not got:
                    break
                size += got
                if size > stop:
                    break
    except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise ImportFormatError(f"{name}: not a valid gzip file ({exc})") from None
    limits.check(name, size, compressed)
    return size


def _readline(m: _Member, lineno: int) -> bytes:
    """Line ``lineno`` of the stream (at most ``MAX_LINE`` bytes, or refused)."""
    line = m.stream.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise ImportFormatError(
            f"{m.where}:{lineno}: a line longer than {MAX_LINE // 2**20} MB: not a CSV or recording"
        )
    return line


def _blocks(m: _Member, block_bytes: int, first_line: int) -> Iterator[tuple[int, bytes]]:
    """``(number of its first line, block)``: the rest of the stream in blocks of whole lines."""
    rest = b""
    line = first_line
    while True:
        data = m.stream.read(block_bytes)
        if not data:
            if rest.strip():
                yield line, rest
            return
        buf = rest + data if rest else data
        cut = buf.rfind(b"\n")
        if cut < 0 or len(buf) - cut - 1 > MAX_LINE:
            if len(buf) - cut - 1 > MAX_LINE:
                at = line + buf.count(b"\n", 0, max(cut, 0))
                raise ImportFormatError(
                    f"{m.where}:{at}: a line longer than {MAX_LINE // 2**20} MB: not a CSV or"
                    " recording"
                )
            rest = buf
            continue
        block, rest = buf[: cut + 1], buf[cut + 1 :]
        long = _long_line(block)
        if long >= 0:
            at = line + block.count(b"\n", 0, long)
            raise ImportFormatError(
                f"{m.where}:{at}: a line longer than {MAX_LINE // 2**20} MB: not a CSV or recording"
            )
        yield line, block
        line += block.count(b"\n")


def _long_line(block: bytes) -> int:
    """Where the first line longer than ``MAX_LINE`` starts in ``block``, or -1 (a few
    ``rfind`` calls per block, however many lines it has)."""
    pos, n = 0, len(block)
    while n - pos > MAX_LINE:
        nl = block.rfind(b"\n", pos, pos + MAX_LINE + 1)
        if nl < 0:
            return pos
        pos = nl + 1
    return -1


def _show(value: object) -> str:
    """A value for a message: its repr, cut to 60 characters."""
    value = value.item() if isinstance(value, np.generic) else value
    r = repr(value)
    return r if len(r) <= 60 else r[:57] + "..."


# -- parsing -----------------------------------------------------------------------------------
@dataclass(slots=True)
class _Chunk:
    kind: str
    symbol: str
    batch: Batch
    skipped: int
    rows: int  # data rows in the block (valid or not); for recordings: events
    last_line: int  # the block's last line in the file
    done: int  # bytes of the file read so far (all members)
    ranges: list[Any] | None = None  # its imported ranges (None: computed from the batch)


@dataclass(slots=True)
class _State:
    """What one file decides once for all its blocks: times in ms or µs, the bar step."""

    time_scale: int | None = None
    step: int | None = None


def _chunks(
    path: str | os.PathLike[str],
    *,
    kind: Kind | None = None,
    symbol: str | None = None,
    exchange: str = "binance",
    data: bytes | None = None,
    limits: Limits | None = None,
    block_bytes: int = BLOCK_BYTES,
    sizes: list[int] | None = None,
    name: str | None = None,
) -> Iterator[_Chunk]:
    p = Path(path)
    label = name or p.name
    limits = limits or Limits()
    if kind is not None and kind not in KINDS:
        raise ImportFormatError(f"kind={kind!r}: expected one of {', '.join(KINDS)}")
    sym_given = _check_symbol(symbol)
    done_before = 0
    for m in _open_members(p, data, limits, name):
        if sizes is not None:
            sizes.append(m.size)
        try:
            if kind == "frames" or (kind is None and _FRAME_LINE.match(m.stream.peek(64)[:64])):
                for c in _read_frames(m, exchange):
                    c.done += done_before
                    yield c
            else:
                sym = sym_given or _symbol_from_name(m.name) or _symbol_from_name(label) or ""
                for c in _read_csv(m, kind, sym, exchange, block_bytes):
                    c.done += done_before
                    yield c
        finally:
            done_before += m.guard.done
            m.stream.close()


def read_file(
    path: str | os.PathLike[str],
    *,
    kind: Kind | None = None,
    symbol: str | None = None,
    exchange: str = "binance",
    data: bytes | None = None,
    limits: Limits | None = None,
) -> Iterator[tuple[str, str, Batch, int]]:
    """Parse a file into batches: yields ``(kind, symbol, batch, skipped)`` per block.

    Raises :class:`~lq.errors.ImportFormatError` (naming the file, line and column) for
    anything it does not understand, and for files over the ``limits``. Nothing is written
    here; memory stays bounded whatever the file's size.
    """
    for c in _chunks(path, kind=kind, symbol=symbol, exchange=exchange, data=data, limits=limits):
        yield c.kind, c.symbol, c.batch, c.skipped


def _read_csv(
    m: _Member, kind: str | None, sym: str, exchange: str, block_bytes: int
) -> Iterator[_Chunk]:
    first = _readline(m, 1)
    if not first.strip():
        raise ImportFormatError(f"{m.where}: empty file")
    text = first.decode("utf-8", errors="replace").lstrip("\ufeff")
    cells = [c.strip().strip('"') for c in text.strip().split(",")]
    header = bool(cells) and not _is_number(cells[0])
    names = [c.lower() for c in cells] if header else None
    if header:
        pending: Iterator[tuple[int, bytes]] = _blocks(m, block_bytes, 2)
        got = next(pending, None)
        if got is None:
            raise ImportFormatError(f"{m.where}: a header row and no data")
        pending = itertools.chain([got], pending)
    else:
        pending = _prepend(first, _blocks(m, block_bytes, 2))
    k = kind or detect_kind(m.name, text)
    if k == "frames":
        raise ImportFormatError(f"{m.where}: a recording cannot be read as CSV")
    if k in ("trades", "aggTrades", "klines") and not sym:
        raise SymbolRequiredError(
            f"{m.where}: no symbol in the file name (Binance names files like "
            "BTCUSDT-trades-2024-08-08.zip); pass --symbol"
        )
    if k == "ohlc" and not sym:
        raise SymbolRequiredError(f"{m.where}: an OHLC CSV does not say its symbol; pass --symbol")
    if k == "ohlc" and not names:
        raise ImportFormatError(
            f"{m.where}: an OHLC CSV needs a header row (time, open, high, low, close[, volume])"
        )
    state = _State()
    seen = False
    for start, block in pending:
        df = _parse_block(block, start, m.where, names)
        if df.empty:
            continue
        seen = True
        batch, skipped, ranges = _parse_chunk(k, df, sym, exchange, m.where, state)
        last = start + block.count(b"\n") - (1 if block.endswith(b"\n") else 0)
        rows = len(df)
        del df, block  # only the batch stays alive while it is written
        yield _Chunk(k, sym, batch, skipped, rows, last, m.guard.done, ranges)
    if not seen:
        raise ImportFormatError(
            f"{m.where}: a header row and no data" if header else f"{m.where}: empty file"
        )


def _prepend(first: bytes, rest: Iterator[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
    """The first line joined to the first block (both start at line 1)."""
    got = next(rest, None)
    if got is None:
        yield 1, first if first.endswith(b"\n") else first + b"\n"
        return
    yield 1, first + got[1]
    yield from rest


def _parse_block(block: bytes, start: int, where: str, names: list[str] | None) -> pd.DataFrame:
    """A block of lines as a DataFrame (types inferred by pandas' C parser), indexed by each
    row's line number in the file."""
    try:
        df = pd.read_csv(
            io.BytesIO(block), header=None, skip_blank_lines=True, encoding_errors="replace"
        )
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except pd.errors.ParserError as exc:
        msg = str(exc).strip()
        lm = re.search(r"line (\d+), saw (\d+)", msg)
        ex = re.search(r"Expected (\d+) fields", msg)
        if lm and ex:
            line = _line_numbers(block, start)[int(lm.group(1)) - 1]
            raise ImportFormatError(
                f"{where}:{line}: {lm.group(2)} fields where the rows before have {ex.group(1)}"
            ) from None
        raise ImportFormatError(f"{where}: not a valid CSV near line {start} ({msg})") from None
    if b"\n\n" in block or b"\n\r\n" in block or block.startswith((b"\n", b"\r\n")):
        df.index = pd.Index(_line_numbers(block, start)[: len(df)])
    else:
        df.index = pd.RangeIndex(start, start + len(df))
    if names is not None:
        df.attrs["names"] = names
    return df


def _line_numbers(block: bytes, start: int) -> list[int]:
    """The file line numbers of the block's non-blank lines (what pandas' rows are)."""
    return [start + i for i, ln in enumerate(block.split(b"\n")) if ln.strip()]


def _bad(df: pd.DataFrame, col: int, name: str, where: str, i: int, what: str) -> ImportFormatError:
    return ImportFormatError(
        f"{where}:{int(df.index[i])}: column {col + 1} ({name}) = {_show(df.iloc[i, col])} {what}"
    )


def _column(df: pd.DataFrame, col: int, name: str, where: str) -> pd.Series:
    if col >= df.shape[1]:
        raise ImportFormatError(
            f"{where}: no column {col + 1} ({name}); the rows have {df.shape[1]}"
        )
    return df.iloc[:, col]


def _numeric(df: pd.DataFrame, col: int, name: str, where: str, kind: str = "float") -> np.ndarray:
    s = _column(df, col, name, where)
    if s.dtype.kind in "iuf" and not (s.dtype.kind == "f" and s.isna().any()):
        num = s
    else:
        num = pd.to_numeric(s, errors="coerce")
        bad = num.isna().to_numpy()
        if bad.any():
            raise _bad(df, col, name, where, int(np.flatnonzero(bad)[0]), "is not a number")
    v = num.to_numpy()
    if kind != "int":
        return v.astype(np.float64, copy=False)
    if v.dtype.kind == "f":
        bad = (v != np.floor(v)) | (np.abs(v) > _INT64_MAX)
        if bad.any():
            raise _bad(
                df, col, name, where, int(np.flatnonzero(bad)[0]), "is not a whole number in int64"
            )
    elif v.dtype.kind == "u":
        bad = v > _INT64_MAX
        if bad.any():
            raise _bad(df, col, name, where, int(np.flatnonzero(bad)[0]), "is larger than int64")
    elif v.dtype.kind == "O":
        try:
            return np.asarray(v, dtype=np.int64)
        except (OverflowError, ValueError, TypeError):
            raise ImportFormatError(
                f"{where}: column {col + 1} ({name}) is not whole numbers in int64"
            ) from None
    return v.astype(np.int64)


def _bools(df: pd.DataFrame, col: int, name: str, where: str) -> np.ndarray:
    s = _column(df, col, name, where)
    if s.dtype == bool:
        return s.to_numpy()
    mapped = s.astype(str).str.strip().str.lower().map(_TRUE)
    bad = mapped.isna().to_numpy()
    if bad.any():
        raise _bad(df, col, name, where, int(np.flatnonzero(bad)[0]), "is not true/false")
    return mapped.to_numpy(dtype=bool)


def _to_us(values: np.ndarray, where: str, state: _State) -> np.ndarray:
    """Times in ms or µs (decided once per file by magnitude) -> µs."""
    v = values.astype(np.int64)
    if v.size == 0:
        return v
    if state.time_scale is None:
        sample = int(np.median(v[: min(v.size, 1000)]))
        if 1e14 <= sample < 1e17:  # µs (2001..5138)
            state.time_scale = 1
        elif 1e11 <= sample < 1e14:  # ms
            state.time_scale = 1000
        else:
            raise ImportFormatError(
                f"{where}: times like {sample} are neither milliseconds nor microseconds since 1970"
            )
    return v * state.time_scale if state.time_scale != 1 else v


def _read_frames(m: _Member, exchange: str) -> Iterator[_Chunk]:
    from lq.errors import FrameError
    from lq.feeds.events import Rejected
    from lq.venues.binance.parser import Parser

    parser = Parser(exchange=exchange)
    batch = Batch()
    lineno = 0
    parsed = False
    while True:
        line = _readline(m, lineno + 1)
        if not line:
            break
        lineno += 1
        line = line.rstrip(b"\r\n")
        if not line:
            continue
        head, sep, raw = line.partition(b" ")
        if not sep or not head.isdigit():
            raise ImportFormatError(
                f"{m.where}:{lineno}: expected '<receive time ns> <frame>', got {line[:60]!r}"
            )
        recv = int(head) // 1000
        try:
            for ev in parser.parse(raw, recv):
                batch.add(ev)
                parsed = True
        except Exception as exc:  # a bad frame is set aside, never blocks the ones after it
            if not parsed:  # nothing of Binance's yet: another venue's recording is refused
                venue = frame_venue(raw)
                if venue is not None and venue != "binance":
                    raise ImportFormatError(
                        f"{m.where}:{lineno}: this is {_VENUE_NAMES[venue]} data "
                        f"({_show(raw[:60].decode(errors='replace'))}); lq import reads Binance "
                        f"recordings and Binance CSVs only: collect {venue} with `lq collect "
                        f"--venue {venue}` instead (nothing was stored)"
                    ) from None
            reason = exc.reason if isinstance(exc, FrameError) else f"{type(exc).__name__}: {exc}"
            batch.rejected.append(
                Rejected(
                    raw=raw.decode(errors="replace"),
                    reason=reason,
                    recv_ts=recv,
                    exchange=exchange,
                )
            )
        if len(batch) >= CHUNK:
            yield _Chunk("frames", "*", batch, 0, _events(batch), lineno, m.guard.done)
            batch = Batch()
    if lineno == 0:
        raise ImportFormatError(f"{m.where}: empty file")
    yield _Chunk("frames", "*", batch, 0, _events(batch), lineno, m.guard.done)


_VENUE_NAMES = {"coinbase": "Coinbase", "kraken": "Kraken", "okx": "OKX"}
_COINBASE_TYPES = frozenset({"match", "last_match", "subscriptions", "l2update", "snapshot",
                             "ticker", "heartbeat", "received", "open", "done", "change"})  # fmt: skip


def frame_venue(raw: bytes) -> str | None:
    """Whose recorded frame ``raw`` is, by its shape: ``binance``, ``coinbase``, ``kraken``,
    ``okx``, or None (not JSON, or no venue's). A REST reply of a venue counts as that venue.

    >>> frame_venue(b'{"channel":"market_trades","events":[]}'), frame_venue(b'{"e":"trade"}')
    ('coinbase', 'binance')
    """
    try:
        d = json.loads(raw)
    except ValueError:
        return None
    if isinstance(d, list):  # Kraken WS v1: [channelID, data, "trade", "XBT/USD"]
        if len(d) >= 4 and isinstance(d[-1], str) and "/" in d[-1]:
            return "kraken"
        first = d[0] if d and isinstance(d[0], dict) else {}
        # Coinbase Exchange REST: /products ([{"base_currency"...}]), /trades ([{"trade_id"...}])
        if "base_currency" in first or {"trade_id", "side", "size"} <= set(first):
            return "coinbase"
        return None
    if not isinstance(d, dict):
        return None
    trades = d.get("trades")
    if (
        isinstance(trades, list)
        and trades
        and isinstance(trades[0], dict)
        and (
            "product_id" in trades[0]  # Coinbase Advanced Trade REST ticker
        )
    ):
        return "coinbase"
    if "e" in d or "stream" in d or ("result" in d and "id" in d):
        return "binance"
    if "arg" in d or ("code" in d and "data" in d and "msg" in d):
        return "okx"
    if d.get("channel") in ("market_trades", "heartbeats", "subscriptions", "ticker",
                            "ticker_batch", "l2_data", "status", "candles") and "events" in d:  # fmt: skip
        return "coinbase"
    if d.get("type") in _COINBASE_TYPES and ("product_id" in d or "channels" in d):
        return "coinbase"
    if isinstance(d.get("product_id"), str):
        return "coinbase"
    if "method" in d or ("channel" in d and "data" in d) or d.get("event") in (
        "systemStatus", "subscriptionStatus", "heartbeat"
    ) or ("error" in d and "result" in d):  # fmt: skip
        return "kraken"
    return None


def _events(batch: Batch) -> int:
    return len(batch) - len(batch.rejected) - len(batch.gaps)


def _parse_chunk(
    k: str, df: pd.DataFrame, sym: str, exchange: str, where: str, state: _State
) -> tuple[Batch, int, list[Any]]:
    """One block's events, the invalid rows skipped, and its imported ranges."""
    from lq.store.provenance import ranges_of

    n = df.shape[1]
    if k == "trades":
        if n not in (6, 7):
            raise ImportFormatError(
                f"{where}: trades need 6 (futures) or 7 (spot) columns, found {n}"
            )
        ids = _numeric(df, 0, "id", where, "int")
        price = _numeric(df, 1, "price", where)
        qty = _numeric(df, 2, "qty", where)
        ts = _to_us(_numeric(df, 4, "time", where, "int"), where, state)
        maker = _bools(df, 5, "is_buyer_maker", where)
        trades = [
            Trade(
                symbol=sym,
                trade_id=i,
                price=p,
                qty=q,
                ts=t,
                event_ts=t,
                is_buyer_maker=m,
                exchange=exchange,
            )
            for i, p, q, t, m in zip(
                ids.tolist(), price.tolist(), qty.tolist(), ts.tolist(), maker.tolist(), strict=True
            )
        ]
        return Batch(trades=trades), 0, ranges_of("ticks", exchange, sym, ids, ts)
    if k == "aggTrades":
        if n not in (7, 8):
            raise ImportFormatError(
                f"{where}: aggTrades need 7 (futures) or 8 (spot) columns, found {n}"
            )
        ids = _numeric(df, 0, "agg_trade_id", where, "int")
        price = _numeric(df, 1, "price", where)
        qty = _numeric(df, 2, "quantity", where)
        first = _numeric(df, 3, "first_trade_id", where, "int")
        last = _numeric(df, 4, "last_trade_id", where, "int")
        ts = _to_us(_numeric(df, 5, "timestamp", where, "int"), where, state)
        maker = _bools(df, 6, "is_buyer_maker", where)
        valid = first >= 0  # f = -1 marks aggTrades Binance found invalid
        aggs = [
            AggTrade(
                symbol=sym,
                agg_id=a,
                first_id=f,
                last_id=lt,
                price=p,
                qty=q,
                ts=t,
                event_ts=t,
                is_buyer_maker=m,
                exchange=exchange,
            )
            for a, p, q, f, lt, t, m in zip(
                ids[valid].tolist(),
                price[valid].tolist(),
                qty[valid].tolist(),
                first[valid].tolist(),
                last[valid].tolist(),
                ts[valid].tolist(),
                maker[valid].tolist(),
                strict=True,
            )
        ]
        ranges = ranges_of("agg_trades", exchange, sym, ids[valid], ts[valid])
        return Batch(agg_trades=aggs), int((~valid).sum()), ranges
    if k == "klines":
        if n < 11:
            raise ImportFormatError(f"{where}: klines need 12 columns, found {n}")
        ot = _to_us(_numeric(df, 0, "open_time", where, "int"), where, state)
        ct = _to_us(_numeric(df, 6, "close_time", where, "int"), where, state)
        cols = {
            name: _numeric(df, i, name, where)
            for i, name in (
                (1, "open"),
                (2, "high"),
                (3, "low"),
                (4, "close"),
                (5, "volume"),
                (7, "quote_volume"),
                (9, "taker_buy_base"),
                (10, "taker_buy_quote"),
            )
        }
        count = _numeric(df, 8, "count", where, "int")
        if state.step is None:
            state.step = int(np.median(ct - ot + 1)) if len(ot) else 60_000_000
        interval = _interval_name(state.step)
        klines = [
            Kline(
                symbol=sym,
                interval=interval,
                open_time=int(ot[i]),
                close_time=int(ct[i]),
                open=float(cols["open"][i]),
                high=float(cols["high"][i]),
                low=float(cols["low"][i]),
                close=float(cols["close"][i]),
                volume=float(cols["volume"][i]),
                quote_volume=float(cols["quote_volume"][i]),
                trades=int(count[i]),
                taker_buy_volume=float(cols["taker_buy_base"][i]),
                taker_buy_quote_volume=float(cols["taker_buy_quote"][i]),
                first_id=-1,
                last_id=-1,
                closed=True,
                event_ts=int(ct[i]),
                exchange=exchange,
            )
            for i in range(len(ot))
        ]
        _check_ohlc(klines, df, where)
        return (
            Batch(klines=klines),
            0,
            ranges_of("klines", exchange, sym, ot, ot, interval=interval),
        )
    if k == "ohlc":
        batch = _parse_ohlc(df, sym, exchange, where, state)
        ot = np.fromiter((x.open_time for x in batch.klines), np.int64, len(batch.klines))
        interval = batch.klines[0].interval if batch.klines else ""
        return batch, 0, ranges_of("klines", exchange, sym, ot, ot, interval=interval)
    raise ImportFormatError(f"{where}: unknown kind {k!r}; expected one of {KINDS}")


def _interval_name(step_us: int) -> str:
    secs = round(step_us / 1e6)
    for name, s in _INTERVALS.items():
        if s == secs:
            return name
    if 28 * 86_400 <= secs <= 31 * 86_400:  # monthly files ("1mo"): months differ in length
        return "1M"
    return f"{secs}s"


#: an OHLC CSV's optional columns, stored when present (NULL in the database when absent:
#: an unknown quote volume or trade count is not 0)
_OHLC_OPTIONAL = {
    "volume": ("volume",),
    "quote_volume": ("quote_volume", "quote_asset_volume", "turnover"),
    "trades": ("trades", "count", "number_of_trades"),
}


def _parse_ohlc(df: pd.DataFrame, sym: str, exchange: str, where: str, state: _State) -> Batch:
    names = df.attrs.get("names") or []
    idx = {n: i for i, n in enumerate(names)}
    tcol = next(
        (idx[c] for c in ("time", "timestamp", "date", "datetime", "open_time") if c in idx), None
    )
    missing = [c for c in ("open", "high", "low", "close") if c not in idx]
    if tcol is None or missing:
        raise ImportFormatError(
            f"{where}: header must name a time column and open, high, low, close; missing {missing or ['time']}"
        )
    raw_t = _column(df, tcol, names[tcol], where)
    if raw_t.dtype.kind in "iu" or raw_t.astype(str).str.fullmatch(r"\d+").all():
        ts = _to_us(raw_t.astype(np.int64).to_numpy(), where, state)
    else:
        parsed = pd.to_datetime(raw_t.astype(str), utc=True, errors="coerce", format="ISO8601")
        if parsed.isna().any():
            parsed = pd.to_datetime(raw_t.astype(str), utc=True, errors="coerce", format="mixed")
        if parsed.isna().any():
            i = int(np.flatnonzero(parsed.isna().to_numpy())[0])
            raise ImportFormatError(
                f"{where}:{int(df.index[i])}: time {_show(raw_t.iloc[i])} is not a date/time"
            )
        ts = parsed.dt.as_unit("us").astype("int64").to_numpy()
    o, h, lo, c = (_numeric(df, idx[x], x, where) for x in ("open", "high", "low", "close"))
    extra: dict[str, np.ndarray] = {}
    for col, aliases in _OHLC_OPTIONAL.items():
        at = next((idx[a] for a in aliases if a in idx), None)
        if at is not None:
            extra[col] = _numeric(df, at, names[at], where, "int" if col == "trades" else "float")
    nan = np.full(len(ts), np.nan)
    vol = extra.get("volume", np.zeros(len(ts)))  # the volume column is NOT NULL: absent = 0
    quote = extra.get("quote_volume", nan)
    trades = extra.get("trades", nan)
    if state.step is None:
        steps = np.diff(np.sort(ts))
        steps = steps[steps > 0]
        state.step = int(pd.Series(steps).mode().iloc[0]) if steps.size else 60_000_000
    step = state.step
    interval = _interval_name(step)
    klines = [
        Kline(
            symbol=sym,
            interval=interval,
            open_time=int(ts[i]),
            close_time=int(ts[i] + step - 1),
            open=float(o[i]),
            high=float(h[i]),
            low=float(lo[i]),
            close=float(c[i]),
            volume=float(vol[i]),
            quote_volume=float(quote[i]),  # NaN -> NULL: not known
            trades=int(trades[i]) if "trades" in extra else float("nan"),  # type: ignore[arg-type]
            taker_buy_volume=float("nan"),
            taker_buy_quote_volume=float("nan"),
            first_id=-1,
            last_id=-1,
            closed=True,
            event_ts=int(ts[i] + step - 1),
            exchange=exchange,
        )
        for i in range(len(ts))
    ]
    _check_ohlc(klines, df, where)
    return Batch(klines=klines)


def _check_ohlc(klines: Sequence[Kline], df: pd.DataFrame, where: str) -> None:
    for i, k in enumerate(klines):
        if not (k.low <= min(k.open, k.close) and k.high >= max(k.open, k.close) and k.low > 0):
            raise ImportFormatError(
                f"{where}:{int(df.index[i])}: ({pd.Timestamp(k.open_time, unit='us', tz='UTC')}): "
                f"open={k.open} high={k.high} low={k.low} close={k.close} is not a valid positive OHLC bar"
            )


# -- writing -----------------------------------------------------------------------------------
def _open_import(
    writer: Writer,
    path: str | os.PathLike[str],
    *,
    kind: Kind | None,
    symbol: str | None,
    exchange: str,
    data: bytes | None,
    limits: Limits | None,
    block_bytes: int,
    name: str | None = None,
) -> tuple[ImportReport, Iterator[_Chunk], list[int], Callable[[_Chunk], None], Callable[[], None]]:
    """The pieces of an import, so that it can run whole (:func:`import_file`) or one block
    at a time (the collector's inbox)."""
    from lq.store.provenance import batch_ranges, record_batch

    p = Path(path)
    report = ImportReport(path=str(p), kind=kind or "?", symbol=(symbol or "").upper() or "?")
    sizes: list[int] = []
    chunks = _chunks(
        p,
        kind=kind,
        symbol=symbol,
        exchange=exchange,
        data=data,
        limits=limits,
        block_bytes=block_bytes,
        sizes=sizes,
        name=name,
    )
    source = name or p.name
    seen: dict[tuple[str, str, str], list[tuple[int, int]]] = {}  # the file's id runs

    def store(c: _Chunk) -> None:
        report.kind, report.symbol = c.kind, c.symbol
        ranges = c.ranges if c.ranges is not None else batch_ranges(c.batch)
        record_batch(writer.conn, c.batch, source, ranges)  # protect first: never unprotected
        for r in ranges:  # the same runs the provenance ledger keeps: holes lie between them
            if r.what in ("ticks", "agg_trades"):
                seen.setdefault((r.what, r.exchange, r.symbol), []).append(
                    (r.first_key, r.last_key)
                )
        if c.batch.rejected and not report.first_refusal:
            report.first_refusal = c.batch.rejected[0].reason
        res = writer.write_batch(c.batch)
        report.rows += c.rows
        report.skipped += c.skipped
        for r in (res.trades, res.agg_trades, res.book_tickers, res.klines):
            report.new += r.new
            report.duplicates += r.duplicates
            report.rejected += r.rejected
        report.rejected += len(c.batch.rejected)
        report.lines = c.last_line

    def finish() -> None:
        """After the last block: the holes inside the file into ``gaps``; refuse an import
        that stored nothing from a non-empty file."""
        _record_holes(writer, seen, source, report)
        why = report.nothing_stored()
        if why is not None and report.lines:
            raise _NothingStored(f"{source}: {why}")

    return report, chunks, sizes, store, finish


class _NothingStored(ImportFormatError):
    """A non-empty file from which nothing was stored (its message says why)."""


def _record_holes(
    writer: Writer,
    seen: dict[tuple[str, str, str], list[tuple[int, int]]],
    source: str,
    report: ImportReport,
) -> None:
    """Id ranges missing between the file's runs of contiguous ids (trades, aggTrades),
    less ids the database already holds, stored as ``unfilled`` gaps (the writer's gap
    ledger, as the collector records a hole it could not fill)."""
    from lq.feeds.events import Gap
    from lq.store.provenance import runs

    if not seen:
        return
    table = {"ticks": ("ticks", "trade_id", "trade"), "agg_trades": ("agg_trades", "agg_id",
             "aggTrade")}  # fmt: skip
    now = time.time_ns() // 1000
    gaps: list[Gap] = []
    for (what, exch, sym), spans in seen.items():
        tbl, col, kind = table[what]
        spans.sort()
        merged: list[list[int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        for (_, a), (b, _) in itertools.pairwise(merged):
            lo, hi = a + 1, b - 1
            stored = np.array(
                [r[0] for r in writer.conn.execute(
                    f"SELECT {col} FROM {tbl} WHERE exchange = ? AND symbol = ?"
                    f" AND {col} BETWEEN ? AND ? ORDER BY {col}", (exch, sym, lo, hi))],
                dtype=np.int64,
            )  # fmt: skip
            cur = lo
            for f, last, _, _ in runs(stored, stored, join=1, by="key"):
                if f > cur:
                    gaps.append(_hole(Gap, exch, sym, kind, cur, f - 1, now, source))
                cur = last + 1
            if cur <= hi:
                gaps.append(_hole(Gap, exch, sym, kind, cur, hi, now, source))
    report.holes = len(gaps)
    report.missing_ids = sum(g.last_missing - g.first_missing + 1 for g in gaps)
    if gaps:
        holes = Batch()
        holes.gaps.extend(gaps)
        writer.write_batch(holes)


def _hole(gap: Any, exch: str, sym: str, kind: str, lo: int, hi: int, now: int, source: str) -> Any:
    return gap(
        symbol=sym, kind=kind, first_missing=lo, last_missing=hi, status="unfilled",
        detected_ts=now, exchange=exch,
        reason=f"missing inside the imported file {source} (lq import does not backfill)",
    )  # fmt: skip


def import_file(
    writer: Writer,
    path: str | os.PathLike[str],
    *,
    kind: Kind | None = None,
    symbol: str | None = None,
    exchange: str = "binance",
    progress: bool = True,
    data: bytes | None = None,
    limits: Limits | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> ImportReport:
    """Parse and store one file, block by block (one transaction per block). Idempotent.

    A block that does not parse raises :class:`~lq.errors.ImportFormatError` whose message
    also says what the blocks before it stored (they stay; see the module docstring)."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    report, chunks, sizes, store, finish = _open_import(
        writer,
        path,
        kind=kind,
        symbol=symbol,
        exchange=exchange,
        data=data,
        limits=limits,
        block_bytes=block_bytes,
    )
    bar = None
    try:
        for c in chunks:
            if bar is None:
                total = sum(sizes)
                bar = tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    desc=Path(path).name,
                    disable=not progress or total < 5_000_000,
                    leave=False,
                )
            store(c)
            bar.update(c.done - bar.n)
            bar.set_postfix_str(f"{report.rows:,} rows", refresh=False)
        finish()
    except ImportFormatError as exc:
        if (report.rows or report.rejected) and not isinstance(exc, _NothingStored):
            raise type(exc)(f"{exc}; {report.stored()}") from None
        raise
    finally:
        if bar is not None:
            bar.close()
        chunks.close()  # type: ignore[attr-defined]
    report.seconds = time.perf_counter() - t0
    if report.rows == 0:
        report.notes.append("no rows")
    return report


def inbox_dir(db: str | os.PathLike[str]) -> Path:
    return Path(str(db) + ".inbox")


def _safe_name(filename: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", Path(filename).name) or "upload.csv"


def _queue(
    db: str | os.PathLike[str],
    filename: str,
    *,
    data: bytes | None = None,
    source: Path | None = None,
    meta: dict[str, Any],
) -> Path:
    """Put a file in the inbox atomically (the collector never sees half a file)."""
    box = inbox_dir(db)
    box.mkdir(parents=True, exist_ok=True)
    stem = f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}-{_safe_name(filename)}"
    part = box / (stem + ".part")
    if data is not None:
        part.write_bytes(data)
    else:
        assert source is not None
        shutil.copyfile(source, part)  # streams (sendfile); never the whole file in memory
    lines = "".join(f"{k}={'' if v is None else v}\n" for k, v in meta.items())
    (box / (stem + ".meta")).write_text(lines)
    part.rename(box / stem)
    return box / stem


def import_upload(
    db: str | os.PathLike[str],
    filename: str,
    data: bytes,
    *,
    symbol: str | None = None,
    kind: Kind | None = None,
    exchange: str = "binance",
    limits: Limits | None = None,
) -> UploadResult:
    """Validate an uploaded file completely, then import it (no collector running) or queue it
    for the running collector, the database's single writer. Refuses bad input before writing:
    an upload is stored whole or not at all. :class:`~lq.errors.SymbolRequiredError` when the
    file does not say its symbol (ask the user, then call again with ``symbol``)."""
    from lq.store import writer_pid

    if not data:
        raise ImportFormatError(f"{filename}: the upload is empty")
    limits = limits or Limits.from_settings()
    safe = _safe_name(filename)
    rows, k, sym = 0, str(kind or "?"), _check_symbol(symbol) or "?"
    for c in _chunks(
        Path(safe), kind=kind, symbol=symbol, exchange=exchange, data=data, limits=limits
    ):
        rows += c.rows
        k, sym = c.kind, c.symbol
    if rows == 0:
        raise ImportFormatError(f"{filename}: no rows to import")
    if writer_pid(db) is None:
        with Writer(db, source="import") as w:
            rep = import_file(
                w,
                Path(safe),
                kind=kind,
                symbol=symbol,
                exchange=exchange,
                data=data,
                progress=False,
                limits=limits,
            )
        return UploadResult(
            "imported", rep.kind, rep.symbol, rep.rows, rep.summary().split(": ", 2)[-1]
        )
    path = _queue(
        db,
        safe,
        data=data,
        meta={
            "name": safe,
            "kind": k if k != "?" else "",
            "symbol": sym if sym not in ("?", "*") else "",
            "exchange": exchange,
            "max_size": limits.max_size,
            "max_ratio": limits.max_ratio,
            "checked": "whole",
        },
    )
    return UploadResult(
        "queued", k, sym, rows, f"{rows:,} rows queued for the running collector", path
    )


# -- the collector's inbox ----------------------------------------------------------------------
#: a file the collector stopped (crashed, was killed) while importing this often is refused
MAX_ATTEMPTS = 3


class _InboxJob:
    """One inbox file being imported a block at a time, between the collector's batches."""

    def __init__(self, writer: Writer, path: Path) -> None:
        self.path = path
        self.meta_path = path.with_name(path.name + ".meta")
        self.results = path.parent / "results"
        self.meta = _read_meta(self.meta_path)
        self.t0 = time.perf_counter()
        self.writer = writer
        limits = Limits()
        try:
            limits = Limits.from_settings(
                max_size=self.meta.get("max_size") or None,
                max_ratio=self.meta.get("max_ratio") or None,
            )
        except Exception as exc:  # a bad setting must not stop collection: defaults apply
            log.warning("inbox: import limits from the settings: %s; using the defaults", exc)
        self.report, self.chunks, self.sizes, self.store, self.finish = _open_import(
            writer,
            path,
            kind=self.meta.get("kind") or None,  # type: ignore[arg-type]
            symbol=self.meta.get("symbol") or None,
            exchange=self.meta.get("exchange") or "binance",
            data=None,
            limits=limits,
            block_bytes=INBOX_BLOCK_BYTES,
            name=self.meta.get("name") or _original_name(path.name),
        )
        self.report.path = self.meta.get("name") or _original_name(path.name)
        self.done = 0
        self.status = ""

    def step(self) -> bool:
        """Import one block; True when the file is finished (imported or refused)."""
        try:
            c = next(self.chunks, None)
            if c is None:
                self.finish()  # the file's holes into gaps; a file that stored nothing: refused
                self.report.seconds = time.perf_counter() - self.t0
                self._finish("imported", self.report.summary())
                return True
            old, self.writer.source = self.writer.source, "import"  # its dead letters are kept
            try:
                self.store(c)
            finally:
                self.writer.source = old
            self.done = c.done
            self._progress()
            return False
        except sqlite3.OperationalError:
            raise  # the database itself fails (disk full, I/O): the file stays for later
        except ImportFormatError as exc:
            msg = str(exc)
            if (self.report.rows or self.report.rejected) and not isinstance(exc, _NothingStored):
                msg += f"; {self.report.stored()}"
            self._finish("refused", msg)
            return True
        except Exception as exc:  # whatever the file does, collection goes on
            log.exception("inbox: importing %s failed", self.path.name)
            self._finish("refused", f"{self.report.path}: {type(exc).__name__}: {exc}")
            return True

    def close(self) -> None:
        self.chunks.close()  # type: ignore[attr-defined]

    def _progress(self) -> None:
        total = sum(self.sizes)
        _write_json(
            self.results / (self.path.name + ".progress"),
            {"bytes_done": self.done, "bytes_total": total, "rows": self.report.rows},
        )

    def _finish(self, status: str, message: str) -> None:
        self.status = status
        self.close()
        body = {"status": status, "message": message, **asdict(self.report)}
        _write_json(self.results / (self.path.name + ".json"), body)
        if status == "refused":
            log.error("inbox: %s", message)
            old = self.writer.source
            self.writer.source = "import"
            try:
                self.writer.dead_letter(self.path.name, f"import refused: {message}")
            except sqlite3.Error:
                log.exception("inbox: could not store the dead letter for %s", self.path.name)
            finally:
                self.writer.source = old
        else:
            log.info("inbox: %s", message)
        for f in (
            self.path,
            self.meta_path,
            self._attempts_path(),
            self.results / (self.path.name + ".progress"),
        ):
            f.unlink(missing_ok=True)

    def _attempts_path(self) -> Path:
        return self.path.with_name(self.path.name + ".attempts")


_JOBS: weakref.WeakKeyDictionary[Writer, _InboxJob] = weakref.WeakKeyDictionary()


def _read_meta(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _original_name(stem: str) -> str:
    m = re.match(r"^\d+-[0-9a-f]{8}-(.+)$", stem)
    return m.group(1) if m else stem


def _write_json(path: Path, body: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(body, default=str))
    tmp.replace(path)


def _waiting(box: Path) -> list[Path]:
    return [
        f
        for f in sorted(box.iterdir())
        if f.is_file() and not f.name.endswith((".part", ".meta", ".attempts"))
    ]


def process_inbox(writer: Writer, *, budget: float | None = 0.5) -> list[ImportReport]:
    """Work through the writer's inbox (the collector calls this about once a second): purge
    requests (:func:`lq.store.retention.request_purge`) and files to import, a block at a
    time, for about ``budget`` seconds (None: until the inbox is empty). A file in progress
    continues at the next call. Returns the reports of the files finished in this call.

    Never raises for a file: a file that cannot be imported is refused with its reason in
    ``<db>.inbox/results/<name>.json``, the log and ``dead_letters``. A failure of the
    database itself (disk full, I/O error) leaves the file waiting and is raised."""
    from lq.store.retention import PURGE_REQUEST_SUFFIX, serve_purge_request

    box = inbox_dir(writer.path)
    if not box.is_dir():
        return []
    deadline = None if budget is None else time.monotonic() + budget
    reports: list[ImportReport] = []
    job = _JOBS.get(writer)
    if job is not None and not job.path.exists():  # withdrawn meanwhile
        job.close()
        job = None
        _JOBS.pop(writer, None)
    while True:
        if job is None:
            waiting = _waiting(box)
            if not waiting:
                return reports
            f = waiting[0]
            if f.name.endswith(PURGE_REQUEST_SUFFIX):  # `lq purge` while we run
                serve_purge_request(writer, f)
                continue
            job = _start(writer, f)
            if job is None:
                continue
            _JOBS[writer] = job
        try:
            finished = job.step()
        except sqlite3.OperationalError:
            job.close()
            _JOBS.pop(writer, None)
            raise
        if finished:
            _JOBS.pop(writer, None)
            if job.status == "imported":
                reports.append(job.report)
            job = None
        if deadline is not None and time.monotonic() >= deadline:
            return reports


def _start(writer: Writer, f: Path) -> _InboxJob | None:
    """A job for ``f``, or None when it is refused at once (too many attempts)."""
    attempts = f.with_name(f.name + ".attempts")
    n = int(attempts.read_text() or 0) if attempts.exists() else 0
    if n >= MAX_ATTEMPTS:
        msg = (
            f"{_original_name(f.name)}: refused: the collector stopped {n} times while importing"
            " it; import it with `lq import` while no collector runs to see what happens"
        )
        _write_json(
            f.parent / "results" / (f.name + ".json"), {"status": "refused", "message": msg}
        )
        writer.dead_letter(f.name, f"import refused: {msg}")
        log.error("inbox: %s", msg)
        for p in (f, f.with_name(f.name + ".meta"), attempts):
            p.unlink(missing_ok=True)
        return None
    attempts.write_text(str(n + 1))
    try:
        return _InboxJob(writer, f)
    except Exception as exc:  # unreadable meta and the like
        log.exception("inbox: cannot start importing %s", f.name)
        _write_json(
            f.parent / "results" / (f.name + ".json"),
            {"status": "refused", "message": f"{f.name}: {type(exc).__name__}: {exc}"},
        )
        for p in (f, f.with_name(f.name + ".meta"), attempts):
            p.unlink(missing_ok=True)
        return None


# -- CLI ---------------------------------------------------------------------------------------
def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "import",
        help="load Binance public-data files (trades/aggTrades/klines, CSV or zip), recordings or OHLC CSVs",
        description=(
            "Load Binance public-data files, recordings or OHLC CSVs into the store, streaming "
            "with bounded memory. Imported rows are kept: automatic retention never deletes "
            "them (`lq purge --include-imported` does)."
        ),
    )
    p.add_argument(
        "--db", metavar="PATH", help="the SQLite database (default: store.db from `lq config`)"
    )
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument(
        "--kind", choices=KINDS, help="default: detected from the file name and first row"
    )
    p.add_argument("--symbol", help="default: from the Binance file name (BTCUSDT-trades-...)")
    p.add_argument(
        "--exchange-label", default="binance", help="the exchange column for stored rows"
    )
    p.add_argument(
        "--max-size",
        metavar="SIZE",
        help="refuse files that inflate to more than this (default: store.import_max_size, 4GiB)",
    )
    p.add_argument(
        "--max-ratio",
        type=float,
        metavar="N",
        help="refuse compressed files that inflate more than N times (default: store.import_max_ratio, 200)",
    )
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="with a collector running: queue the files and return without waiting for its answer",
    )
    p.add_argument("--no-progress", action="store_true")
    return p


def run(args: argparse.Namespace, settings: Any) -> int:
    from lq.store import writer_pid

    for f in args.files:
        if not f.exists():
            raise ImportFormatError(f"{f}: no such file")
        if f.is_dir():
            raise ImportFormatError(f"{f}: is a folder; name the files in it")
    limits = Limits.from_settings(settings, max_size=args.max_size, max_ratio=args.max_ratio)
    symbol = _check_symbol(args.symbol)
    pid = writer_pid(settings.db)
    if pid is not None:
        return _run_queued(args, settings, limits, symbol, pid)
    with Writer(settings.db, source="import") as w:
        for f in args.files:
            rep = import_file(
                w,
                f,
                kind=args.kind,
                symbol=symbol,
                exchange=args.exchange_label,
                progress=not args.no_progress,
                limits=limits,
            )
            print(rep.summary())
    print(KEPT_NOTE)
    return 0


def _precheck(f: Path, kind: str | None, symbol: str | None, limits: Limits) -> None:
    """The checks that need no parsing (limits, layout, symbol), before a file is queued."""
    for m in _open_members(f, None, limits):
        try:
            head = m.stream.peek(64)[:64]
            if kind == "frames" or (kind is None and _FRAME_LINE.match(head)):
                continue
            first = _readline(m, 1).decode("utf-8", errors="replace").lstrip("\ufeff")
            if not first.strip():
                raise ImportFormatError(f"{m.where}: empty file")
            k = kind or detect_kind(m.name, first)
            if k != "frames" and not (
                symbol or _symbol_from_name(m.name) or _symbol_from_name(f.name)
            ):
                raise SymbolRequiredError(
                    f"{m.where}: the file name does not say its symbol (Binance names files like "
                    "BTCUSDT-trades-2024-08-08.zip); pass --symbol"
                )
        finally:
            m.stream.close()


def _run_queued(
    args: argparse.Namespace, settings: Any, limits: Limits, symbol: str | None, pid: int
) -> int:
    """A collector writes the database: hand it the files and wait for its answers."""
    from tqdm import tqdm

    from lq.store import writer_pid

    queued = []
    for f in args.files:
        _precheck(f, args.kind, symbol, limits)
        path = _queue(
            settings.db,
            f.name,
            source=f,
            meta={
                "name": f.name,
                "kind": args.kind or "",
                "symbol": symbol or "",
                "exchange": args.exchange_label,
                "max_size": limits.max_size,
                "max_ratio": limits.max_ratio,
            },
        )
        queued.append((f, path))
        print(f"{f}: queued for the running collector (pid {pid}), the database's writer")
    if args.no_wait:
        print(KEPT_NOTE)
        return 0
    failed = 0
    for f, path in queued:
        answer = path.parent / "results" / (path.name + ".json")
        progress = path.parent / "results" / (path.name + ".progress")
        bar = tqdm(
            total=f.stat().st_size,
            unit="B",
            unit_scale=True,
            desc=f.name,
            leave=False,
            disable=args.no_progress,
        )
        try:
            while not answer.exists():
                if writer_pid(settings.db) is None:
                    print(
                        f"{f}: the collector stopped before importing it; it stays queued in "
                        f"{path.parent} and is imported when a collector starts there (or run "
                        "`lq import` again)",
                    )
                    return 1
                if progress.exists():
                    try:
                        got = json.loads(progress.read_text())
                        bar.total = got["bytes_total"] or bar.total
                        bar.update(got["bytes_done"] - bar.n)
                    except (ValueError, KeyError, OSError):
                        pass
                time.sleep(0.2)
        finally:
            bar.close()
        got = json.loads(answer.read_text())
        answer.unlink(missing_ok=True)
        if got.get("status") == "imported":
            print(f"{got.get('message')} (imported by the collector, pid {pid})")
        else:
            failed += 1
            print(f"lq import: error: {got.get('message')}", file=sys.stderr)
    print(KEPT_NOTE)
    return 2 if failed else 0
