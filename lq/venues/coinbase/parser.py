"""Sans-I/O Coinbase parser: one raw WebSocket frame in, :mod:`lq.feeds.events` out.

Accepted shapes (``shared/reference/venues.md`` §1.3, §1.5; real frames in
``shared/data/coinbase/``):

* Advanced Trade ``{"channel":"market_trades","timestamp","sequence_num","events":[{"type":
  "snapshot"|"update","trades":[...]}]}``: one :class:`~lq.feeds.events.Trade` per trade,
  sorted by ``trade_id`` ascending (Coinbase packs 250 ms of trades newest first);
  ``channel":"subscriptions"`` -> :class:`~lq.feeds.events.ControlReply` (``result`` = the
  subscription map); ``heartbeats`` -> ``[]``; other channels -> ``[]`` (counted in
  :attr:`Parser.ignored`).
* Legacy Exchange feed (``ws-feed.exchange.coinbase.com``, the 2021 recording):
  ``match``/``last_match`` -> Trade; ``subscriptions`` -> ControlReply; ``heartbeat`` and the
  book/ticker types -> ``[]``.
* ``{"type":"error","message":...}`` -> ControlReply with ``error_msg``.

Side convention (one for every lq venue): ``is_buyer_maker`` is True when the **taker sold**.
Advanced Trade ``side`` is the taker side (``SELL`` -> True); the Exchange feed's and Exchange
REST's ``side`` is the **maker** side (docs get-product-trades: "A buy side indicates a
down-tick because the maker was a buy order"), so ``buy`` -> True.

Times: ``time`` (µs ISO-8601, trailing zeros trimmed) is ``ts``; the envelope ``timestamp``
(ns ISO-8601) floored to µs is ``event_ts`` (Exchange frames have none: ``event_ts = ts``).
Both are parsed from their digits, never through a float. Every field is range-checked by the
rules of :mod:`lq.feeds.invariants`, the product must be a subscribed one, and anything else
is a :class:`~lq.errors.FrameError`; nothing else leaves :meth:`Parser.parse`.

The per-connection ``sequence_num`` is followed: :attr:`Parser.sequence_num` is the last one
seen and :attr:`Parser.sequence_breaks` counts jumps (a lost frame on this connection; one
parser per connection).
"""

from __future__ import annotations

import datetime as _dt
import operator
from collections.abc import Iterable
from typing import Any, Literal

import msgspec

from lq.errors import FrameError
from lq.feeds.events import ControlReply, Event, Trade
from lq.feeds.invariants import MAX_TS, MIN_TS, Id, Price, Qty, symbol_problem
from lq.feeds.parsing import GuardedParser, decode, subscribed

from .protocol import NAME

__all__ = ["Parser", "iso_to_us"]

_MAX_CACHED = 4096
_seconds: dict[str, int] = {}
_DIGITS = frozenset("0123456789")


def iso_to_us(s: str) -> int:
    """``"2025-12-31T06:00:12.44524Z"`` -> µs since the epoch, exactly (digits beyond µs are
    dropped: floor). Accepts ``YYYY-MM-DDTHH:MM:SS[.f{1,9}]`` followed by ``Z`` or
    ``+00:00``; raises ``ValueError`` naming the problem otherwise.

    >>> iso_to_us("2025-12-31T06:00:12.516946132Z")
    1767160812516946
    >>> iso_to_us("2021-04-17T16:44:05Z")
    1618677845000000
    """
    base = _seconds.get(s[:19])  # hot path: the second was seen before (validated then)
    if base is not None and s[-1:] == "Z":
        n = len(s)
        if n == 27:  # µs digits, the most common form
            frac = s[20:26]
            if s[19] == "." and frac.isdigit() and frac.isascii():
                return base + int(frac)
        if n == 20:
            return base
        if 22 <= n <= 30 and s[19] == ".":
            frac = s[20:-1]
            if frac.isdigit() and frac.isascii():
                k = n - 21
                return base + (int(frac) * _SCALE[k] if k <= 6 else int(frac[:6]))
    return _iso_slow(s)


_SCALE = (0, 100_000, 10_000, 1_000, 100, 10, 1)


