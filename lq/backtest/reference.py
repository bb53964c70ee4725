"""The straightforward bar-by-bar backtest: the twin the vectorised engine is tested against.

Like ``arch``'s ``recursions_python``: slow, obvious Python that walks the bars one at a
time, keeping a cash balance, a position and an open trade, exactly as a person would do it
by hand. Indicators are updated one bar at a time with the O(1) streaming twins of
:mod:`lq.analytics.streaming` (each tested equal to its batch function there); everything
else is re-derived bar by bar: entry/exit decisions, hedge-ratio freezing, sizing, stops,
fills, fees, cash, equity and the trade list. It is also the per-bar baseline of
``bench/bench_backtest.py``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from lq.analytics import hedge_ratio, streaming
from lq.backtest.costs import Costs, slippage_fraction
from lq.backtest.data import Bars, normalise_data
from lq.backtest.metrics import periods_per_year
from lq.backtest.sizing import Sizing
from lq.backtest.stops import Stops
from lq.backtest.strategies import (
    MACrossoverParams,
    PairsZScoreParams,
    RSIReversionParams,
    ZScoreReversionParams,
    pair_weights,
)
from lq.errors import ValidationError

__all__ = [
    "ReferenceResult",
    "ThresholdRule",
    "crossover_positions_loop",
    "reference_backtest",
    "reference_simulate",
    "reference_targets",
    "threshold_positions_loop",
]


class ThresholdRule:
    """One-bar-at-a-time twin of :func:`lq.backtest.strategies.threshold_positions`."""

    def __init__(
        self,
        *,
        long_entry: float,
        short_entry: float,
        long_exit: float,
        short_exit: float,
        stop_above: float | None = None,
        stop_below: float | None = None,
        direction: str = "long_short",
    ) -> None:
        self.long_entry, self.short_entry = long_entry, short_entry
        self.long_exit, self.short_exit = long_exit, short_exit
        self.stop_above, self.stop_below = stop_above, stop_below
        self.direction = direction
        self.state = 0.0
        self.locked = False

    def update(self, v: float) -> float:
        """Feed one value, return the position after it."""
        if not math.isfinite(v):
            return self.state
        if (self.stop_above is not None and v > self.stop_above) or (
            self.stop_below is not None and v < self.stop_below
        ):
            self.locked = True
        elif self.long_entry <= v <= self.short_entry:
            self.locked = False
        if self.locked:
            self.state = 0.0
        elif self.direction == "long_short" and v > self.short_entry:
            self.state = -1.0
        elif v < self.long_entry:
            self.state = 1.0
        elif (self.state == 1.0 and v > self.long_exit) or (
            self.state == -1.0 and v < self.short_exit
        ):
            self.state = 0.0
        return self.state


def threshold_positions_loop(x: np.ndarray, **rule: Any) -> np.ndarray:
    """Bar-by-bar twin of :func:`lq.backtest.strategies.threshold_positions`."""
    r = ThresholdRule(**rule)
    return np.array([r.update(float(v)) for v in x], dtype=float)


def crossover_positions_loop(fast: np.ndarray, slow: np.ndarray, *, direction: str) -> np.ndarray:
    """Bar-by-bar twin of :func:`lq.backtest.strategies.crossover_positions`."""
    out = np.zeros(len(fast))
    state = 0.0
    for t in range(len(fast)):
        f, s = float(fast[t]), float(slow[t])
        if f > s:
            state = 1.0
        elif f < s:
            state = -1.0 if direction == "long_short" else 0.0
        out[t] = state
    return out


def _pairs_loop(frames: Mapping[str, pd.DataFrame], params: Mapping[str, Any]) -> pd.DataFrame:
    p = PairsZScoreParams.from_dict(params)
    symbols = list(frames)
    ys = p.y if p.y is not None else symbols[0]
    xs = p.x if p.x is not None else next(s for s in symbols if s != ys)
    cy = frames[ys]["close"].to_numpy(dtype=float).tolist()
    cx = frames[xs]["close"].to_numpy(dtype=float).tolist()
    n = len(cy)
    hl = p.hedge_lookback if p.hedge_lookback is not None else max(p.lookback, 3)
    refit = p.hedge_refit if p.hedge_refit is not None else hl
    zs = streaming.ZScore(p.lookback)
    ols = streaming.RollingHedgeRatio(hl) if p.hedge == "ols" else None
    kal = streaming.KalmanHedgeRatio() if p.hedge == "kalman" else None
    rule = ThresholdRule(
        long_entry=-p.entry,
        short_entry=p.entry,
        long_exit=-p.exit,
        short_exit=p.exit,
        stop_above=p.stop,
        stop_below=None if p.stop is None else -p.stop,
    )
    ly_hist: list[float] = []
    lx_hist: list[float] = []
    beta = math.nan
    state = 0.0
    frozen = math.nan
    wy = [0.0] * n
    wx = [0.0] * n
    for t in range(n):
        ly, lx = math.log(cy[t]), math.log(cx[t])
        if ols is not None:
            ols.update(ly, lx)
            beta = ols.value
            z_in = ly - beta * lx
        elif kal is not None:
            beta, alpha = kal.value, kal.alpha  # the state before this bar
            z_in = ly - alpha - beta * lx
            kal.update(ly, lx)
        else:
            ly_hist.append(ly)
            lx_hist.append(lx)
            if t >= hl - 1 and (t - (hl - 1)) % refit == 0:
                try:
                    beta = hedge_ratio(ly_hist[-hl:], lx_hist[-hl:], method="huber").beta
                except ValidationError:
                    beta = math.nan
            z_in = ly - beta * lx
        zs.update(z_in)
        new_state = rule.update(zs.value)
        if t == 0 or new_state != state:
            frozen = beta  # the hedge ratio is fixed when a position opens
        state = new_state
        wy[t], wx[t] = pair_weights(frozen, state, p.neutral)
    index = frames[ys].index
    out = pd.DataFrame(0.0, index=index, columns=symbols)
    out[ys] = wy
    out[xs] = wx
    return out


def reference_targets(data: Bars, strategy: str, params: Mapping[str, Any]) -> pd.DataFrame:
    """Target weights of a built-in strategy, computed one bar at a time.

    Indicators come from the O(1) streaming twins in :mod:`lq.analytics.streaming` (each
    tested equal to its batch function), fed one close at a time.
    """
    frames, _ = normalise_data(data)
    if strategy == "pairs_zscore":
        return _pairs_loop(frames, params)
    symbols = list(frames)
    (sym,) = symbols
    index = frames[sym].index
    close = frames[sym]["close"].to_numpy(dtype=float).tolist()
    pos = [0.0] * len(close)
    if strategy in ("zscore_reversion", "rsi_reversion"):
        if strategy == "zscore_reversion":
            q = ZScoreReversionParams.from_dict(params)
            ind: Any = streaming.ZScore(q.lookback)
            rule = ThresholdRule(
                long_entry=-q.entry,
                short_entry=q.entry,
                long_exit=-q.exit,
                short_exit=q.exit,
                stop_above=q.stop,
                stop_below=None if q.stop is None else -q.stop,
                direction=q.direction,
            )
        else:
            r = RSIReversionParams.from_dict(params)
            ind = streaming.RSI(r.window)
            rule = ThresholdRule(
                long_entry=r.lower,
                short_entry=r.upper,
                long_exit=r.exit,
                short_exit=r.exit,
                direction=r.direction,
            )
        for t, c in enumerate(close):
            ind.update(c)
            pos[t] = rule.update(ind.value)
    elif strategy == "ma_crossover":
        m = MACrossoverParams.from_dict(params)
        if m.kind == "sma":
            fast: Any = streaming.RollingMean(m.fast)
            slow: Any = streaming.RollingMean(m.slow)
        else:
            fast, slow = streaming.EMA(m.fast), streaming.EMA(m.slow)
        state = 0.0
        for t, c in enumerate(close):
            fast.update(c)
            slow.update(c)
            f, s = fast.value, slow.value
            if f > s:
                state = 1.0
            elif f < s:
                state = -1.0 if m.direction == "long_short" else 0.0
            pos[t] = state
    else:
        raise ValidationError("strategy", strategy, "no reference implementation")
    return pd.DataFrame({sym: pos}, index=index)


@dataclasses.dataclass(frozen=True)
class ReferenceResult:
    """Equity, positions, fees and trades from the bar-by-bar loop."""

    equity: pd.Series
    positions: pd.DataFrame
    fees: pd.Series
    trades: pd.DataFrame


def _vol_notional(
    sizing: Sizing, close: np.ndarray, w: np.ndarray, t: int, capital: float, ppy: float
) -> float:
    lb = sizing.vol_lookback
    if t - lb + 1 < 1:  # needs lb returns, the first return is at bar 1
        return 0.0
    port = []
    for s in range(t - lb + 1, t + 1):
        port.append(sum(w[i] * (close[s, i] / close[s - 1, i] - 1.0) for i in range(len(w))))
    mean = sum(port) / lb
    var = sum((r - mean) ** 2 for r in port) / (lb - 1)
    vol = math.sqrt(var * ppy)
    lev = (
        sizing.max_leverage
        if vol == 0
        else min(sizing.target_volatility / vol, sizing.max_leverage)
    )
    return capital * lev


def reference_simulate(
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
    index: pd.DatetimeIndex,
    symbols: tuple[str, ...],
) -> ReferenceResult:
    """Walk the bars: fill at the open, mark at the close, decide at the close.

    Ruin: once equity at a close is zero or less, the book is sold at the next open
    (``"liquidation"``) and nothing is bought or sold after that.
    """
    n, k = targets.shape
    forced = np.zeros(n, dtype=bool) if forced is None else forced
    q = [0.0] * k
    cash = capital
    equity = np.zeros(n)
    positions = np.zeros((n, k))
    fees_bar = np.zeros(n)
    wanted = [0.0] * k
    reason_pending = "signal"
    trades: list[dict[str, Any]] = []
    open_trade: dict[str, Any] | None = None
    # run state
    prev_w: list[float] | None = None
    run_start = 0
    units = [0.0] * k
    entry_open = [math.nan] * k
    stop_l = stop_t = False
    ruined = False
    for t in range(n):
        # 1. fill yesterday's decision at today's open
        dq = [wanted[i] - q[i] for i in range(k)]
        if any(d != 0 for d in dq):
            fills = []
            fee = 0.0
            for i in range(k):
                sgn = (dq[i] > 0) - (dq[i] < 0)
                px = open_[t, i] * (1.0 + sgn * slippage[t, i])
                fills.append(px)
                cash -= dq[i] * px
                fee += abs(dq[i]) * px * fee_rate
            cash -= fee
            fees_bar[t] = fee
            closing = sum(abs(q[i]) * fills[i] for i in range(k))
            opening = sum(abs(wanted[i]) * fills[i] for i in range(k))
            close_fee = fee * closing / (closing + opening) if closing + opening > 0 else 0.0
            if open_trade is not None:
                pnl = sum(
                    open_trade["qty"][i] * (fills[i] - open_trade["entry_px"][i]) for i in range(k)
                )
                open_trade.update(
                    exit_bar=t,
                    exit_px=fills,
                    fees=open_trade["fees"] + close_fee,
                    pnl=pnl - open_trade["fees"] - close_fee,
                    exit_reason=reason_pending,
                    open=False,
                )
                trades.append(open_trade)
                open_trade = None
            q = list(wanted)
            if any(v != 0 for v in q):
                open_trade = {
                    "entry_bar": t,
                    "qty": list(q),
                    "entry_px": fills,
                    "fees": fee - close_fee,
                }
        positions[t] = q
        # 2. mark to market at the close
        equity[t] = cash + sum(q[i] * close[t, i] for i in range(k))
        if ruined:
            continue  # liquidated: the account trades no more
        if equity[t] <= 0:
            ruined = True
            wanted = [0.0] * k
            reason_pending = "liquidation"
            continue
        # 3. decide at the close
        w = [float(v) for v in targets[t]]
        if prev_w is None or w != prev_w:
            run_start = t
            if any(v != 0 for v in w):
                if sizing.method == "fixed_notional":
                    notional = sizing.notional
                else:
                    notional = _vol_notional(
                        sizing, close, np.asarray(w), t, capital, periods_per_year
                    )
            else:
                notional = 0.0
            units = [float(w[i] * notional / close[t, i]) for i in range(k)]
            entry_open = [open_[t + 1, i] if t + 1 < n else math.nan for i in range(k)]
            stop_l = stop_t = False
        elif any(u != 0 for u in units):
            if stops.stop_loss is not None:
                pnl = sum(units[i] * (close[t, i] - entry_open[i]) for i in range(k))
                gross = sum(abs(units[i]) * entry_open[i] for i in range(k))
                if pnl <= -stops.stop_loss * gross:
                    stop_l = True
            if stops.time_stop_bars is not None and t - run_start >= stops.time_stop_bars:
                stop_t = True
        prev_w = w
        wanted = [0.0] * k if (stop_l or stop_t) else list(units)
        reason_pending = (
            "stop_loss" if stop_l else "time_stop" if stop_t else "end" if forced[t] else "signal"
        )
    if open_trade is not None:
        last = close[n - 1]
        pnl = sum(open_trade["qty"][i] * (last[i] - open_trade["entry_px"][i]) for i in range(k))
        open_trade.update(
            exit_bar=n - 1,
            exit_px=list(last),
            pnl=pnl - open_trade["fees"],
            exit_reason="open",
            open=True,
        )
        trades.append(open_trade)
    rows = []
    for tr in trades:
        row = {
            "entry_time": index[tr["entry_bar"]],
            "exit_time": index[tr["exit_bar"]],
            "bars": tr["exit_bar"] - tr["entry_bar"],
            "pnl": tr["pnl"],
            "fees": tr["fees"],
            "exit_reason": tr["exit_reason"],
            "open": tr["open"],
        }
        for i, s in enumerate(symbols):
            row[f"qty_{s}"] = tr["qty"][i]
            row[f"entry_price_{s}"] = tr["entry_px"][i]
            row[f"exit_price_{s}"] = tr["exit_px"][i]
        rows.append(row)
    return ReferenceResult(
        equity=pd.Series(equity, index=index, name="equity"),
        positions=pd.DataFrame(positions, index=index, columns=list(symbols)),
        fees=pd.Series(fees_bar, index=index, name="fees"),
        trades=pd.DataFrame(rows),
    )


def reference_backtest(
    data: Bars,
    strategy: str,
    params: Mapping[str, Any] | None = None,
    *,
    costs: Costs | None = None,
    sizing: Sizing | None = None,
    stops: Stops | None = None,
    capital: float = 10_000.0,
    at_end: str = "mark",
) -> ReferenceResult:
    """Bar-by-bar backtest of a built-in strategy with the engine's conventions."""
    costs = Costs() if costs is None else costs
    sizing = Sizing() if sizing is None else sizing
    stops = Stops() if stops is None else stops
    frames, _ = normalise_data(data)
    symbols = tuple(frames)
    index = next(iter(frames.values())).index
    targets = reference_targets(
        frames if len(frames) > 1 else frames[symbols[0]], strategy, params or {}
    ).to_numpy(dtype=float)
    forced = np.zeros(len(index), dtype=bool)
    if at_end == "close" and len(index) >= 2:
        forced[-2:] = True
        targets[-2:] = 0.0
    o = np.column_stack([frames[s]["open"].to_numpy(dtype=float) for s in symbols])
    c = np.column_stack([frames[s]["close"].to_numpy(dtype=float) for s in symbols])
    slip = np.column_stack([slippage_fraction(costs, frames[s], symbol=s) for s in symbols])
    return reference_simulate(
        targets=targets,
        open_=o,
        close=c,
        slippage=slip,
        fee_rate=costs.fee_rate,
        sizing=sizing,
        stops=stops,
        capital=capital,
        periods_per_year=periods_per_year(index),
        forced=forced,
        index=index,
        symbols=symbols,
    )
