"""Opening the SQLite file: pragmas, creation and migration in one place."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from lq.store.schema import LATEST_VERSION, current_version, migrate

__all__ = ["BUSY_TIMEOUT_MS", "connect_reader", "connect_writer"]

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
    """A read-only connection (many may exist while the collector writes)."""
    p = Path(path)
    if not p.exists():
        from lq.errors import StoreError

        raise StoreError(f"{p}: no such database (start `lq collect` or `lq import` first)")
    conn = sqlite3.connect(
        f"file:{p}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA cache_size=-65536")
    return conn


def _has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
