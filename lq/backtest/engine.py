"""The vectorised backtest engine.

Fill convention (the only one; there is no switch to turn it off)
-----------------------------------------------------------------
A strategy's target at bar ``t`` is decided with data up to bar ``t``'s **close** and is filled
at bar ``t + 1``'s **open**, moved against the trader by the slippage. A target on the last
bar is never filled. Quantities are fixed when a position is opened (see
:mod:`lq.backtest.sizing`) and held until the target weights change or a stop fires
(:mod:`lq.backtest.stops`). Fees are ``fee_bps`` of each fill's notional
(``|quantity| * fill price``). Equity is cash plus positions marked at each bar's close.

Ruin (also without a switch)
----------------------------
When equity at a bar's close is zero or less, the account is ruined: every position is closed
at the next bar's open (the liquidation fill, with fees and slippage like any other, exit reason
``"liquidation"``) and the account never trades again, whatever the strategy asks. Equity after
the liquidation is the cash left (zero or a debt). ``Simulation.ruin_bar`` and
``BacktestResult.ruined_at`` say when; the metrics of a ruined run are the worst possible
(see :func:`lq.backtest.metrics.compute_metrics`).

Everything here is pure: arrays in, arrays and frozen objects out.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd

from lq.backtest._config import Config, canonical_json, check_choice, check_number
from lq.backtest.costs import Costs, slippage_fraction
from lq.backtest.data import Bars, data_fingerprint, normalise_data
from lq.backtest.metrics import (
    Metrics,
    compute_metrics,
    drawdown_series,
    periods_per_year,
    returns_from_equity,
)
from lq.backtest.sizing import Sizing, position_notional
from lq.backtest.stops import Stops
from lq.backtest.strategies import StrategyFn, resolve_strategy
from lq.errors import BacktestError, ValidationError

__all__ = [
    "AtEnd",
    "BacktestConfig",
    "BacktestResult",
    "Prepared",
    "Simulation",
    "make_config",
    "metrics_of",
    "prepare",
    "run_backtest",
    "run_prepared",
    "simulate",
    "targets_to_array",
    "trade_list",
]

logger = logging.getLogger(__name__)

#: What happens to a position still open on the last bar: ``"mark"`` keeps it, marked to the
#: last close (no exit fee); ``"close"`` makes the target flat on the second-to-last bar so the
#: position is sold at the last bar's open, paying fees and slippage.
AtEnd = Literal["mark", "close"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class BacktestConfig(Config):
    """Everything that determines a run; ``id`` is its content hash (data fingerprint included)."""

    strategy: str
    params: dict[str, Any]
    costs: Costs
    sizing: Sizing
    stops: Stops
    capital: float
    symbols: tuple[str, ...]
    start: str
    end: str
    bars: int
    data_fingerprint: str
    trade_from: str | None = None
    at_end: AtEnd = "mark"

    def _validate(self) -> None:
        check_number("BacktestConfig", "capital", self.capital, minimum=0.0, exclusive=True)
        check_choice("BacktestConfig", "at_end", self.at_end, ("mark", "close"))

    @classmethod
    def _coerce(cls, data: dict[str, Any]) -> dict[str, Any]:
        d = dict(data)
        if isinstance(d.get("costs"), Mapping):
            d["costs"] = Costs.from_dict(d["costs"])
        if isinstance(d.get("sizing"), Mapping):
            d["sizing"] = Sizing.from_dict(d["sizing"])
        if isinstance(d.get("stops"), Mapping):
            d["stops"] = Stops.from_dict(d["stops"])
        if "symbols" in d:
            d["symbols"] = tuple(d["symbols"])
        return d


@dataclasses.dataclass(frozen=True)
class Simulation:
    """Result arrays of one simulation.

    Dense, one row per bar: ``targets`` (weights decided at each close), ``positions``
    (quantities held during each bar, filled at its open), ``cash`` and ``equity`` (at each
    close). Sparse, one row per fill: ``fill_bars`` (bar positions), ``fill_qty`` (signed
    quantity traded per symbol), ``fill_prices`` (open moved by slippage; the plain open for
    a symbol not traded in that fill), ``fill_fees`` and ``fill_reasons`` (why the position
    that this fill closes was closed: ``"signal"``, ``"stop_loss"``, ``"time_stop"``,
    ``"end"`` or ``"liquidation"``). ``ruin_bar``: the bar whose close found equity at or below
    zero (-1: never ruined).
    """

    targets: np.ndarray
    positions: np.ndarray
    cash: np.ndarray
    equity: np.ndarray
    fill_bars: np.ndarray
    fill_qty: np.ndarray
    fill_prices: np.ndarray
    fill_fees: np.ndarray
    fill_reasons: np.ndarray
    ruin_bar: int = -1

    @property
    def ruined(self) -> bool:
        """Whether equity reached zero at some close (see the module docstring)."""
        return self.ruin_bar >= 0

    def per_bar(self, values: np.ndarray) -> np.ndarray:
        """Scatter a per-fill quantity ``(p, k)`` to one value per bar (summed over symbols)."""
        out = np.zeros(self.equity.shape[0])
        out[self.fill_bars] = values.sum(axis=1) if values.ndim == 2 else values
        return out

    @property
    def fees_per_bar(self) -> np.ndarray:
        """Fees paid at each bar's open."""
        return self.per_bar(self.fill_fees)

    @property
    def traded_per_bar(self) -> np.ndarray:
        """Traded notional ``|quantity| * fill price`` at each bar's open."""
        return self.per_bar(np.abs(self.fill_qty) * self.fill_prices)


