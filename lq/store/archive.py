"""The Parquet archive: closed days (or hours) of market data, moved out of SQLite.

Layout, under a root that is a local folder (default ``<db>.archive/``) or any fsspec URL
(``s3://bucket/prefix``)::

    <root>/_lq_archive.json                      schema version and granularity
    <root>/<table>/exchange=E/symbol=S/date=YYYY-MM-DD/part-<slot>-<db>.parquet
    <root>/<table>/exchange=E/symbol=S/date=YYYY-MM-DD/part-<slot>-<db>.parquet.manifest.json

Hive partitions (values percent-encoded: ``BTC%2FUSD``), rows sorted by time then id, zstd.
``slot`` is ``day`` or the hour ``00``..``23``; ``db`` names the SQLite file that wrote it, so
several collectors (one per shard of symbols, each with its own file) archiving into one root
never write the same object, and readers see the union. The manifest beside each file holds
its row count, id and time ranges, the file's sha256, a checksum of its rows and the schema
version.

Compaction of one partition (``exchange``, ``symbol``, interval), for every table at once:

1. read the interval's rows from SQLite (only intervals strictly before the current, open one);
2. merge them with the file already there, if any (the SQLite row wins a key present in both);
   unchanged content is not rewritten (a rerun changes nothing);
3. write ``<file>.tmp-<uuid>``, read it back and compare the row checksum, rename it over the
   file, read the file back again, write the manifest the same way;
4. in one SQLite transaction, delete exactly the rows that were archived: a row changed or
   added meanwhile (a late backfill) stays in SQLite and is archived by the next run.

A crash (even ``kill -9``) at any step loses nothing (SQLite rows are deleted last, only once
the file holding them has been read back) and duplicates nothing a reader sees (readers
dedupe archive and tail on the table's key, the SQLite row winning). Temporary files are
never read (they do not end in ``.parquet``) and are removed by the next run.

The test hook ``LQ_ARCHIVE_CRASH_AT=before_write|before_rename|before_delete`` makes the
process SIGKILL itself at that point (crash-safety tests only).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import sqlite3
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lq.errors import StoreError, ValidationError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "SCHEMA_VERSION",
    "TABLES",
    "Archive",
    "ArchiveResult",
    "TableSpec",
    "archive_db",
    "default_location",
    "open_archive",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
Granularity = Literal["day", "hour"]
_CRASH_ENV = "LQ_ARCHIVE_CRASH_AT"


@dataclass(frozen=True, slots=True)
class TableSpec:
    """How a table is archived: its time column, its key inside one (exchange, symbol)
    partition (the SQLite primary key without those two) and its sort order."""

    time: str
    key: tuple[str, ...]
    order: tuple[str, ...]
    where: str = ""  # rows that are archived at all (gaps: only settled ones)


#: the archived tables; ticks are selected through their 1 s bars' id ranges (no time index)
TABLES: dict[str, TableSpec] = {
    "ticks": TableSpec("ts", ("trade_id",), ("ts", "trade_id")),
    "agg_trades": TableSpec("ts", ("agg_id",), ("ts", "agg_id")),
    "bars_1s": TableSpec("ts", ("ts",), ("ts",)),
    "bars_1m": TableSpec("ts", ("ts",), ("ts",)),
    "klines": TableSpec("open_time", ("interval", "open_time"), ("open_time", "interval")),
    "book_tickers": TableSpec("ts", ("update_id",), ("ts", "update_id")),
    "book_snapshots": TableSpec("ts", ("ts", "update_id"), ("ts", "update_id")),
    # a gap still being backfilled ("found") may change: only settled ones are archived
    "gaps": TableSpec(
        "detected_ts",
        ("kind", "first_missing"),
        ("detected_ts", "kind", "first_missing"),
        where="status != 'found'",
    ),
}

_ARROW_TYPES = {"INTEGER": "int64", "REAL": "float64", "TEXT": "string", "BLOB": "binary"}


def default_location(db: str | os.PathLike[str]) -> str:
    """The archive of ``db`` when none is configured: the folder ``<db>.archive`` beside it."""
    return str(Path(db).expanduser()) + ".archive"


def _crash_point(name: str) -> None:
    if os.environ.get(_CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _enc(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _dec(value: str) -> str:
    return urllib.parse.unquote(value)


def _day(us: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(us // 1_000_000))


def _day_us(date: str) -> int:
    import calendar

    return calendar.timegm(time.strptime(date, "%Y-%m-%d")) * 1_000_000


def _db_tag(db: str | os.PathLike[str]) -> str:
    real = os.path.realpath(db)
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(real).stem)[:40]
    return f"{stem}-{hashlib.sha256(real.encode()).hexdigest()[:8]}"


class Archive:
    """One archive root (a local folder or an fsspec URL) and the operations on it."""

    def __init__(self, location: str | os.PathLike[str]) -> None:
        loc = str(location)
        if "://" in loc:
            protocol = loc.split("://", 1)[0]
            try:
                import fsspec

                # no cached listings: other processes (shards) write the same root
                opts: dict[str, Any] = {"skip_instance_cache": True}
                if protocol in ("s3", "s3a", "gs", "gcs", "az", "abfs"):
                    opts["use_listings_cache"] = False
                fs, root = fsspec.core.url_to_fs(loc, **opts)
            except ImportError as exc:
                fix = (
                    "s3fs, which is not installed: pip install 'lq[s3]'"
                    if protocol in ("s3", "s3a")
                    else f"a package that is not installed ({_short(exc)})"
                )
                raise StoreError(f"{loc}: {protocol}:// archives need {fix}") from None
            except ValueError as exc:
                raise StoreError(f"{loc}: not an archive location: {exc}") from None
            self.url = loc.rstrip("/")
        else:
            from fsspec.implementations.local import LocalFileSystem

            fs = LocalFileSystem()
            root = str(Path(loc).expanduser().resolve())
            self.url = root
        self.fs = fs
        self.root = root.rstrip("/")
        self.protocol = "file" if "://" not in loc else loc.split("://", 1)[0]

    # -- paths ------------------------------------------------------------------------------
    def _join(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def full(self, path: str) -> str:
        """``path`` as DuckDB and pyarrow should see it (with the protocol for URLs)."""
        return path if self.protocol == "file" else f"{self.protocol}://{path}"

    def partition_dir(self, table: str, exchange: str, symbol: str, date: str) -> str:
        return self._join(
            table, f"exchange={_enc(exchange)}", f"symbol={_enc(symbol)}", f"date={date}"
        )

    def glob(self, table: str, symbol: str | None = None) -> str:
        sym = "*" if symbol is None else f"symbol={_enc(symbol)}"
        return self._join(table, "exchange=*", sym, "date=*", "*.parquet")

    # -- checks -----------------------------------------------------------------------------
    def check(self, *, create: bool) -> dict[str, Any]:
        """Reach the root (creating it when ``create``) and read or write ``_lq_archive.json``;
        one-line errors for an unreachable location or a foreign/newer archive."""
        meta_path = self._join("_lq_archive.json")
        try:
            if self.protocol == "file":
                if create:
                    os.makedirs(self.root, exist_ok=True)
                elif not os.path.isdir(self.root):
                    return {}
            else:
                bucket = self.root.split("/", 1)[0]
                try:  # not exists(): it answers False for an endpoint that is down too
                    self.fs.ls(bucket, refresh=True)
                except FileNotFoundError:
                    raise StoreError(
                        f"{self.url}: no such bucket {bucket!r} (create it, or fix store.archive)"
                    ) from None
            if self.fs.exists(meta_path):
                with self.fs.open(meta_path, "rb") as f:
                    meta = json.loads(f.read())
                if int(meta.get("schema_version", 0)) > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.url}: archive schema version {meta['schema_version']} is newer"
                        f" than this lq understands ({SCHEMA_VERSION}); upgrade lq"
                    )
                return dict(meta)
            if not create:
                return {}
            meta = {"format": "lq-archive", "schema_version": SCHEMA_VERSION}
            self._put_bytes(meta_path, json.dumps(meta, indent=1).encode())
            return meta
        except StoreError:
            raise
        except json.JSONDecodeError as exc:
            raise StoreError(f"{self.url}: _lq_archive.json is not JSON ({exc})") from None
        except Exception as exc:  # botocore/aiohttp/OS errors: name the location and the cause
            raise StoreError(
                f"{self.url}: cannot reach the archive ({type(exc).__name__}: {_short(exc)});"
                " check the location, AWS_ENDPOINT_URL and the credentials in the environment"
            ) from None

    # -- files ------------------------------------------------------------------------------
    def _put_bytes(self, path: str, data: bytes) -> None:
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
        with self.fs.open(tmp, "wb") as f:
            f.write(data)
        self.fs.mv(tmp, path)

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(path))

    def read_table(self, path: str, **options: Any) -> pa.Table:
        """One Parquet file (``options`` go to ``pyarrow.parquet.read_table``); a file that
        cannot be read is a :class:`StoreError` naming it."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            with self.fs.open(path, "rb") as f:
                return pq.read_table(f, **options)
        except (pa.ArrowException, OSError) as exc:
            raise StoreError(
                f"{self.full(path)}: not a readable archive file ({_short(exc)}); restore it"
                " from a backup or remove it and its .manifest.json"
            ) from None

    def files(self, table: str, symbol: str | None = None) -> list[str]:
        """The data files of ``table`` (of ``symbol``), sorted."""
        try:
            return sorted(self.fs.glob(self.glob(table, symbol)))
        except FileNotFoundError:
            return []

    def clean_temporaries(self) -> int:
        """Remove ``*.tmp-*`` files left by a crashed run (never read by anyone)."""
        n = 0
        for table in TABLES:
            try:
                stale = self.fs.glob(
                    self._join(table, "exchange=*", "symbol=*", "date=*", "*.tmp-*")
                )
            except FileNotFoundError:
                continue
            for path in stale:
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm(path)
                    n += 1
        return n


