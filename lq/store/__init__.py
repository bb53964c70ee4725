"""The store: one SQLite file (WAL) written by one process, read by many through SQLite and DuckDB.

The reader side (``Store``, pandas) is imported on first use, so that the collector, which
only writes, does not pay for pandas in its memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lq.store.lock import WriterLock, writer_pid
from lq.store.schema import LATEST_VERSION, migrate
from lq.store.writer import Batch, BatchResult, Writer, WriteResult

if TYPE_CHECKING:
    from lq.store.reader import Store, to_us

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


def __getattr__(name: str) -> Any:
    if name in ("Store", "to_us"):
        from lq.store import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'lq.store' has no attribute {name!r}")