def _first_per_run(cond_idx: np.ndarray, run_of: np.ndarray, m: int) -> np.ndarray:
    """For each of ``m`` runs, the first index in ``cond_idx`` (sorted) in that run, else -1."""
    out = np.full(m, -1, dtype=np.int64)
    if cond_idx.size:
        runs = run_of[cond_idx]
        first = np.flatnonzero(np.r_[True, runs[1:] != runs[:-1]])
        out[runs[first]] = cond_idx[first]
    return out


def simulate(
    *,
    targets: np.ndarray,
    open_: np.ndarray,
    close: np.ndarray,
    slippage: np.ndarray,
    fee_rate: float,
    sizing: Sizing,
    stops: Stops,
    capital: float,
    periods_per_year: float,
    forced: np.ndarray | None = None,
) -> Simulation:
    """Simulate fills, fees, stops and equity for target weights (arrays ``(n, k)``).

    ``targets[t]`` is the weight vector decided at bar ``t``'s close (finite; 0 = flat).
    Work is proportional to the number of bars for the dense series and to the number of
    position changes for everything else.

    Ruin: if equity at some close ``t`` is ``<= 0``, the targets from ``t`` on are made flat
    (the book is liquidated at bar ``t + 1``'s open, reason ``"liquidation"``) and the run is
    simulated again; nothing up to bar ``t`` changes, so ``t`` stays the first ruined close.
    """
    kw: dict[str, Any] = {
        "open_": open_,
        "close": close,
        "slippage": slippage,
        "fee_rate": fee_rate,
        "sizing": sizing,
        "stops": stops,
        "capital": capital,
        "periods_per_year": periods_per_year,
        "forced": forced,
    }
    sim = _simulate_once(targets=targets, liquidate_from=None, **kw)
    ruined = np.flatnonzero(sim.equity <= 0.0)
    if ruined.size == 0:
        return sim
    t = int(ruined[0])
    w = np.array(sim.targets, dtype=float, copy=True)
    w[t:] = 0.0
    sim = _simulate_once(targets=w, liquidate_from=t, **kw)
    logger.debug("equity %.6g at bar %d: liquidated at the next open", sim.equity[t], t)
    return dataclasses.replace(sim, ruin_bar=t)