def open_archive(location: str | os.PathLike[str] | None, db: str | os.PathLike[str]) -> Archive:
    """The archive at ``location`` ("" or None: ``<db>.archive``)."""
    return Archive(location or default_location(db))


# -- reading rows -------------------------------------------------------------------------
def _columns(conn: sqlite3.Connection, table: str) -> list[tuple[str, str]]:
    return [(r[1], r[2].upper()) for r in conn.execute(f"PRAGMA table_info({table})")]


def _schema(cols: Sequence[tuple[str, str]]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([(name, _ARROW_TYPES.get(t, "string")) for name, t in cols])


def _rows_table(rows: list[tuple[Any, ...]], cols: Sequence[tuple[str, str]]) -> pa.Table:
    import pyarrow as pa

    schema = _schema(cols)
    arrays = [pa.array([r[i] for r in rows], type=schema.field(i).type) for i in range(len(cols))]
    return pa.Table.from_arrays(arrays, schema=schema)


def content_checksum(table: pa.Table) -> str:
    """sha256 over the schema and the rows' values, in order. From the values only, never
    from raw buffers (bits past an array's end and slots under nulls are not defined)."""
    import numpy as np
    import pyarrow as pa

    h = hashlib.sha256(f"{table.schema}|{table.num_rows}".encode())
    for col in table.columns:
        t = col.type
        h.update(np.packbits(col.is_null().to_numpy(zero_copy_only=False)).tobytes())
        if pa.types.is_boolean(t):
            vals = col.fill_null(False).to_numpy(zero_copy_only=False)
            h.update(np.ascontiguousarray(vals, dtype=np.uint8).tobytes())
        elif pa.types.is_integer(t) or pa.types.is_floating(t):
            vals = col.fill_null(0).to_numpy(zero_copy_only=False)
            h.update(np.ascontiguousarray(vals).tobytes())
        else:  # strings and blobs: length-prefixed values
            for v in col.to_pylist():
                b = v.encode() if isinstance(v, str) else (v or b"")
                h.update(len(b).to_bytes(8, "little"))
                h.update(b)
    return h.hexdigest()


def _merge(old: pa.Table | None, new: pa.Table, spec: TableSpec) -> pa.Table:
    """``old`` and ``new`` as one table, one row per key (``new`` wins), sorted."""
    import pyarrow as pa

    if old is not None and old.num_rows:
        old = old.select(new.schema.names).cast(new.schema)
        both = pa.concat_tables([old, new])
        src = pa.array([0] * old.num_rows + [1] * new.num_rows, type=pa.int8())
        both = both.append_column("__src", src)
        both = both.sort_by([(k, "ascending") for k in spec.key] + [("__src", "descending")])
        keys = [both.column(k).to_pylist() for k in spec.key]
        keep = [i == 0 or any(col[i] != col[i - 1] for col in keys) for i in range(both.num_rows)]
        new = both.filter(pa.array(keep)).drop_columns(["__src"])
    return new.sort_by([(c, "ascending") for c in spec.order])


# -- compaction ---------------------------------------------------------------------------
@dataclass
class ArchiveResult:
    """What one run did: rows archived and deleted per table, files and bytes written."""

    location: str
    rows: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)  # archived but left in SQLite
    files_written: int = 0
    bytes_written: int = 0
    partitions: int = 0
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def summary(self) -> str:
        if not self.total_rows:
            return f"archive {self.location}: nothing to archive (no closed interval with rows)"
        per = ", ".join(f"{k}: {v:,}" for k, v in self.rows.items() if v)
        msg = (
            f"archived {self.total_rows:,} rows ({per}) of {self.partitions} partition(s) to"
            f" {self.location}: {self.files_written} file(s), {self.bytes_written:,} bytes,"
            f" {sum(self.deleted.values()):,} rows deleted from SQLite in {self.seconds:.2f} s"
        )
        if self.kept:
            msg += (
                f"; {sum(self.kept.values()):,} archived rows stay in SQLite (copied only, or"
                " changed meanwhile: the next run moves them)"
            )
        return msg


