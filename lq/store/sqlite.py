"""Opening the SQLite file: pragmas, creation and migration in one place."""

from __future__ import annotations

import functools
import itertools
import os
import sqlite3
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lq.store.schema import LATEST_VERSION, current_version, migrate

__all__ = ["BUSY_TIMEOUT_MS", "connect_reader", "connect_writer", "insert_many"]

BUSY_TIMEOUT_MS = 10_000


def connect_writer(
    path: str | os.PathLike[str], *, migrate_to: int = LATEST_VERSION
) -> sqlite3.Connection:
    """Open (creating if needed) the database for writing, in WAL mode, migrated.

    New files get ``auto_vacuum=INCREMENTAL`` so that purged pages can be returned to the
    file system without a full VACUUM (see :mod:`lq.store.retention`).
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(p, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    if current_version(conn) == 0 and not _has_tables(conn):
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-16384")  # 16 MiB: the writer mostly appends
    migrate(conn, migrate_to)
    return conn


def connect_reader(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A read-only connection (many may exist while the collector writes).

    A WAL database whose ``-shm`` file is absent in a folder nobody can write (a copy on
    read-only media, a read-only mount) cannot be opened ``mode=ro``: SQLite must create the
    ``-shm``. When its ``-wal`` is absent or empty, every row is in the main file and no
    writer can exist there (it could not create the ``-wal``), so it is opened
    ``immutable=1``; with a non-empty ``-wal`` it cannot be read faithfully, and a
    :class:`~lq.errors.StoreError` says why and what to do. Never "no rows".
    """
    from lq.errors import StoreError

    p = Path(path)
    if not p.exists():
        raise StoreError(f"{p}: no such database (start `lq collect` or `lq import` first)")
    try:
        return _open_ro(p, immutable=False)
    except sqlite3.OperationalError as exc:
        shm_missing = not Path(f"{p}-shm").exists()
        if "unable to open" not in str(exc) or not shm_missing or os.access(p.parent, os.W_OK):
            raise  # not the read-only-folder case: the caller names it (io_error_message)
        wal = Path(f"{p}-wal")
        wal_bytes = wal.stat().st_size if wal.exists() else 0
        if wal_bytes:
            raise StoreError(
                f"{p}: cannot be read here: its folder is read-only, SQLite cannot create "
                f"{p.name}-shm, and {p.name}-wal holds {wal_bytes:,} bytes of rows not yet in "
                "the main file: copy the database with its -wal to a writable folder (or "
                "checkpoint it where it was written) and pass that copy with --db"
            ) from None
        return _open_ro(p, immutable=True)  # all rows are in the main file


def _open_ro(p: Path, *, immutable: bool) -> sqlite3.Connection:
    flag = "immutable=1" if immutable else "mode=ro"
    uri = f"file:{urllib.parse.quote(str(p))}?{flag}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA cache_size=-65536")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the file now
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def _has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0


#: Rows per statement, largest first: a batch of n rows takes about n / 4000 + 20 statements.
_CHUNKS = (4000, 1000, 250, 64, 16, 4, 1)


@functools.lru_cache(maxsize=256)
def _values_sql(head: str, ncols: int, rows: int, tail: str = "") -> str:
    one = "(" + ",".join("?" * ncols) + ")"
    return f"{head} VALUES {','.join([one] * rows)}{tail}"


def insert_many(
    conn: sqlite3.Connection,
    head: str,
    rows: Sequence[Sequence[Any]],
    ncols: int,
    *,
    tail: str = "",
) -> None:
    """``conn.executemany(head + " VALUES (?, ...)", rows)`` in a few multi-row statements.

    Same rows, same order, same conflict handling (rows of one statement are inserted in
    order, so with ``OR REPLACE`` the last one still wins). Why: ``executemany`` steps once
    per row and the sqlite3 module releases and re-takes the GIL at every step; a thread
    that wants the GIL back while another Python thread computes waits up to the switch
    interval (5 ms) each time. A 4,000-row statement binds its parameters with the GIL held
    and then inserts all of them in one step without it: 1.7x faster alone
    (540k vs 310k rows/s for ``ticks``), and it no longer stalls behind the event loop.
    ``tail`` follows the values (an ``ON CONFLICT ... DO UPDATE`` clause).
    """
    n = len(rows)
    if not n:
        return
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // ncols
    chain = itertools.chain.from_iterable
    i = 0
    for k in _CHUNKS:
        if k > limit or n - i < k:
            continue
        sql = _values_sql(head, ncols, k, tail)
        while n - i >= k:
            conn.execute(sql, list(chain(rows[i : i + k])))
            i += k
