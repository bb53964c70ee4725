"""The collector's health where readers find it, even when the database cannot be written.

The collector publishes its health every second in two places: the ``feed_status`` row of the
database (the normal way), and ``<db>.status``, a small file beside it that is allocated once
at start-up and then overwritten in place. Overwriting allocated bytes needs no free space, so
when the disk is full, the file read-only or the database locked, readers still learn *why*
nothing is being stored: "receiving but not storing: database or disk is full".

``<db>.status`` is ``lqstatus <length> <crc32>\\n`` followed by the JSON of the row and padding;
a reader that catches it mid-write sees a CRC mismatch and reads again.
:func:`feed_rows` merges the two sources, the newer report winning per exchange label.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import zlib
from pathlib import Path
from typing import Any

__all__ = ["STORING_FRESH_S", "StatusFile", "feed_rows", "read_status_file", "status_path"]

SIZE = 64 * 1024
STORING_FRESH_S = 10.0
"""A report older than this does not count as "storing" (``lq status``'s exit code)."""


def status_path(db: str | os.PathLike[str]) -> Path:
    return Path(str(db) + ".status")


class StatusFile:
    """``<db>.status``, allocated at construction and then overwritten in place."""

    def __init__(self, db: str | os.PathLike[str]) -> None:
        self.path = status_path(db)
        self._fd: int | None = None
        with contextlib.suppress(OSError):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if os.fstat(fd).st_size < SIZE:
                os.pwrite(fd, b" " * SIZE, 0)  # real bytes: later overwrites need no space
            self._fd = fd

    def write(self, row: dict[str, Any]) -> bool:
        """Overwrite the report with ``row`` (one feed's row, or ``{"rows": [row, ...]}``
        for a collector of several feeds); False if it could not be written."""
        if self._fd is None:
            return False
        body = json.dumps(row, default=str, separators=(",", ":")).encode()
        if len(body) > SIZE - 64:
            rows = row.get("rows", [row])
            slim = [
                {
                    **{k: v for k, v in r.items() if k != "detail"},
                    "detail": {
                        k: v
                        for k, v in r.get("detail", {}).items()
                        if k not in ("symbols", "channels")
                    },
                }
                for r in rows
            ]
            doc = {"rows": slim} if "rows" in row else slim[0]
            body = json.dumps(doc, default=str, separators=(",", ":")).encode()
            if len(body) > SIZE - 64:
                return False  # never a cut (unparseable) report: the database row still says it
        head = f"lqstatus {len(body)} {zlib.crc32(body)}\n".encode()
        data = head + body
        try:
            os.pwrite(self._fd, data + b" " * (SIZE - len(data)), 0)
        except OSError:
            return False
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_status_file(db: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The last report in ``<db>.status``, or None (no file, or unreadable twice)."""
    path = status_path(db)
    for _ in range(3):
        try:
            data = path.read_bytes()[:SIZE]
        except OSError:
            return None
        head, _, rest = data.partition(b"\n")
        parts = head.split()
        if len(parts) != 3 or parts[0] != b"lqstatus":
            return None
        try:
            n, crc = int(parts[1]), int(parts[2])
        except ValueError:
            return None
        body = rest[:n]
        if len(body) == n and zlib.crc32(body) == crc:
            try:
                row = json.loads(body)
            except ValueError:
                return None
            return row if isinstance(row, dict) else None
        time.sleep(0.01)  # caught mid-write: read again
    return None


def feed_rows(db: str | os.PathLike[str], store: Any = None) -> list[dict[str, Any]]:
    """Every collector's published health for ``db``, flattened like
    :meth:`lq.store.Store.feed_status` (row fields plus the detail's keys), newest report
    per exchange label: the database's ``feed_status`` rows merged with ``<db>.status``."""
    rows: dict[str, dict[str, Any]] = {}
    if store is not None:
        with contextlib.suppress(Exception):
            for r in store.feed_status():
                rows[str(r.get("exchange"))] = r
    else:
        with contextlib.suppress(Exception):
            from lq.store import Store

            with Store(db) as s:
                for r in s.feed_status():
                    rows[str(r.get("exchange"))] = r
    side_report = read_status_file(db)
    sides = side_report.get("rows", [side_report]) if side_report is not None else []
    for side in sides:  # one row per feed of the collector (``{"rows": [...]}`` for several)
        if not isinstance(side, dict):
            continue
        flat = {k: v for k, v in side.items() if k != "detail"}
        flat = {**side.get("detail", {}), **flat}
        key = str(flat.get("exchange"))
        have = rows.get(key)
        if have is None or int(flat.get("updated_ts") or 0) > int(have.get("updated_ts") or 0):
            rows[key] = flat
    return sorted(rows.values(), key=lambda r: str(r.get("exchange")))
