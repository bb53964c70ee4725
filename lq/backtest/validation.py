"""Validation tools: the look-ahead check and walk-forward analysis.

Look-ahead check
    Run the strategy on the real bars and on copies whose *future* (every bar after a cut)
    has been replaced by a different random path. A strategy that only uses the past makes
    the same decisions, and the backtest has the same equity, up to the cut (to 1e-9
    relative: float round-off is not information). Any difference at or before the cut
    means the strategy read the future.

Walk-forward
    Slide a window over the bars: choose the parameters with the best in-sample objective on
    ``train_bars`` bars, trade them on the next ``test_bars`` bars (the training bars only
    warm up the indicators; positions are closed at the end of each test window), and chain
    the out-of-sample returns into one equity curve.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lq.backtest.costs import Costs
from lq.backtest.data import Bars, normalise_data
from lq.backtest.engine import run_backtest
from lq.backtest.metrics import Metrics, compute_metrics, returns_from_equity
from lq.backtest.sizing import Sizing
from lq.backtest.source import StoreSlice
from lq.backtest.stops import Stops
from lq.backtest.strategies import StrategyFn
from lq.backtest.sweep import Engine, Progress, grid, sweep, sweep_folds
from lq.errors import ValidationError

__all__ = ["LookaheadReport", "WalkForwardResult", "check_lookahead", "walk_forward"]

logger = logging.getLogger(__name__)

_PRICE_COLUMNS = ("open", "high", "low", "close", "bid", "ask", "spread", "vwap")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LookaheadReport:
    """Outcome of :func:`check_lookahead`.

    Attributes
    ----------
    passed
        True when no decision or equity value at or before any cut changed.
    cuts
        The cut times checked (the last bar that was *not* perturbed).
    first_difference
        Earliest bar (over all cuts) whose target or equity changed, or None.
    details
        One row per cut: ``cut``, ``targets_equal``, ``equity_equal``, ``first_difference``.
    """

    passed: bool
    cuts: tuple[pd.Timestamp, ...]
    first_difference: pd.Timestamp | None
    details: pd.DataFrame

    def __bool__(self) -> bool:
        return self.passed


def _perturb_after(
    frames: Mapping[str, pd.DataFrame], cut: int, rng: np.random.Generator
) -> dict[str, pd.DataFrame]:
    """Copies of ``frames`` whose bars after position ``cut`` follow a new random path."""
    out = {}
    for sym, f in frames.items():
        g = f.copy()
        n = len(g)
        if cut + 1 < n:
            close = f["close"].to_numpy(dtype=float)
            lr = np.diff(np.log(close))
            sd = float(np.std(lr)) if lr.size > 1 and np.std(lr) > 0 else 0.01
            shock = np.cumsum(rng.normal(0.0, 5.0 * sd, n - cut - 1))
            factor = np.exp(shock + rng.choice([-1.0, 1.0]) * 10.0 * sd)
            for col in _PRICE_COLUMNS:
                if col in g.columns:
                    v = g[col].to_numpy(dtype=float).copy()
                    v[cut + 1 :] = v[cut + 1 :] * factor
                    g[col] = v
            if "volume" in g.columns:
                vol = g["volume"].to_numpy(dtype=float).copy()
                vol[cut + 1 :] = rng.permutation(vol[cut + 1 :]) * rng.uniform(0.5, 2.0)
                g["volume"] = vol
        out[sym] = g
    return out


#: Relative tolerance of the comparison. Not zero: a numerical routine may legitimately
#: choose its method by input size (``lq.analytics`` rolling moments switch from exact
#: two-pass sums to O(n) block-anchored sums above ``n * window = 4e6``; each path is
#: causal, but a truncated input may take the other one), which moves values in their last
#: bits without using any future information. A decision that reads the future changes a
#: target by a whole weight, and equity by far more than this.
RTOL = 1e-9
ATOL = 1e-12


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise equality to :data:`RTOL`, NaN equal to NaN."""
    eq = np.isclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True)
    return eq.all(axis=1) if eq.ndim == 2 else eq


