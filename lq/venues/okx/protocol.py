"""OKX v5 WebSocket protocol: endpoints, subscribe frames, keepalive, connection limits.

Sources: ``shared/reference/venues.md`` §3 (OKX v5 docs as mirrored in
arakinyemi/exchange-api-docs: ``Introduction/WebSocket/Overview.md``,
``Ws_All_Trades_Channel.md``, ``Ws_Trades_Channel.md``, ``Error_Code/WebSocket/Public.md``).

Id rule: ``tradeId`` is contiguous per instrument, confidence **medium-high**: the docs'
aggregation rule of the ``trades`` channel ("if tradeId=123 and count=3, the message aggregates
trades 123, 122, 121") only holds for consecutive ids; the real 2022 recording has BTC-USDT
338476307..338476375 (69 trades) and BTC-USD-220527 7849..7852 strictly +1; the REST examples
are consecutive. No long ``trades-all`` run has been checked (none was found). lq subscribes to
``trades-all`` (one trade per push, only on the **business** URL); the ``trades`` channel
aggregates fills per taker order and price and is never used for id checks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal

__all__ = [
    "CHANNEL",
    "CONNECTIONS_PER_S",
    "DEFAULT_SYMBOLS",
    "DISPLAY_NAME",
    "ID_RULE",
    "MAX_STREAMS_PER_CONNECTION",
    "NAME",
    "NO_DATA_CLOSE_S",
    "PING_INTERVAL_S",
    "PUBLIC_WS_URL",
    "REST_URL",
    "SUBSCRIBE_OPS_PER_HOUR",
    "SYMBOL_SEP",
    "SYMBOL_WHAT",
    "WS_URL",
    "ping_message",
    "subscribe_messages",
]

NAME = "okx"
WS_URL = "wss://ws.okx.com:8443/ws/v5/business"  # trades-all lives on the business URL only
PUBLIC_WS_URL = "wss://ws.okx.com:8443/ws/v5/public"  # trades, tickers, books
REST_URL = "https://www.okx.com"
ID_RULE: Literal["contiguous", "none"] = "contiguous"
DISPLAY_NAME = "OKX"
SYMBOL_WHAT = "instId"
"""How the venue calls a symbol, for messages."""
SYMBOL_SEP = "-"
"""Spot symbols are ``BASE-QUOTE`` (checked, with an example, at the CLI/adapter boundary)."""
DEFAULT_SYMBOLS = ("BTC-USDT", "ETH-USDT")
CHANNEL = "trades-all"

NO_DATA_CLOSE_S = 30.0
"""OKX closes a connection with no subscription or no data for 30 s (close code 4004)."""

PING_INTERVAL_S: float | None = 20.0
"""Send the text ``ping`` (answered ``pong``) well inside :data:`NO_DATA_CLOSE_S`."""

MAX_STREAMS_PER_CONNECTION: int | None = None
"""No fixed channel count per connection is documented (too many gives close 4008/4009)."""

CONNECTIONS_PER_S = 3
"""Connection requests per second per IP (Overview.md)."""

SUBSCRIBE_OPS_PER_HOUR = 480
"""subscribe/unsubscribe/login requests per connection per hour (Overview.md)."""


def subscribe_messages(symbols: Sequence[str]) -> list[str]:
    """One ``subscribe`` with a ``trades-all`` arg per instrument (one op of the 480/hour).

    >>> subscribe_messages(["BTC-USDT"])
    ['{"id":"1","op":"subscribe","args":[{"channel":"trades-all","instId":"BTC-USDT"}]}']
    """
    if isinstance(symbols, str):
        raise ValueError(f"symbols={symbols!r}: expected a list of instIds, not a string")
    args = [{"channel": CHANNEL, "instId": s} for s in symbols]
    return [json.dumps({"id": "1", "op": "subscribe", "args": args}, separators=(",", ":"))]


def ping_message() -> str | None:
    """OKX's keepalive is the bare text ``ping``."""
    return "ping"
