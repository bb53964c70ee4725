"""Binance endpoint presets and the pure planning of stream URLs over connections.

Facts from ``shared/reference/binance-protocol.md``: §1.1 (hosts, raw/combined paths), §1.3
(1024 streams and 5 inbound messages/s per spot connection; ~8000-character URLs fail), §1.4
(``timeUnit=MICROSECOND``), §2 (REST hosts; ``data-api.binance.vision`` has no
``historicalTrades``), §4 (futures ``/public`` and ``/market`` routes, 200 streams, 10 msg/s,
``/fapi/v1`` REST paths; Binance.US hosts).

What each preset can backfill (:meth:`Endpoint.backfill`): ``@aggTrade`` holes everywhere,
through ``aggTrades?fromId`` (security type NONE, no key); ``@trade`` holes through
``historicalTrades``, which is open on ``spot`` (security type NONE since 2023-08-25), needs
an API key (``X-MBX-APIKEY``; HTTP 401, code -2014, without one) on ``usdm`` and ``us``
(MARKET_DATA in their docs), and does not exist on ``spot-data``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import msgspec

from lq.errors import ValidationError
from lq.feeds.invariants import KLINE_INTERVALS

__all__ = ["ENDPOINTS", "Endpoint", "plan_urls", "resolve_endpoint", "stream_name"]

_CHANNEL_RE = re.compile(
    r"^(trade|aggTrade|bookTicker|depth|depth@100ms|kline_(" + "|".join(KLINE_INTERVALS) + r"))$"
)
_SYMBOL_RE = re.compile(r"^[A-Z0-9\-_.]{1,32}$")


class Endpoint(msgspec.Struct, frozen=True, kw_only=True):
    """Where and under which limits to connect.

    Attributes
    ----------
    name
        Preset name (or ``"custom"``).
    ws_url
        WebSocket base, no path: ``wss://stream.binance.com:9443``.
    rest_url
        REST base, no path: ``https://api.binance.com``.
    rest_prefix
        Path prefix of REST market endpoints: ``/api/v3`` (spot) or ``/fapi/v1`` (futures).
    max_streams
        Streams per connection (1024 spot, 200 futures).
    inbound_limit
        Client messages per second per connection the server tolerates (5 spot, 10 futures).
    max_url_len
        Longest URL to build; longer stream lists are split over connections.
    has_historical_trades
        Whether ``historicalTrades`` exists (it does not on ``data-api.binance.vision``).
    historical_trades_needs_key
        Whether ``historicalTrades`` answers only requests with an API key (``X-MBX-APIKEY``):
        USD-M futures and Binance.US (MARKET_DATA security type).
    agg_trade_ids_contiguous
        Whether consecutive aggTrades cover contiguous trade ids (``f == previous l + 1``).
        Not on USD-M futures: aggregates leave insurance-fund and ADL trades out (§4.1), so
        a jump in ``f`` is not a hole there and is not reported as one.
    micros
        Whether to ask for microsecond times (``timeUnit=MICROSECOND``; spot only).
    public_channels
        With ``routed``: channels served on ``/public``; the others go to ``/market``.
    routed
        USD-M futures' 2026 URL split (``/public``, ``/market``).
    """

    name: str
    ws_url: str
    rest_url: str
    rest_prefix: str = "/api/v3"
    max_streams: int = 1024
    inbound_limit: float = 5.0
    max_url_len: int = 8000
    has_historical_trades: bool = True
    historical_trades_needs_key: bool = False
    agg_trade_ids_contiguous: bool = True
    micros: bool = True
    routed: bool = False
    public_channels: frozenset[str] = frozenset({"bookTicker", "depth", "depth@100ms"})

    def backfill(self, kind: str, *, api_key: bool = False) -> str | None:
        """Why holes of ``kind`` (``"trade"`` or ``"aggTrade"``) cannot be backfilled here,
        or ``None`` if they can (``api_key``: whether an API key is configured)."""
        if kind == "aggTrade":
            return None
        if not self.has_historical_trades:
            return (
                f"endpoint={self.name!r} has no historicalTrades: @trade holes cannot be "
                "backfilled there; subscribe aggTrade (backfilled through aggTrades?fromId, "
                "no key) or use the 'spot' preset"
            )
        if self.historical_trades_needs_key and not api_key:
            return (
                f"needs an API key: historicalTrades on endpoint={self.name!r} answers only "
                "requests with an API key (set LQ_BINANCE_API_KEY or [binance] api_key); "
                "without one, subscribe aggTrade, which is backfilled through "
                "aggTrades?fromId with no key"
            )
        return None

    def route(self, channel: str) -> str:
        """Path prefix for a channel: ``""`` unless ``routed`` (``/public`` or ``/market``)."""
        if not self.routed:
            return ""
        return "/public" if channel in self.public_channels else "/market"


ENDPOINTS: dict[str, Endpoint] = {
    "spot": Endpoint(
        name="spot", ws_url="wss://stream.binance.com:9443", rest_url="https://api.binance.com"
    ),
    "spot-data": Endpoint(
        name="spot-data",
        ws_url="wss://data-stream.binance.vision",
        rest_url="https://data-api.binance.vision",
        has_historical_trades=False,
    ),
    "us": Endpoint(
        name="us",
        ws_url="wss://stream.binance.us:9443",
        rest_url="https://api.binance.us",
        micros=False,
        historical_trades_needs_key=True,
    ),
    "usdm": Endpoint(
        name="usdm",
        ws_url="wss://fstream.binance.com",
        rest_url="https://fapi.binance.com",
        rest_prefix="/fapi/v1",
        historical_trades_needs_key=True,
        agg_trade_ids_contiguous=False,
        max_streams=200,
        inbound_limit=10.0,
        micros=False,
        routed=True,
    ),
}
"""Presets: ``spot``, ``spot-data`` (market-data-only hosts), ``us`` (Binance.US), ``usdm``."""


def resolve_endpoint(
    endpoint: str | Endpoint, *, ws_url: str | None = None, rest_url: str | None = None
) -> Endpoint:
    """A preset by name (or an :class:`Endpoint`), with optional URL overrides."""
    if isinstance(endpoint, str):
        try:
            ep = ENDPOINTS[endpoint]
        except KeyError:
            raise ValidationError(
                "endpoint", endpoint, f"unknown preset; expected one of {sorted(ENDPOINTS)}"
            ) from None
    elif isinstance(endpoint, Endpoint):
        ep = endpoint
    else:
        raise ValidationError("endpoint", endpoint, "expected a preset name or an Endpoint")
    changes: dict[str, str] = {}
    if ws_url is not None:
        changes["ws_url"] = ws_url.rstrip("/")
    if rest_url is not None:
        changes["rest_url"] = rest_url.rstrip("/")
    return msgspec.structs.replace(ep, **changes) if changes else ep


def stream_name(symbol: str, channel: str) -> str:
    """``("BTCUSDT", "trade") -> "btcusdt@trade"``; validates both parts."""
    if not _SYMBOL_RE.match(symbol):
        raise ValidationError("symbol", symbol, "expected an uppercase Binance symbol like BTCUSDT")
    if not _CHANNEL_RE.match(channel):
        raise ValidationError(
            "channel",
            channel,
            "expected trade, aggTrade, bookTicker, depth@100ms, depth or kline_<interval>",
        )
    return f"{symbol.lower()}@{channel}"


def _url(ep: Endpoint, route: str, streams: Sequence[str]) -> str:
    q = "&timeUnit=MICROSECOND" if ep.micros else ""
    return f"{ep.ws_url}{route}/stream?streams={'/'.join(streams)}{q}"


def plan_urls(ep: Endpoint, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, tuple[str, ...]]]:
    """Split ``(symbol, channel)`` pairs over combined-stream connection URLs.

    Each URL carries at most ``ep.max_streams`` streams and at most ``ep.max_url_len``
    characters; routed endpoints never mix ``/public`` and ``/market`` streams. Returns
    ``[(url, streams), ...]`` in a stable order.
    """
    by_route: dict[str, list[str]] = {}
    for symbol, channel in pairs:
        name = stream_name(symbol, channel)
        lst = by_route.setdefault(ep.route(channel), [])
        if name not in lst:
            lst.append(name)
    out: list[tuple[str, tuple[str, ...]]] = []
    for route, names in by_route.items():
        chunk: list[str] = []
        for name in names:
            trial = [*chunk, name]
            if chunk and (
                len(trial) > ep.max_streams or len(_url(ep, route, trial)) > ep.max_url_len
            ):
                out.append((_url(ep, route, chunk), tuple(chunk)))
                trial = [name]
            if len(_url(ep, route, trial)) > ep.max_url_len:
                raise ValidationError(
                    "stream", name, f"URL longer than max_url_len={ep.max_url_len}"
                )
            chunk = trial
        if chunk:
            out.append((_url(ep, route, chunk), tuple(chunk)))
    return out
