"""The backtest lab's I/O: bars from the store in, run records to the store out.

The engine (:func:`lq.backtest.run_backtest`, :func:`lq.backtest.sweep`) is pure; this module
is the thin layer the notebook (``notebooks/backtest.ipynb``), ``lq backtest`` and the
dashboard's Backtest tab share:

* :func:`load_bars` reads bars for a backtest from :class:`lq.store.Store` (optionally with
  the closing bid/ask of each bar, for half-spread slippage) and fails with a clear message
  when the database has no data for a symbol.
* :func:`record_backtest` / :func:`record_sweep` / :func:`store_run` write one row of
  ``backtest_runs``; :func:`list_runs` and :func:`get_run` read them back.

Writes are small control-plane writes: one short ``BEGIN IMMEDIATE`` transaction on a plain
sqlite3 connection with a busy timeout (:func:`lq.store.sqlite.connect_writer`), **not**
:class:`lq.store.Writer`, whose lock the collector holds while it runs. SQLite in WAL mode
serialises the two writers. A row is keyed by ``run_id``: storing the same ``run_id`` again
replaces the row (re-running a notebook with the same parameters is idempotent).

Row layout: ``params`` is the JSON of the strategy parameters (for a sweep, the best set);
``metrics`` is a JSON object ``{"kind": "backtest" | "sweep", "result_id", "metrics",
"benchmark_metrics", "config", ...}`` (see :func:`record_backtest` and :func:`record_sweep`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from lq.backtest._config import canonical_json
from lq.backtest.engine import BacktestResult
from lq.errors import BacktestError, StoreError, ValidationError
from lq.store.reader import Store, to_us_range
from lq.store.sqlite import connect_reader, connect_writer

__all__ = [
    "BAR_INTERVALS",
    "DEFAULT_INTERVAL",
    "MIN_BARS",
    "RUN_COLUMNS",
    "Quotes",
    "Run",
    "RunKind",
    "get_run",
    "list_runs",
    "load_bars",
    "new_run_id",
    "record_backtest",
    "record_sweep",
    "store_run",
    "stored_caveat",
]

logger = logging.getLogger(__name__)

#: What a stored run is: one backtest, or one parameter sweep (its best set and DSR).
RunKind = Literal["backtest", "sweep"]
#: ``"none"``: bars only. ``"last"``: add ``bid``/``ask`` columns, the book ticker standing at
#: each bar's close (needed by ``Costs(slippage="half_spread")``).
Quotes = Literal["none", "last"]

#: Bar intervals offered by the dashboard and suggested by errors, finest first.
BAR_INTERVALS = ("1s", "5s", "15s", "1m", "5m", "15m", "1h")
#: The bar interval of a backtest when none is chosen: the notebook's ``interval`` parameter
#: (so ``lq backtest`` and papermill) and the dashboard's Backtest tab start from it. 1 s: a
#: collector makes 1 s bars from the first trade, so a young database can be backtested.
DEFAULT_INTERVAL = "1s"
#: Fewest bars a backtest runs on (the look-ahead check needs 10; fewer mean nothing).
MIN_BARS = 10

#: Columns of :func:`list_runs`, in order.
RUN_COLUMNS = [
    "run_id",
    "time",
    "kind",
    "strategy",
    "symbols",
    "interval",
    "scheduled",
    "total_return",
    "sharpe",
    "max_drawdown",
    "number_of_trades",
    "fees_paid",
    "dsr",
    "n_trials",
    "params",
    "notebook_path",
    "result_id",
    "created_ts",
    "ruined",
    "caveat",
    "dsr_caveat",
]


# ------------------------------------------------------------------------------- bars in
def _newest_bar_us(store: Store, symbol: str) -> int | None:
    row = store.conn.execute("SELECT max(ts) FROM bars_1s WHERE symbol = ?", (symbol,)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def _attach_quotes(store: Store, bars: pd.DataFrame, symbol: str, step_us: int) -> pd.DataFrame:
    """``bid``/``ask`` columns: the last book ticker before each bar's end (NaN if none yet)."""
    if bars.empty:
        return bars
    ts = bars["ts"].to_numpy(dtype=np.int64)
    book = store.book_tickers(symbol, start=None, end=int(ts[-1] + step_us))
    out = bars.copy()
    if book.empty:
        logger.warning("no book tickers stored for %s: bid/ask columns are NaN", symbol)
        out["bid"] = np.nan
        out["ask"] = np.nan
        return out
    bts = book["ts"].to_numpy(dtype=np.int64)
    # the quote standing at a bar's close: the last update with ts < bar open + step
    pos = np.searchsorted(bts, ts + step_us, side="left") - 1
    ok = pos >= 0
    bid = np.full(len(ts), np.nan)
    ask = np.full(len(ts), np.nan)
    bid[ok] = book["bid"].to_numpy(dtype=float)[pos[ok]]
    ask[ok] = book["ask"].to_numpy(dtype=float)[pos[ok]]
    out["bid"] = bid
    out["ask"] = ask
    return out


