"""Strategies: functions from bars and parameters to target weights.

A strategy is any function ``strategy(data, params) -> targets``:

* ``data`` is the bars DataFrame (one symbol) or ``{symbol: bars}`` (several), exactly as
  given to :func:`~lq.backtest.run_backtest`, after alignment;
* ``params`` is a mapping of parameters;
* ``targets`` is a Series (one symbol) or a DataFrame with one column per symbol, on the
  bars' index, holding the **target weight decided at each bar's close**: ``+1`` long one unit
  of notional, ``-1`` short, ``0`` flat, fractions for legs. NaN means flat.

The engine fills a target at the *next* bar's open; a strategy may use any data up to and
including the bar it decides on, and nothing after. :func:`~lq.backtest.check_lookahead`
verifies this by perturbing the future.

Built-in strategies (names for :func:`~lq.backtest.run_backtest`):

``"pairs_zscore"``
    Mean reversion of the spread of two log prices (:class:`PairsZScoreParams`).
``"zscore_reversion"``
    Single-asset z-score / Bollinger-band reversion (:class:`ZScoreReversionParams`).
``"rsi_reversion"``
    RSI oversold/overbought reversion (:class:`RSIReversionParams`).
``"ma_crossover"``
    Moving-average crossover momentum (:class:`MACrossoverParams`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd

from lq.analytics import (
    ema,
    hedge_ratio,
    kalman_hedge_ratio,
    rolling_hedge_ratio,
    rsi,
    sma,
    spread,
    zscore,
)
from lq.backtest._config import Config, check_choice, check_number
from lq.errors import BacktestError, ValidationError

__all__ = [
    "STRATEGIES",
    "Direction",
    "HedgeMethod",
    "MACrossoverParams",
    "Neutrality",
    "PairsZScoreParams",
    "RSIReversionParams",
    "StrategyFn",
    "StrategySpec",
    "ZScoreReversionParams",
    "available_strategies",
    "crossover_positions",
    "indicator_cache",
    "ma_crossover",
    "pair_weights",
    "pairs_indicators",
    "pairs_zscore",
    "resolve_strategy",
    "rsi_reversion",
    "threshold_positions",
    "zscore_reversion",
]

StrategyFn: TypeAlias = Callable[[Any, Mapping[str, Any]], "pd.Series | pd.DataFrame"]
Direction = Literal["long_short", "long_only"]
HedgeMethod = Literal["ols", "huber", "kalman"]
Neutrality = Literal["beta", "dollar"]
MAKind = Literal["sma", "ema"]


def _check_int(owner: str, name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValidationError(f"{owner}.{name}", value, f"must be an int >= {minimum}")


# --------------------------------------------------------------------------- indicator cache

_CACHE: dict[tuple[Any, ...], Any] | None = None
_CACHE_SIZE = 64


@contextlib.contextmanager
def indicator_cache() -> Iterator[None]:
    """Reuse indicator series between runs on the *same, unmodified* bars objects.

    A sweep over entry/exit thresholds recomputes the same rolling statistics for every
    parameter set; inside this context they are computed once per (bars, indicator
    parameters). Used by :func:`~lq.backtest.sweep` workers, whose bars never change.
    """
    global _CACHE
    previous = _CACHE
    _CACHE = {} if previous is None else previous
    try:
        yield
    finally:
        _CACHE = previous


def _memo(key: tuple[Any, ...], frames: Any, compute: Callable[[], Any]) -> Any:
    if _CACHE is None:
        return compute()
    ident = tuple(id(f) for f in frames.values()) if isinstance(frames, Mapping) else id(frames)
    k = (ident, *key)
    if k not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[k] = compute()
    return _CACHE[k]


# --------------------------------------------------------------------------- state machines


def threshold_positions(
    x: np.ndarray | pd.Series,
    *,
    long_entry: float,
    short_entry: float,
    long_exit: float,
    short_exit: float,
    stop_above: float | None = None,
    stop_below: float | None = None,
    direction: Direction = "long_short",
) -> np.ndarray:
    """Positions -1/0/+1 of a threshold (mean-reversion) rule, vectorised.

    At each bar, in this order of priority:

    1. if ``x > stop_above`` or ``x < stop_below``: stop: flat, and *locked* flat until ``x``
       comes back inside ``[long_entry, short_entry]``;
    2. while locked: flat;
    3. ``x > short_entry``: short (only with ``direction="long_short"``);
    4. ``x < long_entry``: long;
    5. long and ``x > long_exit``: flat; short and ``x < short_exit``: flat;
    6. otherwise keep the previous position. A NaN ``x`` keeps the previous position.

    :func:`lq.backtest.reference.threshold_positions_loop` is the bar-by-bar twin.
    """
    v = np.asarray(x, dtype=float)
    n = v.size
    itype: type[np.signedinteger[Any]] = np.int32 if n < 2**31 - 1 else np.int64
    idx: np.ndarray = np.arange(n, dtype=itype)
    valid = np.isfinite(v)
    with np.errstate(invalid="ignore"):
        if stop_above is not None or stop_below is not None:
            hi = np.inf if stop_above is None else stop_above
            lo = -np.inf if stop_below is None else stop_below
            on = valid & ((v > hi) | (v < lo))
            off = valid & ~on & (v <= short_entry) & (v >= long_entry)
            last: np.ndarray = np.maximum.accumulate(np.where(on | off, idx, -1)) if n else idx
            lock = on[np.maximum(last, 0)] & (last >= 0)
        else:
            lock = np.zeros(n, dtype=bool)
        unlocked = valid & ~lock
        short_ev = unlocked & (v > short_entry) if direction == "long_short" else np.zeros(n, bool)
        long_ev = unlocked & ~short_ev & (v < long_entry)
        set_ev = (valid & lock) | short_ev | long_ev
        no_set = unlocked & ~set_ev
        exit_long = no_set & (v > long_exit)
        exit_short = no_set & (v < short_exit)
    set_val = long_ev.astype(np.int8) - short_ev.astype(np.int8)
    last_set: np.ndarray = np.maximum.accumulate(np.where(set_ev, idx, -1)) if n else idx
    at = np.maximum(last_set, 0)
    base = np.where(last_set >= 0, set_val[at], 0).astype(np.int8)
    # a long is closed by a later long-exit event, a short by a later short-exit event
    closing = (exit_long & (base == 1)) | (exit_short & (base == -1))
    c: np.ndarray = np.cumsum(closing, dtype=itype)
    closed = (c - c[at]) > 0
    return np.where(closed, 0.0, base.astype(float))


def crossover_positions(
    fast: np.ndarray | pd.Series, slow: np.ndarray | pd.Series, *, direction: Direction
) -> np.ndarray:
    """+1 while ``fast > slow``, -1 (or 0 for ``"long_only"``) while ``fast < slow``.

    Equal or NaN values keep the previous position; 0 before the first decision.
    """
    f = np.asarray(fast, dtype=float)
    s = np.asarray(slow, dtype=float)
    with np.errstate(invalid="ignore"):
        up = f > s
        down = f < s
    short = -1.0 if direction == "long_short" else 0.0
    code = np.where(up, 1.0, np.where(down, short, np.nan))
    return pd.Series(code).ffill().fillna(0.0).to_numpy()


# --------------------------------------------------------------------------- parameters


@dataclasses.dataclass(frozen=True, kw_only=True)
class PairsZScoreParams(Config):
    """Pairs z-score mean reversion.

    The spread is ``log(y) - beta * log(x)`` (minus ``alpha`` for Kalman), with ``beta`` from a
    rolling OLS over ``hedge_lookback`` bars (``"ols"``), a Huber robust fit on the same window
    refitted every ``hedge_refit`` bars (``"huber"``), or a Kalman filter's one-step-ahead
    state (``"kalman"``). Its z-score over ``lookback`` bars drives :func:`threshold_positions`
    with ``short_entry = entry``, ``long_entry = -entry``, exits at ``±exit`` and stops at
    ``±stop``. Long the spread = long ``y``, short ``x``; the hedge ratio is frozen when a
    position opens. ``neutral="beta"`` sizes the legs so that the ``x`` notional is ``beta``
    times the ``y`` notional; ``"dollar"`` uses equal notionals. Weights sum to 1 in absolute
    value. ``y``/``x`` default to the first and second symbol of the data.
    """

    lookback: int = 100
    entry: float = 2.0
    exit: float = 0.5
    stop: float | None = 4.0
    hedge: HedgeMethod = "ols"
    hedge_lookback: int | None = None
    hedge_refit: int | None = None
    neutral: Neutrality = "beta"
    y: str | None = None
    x: str | None = None

    def _validate(self) -> None:
        o = "PairsZScoreParams"
        _check_int(o, "lookback", self.lookback, 2)
        if self.hedge_lookback is not None:
            _check_int(o, "hedge_lookback", self.hedge_lookback, 3)
        if self.hedge_refit is not None:
            _check_int(o, "hedge_refit", self.hedge_refit, 1)
        check_number(o, "entry", self.entry, minimum=0.0, exclusive=True)
        check_number(o, "exit", self.exit, minimum=0.0)
        check_number(o, "stop", self.stop, minimum=0.0, allow_none=True)
        if not self.exit < self.entry:
            raise ValidationError(f"{o}.exit", self.exit, f"must be < entry ({self.entry})")
        if self.stop is not None and not self.stop > self.entry:
            raise ValidationError(f"{o}.stop", self.stop, f"must be > entry ({self.entry})")
        check_choice(o, "hedge", self.hedge, ("ols", "huber", "kalman"))
        check_choice(o, "neutral", self.neutral, ("beta", "dollar"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ZScoreReversionParams(Config):
    """Single-asset z-score (Bollinger-band) reversion on the close.

    ``z = (close - rolling mean) / rolling std`` over ``lookback`` bars (ddof=1). Short above
    ``entry`` (the upper Bollinger band at ``entry`` standard deviations), long below
    ``-entry``, exit back inside ``±exit``, optional stop beyond ``±stop``.
    """

    lookback: int = 20
    entry: float = 2.0
    exit: float = 0.5
    stop: float | None = None
    direction: Direction = "long_short"

    def _validate(self) -> None:
        o = "ZScoreReversionParams"
        _check_int(o, "lookback", self.lookback, 2)
        check_number(o, "entry", self.entry, minimum=0.0, exclusive=True)
        check_number(o, "exit", self.exit, minimum=0.0)
        check_number(o, "stop", self.stop, minimum=0.0, allow_none=True)
        if not self.exit < self.entry:
            raise ValidationError(f"{o}.exit", self.exit, f"must be < entry ({self.entry})")
        if self.stop is not None and not self.stop > self.entry:
            raise ValidationError(f"{o}.stop", self.stop, f"must be > entry ({self.entry})")
        check_choice(o, "direction", self.direction, ("long_short", "long_only"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class RSIReversionParams(Config):
    """RSI reversion: long below ``lower``, short above ``upper``, exit when RSI crosses
    ``exit`` (Wilder's RSI over ``window`` bars)."""

    window: int = 14
    lower: float = 30.0
    upper: float = 70.0
    exit: float = 50.0
    direction: Direction = "long_short"

    def _validate(self) -> None:
        o = "RSIReversionParams"
        _check_int(o, "window", self.window, 1)
        for name in ("lower", "upper", "exit"):
            check_number(o, name, getattr(self, name), minimum=0.0)
        if not self.lower <= self.exit <= self.upper or not self.lower < self.upper:
            raise ValidationError(
                f"{o}.exit", self.exit, f"need lower ({self.lower}) <= exit <= upper ({self.upper})"
            )
        if self.upper > 100:
            raise ValidationError(f"{o}.upper", self.upper, "must be <= 100")
        check_choice(o, "direction", self.direction, ("long_short", "long_only"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class MACrossoverParams(Config):
    """Moving-average crossover momentum: long while the ``fast`` average is above the
    ``slow`` one, short (or flat with ``"long_only"``) while below."""

    fast: int = 10
    slow: int = 50
    kind: MAKind = "sma"
    direction: Direction = "long_short"

    def _validate(self) -> None:
        o = "MACrossoverParams"
        _check_int(o, "fast", self.fast, 1)
        _check_int(o, "slow", self.slow, 2)
        if not self.fast < self.slow:
            raise ValidationError(f"{o}.fast", self.fast, f"must be < slow ({self.slow})")
        check_choice(o, "kind", self.kind, ("sma", "ema"))
        check_choice(o, "direction", self.direction, ("long_short", "long_only"))


# --------------------------------------------------------------------------- helpers


def _single(data: Any, name: str) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, Mapping) and len(data) == 1:
        return next(iter(data.values()))
    raise BacktestError(f"strategy {name!r} trades one symbol; got {type(data).__name__}")


def _pair(data: Any, p: PairsZScoreParams) -> tuple[str, str, pd.DataFrame, pd.DataFrame]:
    if not isinstance(data, Mapping) or len(data) < 2:
        raise BacktestError(
            "strategy 'pairs_zscore' needs data={y_symbol: bars, x_symbol: bars}; "
            f"got {type(data).__name__}"
        )
    keys = list(data)
    ys = p.y if p.y is not None else keys[0]
    xs = p.x if p.x is not None else next(k for k in keys if k != ys)
    for field, sym in (("y", ys), ("x", xs)):
        if sym not in data:
            raise ValidationError(f"PairsZScoreParams.{field}", sym, f"not in the data {keys}")
    return ys, xs, data[ys], data[xs]


def _rolling_huber(ly: np.ndarray, lx: np.ndarray, window: int, refit: int) -> np.ndarray:
    """Huber hedge ratio on the window ending at every ``refit``-th bar, held in between."""
    n = ly.size
    beta = np.full(n, np.nan)
    for t in range(window - 1, n, refit):
        lo = t - window + 1
        try:
            beta[t] = hedge_ratio(ly[lo : t + 1], lx[lo : t + 1], method="huber").beta
        except ValidationError:
            beta[t] = np.nan
        beta[t + 1 : min(t + refit, n)] = beta[t]
    return beta


def pairs_indicators(data: Mapping[str, pd.DataFrame], params: Mapping[str, Any]) -> pd.DataFrame:
    """Hedge ratio ``beta`` and spread z-score ``z`` of the pairs strategy, per bar.

    Every value at bar ``t`` uses closes up to ``t`` only.
    """
    p = PairsZScoreParams.from_dict(params)
    key = ("pairs", p.lookback, p.hedge, p.hedge_lookback, p.hedge_refit, p.y, p.x)
    return _memo(key, data, lambda: _pairs_indicators(data, p))  # type: ignore[no-any-return]


def _pairs_indicators(data: Mapping[str, pd.DataFrame], p: PairsZScoreParams) -> pd.DataFrame:
    _, _, fy, fx = _pair(data, p)
    ly = np.log(fy["close"].to_numpy(dtype=float))
    lx = np.log(fx["close"].to_numpy(dtype=float))
    hl = p.hedge_lookback if p.hedge_lookback is not None else max(p.lookback, 3)
    if p.hedge == "ols":
        beta = np.asarray(rolling_hedge_ratio(ly, lx, hl), dtype=float)
        spr = np.asarray(spread(ly, lx, beta), dtype=float)
    elif p.hedge == "huber":
        beta = _rolling_huber(ly, lx, hl, p.hedge_refit if p.hedge_refit is not None else hl)
        spr = np.asarray(spread(ly, lx, beta), dtype=float)
    else:
        k = kalman_hedge_ratio(ly, lx)
        # the state *before* seeing bar t: the spread is the one-step-ahead forecast error
        beta_prior = k["beta"].shift(1).to_numpy(dtype=float)
        alpha_prior = k["alpha"].shift(1).to_numpy(dtype=float)
        spr = np.asarray(spread(ly, lx, beta_prior, alpha=alpha_prior), dtype=float)
        beta = beta_prior
    z = np.asarray(zscore(spr, p.lookback), dtype=float)
    return pd.DataFrame({"beta": beta, "spread": spr, "z": z}, index=fy.index)


def pair_weights(beta: float, state: float, neutral: Neutrality) -> tuple[float, float]:
    """Weights ``(w_y, w_x)`` of a pair position; ``|w_y| + |w_x| = 1`` (0, 0 if undefined).

    ``"beta"``: the ``x`` notional is ``-beta`` times the ``y`` notional (log-price hedge
    ratio); ``"dollar"``: equal and opposite notionals.
    """
    if state == 0:
        return 0.0, 0.0
    if neutral == "dollar":
        return 0.5 * state, -0.5 * state
    if not np.isfinite(beta):
        return 0.0, 0.0
    g = 1.0 + abs(beta)
    return state / g, -state * beta / g


def _pair_weights_vec(
    beta: np.ndarray, state: np.ndarray, neutral: Neutrality
) -> tuple[np.ndarray, np.ndarray]:
    n = state.size
    idx = np.arange(n)
    change = np.empty(n, dtype=bool)
    if n:
        change[0] = True
        change[1:] = state[1:] != state[:-1]
    start = np.maximum.accumulate(np.where(change, idx, 0)) if n else idx
    b = beta[start]  # hedge ratio frozen when the position opens
    if neutral == "dollar":
        return 0.5 * state, -0.5 * state
    g = 1.0 + np.abs(b)
    with np.errstate(invalid="ignore"):
        wy = np.where(np.isfinite(b), state / g, 0.0)
        wx = np.where(np.isfinite(b), -state * b / g, 0.0)
    wy[state == 0] = 0.0
    wx[state == 0] = 0.0
    return wy, wx


# --------------------------------------------------------------------------- strategies


def pairs_zscore(data: Mapping[str, pd.DataFrame], params: Mapping[str, Any]) -> pd.DataFrame:
    """Pairs z-score mean reversion (see :class:`PairsZScoreParams`)."""
    p = PairsZScoreParams.from_dict(params)
    ys, xs, fy, _ = _pair(data, p)
    ind = pairs_indicators(data, params)
    z = ind["z"].to_numpy()
    stop = p.stop
    state = threshold_positions(
        z,
        long_entry=-p.entry,
        short_entry=p.entry,
        long_exit=-p.exit,
        short_exit=p.exit,
        stop_above=stop,
        stop_below=None if stop is None else -stop,
    )
    wy, wx = _pair_weights_vec(ind["beta"].to_numpy(), state, p.neutral)
    n = len(fy.index)
    cols = {s: (wy if s == ys else wx if s == xs else np.zeros(n)) for s in data}
    return pd.DataFrame(cols, index=fy.index, copy=False)


def zscore_reversion(data: Any, params: Mapping[str, Any]) -> pd.Series:
    """Single-asset z-score / Bollinger reversion (see :class:`ZScoreReversionParams`)."""
    p = ZScoreReversionParams.from_dict(params)
    bars = _single(data, "zscore_reversion")
    z = _memo(
        ("zscore", p.lookback),
        bars,
        lambda: np.asarray(zscore(bars["close"].to_numpy(dtype=float), p.lookback), dtype=float),
    )
    pos = threshold_positions(
        z,
        long_entry=-p.entry,
        short_entry=p.entry,
        long_exit=-p.exit,
        short_exit=p.exit,
        stop_above=p.stop,
        stop_below=None if p.stop is None else -p.stop,
        direction=p.direction,
    )
    return pd.Series(pos, index=bars.index, name="target")


def rsi_reversion(data: Any, params: Mapping[str, Any]) -> pd.Series:
    """RSI reversion (see :class:`RSIReversionParams`)."""
    p = RSIReversionParams.from_dict(params)
    bars = _single(data, "rsi_reversion")
    r = _memo(
        ("rsi", p.window),
        bars,
        lambda: np.asarray(rsi(bars["close"].to_numpy(dtype=float), p.window), dtype=float),
    )
    pos = threshold_positions(
        r,
        long_entry=p.lower,
        short_entry=p.upper,
        long_exit=p.exit,
        short_exit=p.exit,
        direction=p.direction,
    )
    return pd.Series(pos, index=bars.index, name="target")


def ma_crossover(data: Any, params: Mapping[str, Any]) -> pd.Series:
    """Moving-average crossover momentum (see :class:`MACrossoverParams`)."""
    p = MACrossoverParams.from_dict(params)
    bars = _single(data, "ma_crossover")
    c = bars["close"].to_numpy(dtype=float)
    avg = sma if p.kind == "sma" else ema
    fast = _memo((p.kind, p.fast), bars, lambda: np.asarray(avg(c, p.fast), dtype=float))
    slow = _memo((p.kind, p.slow), bars, lambda: np.asarray(avg(c, p.slow), dtype=float))
    pos = crossover_positions(fast, slow, direction=p.direction)
    return pd.Series(pos, index=bars.index, name="target")


# --------------------------------------------------------------------------- registry


@dataclasses.dataclass(frozen=True)
class StrategySpec:
    """A built-in strategy: its function, its parameter class, how many symbols it trades,
    and which parameters its indicators depend on (sweeps group runs by them)."""

    name: str
    fn: StrategyFn
    params: type[Config]
    symbols: int
    indicator_params: tuple[str, ...] = ()


STRATEGIES: dict[str, StrategySpec] = {
    "pairs_zscore": StrategySpec(
        "pairs_zscore",
        pairs_zscore,
        PairsZScoreParams,
        2,
        ("hedge", "hedge_lookback", "hedge_refit", "lookback", "y", "x"),
    ),
    "zscore_reversion": StrategySpec(
        "zscore_reversion", zscore_reversion, ZScoreReversionParams, 1, ("lookback",)
    ),
    "rsi_reversion": StrategySpec(
        "rsi_reversion", rsi_reversion, RSIReversionParams, 1, ("window",)
    ),
    "ma_crossover": StrategySpec(
        "ma_crossover", ma_crossover, MACrossoverParams, 1, ("kind", "slow", "fast")
    ),
}


def available_strategies() -> list[str]:
    """Names of the built-in strategies."""
    return sorted(STRATEGIES)


def resolve_strategy(
    strategy: str | StrategyFn, params: Mapping[str, Any] | None
) -> tuple[StrategyFn, str, dict[str, Any]]:
    """``(function, name, full parameters)`` for a strategy name or a user function.

    Built-in names validate ``params`` (unknown names refused, defaults filled in); a user
    function gets ``params`` unchanged and is named ``module.qualname``.
    """
    params = {} if params is None else dict(params)
    if isinstance(strategy, str):
        spec = STRATEGIES.get(strategy)
        if spec is None:
            raise ValidationError(
                "strategy", strategy, f"unknown; built-ins: {available_strategies()}"
            )
        return spec.fn, spec.name, spec.params.from_dict(params).to_dict()
    if callable(strategy):
        name = f"{getattr(strategy, '__module__', '?')}.{getattr(strategy, '__qualname__', repr(strategy))}"
        return strategy, name, params
    raise ValidationError("strategy", repr(strategy), "expected a built-in name or a function")
