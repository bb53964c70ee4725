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
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Literal

import numpy as np
import pandas as pd

from lq.analytics.reliability import sample_caveat
from lq.backtest.costs import Costs
from lq.backtest.data import Bars, data_fingerprint
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
from lq.backtest.stops import Stops
from lq.backtest.strategies import (
    STRATEGIES,
    StrategyFn,
    indicator_cache,
    resolve_strategy,
)
from lq.errors import ValidationError

__all__ = ["Progress", "grid", "sweep", "sweep_heatmap"]

logger = logging.getLogger(__name__)

#: ``"bar"`` shows a tqdm progress bar (notebook-aware); ``"off"`` shows nothing.
Progress = Literal["bar", "off"]


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
    prep: Prepared = _STATE["prep"]
    sim = run_prepared(
        prep,
        _STATE["fn"],
        _STATE["name"],
        params,
        costs=_STATE["costs"],
        sizing=_STATE["sizing"],
        stops=_STATE["stops"],
        capital=_STATE["capital"],
        trade_from=_STATE["trade_from"],
        at_end=_STATE["at_end"],
    )
    m, equity, _ = metrics_of(
        sim,
        index=prep.index,
        symbols=prep.symbols,
        close=prep.close,
        capital=_STATE["capital"],
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
    return i, row


def sweep(
    data: Bars,
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
) -> pd.DataFrame:
    """Backtest every parameter set; one row per set, best ``dsr`` first.

    Parameters
    ----------
    data, strategy, costs, sizing, stops, capital, trade_from, at_end
        As for :func:`~lq.backtest.run_backtest`.
    params
        A list of parameter dicts, or ``{name: [values]}`` expanded with :func:`grid`.
    base_params
        Parameters shared by every set (a set's own values win).
    workers
        Processes (1 runs in this process). A user strategy must be importable by the
        workers (module level; with the default fork start a notebook function works too).
    progress
        ``"bar"`` or ``"off"``.

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
    base = dict(base_params or {})
    full: list[dict[str, Any]] = []
    fn: StrategyFn | None = None
    name = ""
    for p in sets:  # validate every set before starting any work
        fn, name, fp = resolve_strategy(strategy, {**base, **p})
        full.append(fp)
    assert fn is not None
    prep = prepare(data, costs)
    fingerprint = data_fingerprint(prep.frames)
    state = {
        "prep": prep,
        "fn": fn,
        "name": name,
        "costs": costs,
        "sizing": sizing,
        "stops": stops,
        "capital": float(capital),
        "trade_from": trade_from,
        "at_end": at_end,
    }
    tasks = list(enumerate(full))
    spec = STRATEGIES.get(strategy) if isinstance(strategy, str) else None
    if spec is not None and spec.indicator_params:
        # neighbouring tasks share indicators: each worker computes each one about once
        keys = spec.indicator_params
        tasks.sort(key=lambda t: tuple(repr(t[1].get(k)) for k in keys))
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
    table = pd.DataFrame([{**s, **r} for s, r in zip(sets, rows, strict=True) if r is not None])
    table.insert(
        len(sets[0]),
        "id",
        [
            make_config(
                prep,
                name,
                fp,
                costs=costs,
                sizing=sizing,
                stops=stops,
                capital=capital,
                trade_from=trade_from,
                at_end=at_end,
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


def _progress(total: int, progress: Progress, name: str) -> Any:
    if progress == "off":
        return _NoBar()
    if progress != "bar":
        raise ValidationError("progress", progress, 'must be "bar" or "off"')
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
