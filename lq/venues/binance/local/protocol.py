"""Binance WebSocket protocol rules, without I/O: paths, control messages, inbound limit.

Everything here is pure: the server (:mod:`lq.venues.binance.local.server`) feeds it the request path,
each inbound text message and the arrival times of inbound frames, and sends what it returns.

Sources for every rule are in ``shared/reference/binance-protocol.md`` (sections 1.1-1.5, 6):

- paths ``/ws``, ``/ws/<s1>/<s2>``, ``/ws/<any segment>`` (no streams: a listen key, or
  ccxt's ``/ws/<index>`` before its SUBSCRIBE), ``/stream``, ``/stream?streams=<s1>/<s2>``, optional
  ``timeUnit=MICROSECOND|MILLISECOND`` (any case), also under USD-M futures' ``/public`` and
  ``/market`` routes (§4.1; lq serves every stream on both); anything else is HTTP 400
  ``Invalid request path`` (text/plain);
- control methods ``SUBSCRIBE``, ``UNSUBSCRIBE``, ``LIST_SUBSCRIPTIONS``, ``SET_PROPERTY``,
  ``GET_PROPERTY``; replies ``{"result":null,"id":N}`` and ``{"error":{"code":C,"msg":M},"id":N}``
  with Binance's codes 0-3 (and 4 ``Too many subscriptions`` past 1024 streams);
- a syntactically valid stream for a symbol that does not exist is accepted silently;
- more than ``limit`` inbound frames (pings, pongs, text) in any rolling second closes the
  connection with 1008 ``Too many requests``.

lq's own choices where Binance is undocumented: a stream name whose symbol is not lowercase,
or an invalid stream in the URL, is refused (control error ``invalid stream`` / HTTP 400).
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from lq.feeds.invariants import KLINE_INTERVALS

__all__ = [
    "INVALID_PATH",
    "KLINE_INTERVALS",
    "ConnectionSpec",
    "ControlResult",
    "InboundLimiter",
    "Session",
    "handle_control",
    "is_valid_stream",
    "parse_path",
    "split_stream",
]

TimeUnit = Literal["MILLISECOND", "MICROSECOND"]

INVALID_PATH = "Invalid request path"
_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
_KLINE = "|".join(re.escape(i) for i in KLINE_INTERVALS)
# Streams Binance serves per symbol (section 1.6); the ones lq.exchange does not produce
# (depth, tickers, ...) are accepted and stay silent, like an unknown symbol.
_STREAM_RE = re.compile(
    r"^(?P<symbol>[a-z0-9_\-.]{1,40})@(?P<kind>trade|aggTrade|bookTicker|"
    rf"kline_(?:{_KLINE})(?:@\+08:00)?|depth(?:5|10|20)?(?:@100ms|@1000ms)?|"
    r"miniTicker|ticker|ticker_(?:1h|4h|1d)|avgPrice|blockTrade|referencePrice)$"
)
_GLOBAL_STREAMS = frozenset(
    {"!miniTicker@arr", "!ticker_1h@arr", "!ticker_4h@arr", "!ticker_1d@arr"}
)
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_ID_STR_RE = re.compile(r"^[A-Za-z0-9]{1,36}$")
_INT64 = (-(2**63), 2**63 - 1)


def is_valid_stream(name: str) -> bool:
    """Whether ``name`` is a stream Binance would accept (symbol lowercase)."""
    return name in _GLOBAL_STREAMS or _STREAM_RE.match(name) is not None


def split_stream(name: str) -> tuple[str, str]:
    """``"btcusdt@kline_1m"`` -> ``("BTCUSDT", "kline_1m")``; global streams give ``("", name)``."""
    symbol, _, kind = name.partition("@")
    if not kind:
        return "", name
    return symbol.upper(), kind


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionSpec:
    """What the URL of a WebSocket request asks for."""

    streams: tuple[str, ...]
    combined: bool
    time_unit: TimeUnit


def parse_path(path: str, *, max_streams: int = 1024) -> ConnectionSpec | None:
    """Parse a request path; ``None`` means HTTP 400 ``Invalid request path``.

    Parameters
    ----------
    path
        The request target, e.g. ``/stream?streams=btcusdt@trade/ethusdt@trade``.
    max_streams
        Streams allowed on one connection (Binance: 1024).
    """
    parts = urlsplit(path)
    route = unquote(parts.path)
    for prefix in ("/public/", "/market/"):  # USD-M futures' routes (the 2026 URL split)
        if route.startswith(prefix):
            route = route[len(prefix) - 1 :]
            break
    query = parse_qs(parts.query, keep_blank_values=True)
    unit_values = query.pop("timeUnit", ["MILLISECOND"])
    unit = unit_values[-1].upper()
    if unit not in ("MILLISECOND", "MICROSECOND"):
        return None
    time_unit: TimeUnit = "MICROSECOND" if unit == "MICROSECOND" else "MILLISECOND"
    if route in ("/ws", "/ws/"):
        if query:
            return None
        return ConnectionSpec(streams=(), combined=False, time_unit=time_unit)
    if route.startswith("/ws/"):
        if query:
            return None
        names = [s for s in route[4:].split("/") if s]
        combined = False
        if len(names) == 1 and "@" not in names[0] and _SEGMENT_RE.match(names[0]):
            # Binance accepts any segment here, as it does a listen key: ccxt opens
            # /ws/<index> and then SUBSCRIBEs (lq's #12)
            return ConnectionSpec(streams=(), combined=False, time_unit=time_unit)
    elif route in ("/stream", "/stream/"):
        raw = query.pop("streams", [""])[-1]
        if query:
            return None
        names = [s for s in unquote(raw).split("/") if s]
        combined = True
    else:
        return None
    if len(names) > max_streams or not all(is_valid_stream(n) for n in names):
        return None
    return ConnectionSpec(
        streams=tuple(dict.fromkeys(names)), combined=combined, time_unit=time_unit
    )


@dataclass(slots=True)
class Session:
    """Mutable per-connection subscription state (ordered streams, ``combined`` property)."""

    streams: dict[str, None] = field(default_factory=dict)
    combined: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlResult:
    """The reply to send and the subscription changes a control message made."""

    reply: bytes
    subscribed: tuple[str, ...] = ()
    unsubscribed: tuple[str, ...] = ()


def _reply(result: object, req_id: object) -> bytes:
    return json.dumps({"result": result, "id": req_id}, separators=(",", ":")).encode()


def _error(code: int, msg: str, req_id: object) -> ControlResult:
    body = {"error": {"code": code, "msg": msg}, "id": req_id}
    return ControlResult(reply=json.dumps(body, separators=(",", ":")).encode())


def _valid_id(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return _INT64[0] <= value <= _INT64[1]
    return isinstance(value, str) and _ID_STR_RE.match(value) is not None


def _end_column(text: str) -> int:
    """Column (1-based) just past the last character, as serde reports ``missing field``."""
    return len(text.rstrip().splitlines()[-1]) if text.strip() else 0


def handle_control(session: Session, raw: str | bytes, *, max_streams: int = 1024) -> ControlResult:
    """Apply one inbound text message to ``session`` and return Binance's exact reply.

    Parameters
    ----------
    session
        The connection's subscriptions; mutated on success.
    raw
        The text frame as received.
    max_streams
        Subscriptions allowed per connection; past it the reply is error 4
        ``Too many subscriptions`` and nothing is subscribed.
    """
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        msg = json.loads(text)
    except json.JSONDecodeError as exc:
        return _error(
            3, f"Invalid JSON: expected value at line {exc.lineno} column {exc.colno}", None
        )
    if not isinstance(msg, dict):
        return _error(2, "Invalid request: expected a JSON object at line 1 column 1", None)
    req_id = msg.get("id")
    if "method" not in msg:
        return _error(
            2, f"Invalid request: missing field `method` at line 1 column {_end_column(text)}", None
        )
    method = msg["method"]
    if method not in _METHODS:
        shown = method if isinstance(method, str) else json.dumps(method)
        token = json.dumps(method)
        col = text.find(token) + len(token) if token in text else _end_column(text)
        expected = ", ".join(f"`{m}`" for m in _METHODS)
        return _error(
            2,
            f"Invalid request: unknown variant `{shown}`, expected one of {expected} "
            f"at line 1 column {col}",
            None,
        )
    if "id" not in msg or not _valid_id(req_id):
        return _error(2, "Invalid request: request ID must be an unsigned integer", None)
    params = msg.get("params", [])
    if not isinstance(params, list):
        return _error(2, "Invalid request: params must be an array", req_id)

    if method == "LIST_SUBSCRIPTIONS":
        if params:
            return _error(2, "Invalid request: too many parameters", req_id)
        return ControlResult(reply=_reply(list(session.streams), req_id))

    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        if not all(isinstance(p, str) and is_valid_stream(p) for p in params):
            return _error(2, "Invalid request: invalid stream", req_id)
        if method == "SUBSCRIBE":
            new = [p for p in dict.fromkeys(params) if p not in session.streams]
            if len(session.streams) + len(new) > max_streams:
                return _error(4, "Too many subscriptions", req_id)
            for p in new:
                session.streams[p] = None
            return ControlResult(reply=_reply(None, req_id), subscribed=tuple(new))
        gone = [p for p in dict.fromkeys(params) if p in session.streams]
        for p in gone:
            del session.streams[p]
        return ControlResult(reply=_reply(None, req_id), unsubscribed=tuple(gone))

    # SET_PROPERTY / GET_PROPERTY
    if not params or not isinstance(params[0], str):
        return _error(2, "Invalid request: property name must be a string", req_id)
    if params[0] != "combined":
        return _error(0, "Unknown property", req_id)
    if method == "GET_PROPERTY":
        if len(params) > 1:
            return _error(2, "Invalid request: too many parameters", req_id)
        return ControlResult(reply=_reply(session.combined, req_id))
    if len(params) > 2:
        return _error(2, "Invalid request: too many parameters", req_id)
    if len(params) < 2 or not isinstance(params[1], bool):
        return _error(1, "Invalid value type: expected Boolean", req_id)
    session.combined = params[1]
    return ControlResult(reply=_reply(None, req_id))


class InboundLimiter:
    """Counts inbound frames in a rolling one-second window.

    ``hit(now)`` records one frame at monotonic time ``now`` (seconds) and returns ``False``
    when that frame makes more than ``limit`` frames within the last second: the server then
    closes with 1008 ``Too many requests``.
    """

    __slots__ = ("_times", "limit")

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._times: deque[float] = deque()

    def hit(self, now: float) -> bool:
        times = self._times
        times.append(now)
        while times and times[0] <= now - 1.0:
            times.popleft()
        return len(times) <= self.limit
