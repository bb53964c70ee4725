"""Coinbase Advanced Trade WebSocket protocol: endpoints, subscribe frames, keepalive, limits.

Sources: ``shared/reference/venues.md`` §1 (docs.cdp.coinbase.com ``advanced-trade-apis/
guides/websocket``, ``websocket-channels.md``, ``websocket-rate-limits.md``, ``exchange/
rest-api/rate-limits.md``).

Id rule: ``trade_id`` is contiguous per product. Confidence **high** (reference §1.4): every
one of 10 products in the real 2021 Exchange ``matches`` recording is strictly +1 from
``last_match`` on (107 trades), the real Advanced Trade frames 1851..1854 carry 929248657..663
without a hole, and ccxt's maintainer calls the ids linear (ccxt#22617). Batches arrive
newest-first (ccxt PR#29477): the parser sorts each frame ascending before the id check.
The ``ticker`` channel skips ids and is never used for gap detection.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal

__all__ = [
    "CONNECTIONS_PER_S",
    "DEFAULT_SYMBOLS",
    "DISPLAY_NAME",
    "ID_RULE",
    "MAX_STREAMS_PER_CONNECTION",
    "MESSAGES_PER_S",
    "NAME",
    "PING_INTERVAL_S",
    "REST_URL",
    "SILENT_CLOSE_S",
    "SYMBOL_SEP",
    "SYMBOL_WHAT",
    "WS_URL",
    "ping_message",
    "subscribe_messages",
]

NAME = "coinbase"
WS_URL = "wss://advanced-trade-ws.coinbase.com"  # public market data (docs guides/websocket)
REST_URL = "https://api.exchange.coinbase.com"  # Exchange REST: the only id-cursor trade history
ID_RULE: Literal["contiguous", "none"] = "contiguous"
DISPLAY_NAME = "Coinbase"
SYMBOL_WHAT = "product id"
"""How the venue calls a symbol, for messages."""
SYMBOL_SEP = "-"
"""Spot symbols are ``BASE-QUOTE`` (checked, with an example, at the CLI/adapter boundary)."""
DEFAULT_SYMBOLS = ("BTC-USD", "ETH-USD")

PING_INTERVAL_S: float | None = None
"""No app-level ping: the ``heartbeats`` channel (1 frame/s) keeps the subscriptions open."""

MAX_STREAMS_PER_CONNECTION: int | None = None
"""No per-connection product limit is documented for Advanced Trade (reference §1.2)."""

CONNECTIONS_PER_S = 8
"""New connections per second per IP (websocket-rate-limits.md; nautilus uses 8/s too)."""

MESSAGES_PER_S = 8
"""Unauthenticated client messages per second per IP (websocket-rate-limits.md)."""

SILENT_CLOSE_S = 60.0
"""Channels close after 60-90 s without updates unless ``heartbeats`` is subscribed
(websocket-channels.md): a connection silent this long is dead."""


def subscribe_messages(symbols: Sequence[str]) -> list[str]:
    """The frames to send after connecting: ``market_trades`` for ``symbols``, then
    ``heartbeats`` (one channel per message, as the Advanced Trade API requires).

    >>> subscribe_messages(["BTC-USD"])[0]
    '{"type":"subscribe","product_ids":["BTC-USD"],"channel":"market_trades"}'
    """
    if isinstance(symbols, str):
        raise ValueError(f"symbols={symbols!r}: expected a list of product ids, not a string")
    ids = list(symbols)
    return [
        json.dumps(
            {"type": "subscribe", "product_ids": ids, "channel": "market_trades"},
            separators=(",", ":"),
        ),
        json.dumps(
            {"type": "subscribe", "product_ids": ids, "channel": "heartbeats"},
            separators=(",", ":"),
        ),
    ]


def ping_message() -> str | None:
    """Coinbase needs no app-level ping (see :data:`PING_INTERVAL_S`)."""
    return None