def load_bars(
    db: str | os.PathLike[str] | Store,
    symbols: str | Sequence[str],
    *,
    interval: str = DEFAULT_INTERVAL,
    start: Any = None,
    end: Any = None,
    last: str | float | None = None,
    quotes: Quotes = "none",
    min_bars: int = MIN_BARS,
) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Bars for a backtest from the store: one DataFrame per symbol, ready for the engine.

    Parameters
    ----------
    db
        The SQLite database (or an open :class:`~lq.store.Store`).
    symbols
        One symbol (returns a DataFrame with ``attrs["symbol"]`` set) or several, e.g.
        ``["BTCUSDT", "ETHUSDT"]`` (returns ``{symbol: bars}`` in that order); a string with
        commas is split.
    interval
        Bar interval, whole seconds (``"1s"``, ``"15s"``, ``"1m"``, ``"1h"``...).
    start, end
        Inclusive start and exclusive end (UTC; ISO text, µs or Timestamps); ``None`` or
        ``""``: unbounded.
    last
        A duration (``"6h"``, ``"7d"`` or seconds): only the bars within that span before
        the newest stored 1 s bar of the first symbol (combined with ``end`` if given: the
        span before ``end``). Meant for scheduled runs on a rolling window.
    quotes
        ``"last"`` adds ``bid``/``ask``: the book ticker standing at each bar's close.
    min_bars
        Fewest bars per symbol (default :data:`MIN_BARS`).

    Raises
    ------
    BacktestError
        When a symbol has no bars in the range (the message names the symbol, the range and
        what the database holds), or fewer than ``min_bars``: then the message names the
        interval used and how many bars the finer intervals have in the same range.
    """
    from lq.config import parse_duration

    syms = _symbols(symbols)
    if quotes not in ("none", "last"):
        raise ValidationError("quotes", quotes, 'must be "none" or "last"')
    own = not isinstance(db, Store)
    store = Store(db) if not isinstance(db, Store) else db
    try:
        from lq.analytics.bars import interval_us

        step = interval_us(interval)
        lo, hi = to_us_range(start or None, end or None)
        if last not in (None, ""):
            span = int(parse_duration(last, field="last") * 1e6)  # type: ignore[arg-type]
            anchor = hi
            if anchor is None:
                newest = _newest_bar_us(store, syms[0])
                anchor = None if newest is None else newest + 1_000_000
            if anchor is not None:
                lo = max(lo, anchor - span) if lo is not None else anchor - span
        frames: dict[str, pd.DataFrame] = {}
        for s in syms:
            bars = store.bars(s, interval, lo, hi)
            if bars.empty:
                stored = store.symbols()
                rng = (
                    f"between {_label(lo, 'the first bar')} and {_label(hi, 'the last bar')}"
                    if lo is not None or hi is not None
                    else "at all"
                )
                raise BacktestError(
                    f"symbols: no {interval} bars of {s} {rng} in {store.path}; "
                    f"stored symbols: {stored or 'none'} (collect or import data first: "
                    "`lq collect`, `lq import`)"
                )
            if len(bars) < min_bars:
                raise BacktestError(_too_few(store, s, interval, lo, hi, last, len(bars), min_bars))
            if quotes == "last":
                bars = _attach_quotes(store, bars, s, step)
            bars.attrs["symbol"] = s
            frames[s] = bars
    finally:
        if own:
            store.close()
    logger.info(
        "loaded %s %s bars: %s",
        interval,
        syms,
        {s: len(f) for s, f in frames.items()},
    )
    return frames[syms[0]] if len(syms) == 1 else frames


def _too_few(
    store: Store,
    symbol: str,
    interval: str,
    lo: int | None,
    hi: int | None,
    last: Any,
    n: int,
    need: int,
) -> str:
    """The error for too few bars: the interval used, and what the finer ones hold."""
    from lq.analytics.bars import interval_us

    step = interval_us(interval)
    where = (
        f"in the last {last}"
        if last not in (None, "")
        else f"between {_label(lo, 'the first bar')} and {_label(hi, 'the last bar')}"
        if lo is not None or hi is not None
        else "in all the stored data"
    )
    msg = (
        f"only {n} bar{'s' if n != 1 else ''} of {interval} for {symbol} {where} in "
        f"{store.path}; a backtest needs at least {need}."
    )
    finer = []
    for iv in reversed(BAR_INTERVALS):  # coarsest first: the least noisy choice that works
        if interval_us(iv) < step:
            k = len(store.bars(symbol, iv, lo, hi))
            if k >= need:
                finer.append((iv, k))
    if finer:
        have = ", ".join(f"{k:,} bars of {iv}" for iv, k in finer)
        # the coarsest with room for a strategy's windows (100 bars), else the one with most
        best = next((iv for iv, k in finer if k >= 10 * need), finer[-1][0])
        msg += (
            f" The same range has {have}: use a finer interval (`-p interval {best}`, or "
            f"interval {best} in the dashboard), or collect longer."
        )
    else:
        msg += " No finer interval has enough either: collect longer (`lq collect`) or import data."
    return msg


def _symbols(symbols: str | Sequence[str]) -> list[str]:
    if isinstance(symbols, str):
        symbols = [p for p in symbols.split(",")]
    out = [str(s).strip().upper() for s in symbols if str(s).strip()]
    if not out:
        raise ValidationError("symbols", symbols, "at least one symbol is needed")
    if len(set(out)) != len(out):
        raise ValidationError("symbols", symbols, "duplicate symbols")
    return out


def _label(us: int | None, unbounded: str) -> str:
    return unbounded if us is None else pd.Timestamp(us, unit="us", tz="UTC").isoformat()


# ------------------------------------------------------------------------------ runs out
@dataclasses.dataclass(frozen=True, kw_only=True)
class Run:
    """One stored row of ``backtest_runs``.

    Attributes
    ----------
    run_id
        Unique name of the run (also the executed notebook's file name).
    created_ts
        When it was stored, µs since the epoch (UTC).
    strategy
        Strategy name (a user function: ``module.qualname``).
    params
        Strategy parameters (a sweep: the best set).
    metrics
        The stored JSON object (``kind``, ``result_id``, ``metrics``, ...).
    notebook_path
        The executed notebook, if the run was made by papermill.
    scheduled
        True for runs made by ``lq backtest --every``.
    """

    run_id: str
    created_ts: int
    strategy: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    notebook_path: str | None
    scheduled: bool

    @property
    def kind(self) -> str:
        return str(self.metrics.get("kind", "backtest"))

    @property
    def time(self) -> pd.Timestamp:
        return pd.Timestamp(self.created_ts, unit="us", tz="UTC")


def new_run_id(kind: RunKind = "backtest", *, now: float | None = None) -> str:
    """A fresh, sortable, unique run id: ``bt-20240809T000001Z-1a2b3c`` (``sw-`` for sweeps)."""
    if kind not in ("backtest", "sweep"):
        raise ValidationError("kind", kind, 'must be "backtest" or "sweep"')
    t = time.time() if now is None else now
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))
    return f"{'bt' if kind == 'backtest' else 'sw'}-{stamp}-{secrets.token_hex(3)}"


def _check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not run_id.strip():
        raise ValidationError("run_id", run_id, "must be a non-empty string")
    bad = set(run_id) & set('/\\:*?"<>| \t\n')
    if bad:
        raise ValidationError("run_id", run_id, f"must not contain {sorted(bad)} (a file name)")
    return run_id


def store_run(
    db: str | os.PathLike[str],
    *,
    strategy: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    run_id: str | None = None,
    notebook_path: str | os.PathLike[str] | None = None,
    scheduled: bool = False,
    created_ts: int | None = None,
) -> Run:
    """Insert (or replace, same ``run_id``) one row of ``backtest_runs``.

    One short ``BEGIN IMMEDIATE`` transaction on its own connection (busy timeout), so it
    works while a collector holds the market-data writer.
    """
    kind = str(metrics.get("kind", "backtest"))
    rid = _check_run_id(run_id or new_run_id("sweep" if kind == "sweep" else "backtest"))
    ts = time.time_ns() // 1000 if created_ts is None else int(created_ts)
    p_json = canonical_json(dict(params))
    m_json = canonical_json(dict(metrics))
    nb = None if notebook_path in (None, "") else str(notebook_path)
    try:
        conn = connect_writer(db)
    except sqlite3.Error as exc:
        raise StoreError(f"{db}: cannot open to store backtest run {rid}: {exc}") from exc
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT INTO backtest_runs"
                " (run_id, created_ts, strategy, params, metrics, notebook_path, scheduled)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(run_id) DO UPDATE SET created_ts = excluded.created_ts,"
                " strategy = excluded.strategy, params = excluded.params,"
                " metrics = excluded.metrics, notebook_path = excluded.notebook_path,"
                " scheduled = excluded.scheduled",
                (rid, ts, strategy, p_json, m_json, nb, int(bool(scheduled))),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise StoreError(f"{db}: storing backtest run {rid} failed: {exc}") from exc
    finally:
        conn.close()
    logger.info("stored %s run %s (%s)", kind, rid, strategy)
    return Run(
        run_id=rid,
        created_ts=ts,
        strategy=strategy,
        params=json.loads(p_json),
        metrics=json.loads(m_json),
        notebook_path=nb,
        scheduled=bool(scheduled),
    )


def record_backtest(
    db: str | os.PathLike[str],
    result: BacktestResult,
    *,
    run_id: str | None = None,
    notebook_path: str | os.PathLike[str] | None = None,
    scheduled: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> Run:
    """Store one backtest: its parameters, metrics, buy-and-hold metrics and settings.

    ``metrics`` JSON: ``{"kind": "backtest", "result_id": result.id, "metrics": {...},
    "benchmark_metrics": {...}, "config": {...}}`` plus ``extra`` (e.g. ``interval``,
    ``lookahead_passed``).
    """
    cfg = result.config.to_dict()
    payload: dict[str, Any] = {
        "kind": "backtest",
        "result_id": result.id,
        "metrics": result.metrics.to_dict(),
        "benchmark_metrics": result.benchmark_metrics.to_dict(),
        "config": {k: v for k, v in cfg.items() if k not in ("strategy", "params")},
    }
    payload.update(dict(extra or {}))
    return store_run(
        db,
        strategy=result.config.strategy,
        params=result.config.params,
        metrics=payload,
        run_id=run_id,
        notebook_path=notebook_path,
        scheduled=scheduled,
    )


def record_sweep(
    db: str | os.PathLike[str],
    table: pd.DataFrame,
    *,
    strategy: str,
    grid: Mapping[str, Sequence[Any]],
    base_params: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    notebook_path: str | os.PathLike[str] | None = None,
    scheduled: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> Run:
    """Store one sweep as a single row: the best parameter set (highest DSR) and its DSR.

    Parameters
    ----------
    table
        The DataFrame returned by :func:`lq.backtest.sweep` (sorted best ``dsr`` first).
    grid
        The axes swept, ``{name: [values]}``.
    base_params
        Parameters shared by every set; the stored ``params`` are ``base | best set``.

    ``metrics`` JSON: ``{"kind": "sweep", "result_id": <best set's id>, "dsr", "psr",
    "n_trials", "expected_max_sharpe", "grid", "best_trial", "ruined_trials", "metrics":
    {best row's metrics}}`` plus ``extra``. The best set is the highest ``dsr`` among the
    sets that were not ruined (if every set was ruined, the first row, marked ``ruined``).
    """
    if table.empty or "dsr" not in table.columns:
        raise ValidationError("table", list(table.columns), "expected a non-empty sweep table")
    axes = {str(k): list(v) for k, v in grid.items()}
    missing = [k for k in axes if k not in table.columns]
    if missing:
        raise ValidationError("grid", missing, "not columns of the sweep table")
    dsr = table["dsr"].to_numpy(dtype=float)
    ruined = (
        table["ruined"].to_numpy(dtype=bool)
        if "ruined" in table.columns
        else np.zeros(len(table), dtype=bool)
    )
    # the best set that survived (a ruined set is never "best"); all ruined: the first row
    alive = np.where(ruined, -np.inf, np.where(np.isfinite(dsr), dsr, -np.inf))
    best_i = int(np.argmax(alive)) if np.isfinite(alive).any() else int(np.argmin(ruined))
    best = table.iloc[best_i]
    best_set = {k: _plain(best[k]) for k in axes}
    skip = {"trial", "id", *axes}
    row_metrics = {str(k): _plain(v) for k, v in best.items() if k not in skip}
    payload: dict[str, Any] = {
        "kind": "sweep",
        "result_id": str(best["id"]),
        "dsr": _plain(best["dsr"]),
        "dsr_caveat": str(best.get("dsr_caveat", "") or ""),  # why the DSR means little
        "psr": _plain(best["psr"]),
        "n_trials": int(table.attrs.get("n_trials", len(table))),
        "expected_max_sharpe": _plain(table.attrs.get("expected_max_sharpe", float("nan"))),
        "grid": axes,
        "best_trial": int(best["trial"]),
        "ruined_trials": int(ruined.sum()),
        "metrics": row_metrics,
    }
    payload.update(dict(extra or {}))
    return store_run(
        db,
        strategy=strategy,
        params={**dict(base_params or {}), **best_set},
        metrics=payload,
        run_id=run_id or new_run_id("sweep"),
        notebook_path=notebook_path,
        scheduled=scheduled,
    )


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, pd.Timedelta):
        return v.total_seconds()
    return v


def _row_to_run(r: Sequence[Any]) -> Run:
    return Run(
        run_id=str(r[0]),
        created_ts=int(r[1]),
        strategy=str(r[2]),
        params=json.loads(r[3]),
        metrics=json.loads(r[4]),
        notebook_path=r[5],
        scheduled=bool(r[6]),
    )


_SELECT = (
    "SELECT run_id, created_ts, strategy, params, metrics, notebook_path, scheduled"
    " FROM backtest_runs"
)


def _reader(db: str | os.PathLike[str]) -> sqlite3.Connection:
    if not Path(db).exists():
        raise StoreError(f"{db}: no such database (no backtest runs stored yet)")
    return connect_reader(db)


def get_run(db: str | os.PathLike[str], run_id: str) -> Run:
    """The stored run ``run_id``; :class:`~lq.errors.ValidationError` if there is none."""
    conn = _reader(db)
    try:
        row = conn.execute(_SELECT + " WHERE run_id = ?", (run_id,)).fetchone()
    finally:
        conn.close()
    if row is None:
        raise ValidationError("run_id", run_id, f"no such backtest run in {db}")
    return _row_to_run(row)


def stored_caveat(metrics: Mapping[str, Any]) -> str:
    """The short-sample reason stored with a run's metrics (a backtest's ``caveats`` or a
    sweep row's ``caveat``), ``""`` if there is none."""
    cav = metrics.get("caveats")
    if isinstance(cav, Mapping) and cav:
        return str(cav.get("sharpe") or next(iter(cav.values())))
    text = metrics.get("caveat")
    return text if isinstance(text, str) else ""


def _number(d: Mapping[str, Any], key: str) -> float:
    v = d.get(key)
    if isinstance(v, bool) or v is None:
        return float("nan")
    if isinstance(v, str):  # "inf" / "-inf" as written by canonical_json
        try:
            return float(v)
        except ValueError:
            return float("nan")
    return float(v)


def list_runs(
    db: str | os.PathLike[str],
    *,
    scheduled: bool | None = None,
    kind: RunKind | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """Stored runs, newest first, one row each (columns :data:`RUN_COLUMNS`).

    Parameters
    ----------
    db
        The SQLite database.
    scheduled
        ``True``: only runs made by ``lq backtest --every``; ``False``: only the others;
        ``None``: all.
    kind
        ``"backtest"`` or ``"sweep"`` to keep one kind; ``None``: both.
    limit
        At most this many (the newest).

    Returns
    -------
    pandas.DataFrame
        ``time`` is tz-aware UTC; ``params`` holds dicts; the metric columns are the run's
        (a sweep's: its best set's), ``dsr``/``n_trials`` are NaN for single backtests.
        ``ruined``: equity reached zero; ``caveat``: why the annualised figures (Sharpe...)
        mean little (short sample), empty when they may be trusted; ``dsr_caveat``: the
        same for a sweep's DSR (the same rule, :mod:`lq.analytics.reliability`).
    """
    if kind not in (None, "backtest", "sweep"):
        raise ValidationError("kind", kind, 'must be "backtest", "sweep" or None')
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValidationError("limit", limit, "must be an int >= 1 or None")
    sql, args = _SELECT, list[Any]()
    if scheduled is not None:
        sql += " WHERE scheduled = ?"
        args.append(int(bool(scheduled)))
    sql += " ORDER BY created_ts DESC, id DESC"
    conn = _reader(db)
    try:
        try:
            rows = conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:  # a database without the table yet
            if "no such table" in str(exc):
                rows = []
            else:
                raise StoreError(f"{db}: reading backtest runs failed: {exc}") from exc
    finally:
        conn.close()
    out = []
    for r in rows:
        run = _row_to_run(r)
        if kind is not None and run.kind != kind:
            continue
        m = run.metrics.get("metrics", {})
        cfg = run.metrics.get("config", {})
        out.append(
            {
                "run_id": run.run_id,
                "time": run.time,
                "kind": run.kind,
                "strategy": run.strategy,
                "symbols": ",".join(cfg.get("symbols", run.metrics.get("symbols", []))),
                "interval": run.metrics.get("interval"),
                "scheduled": run.scheduled,
                "total_return": _number(m, "total_return"),
                "sharpe": _number(m, "sharpe"),
                "max_drawdown": _number(m, "max_drawdown"),
                "number_of_trades": _number(m, "number_of_trades"),
                "fees_paid": _number(m, "fees_paid"),
                "dsr": _number(run.metrics, "dsr"),
                "n_trials": _number(run.metrics, "n_trials"),
                "params": run.params,
                "notebook_path": run.notebook_path,
                "result_id": run.metrics.get("result_id"),
                "created_ts": run.created_ts,
                "ruined": bool(m.get("ruined", False)),
                "caveat": stored_caveat(m),
                "dsr_caveat": str(run.metrics.get("dsr_caveat") or m.get("dsr_caveat") or ""),
            }
        )
        if limit is not None and len(out) >= limit:
            break
    frame = pd.DataFrame(out, columns=RUN_COLUMNS)
    frame["time"] = pd.to_datetime(frame["created_ts"].astype("int64"), unit="us", utc=True)
    frame["scheduled"] = frame["scheduled"].astype(bool)
    frame["ruined"] = frame["ruined"].astype(bool)
    return frame