def _simulate_once(
    *,
    targets: np.ndarray,
    open_: np.ndarray,
    close: np.ndarray,
    slippage: np.ndarray,
    fee_rate: float,
    sizing: Sizing,
    stops: Stops,
    capital: float,
    periods_per_year: float,
    forced: np.ndarray | None,
    liquidate_from: int | None,
) -> Simulation:
    w = np.asarray(targets, dtype=float)
    n, k = w.shape
    forced = np.zeros(n, dtype=bool) if forced is None else np.asarray(forced, dtype=bool)
    cols_w = [np.ascontiguousarray(w[:, i]) for i in range(k)]
    # runs of constant target weights: a position is sized once per run
    change = np.zeros(n, dtype=bool)
    for col in cols_w:
        np.not_equal(col[1:], col[:-1], out=change[1:], where=~change[1:])
    if n:
        change[0] = True
    starts = np.flatnonzero(change)
    m = starts.size
    ends = np.r_[starts[1:], n]  # exclusive
    w_run = w[starts]
    active = (w_run != 0).any(axis=1)
    notional = np.zeros(m)
    if active.any():
        notional[active] = position_notional(
            sizing,
            close=close,
            weights=w,
            rows=starts[active],
            capital=capital,
            periods_per_year=periods_per_year,
        )
    units = w_run * notional[:, None] / close[starts]  # (m, k)
    units[~active] = 0.0
    active = (units != 0).any(axis=1)  # a run sized to 0 (no volatility estimate) holds nothing

    # stops: first decision of each run at which a stop condition holds
    stop_at = ends.copy()
    stop_kind = np.zeros(m, dtype=np.int8)  # 0 none, 1 stop-loss, 2 time stop
    big = np.iinfo(np.int64).max
    t_loss = np.full(m, big, dtype=np.int64)
    t_time = np.full(m, big, dtype=np.int64)
    if stops.time_stop_bars is not None:
        cand = starts + stops.time_stop_bars
        ok = active & (cand < ends)
        t_time[ok] = cand[ok]
    if stops.stop_loss is not None and active.any():
        run_of = np.cumsum(change) - 1
        nxt = np.minimum(starts + 1, n - 1)
        pnl = np.zeros(n)
        gross = np.zeros(n)
        for i in range(k):
            u = units[:, i][run_of]
            e = open_[nxt, i][run_of]
            pnl += u * (close[:, i] - e)
            gross += np.abs(u) * e
        after = np.arange(n) > starts[run_of]
        cond = after & active[run_of] & (pnl <= -stops.stop_loss * gross)
        first = _first_per_run(np.flatnonzero(cond), run_of, m)
        t_loss[first >= 0] = first[first >= 0]
    hit = np.minimum(t_loss, t_time) < ends
    stop_at[hit] = np.minimum(t_loss, t_time)[hit]
    stop_kind[hit & (t_loss <= t_time)] = 1
    stop_kind[hit & (t_loss > t_time)] = 2

    # breakpoints of the wanted quantities: each run start, and each stop
    s_rows = np.flatnonzero(hit)
    bp = np.r_[starts, stop_at[s_rows]]
    vals = np.vstack([units, np.zeros((s_rows.size, k))])
    start_why = np.where(forced[starts], 3, 0)
    if liquidate_from is not None:
        start_why[starts >= liquidate_from] = 4
    why = np.r_[start_why, stop_kind[s_rows]].astype(np.int8)
    order = np.argsort(bp, kind="stable")
    bp, vals, why = bp[order], vals[order], why[order]
    # a decision at bp fills at bp + 1; keep only breakpoints that change the position
    keep = bp + 1 < n
    bp, vals, why = bp[keep], vals[keep], why[keep]
    prev = np.vstack([np.zeros((1, k)), vals[:-1]])
    moved = (vals != prev).any(axis=1)
    # after dropping non-moves, "prev" must be the last kept value: recompute
    bp, vals, why = bp[moved], vals[moved], why[moved]
    prev = np.vstack([np.zeros((1, k)), vals[:-1]])
    fill_bars = bp + 1
    dq = vals - prev
    sgn = np.sign(dq)
    px = open_[fill_bars] * (1.0 + sgn * slippage[fill_bars])
    fee = np.abs(dq) * px * fee_rate
    flow = (dq * px).sum(axis=1) + fee.sum(axis=1)

    # dense series: piecewise constant between fills
    lengths = np.diff(np.r_[0, fill_bars, n])
    pos = np.empty((n, k))
    for i in range(k):
        pos[:, i] = np.repeat(np.r_[0.0, vals[:, i]], lengths)
    cash = np.repeat(np.r_[capital, capital - np.cumsum(flow)], lengths)
    equity = cash.copy()
    for i in range(k):
        equity += pos[:, i] * close[:, i]
    reasons = np.array(["signal", "stop_loss", "time_stop", "end", "liquidation"], dtype=object)[
        why
    ]
    return Simulation(
        targets=w,
        positions=pos,
        cash=cash,
        equity=equity,
        fill_bars=fill_bars,
        fill_qty=dq,
        fill_prices=px,
        fill_fees=fee,
        fill_reasons=reasons,
    )


