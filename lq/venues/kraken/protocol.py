"""Kraken spot WebSocket v2 protocol: endpoints, subscribe frames, keepalive, limits.

Sources: ``shared/reference/venues.md`` §2 (docs.kraken.com ``exchange/guides/websockets/
introduction``, ``spot-websocket-v2/trade``, ``websocket-v2/heartbeat``; support.kraken.com
206548367 for the REST limit).

Id rule: ``trade_id`` is "a sequence number unique per trading book", contiguous per pair on
**REST** with confidence high (1,000 consecutive real REST trades of XBTUSDT, ids
10218208..10219207 without a hole). On **WS v2** it is known to be incomplete: krakenfx/api-go
#36 reports ~17 % of trades missing, the ones sharing a timestamp with the previous trade (in
the real REST sample 414 of 1,000 do). So the gap detector fires on Kraken in normal operation
and the holes are filled over REST at about 1 call/s per pair.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal

__all__ = [
    "DEFAULT_SYMBOLS",
    "DISPLAY_NAME",
    "ID_RULE",
    "MAX_STREAMS_PER_CONNECTION",
    "NAME",
    "PING_INTERVAL_S",
    "REST_URL",
    "SNAPSHOT",
    "SYMBOL_ALIASES",
    "SYMBOL_SEP",
    "SYMBOL_WHAT",
    "WS_URL",
    "ping_message",
    "subscribe_messages",
]

NAME = "kraken"
WS_URL = "wss://ws.kraken.com/v2"  # public v2 (docs websockets/introduction)
REST_URL = "https://api.kraken.com"
ID_RULE: Literal["contiguous", "none"] = "contiguous"
DISPLAY_NAME = "Kraken"
SYMBOL_WHAT = "pair"
"""How the venue calls a symbol, for messages."""
SYMBOL_SEP = "/"
"""Spot symbols are ``BASE/QUOTE`` (checked, with an example, at the CLI/adapter boundary)."""
DEFAULT_SYMBOLS = ("BTC/USD", "ETH/USD")
SYMBOL_ALIASES = {"XBT": "BTC", "XDG": "DOGE"}
"""Older Kraken asset codes a user may type, as WS v2 names them (``XBT/USD`` -> ``BTC/USD``)."""

PING_INTERVAL_S: float | None = 30.0
"""Kraken sends ``{"channel":"heartbeat"}`` about once a second once subscribed, so the ping
is only a liveness probe; 30 s is lq's choice (no interval is documented)."""

MAX_STREAMS_PER_CONNECTION: int | None = None
"""No per-connection symbol limit is documented; the WS message rate is dynamic and answered
with ``{"Error":"Exceeded msg rate"}`` (reference §2.5)."""

SNAPSHOT = True
"""Ask for the trade snapshot on subscribe (v2 default is false, docs trade.md): the recent
trades let the gap check start at once."""


def subscribe_messages(symbols: Sequence[str]) -> list[str]:
    """One ``subscribe`` to the ``trade`` channel for all ``symbols`` (v2 names, ``BTC/USD``).

    >>> subscribe_messages(["BTC/USD"])
    ['{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD"],"snapshot":true},"req_id":1}']
    """
    if isinstance(symbols, str):
        raise ValueError(f"symbols={symbols!r}: expected a list of pairs, not a string")
    msg = {
        "method": "subscribe",
        "params": {"channel": "trade", "symbol": list(symbols), "snapshot": SNAPSHOT},
        "req_id": 1,
    }
    return [json.dumps(msg, separators=(",", ":"))]


def ping_message() -> str | None:
    """The v2 app-level ping; Kraken answers ``{"method":"pong","req_id":...}``."""
    return '{"method":"ping","req_id":0}'
