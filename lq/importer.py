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
            close[, volume]; the interval is the most common step between rows
========== ========================================================================== =====

CSV or zip (each CSV inside is read), with or without a header row; times in ms or µs
(detected per file by magnitude: spot files are µs since 2025); booleans ``True``/``true``;
invalid aggTrades (``f = -1``, Binance's marker for duplicates found by its 2022 audit) are
skipped and counted. Imports are idempotent (ids and kline open times are keys). A file that
does not parse is refused with the file, line and column named, before anything is written.

Only one process writes market data. ``import_upload`` (the dashboard's upload) validates the
whole file, then imports it directly when no collector runs, or drops it in the database's
inbox (``<db>.inbox/``) where the running collector imports it.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import time
import uuid
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from lq.errors import ImportFormatError
from lq.feeds.events import AggTrade, Kline, Trade
from lq.store.writer import Batch, Writer

__all__ = [
    "ImportReport",
    "UploadResult",
    "add_parser",
    "detect_kind",
    "import_file",
    "import_upload",
    "inbox_dir",
    "process_inbox",
    "read_file",
    "run",
]

log = logging.getLogger(__name__)

Kind = Literal["trades", "aggTrades", "klines", "frames", "ohlc"]
KINDS: tuple[str, ...] = ("trades", "aggTrades", "klines", "frames", "ohlc")
CHUNK = 200_000
_NAME = re.compile(
    r"^(?P<sym>[A-Z0-9]{2,30})-(?P<what>trades|aggTrades|\d+[smhdwM]|1mo)-\d{4}-\d{2}(-\d{2})?"
)
_TRUE = {"true": True, "false": False, "1": True, "0": False}
_INTERVALS = {
    "1s": 1, "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 7200,
    "4h": 14400, "6h": 21600, "8h": 28800, "12h": 43200, "1d": 86400, "3d": 259200, "1w": 604800,
}  # fmt: skip


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
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        s = f"{self.path}: {self.kind} {self.symbol}: {self.rows:,} rows, {self.new:,} new, {self.duplicates:,} already stored"
        if self.skipped:
            s += f", {self.skipped:,} invalid skipped"
        if self.rejected:
            s += f", {self.rejected:,} refused (see dead_letters)"
        return s + f" ({self.seconds:.1f} s)"


@dataclass(frozen=True, slots=True)
class UploadResult:
    """What became of an upload: imported now, or queued at ``path`` in the inbox until the
    running collector imports it (the file is gone then)."""

    status: Literal["imported", "queued"]
    kind: str
    symbol: str
    rows: int
    message: str
    path: Path | None = None


# -- detection ---------------------------------------------------------------------------------
def _symbol_from_name(name: str) -> str | None:
    m = _NAME.match(Path(name).name)
    return m.group("sym") if m else None


def detect_kind(name: str, first_line: str) -> Kind:
    """The layout of a file from its name and first line (see the module docstring)."""
    m = _NAME.match(Path(name).name)
    head = first_line.strip()
    if re.match(r"^\d{15,20} [\[{]", head):
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


# -- reading -----------------------------------------------------------------------------------
def _members(
    path: Path, data: bytes | None = None
) -> Iterator[tuple[str, io.BufferedIOBase | io.BytesIO]]:
    raw = data if data is not None else None
    is_zip = path.suffix.lower() == ".zip" or (raw is not None and raw[:4] == b"PK\x03\x04")
    if is_zip:
        try:
            zf = zipfile.ZipFile(io.BytesIO(raw) if raw is not None else path)
        except zipfile.BadZipFile as exc:
            raise ImportFormatError(f"{path.name}: not a valid zip file ({exc})") from None
        names = [n for n in zf.namelist() if not n.endswith("/")]
        if not names:
            raise ImportFormatError(f"{path.name}: the zip file is empty")
        for n in names:
            yield n, zf.open(n)  # type: ignore[misc]
        return
    if raw is not None:
        yield path.name, io.BytesIO(raw)
    elif path.suffix == ".gz":
        import gzip

        yield path.name, gzip.open(path, "rb")  # type: ignore[misc]  # noqa: SIM115
    else:
        yield path.name, open(path, "rb")  # noqa: SIM115


def _to_us(values: np.ndarray, where: str) -> np.ndarray:
    """Times in ms or µs (decided per file by magnitude) -> µs."""
    if values.size == 0:
        return values.astype(np.int64)
    v = values.astype(np.int64)
    sample = int(np.median(v[: min(v.size, 1000)]))
    if 1e14 <= sample < 1e17:  # µs (2001..5138)
        return v
    if 1e11 <= sample < 1e14:  # ms
        return v * 1000
    raise ImportFormatError(
        f"{where}: times like {sample} are neither milliseconds nor microseconds since 1970"
    )


def _numeric(
    df: pd.DataFrame, col: int, name: str, where: str, header_rows: int, kind: str = "float"
) -> np.ndarray:
    s = df.iloc[:, col]
    num = pd.to_numeric(s, errors="coerce")
    bad = num.isna() & s.notna() | s.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        line = int(df.index[i]) + 1 + header_rows
        raise ImportFormatError(
            f"{where}:{line}: column {col + 1} ({name}) = {s.iloc[i]!r} is not a number"
        )
    return num.to_numpy(dtype=np.int64 if kind == "int" else np.float64)


def _bools(df: pd.DataFrame, col: int, name: str, where: str, header_rows: int) -> np.ndarray:
    s = df.iloc[:, col].astype(str).str.strip().str.lower()
    mapped = s.map(_TRUE)
    if mapped.isna().any():
        i = int(np.flatnonzero(mapped.isna().to_numpy())[0])
        line = int(df.index[i]) + 1 + header_rows
        raise ImportFormatError(
            f"{where}:{line}: column {col + 1} ({name}) = {df.iloc[i, col]!r} is not true/false"
        )
    return mapped.to_numpy(dtype=bool)


def _csv_chunks(fh: Any, where: str) -> Iterator[tuple[pd.DataFrame, int]]:
    text = io.TextIOWrapper(fh, encoding="utf-8", errors="replace", newline="")
    first = text.readline()
    if not first.strip():
        raise ImportFormatError(f"{where}: empty file")
    cells = [c.strip().strip('"') for c in first.split(",")]
    header = not _is_number(cells[0]) if cells else False
    rest = text.read()
    body = rest if header else first + rest
    names = [c.lower() for c in cells] if header else None
    if not body.strip():
        raise ImportFormatError(f"{where}: a header row and no data")
    try:
        reader = pd.read_csv(
            io.StringIO(body), header=None, dtype=str, chunksize=CHUNK, skip_blank_lines=True
        )
        offset = 0
        for chunk in reader:
            chunk.index = chunk.index  # RangeIndex continues across chunks
            if names is not None:
                chunk.attrs["names"] = names
            yield chunk, 1 if header else 0
            offset += len(chunk)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ImportFormatError(f"{where}: not a valid CSV ({exc})") from None


def read_file(
    path: str | os.PathLike[str],
    *,
    kind: Kind | None = None,
    symbol: str | None = None,
    exchange: str = "binance",
    data: bytes | None = None,
) -> Iterator[tuple[str, str, Batch, int]]:
    """Parse a file into batches: yields ``(kind, symbol, batch, skipped)`` per chunk.

    Raises :class:`~lq.errors.ImportFormatError` (naming the file, line and column) for
    anything it does not understand. Nothing is written here.
    """
    p = Path(path)
    for member, fh in _members(p, data):
        where = f"{p.name}" + (f"!{member}" if member != p.name else "")
        if kind == "frames" or (kind is None and _peek_frames(fh)):
            yield from _read_frames(fh, where, exchange)
            continue
        sym = (symbol or _symbol_from_name(member) or _symbol_from_name(p.name) or "").upper()
        first_kind: str | None = kind
        for chunk, header_rows in _csv_chunks(fh, where):
            if first_kind is None:
                names = chunk.attrs.get("names")
                line = (
                    ",".join(names) if names else ",".join(str(x) for x in chunk.iloc[0].tolist())
                )
                first_kind = detect_kind(member, line)
            k = first_kind
            if k in ("trades", "aggTrades", "klines") and not sym:
                raise ImportFormatError(
                    f"{where}: no symbol in the file name (Binance names files like BTCUSDT-trades-2024-08-08.zip); pass --symbol"
                )
            if k == "ohlc" and not sym:
                raise ImportFormatError(f"{where}: an OHLC CSV needs a symbol (--symbol)")
            batch, skipped = _parse_chunk(k, chunk, sym, exchange, where, header_rows)
            yield k, sym, batch, skipped


def _peek_frames(fh: Any) -> bool:
    try:
        head = fh.peek(64)[:64]  # type: ignore[union-attr]
    except AttributeError:
        pos = fh.tell()
        head = fh.read(64)
        fh.seek(pos)
    return bool(re.match(rb"^\d{15,20} [\[{]", head))


def _read_frames(fh: Any, where: str, exchange: str) -> Iterator[tuple[str, str, Batch, int]]:
    from lq.errors import FrameError
    from lq.feeds.events import Rejected
    from lq.feeds.parser import Parser

    parser = Parser(exchange=exchange)
    batch = Batch()
    lineno = 0
    for lineno, line in enumerate(io.BufferedReader(fh, 1 << 20), 1):  # type: ignore[arg-type]
        line = line.rstrip(b"\r\n")
        if not line:
            continue
        head, sep, raw = line.partition(b" ")
        if not sep or not head.isdigit():
            raise ImportFormatError(
                f"{where}:{lineno}: expected '<receive time ns> <frame>', got {line[:60]!r}"
            )
        recv = int(head) // 1000
        try:
            for ev in parser.parse(raw, recv):
                batch.add(ev)
        except FrameError as exc:
            batch.rejected.append(
                Rejected(
                    raw=raw.decode(errors="replace"),
                    reason=exc.reason,
                    recv_ts=recv,
                    exchange=exchange,
                )
            )
        if len(batch) >= CHUNK:
            yield "frames", "*", batch, 0
            batch = Batch()
    if lineno == 0:
        raise ImportFormatError(f"{where}: empty file")
    yield "frames", "*", batch, 0


def _parse_chunk(
    k: str, df: pd.DataFrame, sym: str, exchange: str, where: str, hr: int
) -> tuple[Batch, int]:
    n = df.shape[1]
    if k == "trades":
        if n not in (6, 7):
            raise ImportFormatError(
                f"{where}: trades need 6 (futures) or 7 (spot) columns, found {n}"
            )
        ids = _numeric(df, 0, "id", where, hr, "int")
        price = _numeric(df, 1, "price", where, hr)
        qty = _numeric(df, 2, "qty", where, hr)
        ts = _to_us(_numeric(df, 4, "time", where, hr, "int"), where)
        maker = _bools(df, 5, "is_buyer_maker", where, hr)
        trades = [
            Trade(
                symbol=sym,
                trade_id=int(i),
                price=float(p),
                qty=float(q),
                ts=int(t),
                event_ts=int(t),
                is_buyer_maker=bool(m),
                exchange=exchange,
            )
            for i, p, q, t, m in zip(
                ids.tolist(), price.tolist(), qty.tolist(), ts.tolist(), maker.tolist(), strict=True
            )
        ]
        return Batch(trades=trades), 0
    if k == "aggTrades":
        if n not in (7, 8):
            raise ImportFormatError(
                f"{where}: aggTrades need 7 (futures) or 8 (spot) columns, found {n}"
            )
        ids = _numeric(df, 0, "agg_trade_id", where, hr, "int")
        price = _numeric(df, 1, "price", where, hr)
        qty = _numeric(df, 2, "quantity", where, hr)
        first = _numeric(df, 3, "first_trade_id", where, hr, "int")
        last = _numeric(df, 4, "last_trade_id", where, hr, "int")
        ts = _to_us(_numeric(df, 5, "timestamp", where, hr, "int"), where)
        maker = _bools(df, 6, "is_buyer_maker", where, hr)
        valid = first >= 0  # f = -1 marks aggTrades Binance found invalid
        aggs = [
            AggTrade(
                symbol=sym,
                agg_id=int(a),
                first_id=int(f),
                last_id=int(lt),
                price=float(p),
                qty=float(q),
                ts=int(t),
                event_ts=int(t),
                is_buyer_maker=bool(m),
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
        return Batch(agg_trades=aggs), int((~valid).sum())
    if k == "klines":
        if n < 11:
            raise ImportFormatError(f"{where}: klines need 12 columns, found {n}")
        ot = _to_us(_numeric(df, 0, "open_time", where, hr, "int"), where)
        ct = _to_us(_numeric(df, 6, "close_time", where, hr, "int"), where)
        cols = {
            name: _numeric(df, i, name, where, hr)
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
        count = _numeric(df, 8, "count", where, hr, "int")
        interval = _interval_name(int(np.median(ct - ot + 1)) if len(ot) else 60_000_000)
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
        _check_ohlc(klines, where)
        return Batch(klines=klines), 0
    if k == "ohlc":
        return _parse_ohlc(df, sym, exchange, where, hr), 0
    raise ImportFormatError(f"{where}: unknown kind {k!r}; expected one of {KINDS}")


def _interval_name(step_us: int) -> str:
    secs = round(step_us / 1e6)
    for name, s in _INTERVALS.items():
        if s == secs:
            return name
    if 28 * 86_400 <= secs <= 31 * 86_400:  # monthly files ("1mo"): months differ in length
        return "1M"
    return f"{secs}s"


def _parse_ohlc(df: pd.DataFrame, sym: str, exchange: str, where: str, hr: int) -> Batch:
    names = df.attrs.get("names")
    if not names:
        raise ImportFormatError(
            f"{where}: an OHLC CSV needs a header row (time, open, high, low, close[, volume])"
        )
    idx = {n: i for i, n in enumerate(names)}
    tcol = next(
        (idx[c] for c in ("time", "timestamp", "date", "datetime", "open_time") if c in idx), None
    )
    missing = [c for c in ("open", "high", "low", "close") if c not in idx]
    if tcol is None or missing:
        raise ImportFormatError(
            f"{where}: header must name a time column and open, high, low, close; missing {missing or ['time']}"
        )
    raw_t = df.iloc[:, tcol]
    if raw_t.astype(str).str.fullmatch(r"\d+").all():
        ts = _to_us(raw_t.astype(np.int64).to_numpy(), where)
    else:
        parsed = pd.to_datetime(raw_t, utc=True, errors="coerce")
        if parsed.isna().any():
            i = int(np.flatnonzero(parsed.isna().to_numpy())[0])
            raise ImportFormatError(
                f"{where}:{int(df.index[i]) + 1 + hr}: time {raw_t.iloc[i]!r} is not a date/time"
            )
        ts = (
            (parsed.astype("int64") // 1000).to_numpy()
            if parsed.dt.unit == "ns"
            else parsed.dt.as_unit("us").astype("int64").to_numpy()
        )
    o, h, lo, c = (_numeric(df, idx[x], x, where, hr) for x in ("open", "high", "low", "close"))
    vol = _numeric(df, idx["volume"], "volume", where, hr) if "volume" in idx else np.zeros(len(ts))
    steps = np.diff(np.sort(ts))
    steps = steps[steps > 0]
    step = int(pd.Series(steps).mode().iloc[0]) if steps.size else 60_000_000
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
            quote_volume=float(vol[i] * c[i]),
            trades=0,
            taker_buy_volume=0.0,
            taker_buy_quote_volume=0.0,
            first_id=-1,
            last_id=-1,
            closed=True,
            event_ts=int(ts[i] + step - 1),
            exchange=exchange,
        )
        for i in range(len(ts))
    ]
    _check_ohlc(klines, where)
    return Batch(klines=klines)


def _check_ohlc(klines: Sequence[Kline], where: str) -> None:
    for i, k in enumerate(klines):
        if not (k.low <= min(k.open, k.close) and k.high >= max(k.open, k.close) and k.low > 0):
            raise ImportFormatError(
                f"{where}: row {i + 1} ({pd.Timestamp(k.open_time, unit='us', tz='UTC')}): "
                f"open={k.open} high={k.high} low={k.low} close={k.close} is not a valid positive OHLC bar"
            )


# -- writing -----------------------------------------------------------------------------------
def import_file(
    writer: Writer,
    path: str | os.PathLike[str],
    *,
    kind: Kind | None = None,
    symbol: str | None = None,
    exchange: str = "binance",
    progress: bool = True,
    data: bytes | None = None,
) -> ImportReport:
    """Parse and store one file, chunk by chunk (one transaction per chunk). Idempotent."""
    from tqdm import tqdm

    p = Path(path)
    t0 = time.perf_counter()
    report = ImportReport(path=str(p), kind=kind or "?", symbol=(symbol or "").upper() or "?")
    size = len(data) if data is not None else p.stat().st_size
    bar = tqdm(
        unit=" rows",
        unit_scale=True,
        desc=p.name,
        disable=not progress or size < 5_000_000,
        leave=False,
    )
    try:
        for k, sym, batch, skipped in read_file(
            p, kind=kind, symbol=symbol, exchange=exchange, data=data
        ):
            report.kind, report.symbol = k, sym
            res = writer.write_batch(batch)
            n = len(batch) - len(batch.rejected) - len(batch.gaps)
            report.rows += n + skipped
            report.skipped += skipped
            for r in (res.trades, res.agg_trades, res.book_tickers, res.klines):
                report.new += r.new
                report.duplicates += r.duplicates
                report.rejected += r.rejected
            report.rejected += len(batch.rejected)
            bar.update(n + skipped)
    finally:
        bar.close()
    report.seconds = time.perf_counter() - t0
    if report.rows == 0:
        report.notes.append("no rows")
    return report


def inbox_dir(db: str | os.PathLike[str]) -> Path:
    return Path(str(db) + ".inbox")


def import_upload(
    db: str | os.PathLike[str],
    filename: str,
    data: bytes,
    *,
    symbol: str | None = None,
    kind: Kind | None = None,
    exchange: str = "binance",
) -> UploadResult:
    """Validate an uploaded file completely, then import it (no collector running) or queue it
    for the running collector, the database's single writer. Refuses bad input before writing."""
    from lq.store import writer_pid

    if not data:
        raise ImportFormatError(f"{filename}: the upload is empty")
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(filename).name) or "upload.csv"
    rows, k, sym = 0, str(kind or "?"), symbol or "?"
    for k_, sym_, batch, skipped in read_file(
        Path(safe), kind=kind, symbol=symbol, exchange=exchange, data=data
    ):
        rows += len(batch) + skipped
        k, sym = k_, sym_
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
            )
        return UploadResult(
            "imported", rep.kind, rep.symbol, rep.rows, rep.summary().split(": ", 1)[1]
        )
    box = inbox_dir(db)
    box.mkdir(parents=True, exist_ok=True)
    stem = f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}-{safe}"
    (box / (stem + ".part")).write_bytes(data)
    meta = f"kind={k if k != '?' else ''}\nsymbol={sym if sym not in ('?', '*') else ''}\nexchange={exchange}\n"
    (box / (stem + ".meta")).write_text(meta)
    (box / (stem + ".part")).rename(box / stem)
    return UploadResult(
        "queued", k, sym, rows, f"{rows:,} rows queued for the running collector", box / stem
    )


def process_inbox(writer: Writer) -> list[ImportReport]:
    """Import every file waiting in the writer's inbox (called by the collector), and run any
    purge request waiting there (:func:`lq.store.retention.request_purge`)."""
    from lq.store.retention import PURGE_REQUEST_SUFFIX, serve_purge_request

    box = inbox_dir(writer.path)
    if not box.is_dir():
        return []
    reports = []
    for f in sorted(box.iterdir()):
        if f.suffix in (".part", ".meta") or not f.is_file():
            continue
        if f.name.endswith(PURGE_REQUEST_SUFFIX):  # `lq purge` while we run
            serve_purge_request(writer, f)
            continue
        meta_path = f.with_name(f.name + ".meta")
        meta = (
            dict(line.split("=", 1) for line in meta_path.read_text().splitlines() if "=" in line)
            if meta_path.exists()
            else {}
        )
        try:
            rep = import_file(
                writer,
                f,
                kind=meta.get("kind") or None,  # type: ignore[arg-type]
                symbol=meta.get("symbol") or None,  # type: ignore[arg-type]
                exchange=meta.get("exchange") or "binance",
                progress=False,
            )
            log.info("inbox: %s", rep.summary())
            reports.append(rep)
        except ImportFormatError as exc:
            writer.dead_letter(f.name, f"import: {exc}")
            log.error("inbox: %s", exc)
        f.unlink(missing_ok=True)
        meta_path.unlink(missing_ok=True)
    return reports


# -- CLI ---------------------------------------------------------------------------------------
def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "import",
        help="load Binance public-data files (trades/aggTrades/klines, CSV or zip), recordings or OHLC CSVs",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
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
    p.add_argument("--no-progress", action="store_true")
    return p


def run(args: argparse.Namespace, settings: Any) -> int:
    from lq.store import writer_pid

    for f in args.files:
        if not f.exists():
            raise ImportFormatError(f"{f}: no such file")
    pid = writer_pid(settings.db)
    if pid is not None:
        for f in args.files:
            res = import_upload(
                settings.db,
                f.name,
                f.read_bytes(),
                symbol=args.symbol,
                kind=args.kind,
                exchange=args.exchange_label,
            )
            print(f"{f}: {res.message} (collector pid {pid} is the writer)")
        return 0
    with Writer(settings.db, source="import") as w:
        for f in args.files:
            rep = import_file(
                w,
                f,
                kind=args.kind,
                symbol=args.symbol,
                exchange=args.exchange_label,
                progress=not args.no_progress,
            )
            print(rep.summary())
    return 0
