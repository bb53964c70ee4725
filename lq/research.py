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

The research notebooks share their loading here too: :func:`closes` (aligned close prices
of a store) and :func:`simulated_store` (the local exchange's simulator, whose true
parameters are known, written to a temporary file), and word their conclusions with
:func:`pair_verdict` from the numbers they computed.

Demo data (the real Binance recordings in ``shared/data/binance/`` beside the repository)
is parsed with the feed's parser and written by the single writer into a file under a new
temporary directory, removed when the process exits. Nothing is written beside the notebook.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from lq.errors import StoreError
from lq.store.reader import Store

__all__ = [
    "HOW_TO_GET_DATA",
    "SIM_SYMBOLS",
    "NoDataError",
    "closes",
    "default_data_dir",
    "demo_store",
    "open_store",
    "pair_verdict",
    "require_data",
    "simulated_store",
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
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "binance"


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


#: The simulator's default symbols in the notebooks (ETHUSDT cointegrated with BTCUSDT).
SIM_SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT")


def _temp_db(prefix: str) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    return tmp / "data.sqlite"


def simulated_store(
    symbols: tuple[str, ...] | list[str] = SIM_SYMBOLS,
    *,
    seconds: float = 3600.0,
    seed: int = 7,
    step: float = 0.05,
    rate: float = 2.0,
) -> Store:
    """``seconds`` of the local exchange's simulated market in a new temporary database.

    The model (:mod:`lq.exchange.simulator`) is known: every symbol moves with one market
    factor (loading drawn in U(0.5, 1.5), the first symbol's is 1) plus its own noise, and
    ETHUSDT is cointegrated with BTCUSDT on log prices with hedge ratio 0.8 and a spread
    half-life of 30 s. A research result on it can be checked against that truth. The trades
    are stored with ``exchange = "local"``; the same seed gives the same trades.
    """
    from lq.exchange import SimulatorParams, SimulatorSource
    from lq.exchange.market import TradeIn
    from lq.feeds.events import Trade
    from lq.store import Writer

    start = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC: a fixed, reproducible start
    src = SimulatorSource(
        symbols=list(symbols),
        seed=seed,
        speed=None,
        start_time_us=start,
        params=SimulatorParams(step=step, rate=rate),
        duration=seconds,
    )
    trades = [
        Trade(
            symbol=it.symbol,
            trade_id=it.trade_id,
            price=float(it.price),
            qty=float(it.qty),
            ts=it.ts,
            event_ts=it.event_ts,
            is_buyer_maker=it.is_buyer_maker,
            exchange="local",
        )
        for _at, it in src.items()
        if isinstance(it, TradeIn)
    ]
    path = _temp_db("lq-sim-")
    with Writer(path) as w:
        w.write_trades(trades)
    log.info("%d simulated trades of %s in %s (temporary)", len(trades), symbols, path)
    return Store(path)


def closes(store: Store, symbols: list[str] | None = None, interval: str = "5s") -> pd.DataFrame:
    """Close prices of ``symbols`` (default: all stored) on one bar grid, side by side.

    Bars from :meth:`lq.store.Store.bars`, aligned by :func:`lq.analytics.align_prices`
    (a symbol without a trade in a bar keeps its last price; rows before every symbol
    traded are dropped).
    """
    from lq.analytics import align_prices

    syms = list(symbols) if symbols is not None else store.symbols()
    if not syms:
        raise NoDataError(f"no symbols stored; {HOW_TO_GET_DATA}")
    return align_prices({s: store.bars(s, interval) for s in syms}).dropna()


def pair_verdict(pvalue: float, *, level: float = 0.05, what: str = "the spread") -> str:
    """The conclusion a unit-root test allows, worded from its p-value (never fixed text)."""
    if not math.isfinite(pvalue):
        return f"the test could not be computed for {what}"
    p = "p < 0.001" if pvalue < 0.001 else f"p = {pvalue:.3f}"
    if pvalue < level:
        return f"{p} < {level}: reject a unit root, {what} looks mean-reverting over this sample"
    return (
        f"{p} >= {level}: no evidence that {what} mean-reverts over this sample "
        "(a unit root cannot be rejected)"
    )
