"""A seeded market simulator: bursty trades, regimes, jumps, correlated and cointegrated pairs.

The model, on a time grid of ``step`` seconds (all parameters exposed on
:class:`SimulatorParams` and readable as ``SimulatorSource.params``):

- **Market factor** ``f``: a log-price random walk with per-second volatility ``vol_calm`` or
  ``vol_stressed`` (a two-state Markov regime; mean stay ``calm_duration`` /
  ``stressed_duration`` seconds) plus Poisson jumps (``jump_rate`` per second, size
  N(0, ``jump_sd``)).
- **Symbols**: ``log p_i = log p_i(0) + beta_i * f + w_i`` with ``w_i`` an idiosyncratic random
  walk (``idio_vol`` per second); ``beta_i`` is drawn from U(0.5, 1.5) except for the first
  symbol (``beta = 1``, no idiosyncratic part): symbols are correlated through ``f``.
- **Cointegrated pairs** ``pairs = {y: (x, hedge_ratio)}``: ``log p_y = c + hedge_ratio *
  log p_x + u`` with ``u`` an Ornstein-Uhlenbeck spread (half-life ``spread_half_life``
  seconds, stationary sd ``spread_sd``). Default: ETHUSDT cointegrated with BTCUSDT,
  ``hedge_ratio = 0.8`` (when both are simulated).
- **Trades**: taker orders arrive as a discretised Hawkes process per symbol (baseline so that
  the mean is ``rate`` trades/s; each order excites ``branching`` further orders on average,
  decaying at ``decay`` per second; the stressed regime doubles the baseline). An order fills
  ``1 + Geometric(fill_p)`` trades at the touch (bid when the taker sells, ask when it buys),
  quantities log-normal rounded to the lot (at least one lot). Prices are rounded to the tick.
- **Book tickers**: bid = mid rounded down to the tick, ask = bid + one tick (two in the
  stressed regime), sent when the touch changes or trades happen.

Same ``seed`` (and ``start_time_us``) -> the same sequence of trades and quotes.

A run can continue an earlier one (what the collector does on a database that already holds
this simulator's data): ``start_ids``, ``start_update_ids`` and ``start_prices`` make trade
ids, book update ids and prices go on after the stored ones instead of starting again below
them, where every trade would be a duplicate and nothing new would be stored.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from lq.errors import ValidationError
from lq.exchange.market import QuoteIn, SymbolSpec, TradeIn
from lq.exchange.source import SourceItem, format_e8, split_symbol

__all__ = ["KNOWN_SYMBOLS", "SimulatorParams", "SimulatorSource"]

# symbol -> (start price, tick size, lot size), roughly Binance spot in 2024
KNOWN_SYMBOLS: dict[str, tuple[float, str, str]] = {
    "BTCUSDT": (60000.0, "0.01000000", "0.00001000"),
    "ETHUSDT": (3000.0, "0.01000000", "0.00010000"),
    "BNBUSDT": (550.0, "0.01000000", "0.00100000"),
    "SOLUSDT": (150.0, "0.01000000", "0.00100000"),
    "XRPUSDT": (0.6, "0.00010000", "0.10000000"),
}


@dataclass(frozen=True, kw_only=True)
class SimulatorParams:
    """Parameters of the simulated market (see the module docstring for the model)."""

    rate: float = 10.0
    step: float = 0.01
    vol_calm: float = 2e-4
    vol_stressed: float = 6e-4
    calm_duration: float = 300.0
    stressed_duration: float = 60.0
    jump_rate: float = 1 / 600
    jump_sd: float = 0.003
    idio_vol: float = 1e-4
    pairs: Mapping[str, tuple[str, float]] = field(
        default_factory=lambda: {"ETHUSDT": ("BTCUSDT", 0.8)}
    )
    spread_half_life: float = 30.0
    spread_sd: float = 0.001
    branching: float = 0.5
    decay: float = 2.0
    fill_p: float = 0.6
    qty_lots_median: float = 50.0
    qty_sigma: float = 1.0
    latency_ms_max: int = 2


def _spec_for(symbol: str) -> tuple[float, str, str]:
    if symbol in KNOWN_SYMBOLS:
        return KNOWN_SYMBOLS[symbol]
    u = zlib.crc32(symbol.encode()) / 2**32  # deterministic across runs (hash() is salted)
    price = float(10 ** (-1 + 4 * u))  # 0.1 .. 1000, log-uniform
    if price >= 10:
        return round(price, 2), "0.01000000", "0.00100000"
    return round(price, 4), "0.00010000", "0.10000000"


def _e8(s: str) -> int:
    return int(Decimal(s) * 100_000_000)


class SimulatorSource:
    """A simulated market for any number of symbols (see the module docstring).

    Parameters
    ----------
    symbols
        Uppercase symbols, e.g. ``["BTCUSDT", "ETHUSDT"]``; any name works.
    seed
        Seed of the single random generator: same seed, same trades.
    rate
        Mean trades per second per symbol in the calm regime.
    speed
        1.0 real time, N times faster, ``None`` as fast as the clients take it.
    start_time_us
        Exchange time of the first step (µs); ``None``: the wall clock when iteration starts.
    params
        Everything else about the model; ``rate`` overrides ``params.rate``.
    duration
        Stop after this many simulated seconds (``None``: never).
    start_ids, start_update_ids
        First trade id / book-ticker update id per symbol (default 1): an earlier run's last
        id + 1 continues it.
    start_prices
        Price per symbol at the first step (default: the symbol's usual price).
    """

    def __init__(
        self,
        *,
        symbols: Sequence[str],
        seed: int = 0,
        rate: float | None = None,
        speed: float | None = 1.0,
        start_time_us: int | None = None,
        params: SimulatorParams | None = None,
        duration: float | None = None,
        start_ids: Mapping[str, int] | None = None,
        start_update_ids: Mapping[str, int] | None = None,
        start_prices: Mapping[str, float] | None = None,
    ) -> None:
        if not symbols:
            raise ValidationError("symbols", symbols, "at least one symbol is needed")
        if len(set(symbols)) != len(symbols):
            raise ValidationError("symbols", symbols, "duplicate symbols")
        base = params or SimulatorParams()
        if rate is not None:
            if rate <= 0:
                raise ValidationError("rate", rate, "must be positive (trades per second)")
            base = SimulatorParams(**{**base.__dict__, "rate": rate})
        if speed is not None and speed <= 0:
            raise ValidationError("speed", speed, "must be positive or None (as fast as possible)")
        self.symbols = tuple(s.upper() for s in symbols)
        self.seed = seed
        self.speed = speed
        self.start_time_us = start_time_us
        self.params = base
        self.duration = duration
        self.start_ids = {k.upper(): int(v) for k, v in (start_ids or {}).items()}
        self.start_update_ids = {k.upper(): int(v) for k, v in (start_update_ids or {}).items()}
        for name, ids in (
            ("start_ids", self.start_ids),
            ("start_update_ids", self.start_update_ids),
        ):
            bad = {k: v for k, v in ids.items() if not 1 <= v < 2**62}
            if bad:
                raise ValidationError(name, bad, "ids must be between 1 and 2**62")
        self._specs = {s: _spec_for(s) for s in self.symbols}
        for sym, price in (start_prices or {}).items():
            sym = sym.upper()
            if sym in self._specs:
                if not 0 < price < float("inf"):
                    raise ValidationError("start_prices", {sym: price}, "must be finite and > 0")
                self._specs[sym] = (float(price), *self._specs[sym][1:])
        self.pairs = {
            y: (x, beta)
            for y, (x, beta) in base.pairs.items()
            if y in self._specs and x in self._specs and x != y
        }
        """Cointegrated pairs actually simulated: ``{y: (x, hedge_ratio)}`` (log prices)."""

    def specs(self) -> list[SymbolSpec]:
        out = []
        for s in self.symbols:
            b, q = split_symbol(s)
            _, tick, lot = self._specs[s]
            out.append(SymbolSpec(symbol=s, base=b, quote=q, tick_size=tick, lot_size=lot))
        return out

    def items(self) -> Iterator[SourceItem]:
        """Generate the market step by step (a fresh, identical run on every call)."""
        p = self.params
        rng = np.random.default_rng(self.seed)
        n = len(self.symbols)
        syms = self.symbols
        dt = p.step
        start = self.start_time_us
        if start is None:
            start = time.time_ns() // 1_000_000 * 1000
        step_us = round(dt * 1_000_000)
        ticks = np.array([_e8(self._specs[s][1]) for s in syms], dtype=np.int64)
        lots = np.array([_e8(self._specs[s][2]) for s in syms], dtype=np.int64)
        log0 = np.log([self._specs[s][0] for s in syms])
        beta = rng.uniform(0.5, 1.5, n)
        beta[0] = 1.0
        idio_on = np.ones(n)
        idio_on[0] = 0.0
        index = {s: i for i, s in enumerate(syms)}
        pair_idx = [(index[y], index[x], hr) for y, (x, hr) in self.pairs.items()]
        for yi, _, _ in pair_idx:
            idio_on[yi] = 0.0
        kappa = math.log(2) / p.spread_half_life
        ou_a = math.exp(-kappa * dt)
        ou_sd = p.spread_sd * math.sqrt(1 - ou_a * ou_a)
        mean_fills = 1 / p.fill_p
        mu = p.rate / mean_fills * (1 - p.branching)
        decay = math.exp(-p.decay * dt)
        alpha = p.branching * p.decay  # each order adds alpha to the intensity
        f = 0.0
        w = np.zeros(n)
        u = np.zeros(len(pair_idx))
        excite = np.zeros(n)
        stressed = False
        next_id = [self.start_ids.get(s, 1) for s in syms]
        book_u = [self.start_update_ids.get(s, 1) for s in syms]
        last_touch: list[tuple[int, int] | None] = [None] * n
        steps = None if self.duration is None else round(self.duration / dt)
        k = 0
        lat_hi = p.latency_ms_max + 1
        # µs; one more ms: the server sends a frame due within 1 ms at once, and E is whole ms
        sent_after = (p.latency_ms_max + 1) * 1000
        qty_text: dict[int, str] = {}  # format_e8 of the sizes seen (they repeat)
        poisson = rng.poisson
        integers = rng.integers
        while steps is None or k < steps:
            t0 = start + k * step_us
            k += 1
            # regime, factor, idiosyncratic walks, spreads
            leave = dt / (p.stressed_duration if stressed else p.calm_duration)
            if rng.random() < leave:
                stressed = not stressed
            vol = p.vol_stressed if stressed else p.vol_calm
            f += vol * math.sqrt(dt) * rng.standard_normal()
            if rng.random() < p.jump_rate * dt:
                f += p.jump_sd * rng.standard_normal()
            w += p.idio_vol * math.sqrt(dt) * rng.standard_normal(n) * idio_on
            logp = log0 + beta * f + w
            for j, (yi, xi, hr) in enumerate(pair_idx):
                u[j] = ou_a * u[j] + ou_sd * rng.standard_normal()
                logp[yi] = log0[yi] + hr * (logp[xi] - log0[xi]) + u[j]
            mid_e8 = np.exp(logp) * 1e8
            bid_ticks = np.maximum(np.floor(mid_e8 / ticks), 1).astype(np.int64)
            spread = 2 if stressed else 1
            # order arrivals
            lam = (mu * (2.0 if stressed else 1.0) + excite) * dt
            # one scalar draw per symbol: the same numbers as rng.poisson(lam), without the
            # array call's fixed cost (~18 µs a step)
            orders = np.array([poisson(x) for x in lam.tolist()], dtype=np.int64)
            excite *= decay
            excite += alpha * orders
            out: list[tuple[int, int, TradeIn | QuoteIn]] = []
            for i in np.flatnonzero(orders).tolist():
                sym = syms[i]
                tick = int(ticks[i])
                lot = int(lots[i])
                bid = int(bid_ticks[i]) * tick
                cnt = int(orders[i])
                if cnt <= 3:  # scalar draws: the same numbers, cheaper for a few
                    offs = sorted([int(integers(0, step_us)) for _ in range(cnt)])
                else:
                    offs = np.sort(rng.integers(0, step_us, cnt)).tolist()
                sells = (rng.random(cnt) < 0.5).tolist()
                nfills = rng.geometric(p.fill_p, cnt)
                lats = rng.integers(0, lat_hi, cnt).tolist()
                # every fill's size in one draw: the same numbers, in the same order, as one
                # draw per order (numpy's Generator keeps no state between calls)
                units = (
                    np.maximum(
                        np.rint(
                            p.qty_lots_median
                            * np.exp(p.qty_sigma * rng.standard_normal(int(nfills.sum())))
                        ),
                        1,
                    ).astype(np.int64)
                    * lot
                ).tolist()
                prices = (format_e8(bid + spread * tick), format_e8(bid))  # [m]: ask, bid
                j = 0
                tid = next_id[i]
                for o, nf in enumerate(nfills.tolist()):
                    ts = t0 + offs[o]
                    m = sells[o]
                    price = prices[m]
                    e_ts = ts + lats[o] * 1000
                    key = (sym, tid)
                    for q in units[j : j + nf]:
                        qty = qty_text.get(q)
                        if qty is None:
                            qty = qty_text[q] = format_e8(q)
                        # sent once the slowest latency has passed: never before its event
                        # time E (a frame sent earlier showed a negative lag on one machine)
                        out.append(
                            (
                                ts + sent_after,
                                len(out),
                                TradeIn(sym, tid, price, qty, ts, e_ts, m, key),
                            )
                        )
                        tid += 1
                    j += nf
                next_id[i] = tid
                if len(qty_text) > 100_000:
                    qty_text.clear()
            end = t0 + step_us - 1
            for i in range(n):
                touch = (int(bid_ticks[i]), spread)
                if touch == last_touch[i] and not orders[i]:
                    continue
                last_touch[i] = touch
                bid = touch[0] * int(ticks[i])
                ask = bid + spread * int(ticks[i])
                bq, aq = integers(1, 400), integers(1, 400)  # as rng.integers(1, 400, 2)
                q = QuoteIn(
                    syms[i], book_u[i], format_e8(bid), format_e8(int(bq) * int(lots[i])),
                    format_e8(ask), format_e8(int(aq) * int(lots[i])), end,
                )  # fmt: skip
                book_u[i] += 1
                out.append((end, len(out), q))
            out.sort()
            for at, _, item in out:
                yield at, item
