"""Several venues from one process: the same simulated market quoted on each, one port per venue.

:class:`VenueFeedSource` turns a :class:`~lq.exchange.simulator.SimulatorSource` run into one
venue's market: the venue's own symbols (``BTC-USD`` on Coinbase is the simulator's
``BTCUSDT`` asset), its own contiguous trade ids, its prices off the common price by a small
seeded noise (``noise_bps``), and its times ``lag_us`` later. Every venue's source iterates
an identical simulator (same seed, symbols and start time), so the venues share one price
process and the lagging ones follow the leader: cross-venue analytics (dislocation, lead-lag,
Hayashi-Yoshida) have something true to find. :func:`venue_lag_us` gives each venue a fixed
lag (Binance, the reference, none).

:class:`LocalVenues` starts one local exchange per venue (each venue's own imitation, each on
its own port) and stops them together; ``urls()`` says where each is.
"""

from __future__ import annotations

import math
import random
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from lq.errors import ValidationError
from lq.exchange.market import QuoteIn, SymbolSpec, TradeIn
from lq.exchange.simulator import SimulatorSource
from lq.exchange.source import SourceItem, format_e8

__all__ = ["LocalVenues", "VenueFeedSource", "sim_symbol", "venue_lag_us"]


def sim_symbol(base: str) -> str:
    """The simulator symbol carrying an asset's price: ``BTC`` -> ``BTCUSDT``."""
    return f"{base.upper()}USDT"


def venue_lag_us(venue: str) -> int:
    """A fixed, venue-specific delay of the simulated quotes: 0 for Binance (the leader),
    else 20..180 ms by the venue's name (deterministic)."""
    if venue == "binance":
        return 0
    return 20_000 + 20_000 * (zlib.crc32(venue.encode()) % 9)


def _e8(s: str) -> int:
    whole, dot, frac = s.partition(".")
    if dot and len(frac) == 8 and whole.isdigit() and frac.isdigit():  # format_e8's text
        return int(whole) * 100_000_000 + int(frac)
    return int(Decimal(s) * 100_000_000)


class VenueFeedSource:
    """One venue's view of a shared simulated market (see the module docstring).

    Parameters
    ----------
    simulator
        The common market; build every venue's from the same arguments (seed, symbols,
        ``start_time_us``), so they produce the same path.
    symbol_map
        ``{venue symbol: simulator symbol}``, e.g. ``{"BTC-USD": "BTCUSDT"}``.
    lag_us
        Added to every time of this venue.
    noise_bps
        Standard deviation of this venue's price noise around the common price, in basis
        points (rounded to the symbol's tick; 0 keeps the price).
    seed
        Seed of the noise.
    start_ids, start_update_ids
        ``{venue symbol: first id}`` of trades and book updates (default 1): a continued run
        goes on after the ids a database holds for this venue.
    """

    def __init__(
        self,
        *,
        simulator: SimulatorSource,
        symbol_map: Mapping[str, str],
        lag_us: int = 0,
        noise_bps: float = 0.0,
        seed: int = 0,
        start_ids: Mapping[str, int] | None = None,
        start_update_ids: Mapping[str, int] | None = None,
    ) -> None:
        if not symbol_map:
            raise ValidationError("symbol_map", symbol_map, "at least one symbol")
        unknown = sorted(set(symbol_map.values()) - set(simulator.symbols))
        if unknown:
            raise ValidationError("symbol_map", unknown, "not simulated by the simulator given")
        if lag_us < 0 or not math.isfinite(noise_bps) or noise_bps < 0:
            raise ValidationError("lag_us/noise_bps", (lag_us, noise_bps), "must be >= 0")
        self.simulator = simulator
        self.symbol_map = dict(symbol_map)
        self.lag_us = int(lag_us)
        self.noise_bps = float(noise_bps)
        self.seed = seed
        self.speed = simulator.speed
        for name, given in (("start_ids", start_ids), ("start_update_ids", start_update_ids)):
            for k, v in (given or {}).items():
                if k not in self.symbol_map or type(v) is not int or not 1 <= v < 2**63:
                    raise ValidationError(name, {k: v}, "expected {venue symbol: id >= 1}")
        self.start_ids = dict(start_ids or {})
        self.start_update_ids = dict(start_update_ids or {})

    def specs(self) -> list[SymbolSpec]:
        by_sim = {s.symbol: s for s in self.simulator.specs()}
        return [
            SymbolSpec(
                symbol=v,
                base=by_sim[s].base,
                quote=by_sim[s].quote,
                tick_size=by_sim[s].tick_size,
                lot_size=by_sim[s].lot_size,
            )
            for v, s in self.symbol_map.items()
        ]

    def items(self) -> Iterator[SourceItem]:
        rng = random.Random(self.seed)
        ticks = {s.symbol: _e8(s.tick_size) for s in self.simulator.specs()}
        inverse: dict[str, list[str]] = {}
        for v, s in self.symbol_map.items():
            inverse.setdefault(s, []).append(v)
        next_id = {v: self.start_ids.get(v, 1) for v in self.symbol_map}
        book_u = {v: self.start_update_ids.get(v, 1) for v in self.symbol_map}
        lag = self.lag_us
        sd = self.noise_bps / 1e4

        def noisy(price: str, tick: int) -> str:
            if not sd:
                return price
            units = _e8(price) * math.exp(sd * rng.gauss(0.0, 1.0))
            return format_e8(max(tick, round(units / tick) * tick))

        for at, item in self.simulator.items():
            names = inverse.get(item.symbol)
            if not names:
                continue
            tick = ticks[item.symbol]
            for v in names:
                if type(item) is TradeIn:
                    tid = next_id[v]
                    next_id[v] = tid + 1
                    yield (
                        at + lag,
                        TradeIn(
                            v, tid, noisy(item.price, tick), item.qty, item.ts + lag,
                            item.event_ts + lag, item.is_buyer_maker, (v, item.order),
                            item.trade_type,
                        ),
                    )  # fmt: skip
                else:
                    assert isinstance(item, QuoteIn)
                    u = book_u[v]
                    book_u[v] = u + 1
                    bid = noisy(item.bid, tick)
                    spread = _e8(item.ask) - _e8(item.bid)
                    yield (
                        at + lag,
                        item._replace(
                            symbol=v,
                            update_id=u,
                            bid=bid,
                            ask=format_e8(_e8(bid) + spread),
                            ts=item.ts + lag,
                            event_ts=item.event_ts + lag if item.event_ts else 0,
                        ),
                    )