def _interval_rows(
    conn: sqlite3.Connection,
    table: str,
    spec: TableSpec,
    exchange: str,
    symbol: str,
    lo: int,
    hi: int,
) -> list[tuple[Any, ...]]:
    cols = ", ".join(c for c, _t in _columns(conn, table))
    where = f"symbol = ? AND exchange = ? AND {spec.time} >= ? AND {spec.time} < ?"
    params: list[Any] = [symbol, exchange, lo, hi]
    if spec.where:
        where += f" AND {spec.where}"
    if table == "ticks":  # through the 1 s bars' id range: the primary key, not a scan
        lo_id, hi_id = conn.execute(
            "SELECT min(first_id), max(last_id) FROM bars_1s"
            " WHERE symbol = ? AND exchange = ? AND ts >= ? AND ts < ?",
            [symbol, exchange, lo // 1_000_000 * 1_000_000, hi],
        ).fetchone()
        if lo_id is None:
            return []
        where += " AND trade_id BETWEEN ? AND ?"
        params += [lo_id, hi_id]
    order = ", ".join(spec.order)
    return conn.execute(
        f"SELECT {cols} FROM {table} WHERE {where} ORDER BY {order}", params
    ).fetchall()


def _partitions(conn: sqlite3.Connection, cutoff: int, unit: int) -> list[tuple[str, str, int]]:
    """``(exchange, symbol, interval start)`` with rows before ``cutoff`` in any table."""
    out: set[tuple[str, str, int]] = set()
    for table, spec in TABLES.items():
        if table == "ticks":
            continue  # a tick's second has a 1 s bar
        where = f"{spec.time} < ?" + (f" AND {spec.where}" if spec.where else "")
        try:
            rows = conn.execute(
                f"SELECT DISTINCT exchange, symbol, {spec.time} / {unit} FROM {table} WHERE {where}",
                [cutoff],
            ).fetchall()
        except sqlite3.OperationalError:  # a file older than that table
            continue
        out.update((e, s, int(b) * unit) for e, s, b in rows)
    return sorted(out)


def _delete_exact(
    conn: sqlite3.Connection, table: str, cols: Sequence[str], rows: list[tuple[Any, ...]]
) -> int:
    """Delete the rows equal to ``rows`` in every column (a row changed meanwhile stays)."""
    cond = " AND ".join(f"{c} IS ?" for c in cols)
    return int(conn.executemany(f"DELETE FROM {table} WHERE {cond}", rows).rowcount)


@contextlib.contextmanager
def archive_lock(db: str | os.PathLike[str]) -> Iterator[None]:
    """One compaction of ``db`` at a time (``<db>.archive.lock`` beside its real path, held
    with flock; the kernel drops it when the process dies). Two overlapping runs could
    otherwise rename an older merge of a file over a newer one."""
    import fcntl

    path = os.path.realpath(db) + ".archive.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with open(path) as f:
                pid = f.read().strip() or "?"
            raise StoreError(
                f"{db}: another `lq archive` (pid {pid}) is archiving this database; wait for"
                " it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


def archive_db(
    db: str | os.PathLike[str],
    location: str | os.PathLike[str] | None = None,
    *,
    granularity: Granularity = "day",
    now_us: int | None = None,
    delete: bool = True,
    writer_conn: sqlite3.Connection | None = None,
) -> ArchiveResult:
    """Compact every closed interval of ``db`` into the archive at ``location``.

    ``delete=False`` only copies (the SQLite rows stay; readers dedupe). The collector can
    call this on a timer with its own connection (``writer_conn``); otherwise the caller
    must hold the writer lock when ``delete`` is true (``lq archive`` does).
    """
    if granularity not in ("day", "hour"):
        raise ValidationError("granularity", granularity, "expected 'day' or 'hour'")
    t0 = time.perf_counter()
    p = Path(db).expanduser()
    if not p.exists():
        raise StoreError(f"{p}: no such database (choose one with --db PATH)")
    with archive_lock(p):
        return _archive_db(p, location, granularity, now_us, delete, writer_conn, t0)


def _archive_db(
    p: Path,
    location: str | os.PathLike[str] | None,
    granularity: Granularity,
    now_us: int | None,
    delete: bool,
    writer_conn: sqlite3.Connection | None,
    t0: float,
) -> ArchiveResult:
    arch = open_archive(location, p)
    meta = arch.check(create=True)
    if meta.get("granularity", granularity) != granularity:
        raise StoreError(
            f"{arch.url}: this archive holds {meta['granularity']}s; run with"
            f" --granularity {meta['granularity']} (or archive to another location)"
        )
    if "granularity" not in meta:
        meta["granularity"] = granularity
        arch._put_bytes(arch._join("_lq_archive.json"), json.dumps(meta, indent=1).encode())
    arch.clean_temporaries()
    unit = DAY_US if granularity == "day" else HOUR_US
    now = time.time_ns() // 1000 if now_us is None else now_us
    cutoff = now // unit * unit  # the open interval and later are never touched
    conn = writer_conn
    own = conn is None
    if conn is None:
        conn = sqlite3.connect(p, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
    res = ArchiveResult(location=arch.url)
    tag = _db_tag(p)
    try:
        tables = [
            t
            for t in TABLES
            if conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (t,)
            ).fetchone()
        ]
        for exchange, symbol, lo in _partitions(conn, cutoff, unit):
            try:
                _archive_partition(conn, arch, tables, exchange, symbol, lo, unit, tag, delete, res)
            except (StoreError, sqlite3.Error):
                raise
            except Exception as exc:  # the archive's storage (OS, S3, a corrupt file)
                raise StoreError(
                    f"{arch.url}: archiving {exchange} {symbol} {_day(lo)} failed"
                    f" ({type(exc).__name__}: {_short(exc)}); nothing of it was deleted from"
                    " SQLite, rerun `lq archive` once the archive is reachable"
                ) from None
    finally:
        if own:
            conn.close()
    res.seconds = time.perf_counter() - t0
    return res


def _archive_partition(
    conn: sqlite3.Connection,
    arch: Archive,
    tables: Sequence[str],
    exchange: str,
    symbol: str,
    lo: int,
    unit: int,
    tag: str,
    delete: bool,
    res: ArchiveResult,
) -> None:
    import pyarrow.parquet as pq

    hi = lo + unit
    date = _day(lo)
    slot = "day" if unit == DAY_US else time.strftime("%H", time.gmtime(lo // 1_000_000))
    archived: list[tuple[str, list[str], list[tuple[Any, ...]]]] = []
    for table in tables:
        spec = TABLES[table]
        cols = _columns(conn, table)
        rows = _interval_rows(conn, table, spec, exchange, symbol, lo, hi)
        if not rows:
            continue
        names = [c for c, _t in cols]
        keep = [i for i, c in enumerate(names) if c not in ("exchange", "symbol")]
        data_cols = [cols[i] for i in keep]
        new = _rows_table([tuple(r[i] for i in keep) for r in rows], data_cols)
        d = arch.partition_dir(table, exchange, symbol, date)
        path = f"{d}/part-{slot}-{tag}.parquet"
        old = arch.read_table(path) if arch.exists(path) else None
        merged = _merge(old, new, TABLES[table])
        want = content_checksum(merged)
        if (
            old is None
            or content_checksum(old.select(merged.schema.names).cast(merged.schema)) != want
        ):
            _crash_point("before_write")
            arch.fs.makedirs(d, exist_ok=True)
            tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
            with arch.fs.open(tmp, "wb") as f:
                pq.write_table(merged, f, compression="zstd")
            if content_checksum(arch.read_table(tmp)) != want:
                raise StoreError(f"{arch.full(tmp)}: read back differs from what was written")
            _crash_point("before_rename")
            arch.fs.mv(tmp, path)
            res.files_written += 1
            res.bytes_written += int(arch.fs.size(path))
        # verified from the file itself before anything is deleted
        back = arch.read_table(path)
        if content_checksum(back) != want:
            raise StoreError(
                f"{arch.full(path)}: the archived file differs from its rows; nothing deleted"
            )
        _write_manifest(arch, path, table, exchange, symbol, date, back, want)
        res.rows[table] = res.rows.get(table, 0) + len(rows)
        archived.append((table, names, rows))
    if not archived:
        return
    res.partitions += 1
    if not delete:
        for table, _n, rows in archived:
            res.kept[table] = res.kept.get(table, 0) + len(rows)
        return
    _crash_point("before_delete")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, names, rows in archived:
            n = _delete_exact(conn, table, names, rows)
            res.deleted[table] = res.deleted.get(table, 0) + n
            if n < len(rows):
                res.kept[table] = res.kept.get(table, 0) + len(rows) - n
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _write_manifest(
    arch: Archive,
    path: str,
    table: str,
    exchange: str,
    symbol: str,
    date: str,
    data: pa.Table,
    checksum: str,
) -> None:
    spec = TABLES[table]
    idcol = spec.key[-1]
    with arch.fs.open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    import pyarrow.compute as pc

    tcol = pc.min_max(data.column(spec.time)).as_py()
    icol = pc.min_max(data.column(idcol)).as_py()
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "table": table,
        "exchange": exchange,
        "symbol": symbol,
        "date": date,
        "file": path.rsplit("/", 1)[-1],
        "rows": data.num_rows,
        "id_column": idcol,
        "first_id": icol["min"],
        "last_id": icol["max"],
        "first_ts": tcol["min"],
        "last_ts": tcol["max"],
        "sha256": digest,
        "rows_checksum": checksum,
        "columns": [f"{f.name}:{f.type}" for f in data.schema],
    }
    mpath = f"{path}.manifest.json"
    body = json.dumps(manifest, indent=1, sort_keys=True).encode()
    if arch.exists(mpath):
        with arch.fs.open(mpath, "rb") as f:
            if f.read() == body:
                return
    arch._put_bytes(mpath, body)


# -- reading the archive ------------------------------------------------------------------
def partition_files(
    arch: Archive, table: str, symbol: str, lo: int | None, hi: int | None
) -> list[str]:
    """Data files of ``table`` for ``symbol`` whose date can hold times in ``[lo, hi)``."""
    out = []
    for path in arch.files(table, symbol):
        date = path.rsplit("/date=", 1)[1].split("/", 1)[0]
        d0 = _day_us(date)
        if (lo is None or d0 + DAY_US > lo) and (hi is None or d0 < hi):
            out.append(path)
    return out


def read_rows(
    arch: Archive, table: str, paths: Sequence[str]
) -> Iterator[tuple[str, str, pa.Table]]:
    """``(exchange, symbol, rows)`` of each file (exchange and symbol from its path)."""
    for path in paths:
        parts = dict(
            seg.split("=", 1) for seg in path.split("/") if seg.startswith(("exchange=", "symbol="))
        )
        yield _dec(parts["exchange"]), _dec(parts["symbol"]), arch.read_table(path)


def archive_frame(
    arch: Archive, table: str, symbol: str, lo: int | None, hi: int | None
) -> pd.DataFrame:
    """All archived rows of ``table`` for ``symbol`` in the dates covering ``[lo, hi)``, with
    ``exchange`` and ``symbol`` columns (not filtered to the exact range)."""
    import pandas as pd

    frames = []
    for ex, sym, t in read_rows(arch, table, partition_files(arch, table, symbol, lo, hi)):
        df = t.to_pandas()
        df.insert(0, "symbol", sym)
        df.insert(0, "exchange", ex)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def archived_ticks(
    arch: Archive, symbol: str, lo: int | None, hi: int | None, exchange: str | None
) -> pd.DataFrame | None:
    """Archived trades of ``symbol`` with ``lo <= ts < hi`` (columns ``exchange``, ts,
    trade_id, price, qty, is_buyer_maker; unordered), or None when no file covers the range.
    Files are pruned by their partition (exchange, date), row groups by their statistics."""
    import pandas as pd

    paths = partition_files(arch, "ticks", symbol, lo, hi)
    if exchange is not None:
        paths = [p for p in paths if f"/exchange={_enc(exchange)}/" in p]
    if not paths:
        return None
    filters = [("ts", op, v) for op, v in ((">=", lo), ("<", hi)) if v is not None]
    frames = []
    for path in paths:
        ex = _dec(path.split("/exchange=", 1)[1].split("/", 1)[0])
        t = arch.read_table(
            path,
            columns=["ts", "trade_id", "price", "qty", "is_buyer_maker"],
            filters=filters or None,
        )
        df = t.to_pandas()
        df.insert(0, "exchange", ex)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def newest_archived(arch: Archive, symbol: str, exchange: str | None) -> list[int]:
    """Open time of the newest archived 1 s bar and kline of ``symbol`` (one per table that
    has any): read from the newest date's files only."""
    import pyarrow.compute as pc

    out = []
    for table, col in (("bars_1s", "ts"), ("klines", "open_time")):
        paths = arch.files(table, symbol)
        if exchange is not None:
            paths = [p for p in paths if f"/exchange={_enc(exchange)}/" in p]
        if not paths:
            continue
        newest = max(p.rsplit("/date=", 1)[1].split("/", 1)[0] for p in paths)
        for p in paths:
            if f"/date={newest}/" in p:
                v = pc.max(arch.read_table(p, columns=[col]).column(col)).as_py()
                if v is not None:
                    out.append(int(v))
    return out


def archived_symbols(arch: Archive, tables: Sequence[str]) -> set[str]:
    """Symbols with a partition in any of ``tables``."""
    out: set[str] = set()
    for table in tables:
        try:
            dirs = arch.fs.glob(arch._join(table, "exchange=*", "symbol=*"))
        except FileNotFoundError:
            continue
        out.update(_dec(d.rsplit("symbol=", 1)[1]) for d in dirs)
    return out


def register_views(con: Any, arch: Archive, *, catalog: str = "archive") -> list[str]:
    """Views ``<catalog>.<table>`` over the archive in DuckDB ``con`` (hive partitions
    ``exchange``, ``symbol``, ``date``: a filter on them prunes files before any is read).
    Returns the tables that have files."""
    if arch.protocol != "file":
        con.register_filesystem(arch.fs)
    con.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {catalog}")
    made = []
    for table in TABLES:
        if not arch.files(table):
            continue
        glob = arch.full(arch.glob(table)).replace("'", "''")
        con.execute(
            f"CREATE OR REPLACE VIEW {catalog}.main.{table} AS SELECT * FROM read_parquet('{glob}',"
            " hive_partitioning = true, union_by_name = true,"
            " hive_types = {'exchange': VARCHAR, 'symbol': VARCHAR, 'date': DATE})"
        )
        made.append(table)
    return made


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text[:200]
