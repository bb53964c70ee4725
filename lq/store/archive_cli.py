"""``lq archive``: move closed days (or hours) of SQLite rows into the Parquet archive.

The archive is ``store.archive`` in the config (a folder, or an fsspec URL such as
``s3://bucket/prefix``; credentials from the environment, e.g. ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``), else the folder ``<db>.archive`` beside
the database. See docs/scale-out.md.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from lq.config import parse_duration

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "archive",
        help="move closed days of ticks, bars and books from SQLite into a Parquet archive",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument(
        "--db", metavar="PATH", help="the SQLite database (default: store.db from `lq config`)"
    )
    p.add_argument(
        "--to",
        metavar="LOCATION",
        help="archive folder or URL (default: store.archive, else <db>.archive)",
    )
    p.add_argument(
        "--granularity",
        choices=("day", "hour"),
        default="day",
        help="the closed interval moved at once: whole UTC days (default) or hours",
    )
    p.add_argument(
        "--every", metavar="DURATION", help="keep running, archiving every DURATION (e.g. 1h)"
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="copy only: leave the archived rows in SQLite (readers see each row once)",
    )
    return p


def run(args: argparse.Namespace, settings: Any) -> int:
    from lq.errors import StoreError, WriterLockedError
    from lq.store.archive import archive_db
    from lq.store.lock import WriterLock

    if getattr(args, "verbose", 0) < 2:  # botocore's "Found credentials in ..." chatter
        for name in ("botocore", "aiobotocore", "s3fs", "fsspec"):
            logging.getLogger(name).setLevel(logging.WARNING)
    every = parse_duration(args.every, field="--every") if args.every else None
    if every is not None and every <= 0:
        from lq.errors import ConfigError

        raise ConfigError(f"--every={args.every!r}: must be longer than 0 s")
    db = settings.db
    if not db.exists():
        raise StoreError(f"{db}: no such database (choose one with --db PATH)")
    location = args.to or settings.store.archive or None
    while True:
        lock: WriterLock | None = None
        delete = not args.keep
        if delete:
            try:
                lock = WriterLock(db, role="archive").acquire()
            except WriterLockedError as exc:
                delete = False  # the collector is the one writer: copy now, it deletes later
                print(
                    f"{exc}: archiving a copy; the rows stay in SQLite until `lq archive`"
                    " runs while no collector writes"
                )
        try:
            res = archive_db(db, location, granularity=args.granularity, delete=delete)
        finally:
            if lock is not None:
                lock.release()
        print(res.summary(), flush=True)
        if every is None:
            return 0
        time.sleep(every)