def trade_list(
    sim: Simulation, *, index: pd.DatetimeIndex, symbols: tuple[str, ...], close: np.ndarray
) -> pd.DataFrame:
    """Round trips from a simulation.

    A trade is a stretch of bars holding the same non-zero quantities: it opens at a fill and
    closes at the next fill (which may open the next trade). The fee of a fill that both
    closes and opens is split in proportion to the notional closed and opened, so the trades'
    PnL add up to the equity change whenever the book ends flat. A trade still open on the
    last bar is marked at the last close (``open`` True, ``exit_reason`` ``"open"``).
    """
    n = sim.equity.shape[0]
    fb = sim.fill_bars
    p = sim.fill_qty.shape[0]
    new = sim.positions[fb]  # position after each fill (fills are never on bar 0)
    old = sim.positions[fb - 1]
    px = sim.fill_prices
    fee = sim.fill_fees.sum(axis=1)
    closing = (np.abs(old) * px).sum(axis=1)
    opening = (np.abs(new) * px).sum(axis=1)
    tot = closing + opening
    close_fee = np.divide(fee * closing, tot, out=np.zeros(p), where=tot > 0)
    open_fee = fee - close_fee
    j = np.flatnonzero((new != 0).any(axis=1))  # fills that open a trade
    is_open = j + 1 >= p
    nx = np.minimum(j + 1, max(p - 1, 0))
    entries = fb[j]
    exits = np.where(is_open, n - 1, fb[nx])
    qty = new[j]
    entry_px = px[j]
    exit_px = np.where(is_open[:, None], close[exits], px[nx])
    fees = open_fee[j] + np.where(is_open, 0.0, close_fee[nx])
    pnl = (qty * (exit_px - entry_px)).sum(axis=1) - fees
    entry_notional = (np.abs(qty) * entry_px).sum(axis=1)
    first_leg = np.argmax(qty != 0, axis=1)
    side = np.sign(qty[np.arange(qty.shape[0]), first_leg]).astype(np.int64)
    reason = np.where(is_open, "open", sim.fill_reasons[nx]).astype(object)
    tv = index.tz_convert(None).to_numpy()  # datetime64, UTC
    cols: dict[str, Any] = {
        "entry_time": index[entries],
        "exit_time": index[exits],
        "bars": (exits - entries).astype(np.int64),
        "holding_time": tv[exits] - tv[entries],
        "side": side,
        "entry_notional": entry_notional,
        "pnl": pnl,
        "return": np.divide(
            pnl, entry_notional, out=np.full(j.size, np.nan), where=entry_notional > 0
        ),
        "fees": fees,
        "exit_reason": reason,
        "open": is_open,
    }
    for i, s in enumerate(symbols):
        cols[f"qty_{s}"] = qty[:, i]
        cols[f"entry_price_{s}"] = entry_px[:, i]
        cols[f"exit_price_{s}"] = exit_px[:, i]
    return pd.DataFrame(cols)


