"""The store: one SQLite file (WAL) written by one process, read by many through SQLite and DuckDB."""

from __future__ import annotations

from lq.store.lock import WriterLock, writer_pid
from lq.store.reader import Store, to_us
from lq.store.schema import LATEST_VERSION, migrate
from lq.store.writer import Batch, BatchResult, Writer, WriteResult

__all__ = [
    "LATEST_VERSION",
    "Batch",
    "BatchResult",
    "Store",
    "WriteResult",
    "Writer",
    "WriterLock",
    "migrate",
    "to_us",
    "writer_pid",
]