def _iso_slow(s: str) -> int:
    n = len(s)
    if n < 20 or not s.isascii():
        raise ValueError(f"time={s[:40]!r}: not an ISO-8601 UTC time")
    if s[-1] == "Z":
        end = n - 1
    elif s.endswith("+00:00"):
        end = n - 6
    else:
        raise ValueError(f"time={s[:40]!r}: not UTC (expected a trailing 'Z')")
    key = s[:19]
    if (
        key[4] != "-"
        or key[7] != "-"
        or key[10] not in "Tt"
        or key[13] != ":"
        or key[16] != ":"
        or end < 19
        or not _DIGITS.issuperset(
            key[:4] + key[5:7] + key[8:10] + key[11:13] + key[14:16] + key[17:19]
        )
    ):
        raise ValueError(f"time={s[:40]!r}: not an ISO-8601 time")
    m, sec = int(key[14:16]), int(key[17:19])
    if m > 59 or sec > 59:
        raise ValueError(f"time={s[:40]!r}: minute or second out of range")
    try:
        d = _dt.datetime(
            int(key[:4]), int(key[5:7]), int(key[8:10]), int(key[11:13]), m, sec, tzinfo=_dt.UTC
        )
    except ValueError as exc:
        raise ValueError(f"time={s[:40]!r}: {exc}") from None
    base = int(d.timestamp()) * 1_000_000
    if key[10] == "T":
        if len(_seconds) >= _MAX_CACHED:
            _seconds.clear()
        _seconds[key] = base
    us = base
    if end > 19:
        frac = s[20:end]
        if s[19] != "." or not 1 <= len(frac) <= 9 or not _DIGITS.issuperset(frac):
            raise ValueError(f"time={s[:40]!r}: bad fraction of a second")
        us += int((frac + "00000")[:6])
    return us


# --- wire shapes ----------------------------------------------------------------------------


class _ATTrade(msgspec.Struct, gc=False):
    product_id: str
    trade_id: Id
    price: Price
    size: Qty
    time: str
    side: Literal["BUY", "SELL"]


class _ATEvent(msgspec.Struct, gc=False):
    type: str
    trades: list[_ATTrade]


class _MarketTrades(msgspec.Struct, gc=False):
    channel: Literal["market_trades"]
    timestamp: str
    sequence_num: Id
    events: list[_ATEvent]


class _Envelope(msgspec.Struct):
    channel: str | None = None
    type: str | None = None
    sequence_num: int | None = None
    timestamp: str | None = None
    events: msgspec.Raw = msgspec.Raw()
    message: str | None = None
    channels: Any = None


class _Subs(msgspec.Struct):
    subscriptions: dict[str, list[str]] = {}


class _Match(msgspec.Struct, gc=False):
    type: str
    trade_id: Id
    side: Literal["buy", "sell"]
    size: Qty
    price: Price
    product_id: str
    time: str


_IGNORED_TYPES = frozenset(
    {"snapshot", "l2update", "ticker", "received", "open", "done", "change", "activate",
     "status", "heartbeat", "ticker_batch", "auction", "rfq_match"}
)  # fmt: skip
_PREFIX = b'{"channel":"market_trades"'
_BY_ID = operator.attrgetter("trade_id")