def targets_to_array(
    targets: Any, *, index: pd.DatetimeIndex, symbols: tuple[str, ...], single: bool
) -> np.ndarray:
    """Turn a strategy's output into an ``(n, k)`` float array of weights (NaN -> 0).

    A single-symbol strategy may return a Series (or a one-column DataFrame); a
    multi-symbol one returns a DataFrame with one column per symbol (a missing column is
    an error). The index must equal the bars' index.
    """
    if isinstance(targets, pd.Series):
        if len(symbols) != 1:
            raise BacktestError(
                f"strategy returned a Series for {len(symbols)} symbols {list(symbols)}; "
                "return a DataFrame with one column per symbol"
            )
        frame = targets.to_frame(symbols[0])
    elif isinstance(targets, pd.DataFrame):
        frame = targets
        if len(symbols) == 1 and frame.shape[1] == 1:
            frame = frame.set_axis([symbols[0]], axis=1)
        missing = [s for s in symbols if s not in frame.columns]
        if missing:
            raise BacktestError(
                f"strategy targets miss columns {missing}; got {list(frame.columns)}"
            )
        frame = frame[list(symbols)]
    else:
        raise BacktestError(
            f"strategy must return a pandas Series or DataFrame of target weights, "
            f"got {type(targets).__name__}"
        )
    if len(frame.index) != len(index) or not frame.index.equals(index):
        raise BacktestError(
            f"strategy targets must be indexed like the bars ({len(index)} bars from "
            f"{index[0] if len(index) else None}); got {len(frame.index)} rows"
        )
    arr = frame.to_numpy(dtype=float, na_value=np.nan).copy()
    if np.isinf(arr).any():
        raise BacktestError("strategy targets contain inf")
    arr[np.isnan(arr)] = 0.0
    return arr


@dataclasses.dataclass(frozen=True, kw_only=True)
class BacktestResult:
    """The outcome of :func:`run_backtest` (frozen).

    Attributes
    ----------
    config
        The settings; ``config.id`` names the run.
    metrics
        :class:`~lq.backtest.metrics.Metrics` of the strategy.
    equity, drawdown, returns
        Account value at each close, ``equity / peak - 1``, and bar returns
        (:func:`~lq.backtest.metrics.returns_from_equity`; 0 on the first bar).
    positions
        Quantity held during each bar, one column per symbol.
    targets
        Target weights decided at each close (what the strategy asked for).
    trades
        One row per round trip (see :func:`trade_list`).
    fees, traded_notional
        Per bar, summed over symbols.
    benchmark
        Buy-and-hold equity: equal weights in every symbol, bought at the second bar's open
        with the same costs and capital, never rebalanced.
    benchmark_metrics
        :class:`~lq.backtest.metrics.Metrics` of the benchmark.
    """

    config: BacktestConfig
    metrics: Metrics
    equity: pd.Series
    drawdown: pd.Series
    returns: pd.Series
    positions: pd.DataFrame
    targets: pd.DataFrame
    trades: pd.DataFrame
    fees: pd.Series
    traded_notional: pd.Series
    benchmark: pd.Series
    benchmark_metrics: Metrics

    @property
    def id(self) -> str:
        """The run's content-hash id (``config.id``)."""
        return self.config.id

    @property
    def ruined(self) -> bool:
        """Equity reached zero at some close: the account was liquidated and stopped."""
        return self.metrics.ruined

    @property
    def ruined_at(self) -> pd.Timestamp | None:
        """The close at which equity first reached zero or less (None: never)."""
        t = self.metrics.ruined_at
        return None if t is None else pd.Timestamp(t)

    def to_dict(self, *, detail: Literal["summary", "full"] = "summary") -> dict[str, Any]:
        """Plain data: id, config, metrics; with ``detail="full"`` also series and trades."""
        out: dict[str, Any] = {
            "id": self.id,
            "config": self.config.to_dict(),
            "metrics": self.metrics.to_dict(),
            "benchmark_metrics": self.benchmark_metrics.to_dict(),
        }
        if detail == "full":
            ts = [t.isoformat() for t in self.equity.index]
            out["series"] = {
                "time": ts,
                "equity": self.equity.tolist(),
                "drawdown": self.drawdown.tolist(),
                "benchmark": self.benchmark.tolist(),
                "positions": {c: self.positions[c].tolist() for c in self.positions.columns},
            }
            trades = self.trades.copy()
            for c in ("entry_time", "exit_time"):
                trades[c] = trades[c].map(lambda t: t.isoformat())
            trades["holding_time"] = trades["holding_time"].dt.total_seconds()
            out["trades"] = trades.to_dict(orient="list")
        return out

    def to_json(self, *, detail: Literal["summary", "full"] = "summary") -> str:
        """:meth:`to_dict` as JSON: NaN (undefined) is written as null, infinities as
        ``"inf"`` / ``"-inf"``."""
        return canonical_json(self.to_dict(detail=detail))

    def summary(self) -> pd.DataFrame:
        """Metrics of the strategy next to buy-and-hold (one row per metric), raw values.

        The short-sample reasons (``Metrics.caveats``) are in ``attrs["caveats"]``
        (``{"strategy": {...}, "buy_and_hold": {...}}``); :func:`lq.backtest.charts.metrics_table`
        shows them greyed.
        """
        s, b = self.metrics.to_dict(), self.benchmark_metrics.to_dict()
        cav = {"strategy": s.pop("caveats"), "buy_and_hold": b.pop("caveats")}
        out = pd.DataFrame({"strategy": s, "buy_and_hold": b})
        out.attrs["caveats"] = cav
        return out


