"""Parameter sweeps over a process pool, with Probabilistic and Deflated Sharpe columns.

``sweep`` runs one backtest per parameter set, on ``workers`` processes (default 2, the
size of a laptop run), with a tqdm progress bar. The bars are prepared once and handed to
each worker once (fork start: inherited, not pickled per task).

Each row gets ``psr`` (probability that the true Sharpe is above 0) and ``dsr``: the same
probability against the Sharpe the *best of all the trials* would reach by luck (Bailey &
López de Prado 2014), with ``n_trials`` = number of rows and the variance of the trials'
per-bar Sharpe ratios. Choose parameters by ``dsr``, not by ``sharpe``.

Ruined sets (equity reached zero; see :mod:`lq.backtest.engine`) still count as trials (the
search tried them), but their ``psr`` and ``dsr`` are 0 and they rank **last**, after every
set that survived, whatever their other columns say; the ``ruined`` column and
``table.attrs["ruined"]`` (how many) say so, and a warning is logged.
"""

from __future__ import annotations

import itertools
import logging
import math
import multiprocessing as mp
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Literal

import numpy as np
import pandas as pd

from lq.analytics.reliability import sample_caveat
from lq.backtest.costs import Costs
from lq.backtest.data import Bars, data_fingerprint, normalise_data
from lq.backtest.engine import (
    Prepared,
    _check_settings,
    make_config,
    metrics_of,
    prepare,
    run_prepared,
)
from lq.backtest.metrics import _psr, expected_max_sharpe, returns_from_equity, sharpe_moments
from lq.backtest.sizing import Sizing
from lq.backtest.source import StoreSlice
from lq.backtest.stops import Stops
from lq.backtest.strategies import (
    STRATEGIES,
    StrategyFn,
    indicator_cache,
    resolve_strategy,
)
from lq.errors import BacktestError, ValidationError

__all__ = ["Engine", "Progress", "StoreSlice", "grid", "sweep", "sweep_folds", "sweep_heatmap"]

logger = logging.getLogger(__name__)

#: ``"bar"`` shows a tqdm progress bar (notebook-aware); ``"lines"`` prints one
#: ``sweep NAME: done/total`` line to stderr as each run finishes; ``"off"`` shows nothing.
Progress = Literal["bar", "lines", "off"]


def grid(**axes: Sequence[Any]) -> list[dict[str, Any]]:
    """Cartesian product of parameter values: ``grid(entry=[1, 2], exit=[0, .5])`` -> 4 dicts."""
    for name, values in axes.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ValidationError(f"grid.{name}", values, "expected a non-empty list of values")
    names = list(axes)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes.values())]


# state of a worker process: set once by the initializer (or directly when workers == 1)
_STATE: dict[str, Any] = {}


def _init_worker(state: dict[str, Any]) -> None:
    _STATE.clear()
    _STATE.update(state)
    # the bars never change in a worker: indicators are shared between parameter sets
    cache = indicator_cache()
    cache.__enter__()
    _STATE["cache"] = cache