class Parser(GuardedParser):
    """Turn raw Coinbase frames (Advanced Trade, and the legacy Exchange feed) into events.

    Parameters
    ----------
    symbols
        The product ids subscribed (``BTC-USD``); a trade of any other product is refused.
    exchange
        Label stored in every event's ``exchange`` field.

    Examples
    --------
    >>> p = Parser(["BTC-USD"])
    >>> raw = ('{"channel":"market_trades","client_id":"","timestamp":"2025-12-31T06:00:12.516946132Z",'
    ...        '"sequence_num":1851,"events":[{"type":"update","trades":[{"product_id":"BTC-USD",'
    ...        '"trade_id":"929248657","price":"88355.59","size":"0.00136573",'
    ...        '"time":"2025-12-31T06:00:12.44524Z","side":"SELL"}]}]}')
    >>> [t] = p.parse(raw, 0)
    >>> t.trade_id, t.price, t.ts, t.event_ts, t.is_buyer_maker
    (929248657, 88355.59, 1767160812445240, 1767160812516946, True)
    """

    def __init__(self, symbols: Iterable[str], *, exchange: str = NAME) -> None:
        self.symbols = subscribed(symbols, symbol_problem, "product ids")
        self.exchange = exchange
        self.ignored = 0
        """Well-formed frames of channels lq does not model (book, ticker, ...)."""
        self.sequence_num: int | None = None
        """The last Advanced Trade ``sequence_num`` seen on this connection."""
        self.sequence_breaks = 0
        """How often ``sequence_num`` did not follow the previous one by +1 (a lost frame)."""
        self._fast = msgspec.json.Decoder(_MarketTrades, strict=False)
        self._env = msgspec.json.Decoder(_Envelope)
        self._subs = msgspec.json.Decoder(list[_Subs])
        self._match = msgspec.json.Decoder(_Match, strict=False)

    def _parse(self, b: bytes, raw: bytes | str, recv_ts: int) -> list[Event]:
        if b[:26] == _PREFIX:
            f = decode(self._fast, b, raw, "market_trades frame")
            return self._market_trades(f, raw, recv_ts)
        if b[:15] == b'{"type":"match"':
            return self._exchange_match("match", b, raw, recv_ts)
        if b[:20] == b'{"type":"last_match"':
            return self._exchange_match("last_match", b, raw, recv_ts)
        return self._generic(b, raw, recv_ts)

    # -- internals ---------------------------------------------------------------------------

    def _seq(self, n: int | None) -> None:
        if n is None:
            return
        last = self.sequence_num
        if last is not None and n != last + 1:
            self.sequence_breaks += 1
        self.sequence_num = n

    def _market_trades(self, f: _MarketTrades, raw: bytes | str, recv_ts: int) -> list[Event]:
        self._seq(f.sequence_num)
        try:
            event_ts = iso_to_us(f.timestamp)
        except ValueError as exc:
            raise FrameError(f"market_trades timestamp: {exc}", raw) from None
        if not MIN_TS <= event_ts < MAX_TS:
            raise FrameError(f"market_trades timestamp={f.timestamp!r}: outside 2009..2100", raw)
        out: list[Event] = []
        syms = self.symbols
        ex = self.exchange
        for ev in f.events:
            if ev.type != "update" and ev.type != "snapshot":
                raise FrameError(
                    f"market_trades event type={ev.type[:40]!r}: not snapshot/update", raw
                )
            for t in ev.trades:
                if t.product_id not in syms:
                    raise FrameError(self._symbol_reason(t.product_id), raw)
                try:
                    ts = iso_to_us(t.time)
                except ValueError as exc:
                    raise FrameError(f"trade {t.trade_id}: {exc}", raw) from None
                if not MIN_TS <= ts < MAX_TS:
                    raise FrameError(f"trade {t.trade_id}: time={t.time!r} outside 2009..2100", raw)
                out.append(
                    Trade(
                        symbol=t.product_id,
                        trade_id=t.trade_id,
                        price=t.price,
                        qty=t.size,
                        ts=ts,
                        event_ts=event_ts,
                        is_buyer_maker=t.side == "SELL",  # taker side: SELL = buyer was maker
                        recv_ts=recv_ts,
                        exchange=ex,
                    )
                )
        if len(out) > 1:
            out.sort(key=_BY_ID)
        return out

    def _symbol_reason(self, product_id: str) -> str:
        why = symbol_problem(product_id)
        if why is not None:
            return f"product_id: {why}"
        return f"product_id={product_id!r} is not one of the subscribed products"

    def _exchange_match(self, t: str, b: bytes, raw: bytes | str, recv_ts: int) -> list[Event]:
        m = decode(self._match, b, raw, f"{t} frame")
        if m.product_id not in self.symbols:
            raise FrameError(self._symbol_reason(m.product_id), raw)
        tm = m.time
        base = _seconds.get(tm[:19])  # iso_to_us's hot path, inlined (Exchange: 6 digits)
        frac = tm[20:26]
        if (
            base is not None
            and len(tm) == 27
            and tm[26] == "Z"
            and tm[19] == "."
            and frac.isdigit()
            and frac.isascii()
        ):
            ts = base + int(frac)
        else:
            try:
                ts = iso_to_us(tm)
            except ValueError as exc:
                raise FrameError(f"{t} {m.trade_id}: {exc}", raw) from None
        if not MIN_TS <= ts < MAX_TS:
            raise FrameError(f"{t} {m.trade_id}: time={m.time!r} outside 2009..2100", raw)
        return [
            Trade(
                symbol=m.product_id,
                trade_id=m.trade_id,
                price=m.price,
                qty=m.size,
                ts=ts,
                event_ts=ts,
                is_buyer_maker=m.side == "buy",  # maker side: buy = buyer was maker
                recv_ts=recv_ts,
                exchange=self.exchange,
            )
        ]

    def _generic(self, b: bytes, raw: bytes | str, recv_ts: int) -> list[Event]:
        if not b.strip():
            raise FrameError("empty frame", raw)
        env = decode(self._env, b, raw, "frame", shape="not a Coinbase frame")
        ch = env.channel
        if ch is not None:
            if ch == "market_trades":  # fields in another order than Coinbase sends them
                f = decode(self._fast, b, raw, "market_trades frame")
                return self._market_trades(f, raw, recv_ts)
            self._seq(env.sequence_num)
            if ch == "subscriptions":
                subs = (
                    decode(self._subs, env.events, raw, "subscriptions frame") if env.events else []
                )
                merged: dict[str, list[str]] = {}
                for s in subs:
                    merged.update(s.subscriptions)
                return [ControlReply(id=None, result=merged)]
            if ch == "heartbeats":
                return []
            self.ignored += 1
            return []
        t = env.type
        if t is None:
            raise FrameError("unrecognised frame: neither 'channel' nor 'type' present", raw)
        if t == "match" or t == "last_match":
            return self._exchange_match(t, b, raw, recv_ts)
        if t == "subscriptions":
            return [ControlReply(id=None, result=env.channels)]
        if t == "error":
            return [ControlReply(id=None, error_msg=env.message or "")]
        if t == "subscribe" or t == "unsubscribe":
            raise FrameError(f"a client {t} request, not a server frame", raw)
        if t in _IGNORED_TYPES:
            self.ignored += 1
            return []
        raise FrameError(f"unrecognised frame type={t[:40]!r}", raw)