def _time_label(t: pd.Timestamp) -> str:
    return t.isoformat()


def run_backtest(
    data: Bars,
    strategy: str | StrategyFn,
    params: Mapping[str, Any] | None = None,
    *,
    costs: Costs | None = None,
    sizing: Sizing | None = None,
    stops: Stops | None = None,
    capital: float = 10_000.0,
    trade_from: pd.Timestamp | str | None = None,
    at_end: AtEnd = "mark",
) -> BacktestResult:
    """Backtest a strategy on bars, honestly: signals at a close fill at the next open.

    Parameters
    ----------
    data
        A bars DataFrame, or ``{symbol: bars}`` (see :mod:`lq.backtest.data`).
    strategy
        A built-in strategy name (see :func:`lq.backtest.strategies.available_strategies`)
        or a function ``(data, params) -> target weights`` (Series for one symbol, DataFrame
        with a column per symbol otherwise).
    params
        Strategy parameters; built-in strategies refuse unknown names and fill defaults.
    costs, sizing, stops
        Defaults: ``Costs()`` (10 bps fee), ``Sizing()`` (10,000 notional), ``Stops()`` (none).
    capital
        Initial account value in quote currency.
    trade_from
        Targets before this time are forced flat (the bars before it only warm up the
        indicators). Used by walk-forward.
    at_end
        ``"mark"`` or ``"close"`` (see :data:`AtEnd`).

    Returns
    -------
    BacktestResult
    """
    costs, sizing, stops = _check_settings(costs, sizing, stops, capital, at_end)
    prep = prepare(data, costs)
    fn, name, full_params = resolve_strategy(strategy, params)
    sim = run_prepared(
        prep,
        fn,
        name,
        full_params,
        costs=costs,
        sizing=sizing,
        stops=stops,
        capital=capital,
        trade_from=trade_from,
        at_end=at_end,
    )
    config = make_config(
        prep,
        name,
        full_params,
        costs=costs,
        sizing=sizing,
        stops=stops,
        capital=capital,
        trade_from=trade_from,
        at_end=at_end,
        fingerprint=data_fingerprint(prep.frames),
    )
    return _assemble(sim, config=config, prep=prep, costs=costs)


