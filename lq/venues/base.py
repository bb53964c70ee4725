"""The venue adapter interface: what the framework asks of a venue, and nothing more.

A venue is one folder, ``lq/venues/<name>/``, and one object implementing :class:`Venue`.
The framework (``lq.feeds`` connection loop and sequencer, ``lq.exchange`` server core,
``lq.collector``, the store, the dashboard) only ever talks to a venue through this object,
found by name in :mod:`lq.venues.registry`. Adding a venue touches none of them.

Two ways to write one:

* **Pure protocol modules** (Coinbase, Kraken, OKX): ``protocol.py``, ``parser.py``,
  ``rest.py``, ``instruments.py``, ``imitation.py`` with the names listed in
  :class:`ProtocolVenue` (sans-I/O: no sockets, no asyncio, no httpx). The registry wraps
  the folder in a :class:`ProtocolVenue`, whose client is
  :class:`~lq.feeds.venue_client.VenueClient` (the shared connection loop driven by the
  modules) and whose local exchange is :class:`~lq.exchange.venue_server.VenueExchange` (the
  shared server core driven by ``imitation.py``).
* **Its own client and imitation** (Binance, whose combined-stream URLs, aggTrades,
  bookTickers, klines and weight-limited REST predate this interface): the folder's
  ``__init__.py`` defines ``VENUE``, an object with the :class:`Venue` attributes. Its client
  still subclasses the shared loop (:class:`~lq.feeds.connection.FeedClient`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, Literal, Protocol, runtime_checkable

from lq.errors import ValidationError
from lq.venues.instrument import Instrument, canonical_asset

__all__ = [
    "IdRule",
    "LocalVenue",
    "ProtocolVenue",
    "Venue",
    "guess_instrument",
]

IdRule = Literal["contiguous", "none"]
"""``"contiguous"``: trade ids are +1 per instrument, so gaps are found and backfilled;
``"none"``: the venue has no exact ids, and the gap ledger says "not checkable"."""


@runtime_checkable
class LocalVenue(Protocol):
    """A running imitation of one venue on 127.0.0.1 (what ``Venue.local_exchange`` returns)."""

    @property
    def label(self) -> str:
        """The ``exchange`` label of the data it serves (``local`` or ``replay``...)."""
        ...

    @property
    def ws_url(self) -> str: ...

    @property
    def rest_url(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def trades(self, symbol: str) -> list[Any]:
        """The exchange's truth: every trade of ``symbol`` produced so far."""
        ...

    def inject(self, kind: str, **params: Any) -> None:
        """Break something now (``drop_tcp``, ``close_1001``, ``stall``, ``skip_ids``...)."""
        ...


@runtime_checkable
class Venue(Protocol):
    """One venue's adapter.

    Attributes
    ----------
    name
        Registry key and the ``exchange`` label of live rows (``binance``, ``coinbase``...).
    id_rule
        :data:`IdRule`.
    ws_url, rest_url
        The real production endpoints (the defaults a user gets).
    default_symbols
        What ``--symbols <venue>:`` means when no symbol is given.
    """

    name: str
    id_rule: IdRule
    ws_url: str
    rest_url: str
    default_symbols: tuple[str, ...]

    def normalize_symbols(self, symbols: Sequence[str]) -> list[str]:
        """The venue's spelling of user-typed symbols; raises ValidationError with the
        expected form for a malformed one."""
        ...

    def instrument(self, symbol: str) -> Instrument:
        """The canonical instrument of a venue symbol (best effort without the venue's list)."""
        ...

    def client(
        self,
        *,
        symbols: Sequence[str],
        sink: Callable[[Any], None],
        exchange_label: str,
        ws_url: str | None = None,
        rest_url: str | None = None,
        channels: Sequence[str] = ("trade",),
        resume_ids: Mapping[tuple[str, Any], int] | None = None,
        record: Any = None,
        **options: Any,
    ) -> Any:
        """A :class:`~lq.feeds.connection.FeedClient` for these symbols (not started)."""
        ...

    def local_exchange(self, *, source: Any, **options: Any) -> LocalVenue:
        """The local imitation of this venue serving ``source`` (not started)."""
        ...