def _one(task: tuple[int, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    i, params = task
    return i, run_row(_STATE, params)


def run_row(state: Mapping[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """One sweep row (before ``id``, ``psr`` and ``dsr``) of ``params`` on ``state["prep"]``."""
    prep: Prepared = state["prep"]
    sim = run_prepared(
        prep,
        state["fn"],
        state["name"],
        params,
        costs=state["costs"],
        sizing=state["sizing"],
        stops=state["stops"],
        capital=state["capital"],
        trade_from=state["trade_from"],
        at_end=state["at_end"],
    )
    m, equity, _ = metrics_of(
        sim,
        index=prep.index,
        symbols=prep.symbols,
        close=prep.close,
        capital=state["capital"],
        bars_per_year=prep.periods_per_year,
    )
    r = returns_from_equity(equity).to_numpy()
    r = r[np.isfinite(r)]
    row = m.to_dict()
    caveats = row.pop("caveats")
    caveats.pop("psr", None)
    row["caveat"] = next(iter(caveats.values()), "")  # one reason for all annualised figures
    # the DSR is a PSR of the same returns: the same short-sample rule, in its own words
    row["dsr_caveat"] = (
        ""
        if m.ruined
        else sample_caveat("DSR", span_seconds=m.span_seconds, trades=m.number_of_trades) or ""
    )
    row["sharpe_bar"], row["skew"], row["kurtosis"] = sharpe_moments(r)
    row["n_returns"] = int(r.size)
    return row


Engine = Literal["local", "ray"]


def sweep(
    data: Bars | StoreSlice,
    strategy: str | StrategyFn,
    params: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
    *,
    base_params: Mapping[str, Any] | None = None,
    costs: Costs | None = None,
    sizing: Sizing | None = None,
    stops: Stops | None = None,
    capital: float = 10_000.0,
    trade_from: pd.Timestamp | str | None = None,
    at_end: Literal["mark", "close"] = "mark",
    workers: int = 2,
    progress: Progress = "bar",
    engine: Engine = "local",
    address: str | None = None,
    max_retries: int = 2,
) -> pd.DataFrame:
    """Backtest every parameter set; one row per set, best ``dsr`` first.

    Parameters
    ----------
    data, strategy, costs, sizing, stops, capital, trade_from, at_end
        As for :func:`~lq.backtest.run_backtest`; ``data`` may also be a
        :class:`~lq.backtest.source.StoreSlice` (bars read from the store, by every Ray task
        itself with ``engine="ray"``).
    params
        A list of parameter dicts, or ``{name: [values]}`` expanded with :func:`grid`.
    base_params
        Parameters shared by every set (a set's own values win).
    workers
        Processes (1 runs in this process). A user strategy must be importable by the
        workers (module level; with the default fork start a notebook function works too).
        Not used with ``engine="ray"``.
    progress
        ``"bar"`` or ``"off"``.
    engine
        ``"local"`` (this machine's process pool) or ``"ray"``: each parameter set is a Ray
        task (:mod:`lq.backtest.ray_engine`), on the cluster at ``address`` (None: the one
        this process already joined, else a local one). Same rows, bit for bit.
    max_retries
        With ``engine="ray"``: how often a failed task (an exception, or a dead worker) is
        retried before the sweep fails with a :class:`~lq.errors.BacktestError` naming the
        parameter set (no partial table is returned).

    Returns
    -------
    pandas.DataFrame
        ``trial`` (position of the set in ``params``), parameter columns, then ``id`` (the
        run's content hash), every metric of
        :class:`~lq.backtest.metrics.Metrics` (``ruined``, ``ruined_at`` included; its
        ``caveats`` become one ``caveat`` text, empty when the annualised figures may be
        trusted), ``sharpe_bar`` (per-bar Sharpe), ``skew``, ``kurtosis``, ``psr`` and
        ``dsr``. Sets that survived first, by ``dsr`` descending; ruined sets last.
    """
    costs, sizing, stops = _check_settings(costs, sizing, stops, capital, at_end)
    sets = grid(**params) if isinstance(params, Mapping) else [dict(p) for p in params]
    if not sets:
        raise ValidationError("params", params, "no parameter sets to run")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValidationError("workers", workers, "must be an int >= 1")
    _check_engine(engine, max_retries)
    base = dict(base_params or {})
    full, fn, name = _resolve_sets(strategy, sets, base)
    source = data if isinstance(data, StoreSlice) else None
    bars = source.load() if source is not None else data
    assert not isinstance(bars, StoreSlice)
    prep = prepare(bars, costs)
    fingerprint = data_fingerprint(prep.frames)
    ctx = _context(fn, name, costs, sizing, stops, capital, trade_from, at_end)
    tasks = _ordered(list(enumerate(full)), strategy)
    if engine == "ray":
        from lq.backtest.ray_engine import Fold, run_folds

        fold = Fold(
            source=None if source is None else source.pinned(prep.frames),
            bars=bars if source is None else None,
            fingerprint=fingerprint,
        )
        rows = run_folds(
            [fold],
            [(0, i, p) for i, p in tasks],
            ctx,
            address=address,
            max_retries=max_retries,
            bar=_progress(len(tasks), progress, name),
        )[0]
    else:
        rows = _local_rows(tasks, {**ctx, "prep": prep}, workers, progress, name)
    return _table(sets, rows, full, prep, fingerprint, ctx)


def _check_engine(engine: Any, max_retries: Any) -> None:
    if engine not in ("local", "ray"):
        raise ValidationError("engine", engine, 'must be "local" or "ray"')
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValidationError("max_retries", max_retries, "must be an int >= 0")
    if engine == "ray":
        require_ray()


def require_ray() -> None:
    """Fail in one line, naming the extra to install, when Ray is not importable."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise BacktestError(
            "the ray engine needs Ray, which is not installed: pip install 'lq[ray]'"
        ) from None


def _resolve_sets(
    strategy: str | StrategyFn, sets: Sequence[Mapping[str, Any]], base: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], StrategyFn, str]:
    full: list[dict[str, Any]] = []
    fn: StrategyFn | None = None
    name = ""
    for p in sets:  # validate every set before starting any work
        fn, name, fp = resolve_strategy(strategy, {**base, **p})
        full.append(fp)
    assert fn is not None
    return full, fn, name


def _ordered(
    tasks: list[tuple[int, dict[str, Any]]], strategy: str | StrategyFn
) -> list[tuple[int, dict[str, Any]]]:
    spec = STRATEGIES.get(strategy) if isinstance(strategy, str) else None
    if spec is not None and spec.indicator_params:
        # neighbouring tasks share indicators: each worker computes each one about once
        keys = spec.indicator_params
        tasks.sort(key=lambda t: tuple(repr(t[1].get(k)) for k in keys))
    return tasks


def _local_rows(
    tasks: list[tuple[int, dict[str, Any]]],
    state: dict[str, Any],
    workers: int,
    progress: Progress,
    name: str,
) -> list[dict[str, Any] | None]:
    rows: list[dict[str, Any] | None] = [None] * len(tasks)
    bar = _progress(len(tasks), progress, name)
    try:
        if workers == 1 or len(tasks) == 1:
            _init_worker(state)
            for task in tasks:
                i, row = _one(task)
                rows[i] = row
                bar.update(1)
        else:
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
            with ProcessPoolExecutor(
                max_workers=min(workers, len(tasks)),
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(state,),
            ) as pool:
                chunk = max(1, len(tasks) // (4 * workers))
                for i, row in pool.map(_one, tasks, chunksize=chunk):
                    rows[i] = row
                    bar.update(1)
    finally:
        bar.close()
        if "cache" in _STATE:
            _STATE["cache"].__exit__(None, None, None)
        _STATE.clear()
    return rows


def _table(
    sets: Sequence[Mapping[str, Any]],
    rows: Sequence[dict[str, Any] | None],
    full: Sequence[dict[str, Any]],
    prep: Prepared,
    fingerprint: str,
    ctx: Mapping[str, Any],
) -> pd.DataFrame:
    name = ctx["name"]
    missing = [sets[i] for i, r in enumerate(rows) if r is None]
    if missing:  # never a silently shorter table
        raise BacktestError(f"sweep of {name}: no result for parameter set {missing[0]}")
    table = pd.DataFrame([{**s, **r} for s, r in zip(sets, rows, strict=True) if r is not None])
    table.insert(
        len(sets[0]),
        "id",
        [
            make_config(
                prep,
                name,
                fp,
                costs=ctx["costs"],
                sizing=ctx["sizing"],
                stops=ctx["stops"],
                capital=ctx["capital"],
                trade_from=ctx["trade_from"],
                at_end=ctx["at_end"],
                fingerprint=fingerprint,
            ).id
            for fp in full
        ],
    )
    table.insert(0, "trial", np.arange(len(table)))
    _add_psr_dsr(table)
    logger.info("sweep of %s: %d parameter sets on %d bars", name, len(table), len(prep.index))
    ruined = int(table["ruined"].sum())
    if ruined:
        logger.warning(
            "sweep of %s: %d of %d parameter sets were ruined (equity reached zero); "
            "they rank last",
            name,
            ruined,
            len(table),
        )
    # stable sort by dsr, then stable sort by ruin: survivors first, each group best dsr first
    table = table.sort_values("dsr", ascending=False, na_position="last", kind="stable")
    return table.sort_values("ruined", kind="stable").reset_index(drop=True)


def sweep_folds(
    data: Bars | StoreSlice,
    folds: Sequence[tuple[int, int]],
    strategy: str | StrategyFn,
    sets: Sequence[Mapping[str, Any]],
    *,
    base_params: Mapping[str, Any] | None = None,
    costs: Costs | None = None,
    sizing: Sizing | None = None,
    stops: Stops | None = None,
    capital: float = 10_000.0,
    progress: Progress = "off",
    address: str | None = None,
    max_retries: int = 2,
    loaded: Bars | None = None,
) -> list[pd.DataFrame]:
    """One :func:`sweep` table per fold (bars ``lo:hi`` of ``data``), all (set, fold) pairs
    as Ray tasks at once; each table equals ``sweep(data[lo:hi], ..., workers=1)``.

    ``loaded``: the bars of a ``StoreSlice`` ``data`` when the caller has read them already.
    """
    costs, sizing, stops = _check_settings(costs, sizing, stops, capital, "mark")
    _check_engine("ray", max_retries)
    base = dict(base_params or {})
    full, fn, name = _resolve_sets(strategy, sets, base)
    source = data if isinstance(data, StoreSlice) else None
    if loaded is None:
        loaded = source.load() if source is not None else data  # type: ignore[assignment]
    assert loaded is not None and not isinstance(loaded, StoreSlice)
    frames, single = normalise_data(loaded)
    ctx = _context(fn, name, costs, sizing, stops, capital, None, "mark")
    from lq.backtest.ray_engine import Fold, run_folds

    preps, prints, fold_specs = [], [], []
    for lo, hi in folds:
        sub = {s: f.iloc[lo:hi] for s, f in frames.items()}
        cut: Bars = next(iter(sub.values())) if single else sub
        prep = prepare(cut, costs)
        fingerprint = data_fingerprint(prep.frames)
        preps.append(prep)
        prints.append(fingerprint)
        fold_specs.append(
            Fold(
                source=None if source is None else source.pinned(frames, lo, hi),
                bars=cut if source is None else None,
                fingerprint=fingerprint,
            )
        )
    tasks = _ordered(list(enumerate(full)), strategy)
    jobs = [(k, i, p) for k in range(len(folds)) for i, p in tasks]
    rows = run_folds(
        fold_specs,
        jobs,
        ctx,
        address=address,
        max_retries=max_retries,
        bar=_progress(len(jobs), progress, name),
    )
    return [
        _table(sets, r, full, prep, fp, ctx)
        for r, prep, fp in zip(rows, preps, prints, strict=True)
    ]


def _context(
    fn: Any,
    name: str,
    costs: Any,
    sizing: Any,
    stops: Any,
    capital: float,
    trade_from: Any,
    at_end: Any,
) -> dict[str, Any]:
    """What every run of a sweep shares (shipped once to each worker or Ray task)."""
    return {
        "fn": fn,
        "name": name,
        "costs": costs,
        "sizing": sizing,
        "stops": stops,
        "capital": float(capital),
        "trade_from": trade_from,
        "at_end": at_end,
    }


def _add_psr_dsr(table: pd.DataFrame) -> None:
    sr = table["sharpe_bar"].to_numpy(dtype=float)
    finite = np.isfinite(sr)
    n_trials = len(table)
    var = float(np.var(sr[finite], ddof=1)) if finite.sum() >= 2 else 0.0
    sr0 = expected_max_sharpe(n_trials=n_trials, sharpe_variance=var)
    psr, dsr = [], []
    rows = zip(
        sr, table["skew"], table["kurtosis"], table["n_returns"], table["ruined"], strict=True
    )
    for s, g3, g4, n, ruined in rows:
        if ruined:  # the worst: no probability of skill for an account that went bust
            psr.append(0.0)
            dsr.append(0.0)
            continue
        if not math.isfinite(s):
            psr.append(math.nan)
            dsr.append(math.nan)
            continue
        psr.append(_psr(s, 0.0, int(n), float(g3), float(g4)))
        dsr.append(_psr(s, sr0, int(n), float(g3), float(g4)))
    table["psr"] = psr
    table["dsr"] = dsr
    table.attrs["n_trials"] = n_trials
    table.attrs["sharpe_variance"] = var
    table.attrs["expected_max_sharpe"] = sr0
    table.attrs["ruined"] = int(np.asarray(table["ruined"], dtype=bool).sum())


class _NoBar:
    def update(self, n: int) -> None:
        return None

    def close(self) -> None:
        return None


class _Lines:
    def __init__(self, total: int, name: str) -> None:
        self.total, self.name, self.done = total, name, 0

    def update(self, n: int) -> None:
        self.done += n
        print(f"sweep {self.name}: {self.done}/{self.total} done", file=sys.stderr, flush=True)

    def close(self) -> None:
        return None


def _progress(total: int, progress: Progress, name: str) -> Any:
    if progress == "off":
        return _NoBar()
    if progress == "lines":
        return _Lines(total, name)
    if progress != "bar":
        raise ValidationError("progress", progress, 'must be "bar", "lines" or "off"')
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"sweep {name}", unit="run")


def sweep_heatmap(
    table: pd.DataFrame,
    *,
    x: str,
    y: str,
    metric: str = "sharpe",
    agg: Literal["max", "mean", "min"] = "max",
) -> pd.DataFrame:
    """Pivot a sweep into a ``y`` by ``x`` grid of ``metric`` (for a heatmap).

    Other parameters are aggregated with ``agg``.
    """
    for field, col in (("x", x), ("y", y), ("metric", metric)):
        if col not in table.columns:
            raise ValidationError(field, col, f"not a column of the sweep: {list(table.columns)}")
    if agg not in ("max", "mean", "min"):
        raise ValidationError("agg", agg, 'must be "max", "mean" or "min"')
    return table.pivot_table(index=y, columns=x, values=metric, aggfunc=agg)