def make_config(
    prep: Prepared,
    name: str,
    params: Mapping[str, Any],
    *,
    costs: Costs,
    sizing: Sizing,
    stops: Stops,
    capital: float,
    trade_from: pd.Timestamp | str | None,
    at_end: AtEnd,
    fingerprint: str,
) -> BacktestConfig:
    """The :class:`BacktestConfig` (and so the id) of one run on prepared bars."""
    return BacktestConfig(
        strategy=name,
        params=json.loads(canonical_json(params)),
        costs=costs,
        sizing=sizing,
        stops=stops,
        capital=float(capital),
        symbols=prep.symbols,
        start=_time_label(prep.index[0]),
        end=_time_label(prep.index[-1]),
        bars=len(prep.index),
        data_fingerprint=fingerprint,
        trade_from=None if trade_from is None else _time_label(_utc(trade_from)),
        at_end=at_end,
    )


def _check_settings(
    costs: Costs | None, sizing: Sizing | None, stops: Stops | None, capital: float, at_end: str
) -> tuple[Costs, Sizing, Stops]:
    costs = Costs() if costs is None else costs
    sizing = Sizing() if sizing is None else sizing
    stops = Stops() if stops is None else stops
    for name, obj, cls in (
        ("costs", costs, Costs),
        ("sizing", sizing, Sizing),
        ("stops", stops, Stops),
    ):
        if not isinstance(obj, cls):
            raise ValidationError(name, type(obj).__name__, f"expected a {cls.__name__}")
    check_number("run_backtest", "capital", capital, minimum=0.0, exclusive=True)
    check_choice("run_backtest", "at_end", at_end, ("mark", "close"))
    return costs, sizing, stops