_SPLIT = re.compile(r"[-/_:]")


def guess_instrument(venue: str, symbol: str) -> Instrument:
    """``BTC-USD`` / ``BTC/USD`` / ``XBT/USD`` / ``BTCUSDT`` -> an :class:`Instrument` by the
    symbol's own spelling (aliases such as ``XBT`` -> ``BTC`` from
    :data:`~lq.venues.instrument.ASSET_ALIASES`). Tick and lot sizes are unknown (``None``):
    they come only from the venue's instrument list."""
    parts = [p for p in _SPLIT.split(symbol) if p]
    if len(parts) >= 2:
        base, quote = parts[0], parts[1]
    else:
        from lq.exchange.source import split_symbol

        base, quote = split_symbol(symbol.upper())
    return Instrument(
        venue=venue, symbol=symbol, base=canonical_asset(base), quote=canonical_asset(quote)
    )


class ProtocolVenue:
    """A venue described by pure protocol modules (the contract in ``docs/architecture.md``).

    ``protocol``: ``NAME``, ``WS_URL``, ``REST_URL``, ``ID_RULE``,
    ``subscribe_messages(symbols) -> list[str]``, ``ping_message() -> str | None``,
    ``PING_INTERVAL_S``, ``MAX_STREAMS_PER_CONNECTION``.
    ``parser``: ``Parser(symbols, *, exchange)`` with ``parse(raw, recv_ts) -> list[Event]``
    raising only ``FrameError``.
    ``rest``: ``HISTORY_PATH``, ``history_request(symbol, *, after_id, cursor, limit)``,
    ``decode_history(body, symbol, *, exchange, recv_ts) -> HistoryPage`` (``trades``,
    ``next_cursor``, ``rejected``), ``classify_error(status, headers, body)``,
    ``RATE_LIMIT_PER_S``; optional ``HISTORY_LIMIT`` or ``MAX_LIMIT`` (page size asked for,
    default 100) and ``first_cursor(after_id, after_ts_us)`` (the first page's cursor, given
    the time of the trade before the hole: for venues that page by time, Kraken).
    ``instruments`` (optional): ``INSTRUMENTS_PATH``, ``decode_instruments(body)``.
    ``imitation`` (optional, for the local exchange): ``ws_path_ok``, ``on_client_text``,
    ``trade_frames``, ``heartbeat_frames``, ``rest_history``, ``rest_rate_limited``,
    ``rest_instruments``, ``drop_same_timestamp``.
    """

    def __init__(
        self,
        *,
        protocol: ModuleType,
        parser: ModuleType,
        rest: ModuleType,
        instruments: ModuleType | None = None,
        imitation: ModuleType | None = None,
        default_symbols: Sequence[str] = (),
    ) -> None:
        self.protocol = protocol
        self.parser_module = parser
        self.rest = rest
        self.instruments = instruments
        self.imitation = imitation
        self.name: str = protocol.NAME
        rule = getattr(protocol, "ID_RULE", "contiguous")
        if rule not in ("contiguous", "none"):
            raise ValidationError(f"{self.name}.ID_RULE", rule, "expected 'contiguous' or 'none'")
        self.id_rule: IdRule = "none" if rule == "none" else "contiguous"
        self.ws_url: str = protocol.WS_URL
        self.rest_url: str = protocol.REST_URL
        self.default_symbols = tuple(
            default_symbols or getattr(protocol, "DEFAULT_SYMBOLS", ()) or ()
        )
        self.channels: tuple[str, ...] = tuple(getattr(protocol, "CHANNELS", ("trade",)))
        """The ``--channels`` names this venue offers (the shared client follows trades)."""

    def __repr__(self) -> str:
        return f"ProtocolVenue({self.name!r}, id_rule={self.id_rule!r})"

    def normalize_symbols(self, symbols: Sequence[str]) -> list[str]:
        out = []
        for s in symbols:
            t = s.strip().upper()
            if not t or any(c.isspace() for c in t):
                raise ValidationError("--symbols", s, f"not a {self.name} symbol")
            out.append(self._spot_symbol(s, t))
        try:  # the parser's own rule for this venue's symbols (Kraken: BASE/QUOTE, ...)
            self.parser_module.Parser(out)
        except ValueError as exc:
            why = str(exc).removeprefix("symbols: ")
            eg = ", ".join(self.default_symbols[:2])
            raise ValidationError(
                "--symbols", ",".join(symbols), f"{why}" + (f" (e.g. {eg})" if eg else "")
            ) from None
        return out

    def _spot_symbol(self, given: str, t: str) -> str:
        """``t`` by the venue's naming rule (``protocol.SYMBOL_SEP``: ``BASE-QUOTE`` or
        ``BASE/QUOTE``, the only spot form lq follows), aliases (``SYMBOL_ALIASES``: Kraken's
        ``XBT`` -> ``BTC``) replaced; else one-line ValidationError naming the form, an
        example and, when the symbol splits, the spelling meant."""
        sep = getattr(self.protocol, "SYMBOL_SEP", None)
        if not sep:
            return t
        parts = t.split(sep)
        if len(parts) == 2 and all(p.isascii() and p.isalnum() for p in parts):
            aliases = getattr(self.protocol, "SYMBOL_ALIASES", {})
            return sep.join(aliases.get(p, p) for p in parts)
        eg = self.default_symbols[0] if self.default_symbols else f"BTC{sep}USD"
        disp = getattr(self.protocol, "DISPLAY_NAME", self.name)
        what = getattr(self.protocol, "SYMBOL_WHAT", "symbol")
        art = "an" if disp[:1] in "AEIOU" else "a"
        form = f"not {art} {disp} {what} 'BASE{sep}QUOTE' (spot), e.g. {eg}"
        if len(parts) > 2:
            why = f"a derivative or dated instrument, {form}: lq follows spot trades"
            raise ValidationError("--symbols", given, why)
        hint = ""
        try:
            g = guess_instrument(self.name, t.replace("-", "/").replace("_", "/"))
            if g.base and g.quote and g.base != t:
                hint = f" (did you mean {g.base}{sep}{g.quote}?)"
        except (ValueError, IndexError):  # pragma: no cover - a guess only
            pass
        raise ValidationError("--symbols", given, f"{form}{hint}")

    def check_channels(self, channels: Sequence[str]) -> tuple[str, ...]:
        """``channels`` if this venue offers every one; else ValidationError naming the
        channels it does offer (one line)."""
        got = tuple(c.strip() for c in channels if c.strip())
        if isinstance(channels, str) or not got:
            raise ValidationError(
                "--channels", channels, f"expected {self.name} channels: {', '.join(self.channels)}"
            )
        bad = [c for c in got if c not in self.channels]
        if bad:
            raise ValidationError(
                "--channels",
                ",".join(got),
                f"{self.name} does not offer {', '.join(bad)}; it offers: "
                f"{', '.join(self.channels)}",
            )
        return tuple(dict.fromkeys(got))

    def instrument(self, symbol: str) -> Instrument:
        return guess_instrument(self.name, symbol)

    def client(
        self,
        *,
        symbols: Sequence[str],
        sink: Callable[[Any], None],
        exchange_label: str,
        ws_url: str | None = None,
        rest_url: str | None = None,
        channels: Sequence[str] = ("trade",),
        resume_ids: Mapping[tuple[str, Any], int] | None = None,
        record: Any = None,
        **options: Any,
    ) -> Any:
        from lq.feeds.venue_client import VenueClient

        if tuple(channels) != ():
            self.check_channels(channels)
        options.pop("api_key", None)  # a Binance setting
        options.pop("endpoint", None)
        return VenueClient(
            venue=self,
            symbols=symbols,
            sink=sink,
            exchange_label=exchange_label,
            ws_url=ws_url,
            rest_url=rest_url,
            resume_ids=resume_ids,
            record=record,
            **options,
        )

    def local_exchange(self, *, source: Any, **options: Any) -> LocalVenue:
        from lq.exchange.venue_server import VenueExchange

        if self.imitation is None:
            raise ValidationError("venue", self.name, "has no local imitation (imitation.py)")
        return VenueExchange(venue=self, source=source, **options)