class LocalVenues:
    """One local exchange per venue, started and stopped together.

    Parameters
    ----------
    feeds
        ``[(venue name, [venue symbols])]``; a venue may appear once.
    seed, rate, speed
        The shared simulator's seed, trades/s per symbol, and pace (``None``: full speed).
    noise_bps
        Price noise of every venue but Binance (basis points).
    exchange_options
        ``{venue: {...}}``: keyword arguments for that venue's local exchange.
    start_ids, start_update_ids
        ``{venue: {venue symbol: first id}}``: where each venue's ids go on (a continued run).
    start_prices
        ``{simulator symbol: price}``: the common price process starts there.
    """

    def __init__(
        self,
        feeds: Sequence[tuple[str, Sequence[str]]],
        *,
        seed: int = 7,
        rate: float | None = None,
        speed: float | None = 1.0,
        noise_bps: float = 1.0,
        start_time_us: int | None = None,
        exchange_options: Mapping[str, Mapping[str, Any]] | None = None,
        duration: float | None = None,
        start_ids: Mapping[str, Mapping[str, int]] | None = None,
        start_update_ids: Mapping[str, Mapping[str, int]] | None = None,
        start_prices: Mapping[str, float] | None = None,
    ) -> None:
        from lq.venues.registry import get_venue

        names = [v for v, _ in feeds]
        if len(set(names)) != len(names):
            raise ValidationError("feeds", names, "each venue once (put its symbols together)")
        self.start_time_us = start_time_us or time.time_ns() // 1_000_000 * 1000
        maps: dict[str, dict[str, str]] = {}
        for venue_name, symbols in feeds:
            venue = get_venue(venue_name)
            maps[venue_name] = {s: sim_symbol(venue.instrument(s).base) for s in symbols}
        wanted = sorted({s for m in maps.values() for s in m.values()})
        for lead in ("ETHUSDT", "BTCUSDT"):  # BTC first: the simulator's beta-1 factor asset
            if lead in wanted:
                wanted.remove(lead)
                wanted.insert(0, lead)
        self.exchanges: dict[str, Any] = {}
        opts = dict(exchange_options or {})
        for venue_name, _ in feeds:
            venue = get_venue(venue_name)
            sim = SimulatorSource(
                symbols=wanted,
                seed=seed,
                rate=rate,
                speed=speed,
                start_time_us=self.start_time_us,
                duration=duration,
                start_prices={k: v for k, v in (start_prices or {}).items() if k in wanted},
            )
            src = VenueFeedSource(
                simulator=sim,
                symbol_map=maps[venue_name],
                lag_us=venue_lag_us(venue_name),
                noise_bps=0.0 if venue_name == "binance" else noise_bps,
                seed=seed + zlib.crc32(venue_name.encode()),
                start_ids=dict((start_ids or {}).get(venue_name, {})),
                start_update_ids=dict((start_update_ids or {}).get(venue_name, {})),
            )
            self.exchanges[venue_name] = venue.local_exchange(
                source=src, **dict(opts.get(venue_name, {}))
            )

    def __getitem__(self, venue: str) -> Any:
        return self.exchanges[venue]

    def urls(self) -> dict[str, tuple[str, str]]:
        """``{venue: (ws_url, rest_url)}`` (after :meth:`start`)."""
        return {v: (ex.ws_url, ex.rest_url) for v, ex in self.exchanges.items()}

    async def start(self) -> None:
        """Start every venue's exchange; if one cannot (its port is taken), the ones started
        are stopped again and the error (``lq_port``: the port refused) is raised."""
        started: list[Any] = []
        for ex in self.exchanges.values():
            try:
                await ex.start()
            except OSError as exc:
                exc.lq_port = ex.port  # type: ignore[attr-defined]
                for done in reversed(started):
                    await done.stop()
                raise
            started.append(ex)

    async def stop(self) -> None:
        for ex in self.exchanges.values():
            await ex.stop()

    async def __aenter__(self) -> LocalVenues:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