def _utc(t: pd.Timestamp | str) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Checked, aligned bars as arrays, ready for many runs (used by sweeps)."""

    frames: dict[str, pd.DataFrame]
    single: bool
    symbols: tuple[str, ...]
    index: pd.DatetimeIndex
    open_: np.ndarray
    close: np.ndarray
    slippage: np.ndarray
    periods_per_year: float

    @property
    def strategy_input(self) -> Bars:
        """What a strategy function receives."""
        return next(iter(self.frames.values())) if self.single else dict(self.frames)


def prepare(data: Bars, costs: Costs) -> Prepared:
    """Check and align ``data`` once; the result can be run many times with the same costs."""
    frames, single = normalise_data(data)
    symbols = tuple(frames)
    index = pd.DatetimeIndex(next(iter(frames.values())).index)
    o = np.column_stack([frames[s]["open"].to_numpy(dtype=float) for s in symbols])
    c = np.column_stack([frames[s]["close"].to_numpy(dtype=float) for s in symbols])
    slip = np.column_stack([slippage_fraction(costs, frames[s], symbol=s) for s in symbols])
    ppy = periods_per_year(index)
    return Prepared(frames, single, symbols, index, o, c, slip, ppy)


def run_prepared(
    prep: Prepared,
    fn: StrategyFn,
    name: str,
    params: Mapping[str, Any],
    *,
    costs: Costs,
    sizing: Sizing,
    stops: Stops,
    capital: float,
    trade_from: pd.Timestamp | str | None = None,
    at_end: AtEnd = "mark",
) -> Simulation:
    """Run the strategy and simulate it on prepared bars (no metrics, no benchmark)."""
    try:
        raw_targets = fn(prep.strategy_input, params)
    except (BacktestError, ValidationError):
        raise
    except Exception as exc:  # a user's strategy failed: say which and with what
        raise BacktestError(
            f"strategy {name!r} failed with params {dict(params)}: {exc!r}"
        ) from exc
    w = targets_to_array(raw_targets, index=prep.index, symbols=prep.symbols, single=prep.single)
    n = len(prep.index)
    forced = np.zeros(n, dtype=bool)
    if trade_from is not None:
        forced[: int(prep.index.searchsorted(_utc(trade_from), side="left"))] = True
    if at_end == "close" and n >= 2:
        forced[-2:] = True
    w[forced] = 0.0
    ppy = prep.periods_per_year
    return simulate(
        targets=w,
        open_=prep.open_,
        close=prep.close,
        slippage=prep.slippage,
        fee_rate=costs.fee_rate,
        sizing=sizing,
        stops=stops,
        capital=float(capital),
        periods_per_year=ppy if math.isfinite(ppy) else 1.0,
        forced=forced,
    )


def _benchmark(
    *,
    index: pd.DatetimeIndex,
    open_: np.ndarray,
    close: np.ndarray,
    slip: np.ndarray,
    costs: Costs,
    capital: float,
    ppy: float,
) -> Simulation:
    n, k = close.shape
    w = np.full((n, k), 1.0 / k)
    return simulate(
        targets=w,
        open_=open_,
        close=close,
        slippage=slip,
        fee_rate=costs.fee_rate,
        sizing=Sizing(method="fixed_notional", notional=capital),
        stops=Stops(),
        capital=capital,
        periods_per_year=ppy if math.isfinite(ppy) else 1.0,
    )


def metrics_of(
    sim: Simulation,
    *,
    index: pd.DatetimeIndex,
    symbols: tuple[str, ...],
    close: np.ndarray,
    capital: float,
    bars_per_year: float | None = None,
    count_trades: bool = True,
) -> tuple[Metrics, pd.Series, pd.DataFrame]:
    """Metrics, equity Series and trade list of a simulation (``count_trades``: see
    :func:`~lq.backtest.metrics.compute_metrics`)."""
    equity = pd.Series(sim.equity, index=index, name="equity")
    trades = trade_list(sim, index=index, symbols=symbols, close=close)
    positions = pd.DataFrame(sim.positions, index=index, columns=list(symbols))
    m = compute_metrics(
        equity=equity,
        trades=trades,
        positions=positions,
        traded_notional=pd.Series(sim.traded_per_bar, index=index),
        fees=pd.Series(sim.fees_per_bar, index=index),
        capital=capital,
        bars_per_year=bars_per_year,
        count_trades=count_trades,
    )
    return m, equity, trades


def _assemble(
    sim: Simulation, *, config: BacktestConfig, prep: Prepared, costs: Costs
) -> BacktestResult:
    index, symbols, close = prep.index, prep.symbols, prep.close
    ppy = prep.periods_per_year
    metrics, equity, trades = metrics_of(
        sim, index=index, symbols=symbols, close=close, capital=config.capital, bars_per_year=ppy
    )
    bench_sim = _benchmark(
        index=index,
        open_=prep.open_,
        close=close,
        slip=prep.slippage,
        costs=costs,
        capital=config.capital,
        ppy=prep.periods_per_year,
    )
    bench_metrics, bench_equity, _ = metrics_of(
        bench_sim,
        index=index,
        symbols=symbols,
        close=close,
        capital=config.capital,
        bars_per_year=ppy,
        count_trades=False,
    )
    rets = returns_from_equity(equity).reindex(index).fillna(0.0)
    return BacktestResult(
        config=config,
        metrics=metrics,
        equity=equity,
        drawdown=drawdown_series(equity).rename("drawdown"),
        returns=rets.rename("returns"),
        positions=pd.DataFrame(sim.positions, index=index, columns=list(symbols)),
        targets=pd.DataFrame(sim.targets, index=index, columns=list(symbols)),
        trades=trades,
        fees=pd.Series(sim.fees_per_bar, index=index, name="fees"),
        traded_notional=pd.Series(sim.traded_per_bar, index=index, name="traded_notional"),
        benchmark=bench_equity.rename("buy_and_hold"),
        benchmark_metrics=bench_metrics,
    )
