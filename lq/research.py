"""Opening data for a research notebook: a given database read-only, or the demo recordings.

Every notebook in ``notebooks/`` opens its data with one call here, so that none of them can
write, migrate, replace or delete the database it is given (a notebook that built its demo
store at the ``db`` path it was handed once wiped a user's ticks and alert rules)::

    from lq.research import open_store

    store = open_store(db)          # db given: that file, read-only
    store = open_store()            # no db: the real recordings, in a new temporary file

A given database is opened through :class:`lq.store.Store`, whose SQLite connection uses
``mode=ro`` and whose DuckDB attaches the file ``READ_ONLY``: a write raises
``attempt to write a readonly database``. SQLite never writes the database file or its
``-wal`` from such a connection; on a WAL database that has no ``-wal``/``-shm`` yet it
creates both empty (the shared-memory index every WAL reader needs), which holds no data.

Demo data (the real Binance recordings in ``shared/data/binance/`` beside the repository)
is parsed with the feed's parser and written by the single writer into a file under a new
temporary directory, removed when the process exits. Nothing is written beside the notebook.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path

from lq.errors import StoreError
from lq.store.reader import Store

__all__ = [
    "HOW_TO_GET_DATA",
    "NoDataError",
    "default_data_dir",
    "demo_store",
    "open_store",
    "require_data",
]

log = logging.getLogger(__name__)

#: What a user can do when there is no data (one line, printed by notebooks and errors).
HOW_TO_GET_DATA = (
    "record some with `make demo` or `lq collect --source local` (offline, the local "
    "exchange), `lq collect` (live Binance) or `lq import FILE`, then pass the file with "
    "`-p db PATH` (papermill) or `--db PATH`"
)


class NoDataError(StoreError):
    """There is no database, or no recordings, to open (the message says how to get some).

    In a notebook it shows as its one-line message, not as a traceback (IPython's
    ``_render_traceback_`` hook).
    """

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


def default_data_dir() -> Path:
    """``shared/data/binance`` beside the repository (where the real recordings live)."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "binance"


def open_store(db: str | os.PathLike[str] = "", *, data_dir: str | os.PathLike[str] = "") -> Store:
    """The store a notebook reads: ``db`` read-only, or (``db`` empty) the demo recordings.

    Parameters
    ----------
    db
        A database written by ``lq collect``/``lq import``. Opened read-only; it must exist.
    data_dir
        Where the recordings are when ``db`` is empty (default: :func:`default_data_dir`).

    Raises
    ------
    NoDataError
        ``db`` does not exist, or (``db`` empty) no recordings are in ``data_dir``.
    """
    if str(db):
        path = Path(db).expanduser()
        if not path.is_file():
            raise NoDataError(f"{path}: no such database; {HOW_TO_GET_DATA}")
        log.info("opening %s read-only", path)
        return Store(path)
    return demo_store(data_dir)


def demo_store(data_dir: str | os.PathLike[str] = "") -> Store:
    """Every trade of the recordings in ``data_dir`` in a new temporary database.

    The file lives in its own temporary directory, removed when the process exits; the
    recordings are only read.
    """
    from lq.feeds import Parser
    from lq.feeds.events import Trade
    from lq.feeds.recording import read_frames
    from lq.store import Writer

    src = Path(data_dir).expanduser() if str(data_dir) else default_data_dir()
    files = sorted(src.glob("spot_*.gz")) if src.is_dir() else []
    if not files:
        raise NoDataError(f"no recordings (spot_*.gz) in {src}; {HOW_TO_GET_DATA}")
    tmp = Path(tempfile.mkdtemp(prefix="lq-research-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    path = tmp / "demo.sqlite"
    parser = Parser()
    with Writer(path) as w:
        for f in files:
            w.write_trades(
                [
                    e
                    for ns, raw in read_frames(f)
                    for e in parser.parse(raw, recv_ts=ns // 1000)
                    if isinstance(e, Trade)
                ]
            )
    log.info("demo data from %d recordings in %s (temporary)", len(files), path)
    return Store(path)


def require_data(db: str | os.PathLike[str] = "") -> str:
    """The database a notebook reads: ``db``, or (``db`` empty) ``store.db`` from the settings.

    Run on its own (``db`` empty) where that database does not exist or holds no bars, the
    notebook has nothing to work on: this prints what to do and ends the run with
    ``SystemExit()``, which papermill and Jupyter treat as a clean stop (no traceback,
    papermill exits 0). A ``db`` that is given but missing raises :class:`NoDataError`
    (``lq backtest`` reports it as the run's error). Nothing is created or written.
    """
    if str(db):
        path = Path(db).expanduser()
        if not path.is_file():
            raise NoDataError(f"{path}: no such database; {HOW_TO_GET_DATA}")
        return str(path)
    from lq.config import load_settings

    path = load_settings().db
    reason = None
    if not path.is_file():
        reason = f"there is no database at {path} (store.db from `lq config`)"
    else:
        with Store(path) as store:
            if not store.symbols():
                reason = f"{path} (store.db from `lq config`) holds no bars yet"
    if reason is not None:
        print(f"No data to work on: {reason}.\nTo get some, {HOW_TO_GET_DATA}.")
        raise SystemExit()
    return str(path)