def check_lookahead(
    data: Bars,
    strategy: str | StrategyFn,
    params: Mapping[str, Any] | None = None,
    *,
    cuts: int = 5,
    seed: int = 0,
    costs: Costs | None = None,
    sizing: Sizing | None = None,
    stops: Stops | None = None,
) -> LookaheadReport:
    """Check that a strategy (and the engine) never uses bars after the one it decides on.

    Parameters
    ----------
    data, strategy, params, costs, sizing, stops
        As for :func:`~lq.backtest.run_backtest`.
    cuts
        Number of cut points, spread evenly between 20 % and 90 % of the bars.
    seed
        Seed of the random future paths.

    Returns
    -------
    LookaheadReport
        Truthy when the strategy passed.
    """
    if isinstance(cuts, bool) or not isinstance(cuts, int) or cuts < 1:
        raise ValidationError("cuts", cuts, "must be an int >= 1")
    frames, single = normalise_data(data)
    n = len(next(iter(frames.values())))
    if n < 10:
        raise ValidationError(
            "data",
            f"{n} bars",
            "need at least 10 bars to check for look-ahead: choose a finer bar interval or a "
            "longer range (or skip the check: lookahead_cuts 0)",
        )
    rng = np.random.default_rng(seed)
    kw: dict[str, Any] = {"costs": costs, "sizing": sizing, "stops": stops}

    def as_input(fr: Mapping[str, pd.DataFrame]) -> Bars:
        if single:
            only = next(iter(fr.values()))
            return only
        return dict(fr)

    base = run_backtest(as_input(frames), strategy, params, **kw)
    positions = sorted({int(p) for p in np.linspace(0.2 * n, 0.9 * n, cuts)})
    index = base.equity.index
    rows = []
    first: pd.Timestamp | None = None
    for c in positions:
        pert = run_backtest(as_input(_perturb_after(frames, c, rng)), strategy, params, **kw)
        t_same = _same(base.targets.to_numpy()[: c + 1], pert.targets.to_numpy()[: c + 1])
        e_same = _same(base.equity.to_numpy()[: c + 1], pert.equity.to_numpy()[: c + 1])
        bad = np.flatnonzero(~(t_same & e_same))
        diff = index[int(bad[0])] if bad.size else None
        if diff is not None and (first is None or diff < first):
            first = diff
        rows.append(
            {
                "cut": index[c],
                "targets_equal": bool(t_same.all()),
                "equity_equal": bool(e_same.all()),
                "first_difference": diff,
            }
        )
    details = pd.DataFrame(rows)
    passed = bool(details["targets_equal"].all() and details["equity_equal"].all())
    if not passed:
        logger.warning(
            "look-ahead detected in %s: first difference at %s", base.config.strategy, first
        )
    return LookaheadReport(
        passed=passed,
        cuts=tuple(index[c] for c in positions),
        first_difference=first,
        details=details,
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class WalkForwardResult:
    """Outcome of :func:`walk_forward`.

    Attributes
    ----------
    equity
        Stitched out-of-sample equity over all test windows (starts at ``capital``).
    returns
        Its bar returns (the first bar of each window relative to the previous window's end).
    windows
        One row per window: train/test start and end, the chosen ``params`` and their
        in-sample ``objective`` value, and the out-of-sample ``test_return``.
    trades
        Out-of-sample trades of all windows.
    metrics
        :class:`~lq.backtest.metrics.Metrics` of the stitched equity and trades.
    """

    equity: pd.Series
    returns: pd.Series
    windows: pd.DataFrame
    trades: pd.DataFrame
    metrics: Metrics


def walk_forward(
    data: Bars | StoreSlice,
    strategy: str | StrategyFn,
    params: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
    *,
    train_bars: int,
    test_bars: int,
    objective: str = "sharpe",
    base_params: Mapping[str, Any] | None = None,
    costs: Costs | None = None,
    sizing: Sizing | None = None,
    stops: Stops | None = None,
    capital: float = 10_000.0,
    workers: int = 1,
    progress: Progress = "off",
    engine: Engine = "local",
    address: str | None = None,
    max_retries: int = 2,
) -> WalkForwardResult:
    """Rolling walk-forward: choose in-sample, trade out-of-sample, stitch.

    Windows start at bar 0 and move by ``test_bars``: window ``i`` trains on bars
    ``[i*test, i*test + train)`` and tests on the following ``test_bars`` bars (the last
    window may be shorter). The parameter set with the highest ``objective`` (a column of
    :func:`~lq.backtest.sweep`, NaN counts as worst; ties go to the earlier set) is then run
    on train + test bars with trading allowed only from the first test bar
    (``trade_from``) and positions closed at the end (``at_end="close"``). A ruined set never
    wins a window unless every set was ruined (its Sharpe is ``-inf``); if the stitched
    equity reaches zero, the walk stops there (the account is liquidated) and its metrics are
    those of a ruined run.

    ``engine="ray"`` runs every (parameter set, training window) of the walk as one Ray task
    at once (:func:`~lq.backtest.sweep.sweep_folds`; ``data`` may be a
    :class:`~lq.backtest.source.StoreSlice` that the tasks read themselves), on the cluster
    at ``address``; the choice and the out-of-sample runs stay here. Same result, bit for bit.
    """
    for name, v, lo in (("train_bars", train_bars, 2), ("test_bars", test_bars, 2)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValidationError(name, v, f"must be an int >= {lo}")
    sets = grid(**params) if isinstance(params, Mapping) else [dict(p) for p in params]
    if engine not in ("local", "ray"):
        raise ValidationError("engine", engine, 'must be "local" or "ray"')
    source = data if isinstance(data, StoreSlice) else None
    bars = source.load() if source is not None else data
    assert not isinstance(bars, StoreSlice)
    frames, single = normalise_data(bars)
    index = next(iter(frames.values())).index
    n = len(index)
    if n < train_bars + 2:
        raise ValidationError("train_bars", train_bars, f"needs more bars than the data has ({n})")
    base = dict(base_params or {})
    kw: dict[str, Any] = {"costs": costs, "sizing": sizing, "stops": stops, "capital": capital}

    def cut(lo: int, hi: int) -> Bars:
        sub = {s: f.iloc[lo:hi] for s, f in frames.items()}
        return next(iter(sub.values())) if single else sub

    windows_at = []
    start = 0
    while start + train_bars < n:
        windows_at.append((start, start + train_bars))
        start += test_bars
    tables: list[pd.DataFrame] | None = None
    if engine == "ray":  # every (set, training window) at once; chosen and traded below
        tables = sweep_folds(
            data if source is not None else bars,
            windows_at,
            strategy,
            sets,
            base_params=base,
            progress=progress,
            address=address,
            max_retries=max_retries,
            loaded=bars,
            **kw,
        )

    rows = []
    pieces: list[pd.Series] = []
    trades: list[pd.DataFrame] = []
    positions: list[pd.DataFrame] = []
    fees: list[pd.Series] = []
    traded: list[pd.Series] = []
    level = float(capital)
    for w, (start, tr_end) in enumerate(windows_at):
        te_end = min(tr_end + test_bars, n)
        table = (
            tables[w]
            if tables is not None
            else sweep(
                cut(start, tr_end),
                strategy,
                sets,
                base_params=base,
                workers=workers,
                progress=progress,
                **kw,
            )
        )
        if objective not in table.columns:
            raise ValidationError(
                "objective", objective, f"not a sweep column: {list(table.columns)}"
            )
        score = table[objective].to_numpy(dtype=float)
        score = np.where(np.isfinite(score), score, -np.inf)
        # ties -> the earlier parameter set, independent of the sweep's row order
        order = np.lexsort((table["trial"].to_numpy(), -score))
        best_row = table.iloc[int(order[0])]
        chosen = {**base, **sets[int(best_row["trial"])]}
        res = run_backtest(
            cut(start, te_end), strategy, chosen, trade_from=index[tr_end], at_end="close", **kw
        )
        seg = res.equity.loc[index[tr_end] :]
        prev = res.equity.iloc[tr_end - start - 1]  # flat before trade_from: = capital
        pieces.append(seg * (level / prev))  # this window's path, from the stitched level
        trades.append(res.trades)
        positions.append(res.positions.loc[index[tr_end] :])
        fees.append(res.fees.loc[index[tr_end] :])
        traded.append(res.traded_notional.loc[index[tr_end] :])
        test_return = float(seg.iloc[-1] / prev - 1.0)
        level *= 1.0 + test_return
        rows.append(
            {
                "train_start": index[start],
                "train_end": index[tr_end - 1],
                "test_start": index[tr_end],
                "test_end": index[te_end - 1],
                "params": chosen,
                "objective": float(best_row[objective]),
                "test_return": test_return,
            }
        )
        if level <= 0:  # ruined out of sample: the account is liquidated and trades no more
            logger.warning(
                "walk-forward ruined in the window testing from %s: later windows not traded",
                index[tr_end],
            )
            break
    equity = pd.concat(pieces).rename("equity")
    # levels are stitched, then returns taken (a ruined window's path is negative: returns
    # compounded with cumprod would flip its sign)
    returns = returns_from_equity(pd.Series(np.r_[float(capital), equity.to_numpy()]))
    returns = pd.Series(returns.to_numpy(), index=equity.index, name="returns")
    windows = pd.DataFrame(rows)
    metrics = compute_metrics(
        equity=equity,
        trades=pd.concat(trades, ignore_index=True),
        positions=pd.concat(positions),
        traded_notional=pd.concat(traded),
        fees=pd.concat(fees),
        capital=float(capital),
    )
    if not math.isclose(level, float(equity.iloc[-1]), rel_tol=1e-9):
        logger.warning("walk-forward stitching drift: %s vs %s", level, equity.iloc[-1])
    return WalkForwardResult(
        equity=equity,
        returns=returns,
        windows=windows,
        trades=pd.concat(trades, ignore_index=True),
        metrics=metrics,
    )
