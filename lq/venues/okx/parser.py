"""Sans-I/O OKX v5 parser: one raw WebSocket frame in, :mod:`lq.feeds.events` out.

Accepted shapes (``shared/reference/venues.md`` §3.2-3.3, ``shared/data/okx/``):

* pushes ``{"arg":{"channel":"trades-all","instId"},"data":[{"instId","tradeId","px","sz",
  "side","ts"}]}`` -> one :class:`~lq.feeds.events.Trade` per entry, ascending ``tradeId``;
  the same for the ``trades`` channel **only** when an entry is one trade (no ``count``, as in
  the real 2022 recording, or ``count == "1"``). An aggregated ``trades`` entry (``count`` > 1:
  ids ``tradeId - count + 1 .. tradeId`` folded into one price and size) is a FrameError
  naming the ids it hides: lq reads ``trades-all``.
* ``{"event":"subscribe"|"unsubscribe","arg",...}`` -> ControlReply (``result`` = ``arg``);
  ``{"event":"error","code","msg"}`` and ``{"event":"notice",...}`` (64008: the connection
  will close for a service upgrade) -> ControlReply with ``error_code``/``error_msg``;
  ``channel-conn-count`` events and the text ``pong`` -> ``[]``; other channels (tickers,
  books) -> ``[]`` counted in :attr:`Parser.ignored`.

Side: ``side`` is the taker side, so ``is_buyer_maker = side == "sell"``. ``ts`` is epoch ms
as a string -> µs exactly; ``event_ts = ts`` (no envelope time). ``sz`` is base currency on
SPOT and **contracts** on FUTURES/SWAP/OPTION (stored as sent). The entry's ``instId`` must be
the push's and one of the subscribed ones.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any

import msgspec

from lq.errors import FrameError
from lq.feeds.events import ControlReply, Event, Trade
from lq.feeds.invariants import MAX_TS, MIN_TS, Id, Price, Qty, Time, symbol_problem
from lq.feeds.parsing import GuardedParser, decode, subscribed

from .protocol import NAME

__all__ = ["Parser"]

_BY_ID = operator.attrgetter("trade_id")
_TRADE_CHANNELS = frozenset({"trades-all", "trades"})


class _Arg(msgspec.Struct, gc=False):
    channel: str
    instId: str | None = None


class _Entry(msgspec.Struct, gc=False):
    instId: str
    tradeId: Id
    px: Price
    sz: Qty
    side: str
    ts: Time
    count: Id | None = None


class _Push(msgspec.Struct, gc=False):
    arg: _Arg
    data: list[_Entry]


class _Envelope(msgspec.Struct):
    arg: _Arg | None = None
    data: msgspec.Raw = msgspec.Raw()
    event: str | None = None
    code: str | int | None = None
    msg: str | None = None
    id: str | None = None
    op: str | None = None


_PREFIX = b'{"arg":{"channel":"trades'


class Parser(GuardedParser):
    """Turn raw OKX v5 frames into events.

    Parameters
    ----------
    symbols
        The instIds subscribed (``BTC-USDT``); a trade of any other instrument is refused.
    exchange
        Label stored in every event's ``exchange`` field.

    Examples
    --------
    >>> p = Parser(["BTC-USDT"])
    >>> raw = ('{"arg":{"channel":"trades-all","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT",'
    ...        '"tradeId":"130639474","px":"42219.9","sz":"0.12060306","side":"buy",'
    ...        '"ts":"1630048897897"}]}')
    >>> [t] = p.parse(raw, 0)
    >>> t.trade_id, t.price, t.qty, t.ts, t.is_buyer_maker
    (130639474, 42219.9, 0.12060306, 1630048897897000, False)
    """

    def __init__(self, symbols: Iterable[str], *, exchange: str = NAME) -> None:
        self.symbols = subscribed(symbols, symbol_problem, "instIds")
        self.exchange = exchange
        self.ignored = 0
        """Well-formed pushes of channels lq does not model (tickers, books, ...)."""
        self._push = msgspec.json.Decoder(_Push, strict=False)
        self._env = msgspec.json.Decoder(_Envelope)

    def _parse(self, b: bytes, raw: bytes | str, recv_ts: int) -> list[Event]:
        if b[:25] == _PREFIX:
            return self._trades(b, raw, recv_ts)
        return self._generic(b, raw, recv_ts)

    def _trades(self, b: bytes, raw: bytes | str, recv_ts: int) -> list[Event]:
        f = decode(self._push, b, raw, "trades push")
        ch = f.arg.channel
        if ch not in _TRADE_CHANNELS:
            self.ignored += 1
            return []
        inst = f.arg.instId
        if inst is None:
            raise FrameError(f"{ch} push without arg.instId", raw)
        if inst not in self.symbols:
            why = (
                symbol_problem(inst) or f"instId={inst!r} is not one of the subscribed instruments"
            )
            raise FrameError(f"{ch} push: {why}", raw)
        out: list[Event] = []
        ex = self.exchange
        for e in f.data:
            if e.instId != inst:
                raise FrameError(f"{ch} push for {inst!r} carries a trade of {e.instId!r}", raw)
            if e.count is not None and e.count != 1:
                raise FrameError(
                    f"aggregated {ch} entry: tradeId={e.tradeId} count={e.count} folds ids "
                    f"{e.tradeId - e.count + 1}..{e.tradeId} into one; subscribe to trades-all",
                    raw,
                )
            if e.side != "buy" and e.side != "sell":
                raise FrameError(f"trade {e.tradeId}: side={e.side[:20]!r} is not buy/sell", raw)
            ts = e.ts * 1000
            if not MIN_TS <= ts < MAX_TS:
                raise FrameError(f"trade {e.tradeId}: ts={e.ts} ms outside 2009..2100", raw)
            out.append(
                Trade(
                    symbol=inst,
                    trade_id=e.tradeId,
                    price=e.px,
                    qty=e.sz,
                    ts=ts,
                    event_ts=ts,
                    is_buyer_maker=e.side == "sell",  # taker side: sell = buyer was maker
                    recv_ts=recv_ts,
                    exchange=ex,
                )
            )
        if len(out) > 1:
            out.sort(key=_BY_ID)
        return out

    def _generic(self, b: bytes, raw: bytes | str, recv_ts: int) -> list[Event]:
        s = b.strip()
        if not s:
            raise FrameError("empty frame", raw)
        if s == b"pong":
            return []
        env = decode(self._env, b, raw, "frame", shape="not an OKX frame")
        ev = env.event
        if ev is not None:
            if ev in ("subscribe", "unsubscribe"):
                arg: Any = msgspec.to_builtins(env.arg) if env.arg is not None else None
                return [ControlReply(id=env.id, result=arg)]
            if ev in ("error", "notice"):
                code = _code(env.code)
                return [ControlReply(id=env.id, error_code=code, error_msg=env.msg or "")]
            if ev in ("channel-conn-count", "channel-conn-count-error", "login"):
                return []
            raise FrameError(f"unrecognised event {ev[:40]!r}", raw)
        if env.op is not None:
            raise FrameError(f"a client {env.op[:40]!r} request, not a server frame", raw)
        if env.arg is not None:
            if not env.data:
                raise FrameError(f"push for channel {env.arg.channel!r} has no 'data'", raw)
            if env.arg.channel in _TRADE_CHANNELS:
                return self._trades(b, raw, recv_ts)
            self.ignored += 1
            return []
        raise FrameError("unrecognised frame: neither 'arg' nor 'event' present", raw)


def _code(code: str | int | None) -> int | None:
    if code is None:
        return None
    try:
        return int(code)
    except ValueError:
        return None
