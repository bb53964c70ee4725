"""Sans-I/O Kraken parser (WebSocket v2): one raw frame in, :mod:`lq.feeds.events` out.

Accepted shapes (``shared/reference/venues.md`` §2.2-2.5, ``shared/data/kraken/``):

* ``{"channel":"trade","type":"snapshot"|"update","data":[{"symbol","side","price","qty",
  "ord_type","trade_id","timestamp"}]}`` -> one :class:`~lq.feeds.events.Trade` per entry,
  ascending ``trade_id``. ``price``/``qty`` are JSON numbers, ``timestamp`` RFC 3339 µs.
* method replies ``{"method":"subscribe"|"unsubscribe","success":...,"result"|"error",
  "req_id"}`` -> :class:`~lq.feeds.events.ControlReply`; ``pong`` -> ``[]``;
  ``{"channel":"heartbeat"}`` and ``status`` -> ``[]``; other channels (book, ticker...) ->
  ``[]`` counted in :attr:`Parser.ignored`; ``{"Error":"Exceeded msg rate"}`` -> ControlReply.
* WS v1 (``wss://ws.kraken.com``): event frames are understood (heartbeat, systemStatus ->
  ``[]``; subscriptionStatus -> ControlReply), but v1 trade arrays carry **no trade id** and are
  refused with a FrameError that says so.

Side: ``side`` is the taker side (docs trade.md), so ``is_buyer_maker = side == "sell"``.
``event_ts = ts`` (a v2 trade frame has no envelope time).

Symbols are Kraken's v2 names (``BTC/USD``): one ``/`` between two asset codes, each of which
must pass :func:`lq.feeds.invariants.symbol_problem`; a trade of a symbol not subscribed is a
FrameError.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any, Literal

import msgspec

from lq.errors import FrameError
from lq.feeds.events import ControlReply, Event, Trade
from lq.feeds.invariants import MAX_TS, MIN_TS, Id, Price, Qty, symbol_problem
from lq.feeds.parsing import GuardedParser, decode, reason, subscribed
from lq.venues.coinbase.parser import iso_to_us

from .protocol import NAME

__all__ = ["Parser", "pair_problem"]

_BY_ID = operator.attrgetter("trade_id")


def pair_problem(symbol: object) -> str | None:
    """Why ``symbol`` is not a Kraken v2 pair name (``BASE/QUOTE``), or ``None``."""
    if not isinstance(symbol, str) or symbol.count("/") != 1:
        return f"symbol={symbol!r}: not a Kraken pair 'BASE/QUOTE'"
    base, _, quote = symbol.partition("/")
    if not base or not quote:
        return f"symbol={symbol!r}: not a Kraken pair 'BASE/QUOTE'"
    why = symbol_problem(base + "-" + quote)
    return None if why is None else why.replace(repr(base + "-" + quote), repr(symbol))


class _Trade(msgspec.Struct, gc=False):
    symbol: str
    side: Literal["buy", "sell"]
    price: Price
    qty: Qty
    trade_id: Id
    timestamp: str


class _TradeFrame(msgspec.Struct, gc=False):
    channel: Literal["trade"]
    type: Literal["snapshot", "update"]
    data: list[_Trade]


class _Envelope(msgspec.Struct):
    channel: str | None = None
    type: str | None = None
    method: str | None = None
    success: bool | None = None
    result: Any = None
    error: Any = None
    Error: Any = None
    req_id: int | None = None
    event: str | None = None
    status: str | None = None
    errorMessage: str | None = None
    reqid: int | None = None
    params: Any = None


_PREFIX = b'{"channel":"trade"'


class Parser(GuardedParser):
    """Turn raw Kraken WS v2 frames into events.

    Parameters
    ----------
    symbols
        The v2 pairs subscribed (``BTC/USD``); a trade of any other pair is refused.
    exchange
        Label stored in every event's ``exchange`` field.

    Examples
    --------
    >>> p = Parser(["BTC/USD"])
    >>> raw = ('{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"sell",'
    ...        '"price":59121.8,"qty":0.00022946,"ord_type":"market","trade_id":72823289,'
    ...        '"timestamp":"2024-08-12T19:38:30.575191Z"}]}')
    >>> [t] = p.parse(raw, 0)
    >>> t.trade_id, t.price, t.qty, t.ts, t.is_buyer_maker
    (72823289, 59121.8, 0.00022946, 1723491510575191, True)
    """

    def __init__(self, symbols: Iterable[str], *, exchange: str = NAME) -> None:
        self.symbols = subscribed(symbols, pair_problem, "pairs")
        self.exchange = exchange
        self.ignored = 0
        """Well-formed frames of channels lq does not model (book, ticker, ...)."""
        self._fast = msgspec.json.Decoder(_TradeFrame, strict=False)
        self._env = msgspec.json.Decoder(_Envelope)

    def _parse(self, b: bytes, raw: bytes | str, recv_ts: int) -> list[Event]:
        if b[:18] == _PREFIX:
            return self._trades(b, raw, recv_ts)
        return self._generic(b, raw, recv_ts)

    def _trades(self, b: bytes, raw: bytes | str, recv_ts: int) -> list[Event]:
        f = decode(self._fast, b, raw, "trade frame")
        out: list[Event] = []
        syms = self.symbols
        ex = self.exchange
        for t in f.data:
            if t.symbol not in syms:
                why = (
                    pair_problem(t.symbol)
                    or f"symbol={t.symbol!r}: not one of the subscribed pairs"
                )
                raise FrameError(f"trade {t.trade_id}: {why}", raw)
            try:
                ts = iso_to_us(t.timestamp)
            except ValueError as exc:
                raise FrameError(f"trade {t.trade_id}: {exc}", raw) from None
            if not MIN_TS <= ts < MAX_TS:
                raise FrameError(
                    f"trade {t.trade_id}: timestamp={t.timestamp!r} outside 2009..2100", raw
                )
            out.append(
                Trade(
                    symbol=t.symbol,
                    trade_id=t.trade_id,
                    price=t.price,
                    qty=t.qty,
                    ts=ts,
                    event_ts=ts,
                    is_buyer_maker=t.side == "sell",  # taker side: sell = buyer was maker
                    recv_ts=recv_ts,
                    exchange=ex,
                )
            )
        if len(out) > 1:
            out.sort(key=_BY_ID)
        return out

    def _generic(self, b: bytes, raw: bytes | str, recv_ts: int) -> list[Event]:
        if not b.strip():
            raise FrameError("empty frame", raw)
        if b.lstrip()[:1] == b"[":
            try:
                msgspec.json.decode(b)
            except msgspec.DecodeError as exc:
                raise FrameError(f"invalid JSON: {reason(exc)}", raw) from None
            raise FrameError(
                "a Kraken WS v1 array frame: v1 trades carry no trade id; "
                "connect to wss://ws.kraken.com/v2",
                raw,
            )
        env = decode(self._env, b, raw, "frame", shape="not a Kraken frame")
        ch = env.channel
        if ch is not None:
            if ch == "trade":
                return self._trades(b, raw, recv_ts)
            if ch not in ("heartbeat", "status"):
                self.ignored += 1
            return []
        m = env.method
        if m is not None:
            if m == "pong":
                return []
            if env.params is not None and env.success is None:
                raise FrameError(f"a client {m[:40]!r} request, not a server frame", raw)
            if env.success is False or env.error is not None:
                return [ControlReply(id=env.req_id, error_msg=str(env.error or "refused"))]
            if env.success is True:
                return [ControlReply(id=env.req_id, result=env.result)]
            raise FrameError(f"method reply {m[:40]!r} without 'success'", raw)
        if env.Error is not None:  # {"Error":"Exceeded msg rate"}
            return [ControlReply(id=None, error_msg=str(env.Error))]
        if env.error is not None:
            return [ControlReply(id=env.req_id, error_msg=str(env.error))]
        e = env.event
        if e is not None:  # WS v1 events
            if e in ("heartbeat", "systemStatus", "pong"):
                return []
            if e == "subscriptionStatus":
                if env.status == "error":
                    return [ControlReply(id=env.reqid, error_msg=env.errorMessage or "error")]
                return [ControlReply(id=env.reqid, result=env.status)]
            raise FrameError(f"unrecognised v1 event {e[:40]!r}", raw)
        raise FrameError(
            "unrecognised frame: none of 'channel', 'method', 'error', 'event' present", raw
        )
