"""The exchange's record of what happened, and the frames it sends: pure, no I/O.

:class:`Market` receives source items (:class:`TradeIn`, :class:`QuoteIn`) in order, keeps the
full trade and aggregated-trade history (what REST serves) and returns the outgoing frames
(:class:`OutFrame`) for the socket. Because REST and the socket are fed from this one record,
REST history always agrees with what the socket sent, including trades a fault kept off the
socket.

Payloads follow ``shared/reference/binance-protocol.md`` section 1.6 exactly: decimal strings
for prices and quantities, integer ids and times, milliseconds by default and microseconds for
``timeUnit=MICROSECOND`` connections.

Aggregation rule (lq's, documented): consecutive trades of one symbol with the same ``order``
key and contiguous ids form one aggTrade. The simulator gives every taker order its own key;
replay uses ``(T, price, m)``. A pending aggTrade is closed by the next trade that does not
continue it, by any quote of that symbol, or by :meth:`Market.flush` (called when the source
pauses).

Depth rule: :class:`DepthIn` diffs (replayed ``@depth@100ms`` frames) are sent on
``<symbol>@depth@100ms`` and ``<symbol>@depth`` with their recorded ``U``/``u`` (and ``pu``).
The exchange keeps its own book per symbol, started from a :class:`DepthSnapIn` (the recorded
REST snapshot) and moved by every later diff, so REST ``/api/v3/depth``
(:meth:`Market.depth`) answers the book as it stands after the last diff sent, with
``lastUpdateId`` = that diff's ``u``: a snapshot always consistent with the stream.

Kline rule: klines are built from the trades; pushes are driven by the market clock (the
largest exchange time seen), every 1 s for ``1s`` and every 2 s for other intervals, and a
bar is pushed with ``x: true`` once the clock passes its close. A bar with no trades repeats the
previous close with ``n = 0`` and ``f = L = -1`` (Binance's value there is undocumented).
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, NamedTuple

from lq.feeds.events import AggTrade, Trade
from lq.feeds.invariants import KLINE_INTERVALS

__all__ = [
    "AggRec",
    "DepthIn",
    "DepthSnapIn",
    "KlineBar",
    "Market",
    "OutFrame",
    "QuoteIn",
    "SymbolSpec",
    "TradeIn",
    "TradeRec",
    "build_klines",
    "interval_bounds",
]

TimeUnit = Literal["MILLISECOND", "MICROSECOND"]
_ZERO = Decimal(0)
_SECOND = 1_000_000
_FIXED = {
    "1s": 1, "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600,
    "2h": 7200, "4h": 14400, "6h": 21600, "8h": 28800, "12h": 43200, "1d": 86400,
    "3d": 259200, "1w": 604800,
}  # fmt: skip
_WEEK_ORIGIN = 4 * 86400 * _SECOND  # 1970-01-05 was a Monday: Binance weeks start on Monday


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolSpec:
    """A listed symbol: assets and the price tick / quantity lot (as Binance's strings)."""

    symbol: str
    base: str
    quote: str
    tick_size: str
    lot_size: str


class TradeIn(NamedTuple):
    """A trade from a source. Times in µs; ``order`` groups fills into one aggTrade.

    ``trade_type`` is USD-M futures' ``X`` when the source had it: ``MARKET`` trades are sent
    in the futures shape (``X``, no ``M``); any other type (``NA``, ``INSURANCE_FUND``...) is
    a marker, sent on the socket as it came and kept out of the history (REST, aggTrades,
    klines). ``None``: a spot trade."""

    symbol: str
    trade_id: int
    price: str
    qty: str
    ts: int
    event_ts: int
    is_buyer_maker: bool
    order: Hashable
    trade_type: str | None = None


class QuoteIn(NamedTuple):
    """A best bid/ask update from a source (``ts`` is the source's time, µs).

    ``event_ts`` is non-zero for a futures-shaped quote (USD-M/COIN-M ``@bookTicker`` carries
    ``e``, ``E`` and the transaction time ``T``): it is sent in that shape with ``T = ts`` and
    ``E = event_ts``, so the client stores the exchange's time. A spot quote (``event_ts = 0``)
    is sent as spot sends it, without times."""

    symbol: str
    update_id: int
    bid: str
    bid_qty: str
    ask: str
    ask_qty: str
    ts: int
    event_ts: int = 0


Levels = tuple[tuple[str, str], ...]


class DepthIn(NamedTuple):
    """A depth diff from a source (Binance ``depthUpdate``): ``(price, qty)`` strings set the
    level's absolute quantity, a zero quantity deletes it. ``ts`` is the event time ``E`` (µs);
    ``prev_last_id`` is USD-M's ``pu`` (``None`` on spot)."""

    symbol: str
    first_id: int
    last_id: int
    bids: Levels
    asks: Levels
    ts: int
    prev_last_id: int | None = None


class DepthSnapIn(NamedTuple):
    """A full-book snapshot from a source (the recorded REST ``/api/v3/depth`` answer)."""

    symbol: str
    last_update_id: int
    bids: Levels
    asks: Levels


class TradeRec(NamedTuple):
    """One trade as stored (REST ``historicalTrades``)."""

    trade_id: int
    price: str
    qty: str
    ts: int
    event_ts: int
    is_buyer_maker: bool


class AggRec(NamedTuple):
    """One aggregated trade as stored (REST ``aggTrades``)."""

    agg_id: int
    price: str
    qty: str
    first_id: int
    last_id: int
    ts: int
    event_ts: int
    is_buyer_maker: bool


class OutFrame:
    """One outgoing event for stream ``stream``; payload bytes built lazily per time unit.

    ``trade_ids`` names the trades the frame carries (for the ``skip_ids`` fault).
    """

    __slots__ = ("_ms", "_us", "fields", "kind", "stream", "symbol", "trade_ids")

    def __init__(
        self, stream: str, symbol: str, kind: str, fields: tuple, trade_ids: tuple[int, ...] = ()
    ) -> None:
        self.stream = stream
        self.symbol = symbol
        self.kind = kind
        self.fields = fields
        self.trade_ids = trade_ids
        self._ms: bytes | None = None
        self._us: bytes | None = None

    def payload(self, unit: TimeUnit) -> bytes:
        if unit == "MILLISECOND":
            if self._ms is None:
                self._ms = _encode(self.kind, self.fields, 1000)
            return self._ms
        if self._us is None:
            self._us = _encode(self.kind, self.fields, 1)
        return self._us


def _b(x: bool) -> str:
    return "true" if x else "false"


def _encode(kind: str, f: tuple, div: int) -> bytes:
    if kind == "trade":
        s, t, p, q, ts, e, m = f
        return (
            f'{{"e":"trade","E":{e // div},"s":"{s}","t":{t},"p":"{p}","q":"{q}",'
            f'"T":{ts // div},"m":{_b(m)},"M":true}}'
        ).encode()
    if kind == "futuresTrade":  # USD-M: X, no M (reference §4.1)
        s, t, p, q, ts, e, m, x = f
        return (
            f'{{"e":"trade","E":{e // div},"T":{ts // div},"s":"{s}","t":{t},"p":"{p}",'
            f'"q":"{q}","X":"{x}","m":{_b(m)}}}'
        ).encode()
    if kind == "aggTrade":
        s, a, p, q, first, last, ts, e, m = f
        return (
            f'{{"e":"aggTrade","E":{e // div},"s":"{s}","a":{a},"p":"{p}","q":"{q}",'
            f'"f":{first},"l":{last},"T":{ts // div},"m":{_b(m)},"M":true}}'
        ).encode()
    if kind == "bookTicker":
        s, u, b, bq, a, aq = f
        return f'{{"u":{u},"s":"{s}","b":"{b}","B":"{bq}","a":"{a}","A":"{aq}"}}'.encode()
    if kind == "futuresBookTicker":  # USD-M/COIN-M: e, T (transaction time), E
        s, u, b, bq, a, aq, ts, e = f
        return (
            f'{{"e":"bookTicker","u":{u},"s":"{s}","b":"{b}","B":"{bq}","a":"{a}","A":"{aq}",'
            f'"T":{ts // div},"E":{e // div}}}'
        ).encode()
    if kind == "kline":
        bar, e, closed = f
        return (
            f'{{"e":"kline","E":{e // div},"s":"{bar.symbol}","k":{_kline_body(bar, closed, div)}}}'
        ).encode()
    if kind == "depthUpdate":
        s, first, last, pu, bids, asks, e = f
        extra = "" if pu is None else f'"T":{e // div},"pu":{pu},'
        return (
            (
                f'{{"e":"depthUpdate","E":{e // div},{extra}"s":"{s}","U":{first},"u":{last},"b":'
            ).encode()
            + bids
            + b',"a":'
            + asks
            + b"}"
        )
    if kind == "serverShutdown":
        (e,) = f
        return f'{{"e":"serverShutdown","E":{e // div}}}'.encode()
    raise ValueError(f"kind={kind!r}: unknown frame kind")


def _levels_json(levels: Levels) -> bytes:
    return ("[" + ",".join(f'["{p}","{q}"]' for p, q in levels) + "]").encode()


def _fmt(d: Decimal) -> str:
    return f"{d:.8f}"


def _kline_body(bar: KlineBar, closed: bool, div: int) -> str:
    return (
        f'{{"t":{bar.open_time // div},"T":{(bar.close_time - div) // div},"s":"{bar.symbol}",'
        f'"i":"{bar.interval}","f":{bar.first_id},"L":{bar.last_id},"o":"{bar.open}",'
        f'"c":"{bar.close}","h":"{bar.high}","l":"{bar.low}","v":"{_fmt(bar.volume)}",'
        f'"n":{bar.trades},"x":{_b(closed)},"q":"{_fmt(bar.quote_volume)}",'
        f'"V":"{_fmt(bar.taker_buy_volume)}","Q":"{_fmt(bar.taker_buy_quote_volume)}","B":"0"}}'
    )


def interval_bounds(interval: str, ts: int) -> tuple[int, int]:
    """``[open, close)`` in µs of the ``interval`` kline holding time ``ts`` (µs, UTC)."""
    if interval == "1M":
        d = dt.datetime.fromtimestamp(ts / _SECOND, tz=dt.UTC)
        start = calendar.timegm((d.year, d.month, 1, 0, 0, 0)) * _SECOND
        y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
        return start, calendar.timegm((y, m, 1, 0, 0, 0)) * _SECOND
    if interval not in _FIXED:
        raise ValueError(f"interval={interval!r}: not one of {KLINE_INTERVALS}")
    size = _FIXED[interval] * _SECOND
    origin = _WEEK_ORIGIN if interval == "1w" else 0
    start = (ts - origin) // size * size + origin
    return start, start + size


class KlineBar:
    """An OHLCV bar being built from trades (mutable; one per symbol and interval)."""

    __slots__ = (
        "_hi", "_lo", "close", "close_time", "first_id", "high", "interval", "last_id", "low",
        "open", "open_time", "quote_volume", "symbol", "taker_buy_quote_volume",
        "taker_buy_volume", "trades", "volume",
    )  # fmt: skip

    def __init__(self, symbol: str, interval: str, open_time: int, close_time: int, prev: str):
        self.symbol = symbol
        self.interval = interval
        self.open_time = open_time
        self.close_time = close_time
        self.open = self.high = self.low = self.close = prev
        self._hi = self._lo = Decimal(prev) if prev else _ZERO
        self.volume = self.quote_volume = _ZERO
        self.taker_buy_volume = self.taker_buy_quote_volume = _ZERO
        self.trades = 0
        self.first_id = self.last_id = -1

    def add(self, t: TradeRec) -> None:
        p = Decimal(t.price)
        q = Decimal(t.qty)
        if self.trades == 0:
            self.open = self.high = self.low = t.price
            self._hi = self._lo = p
            self.first_id = t.trade_id
        else:
            if p > self._hi:
                self._hi, self.high = p, t.price
            if p < self._lo:
                self._lo, self.low = p, t.price
        self.close = t.price
        self.last_id = t.trade_id
        self.trades += 1
        self.volume += q
        self.quote_volume += p * q
        if not t.is_buyer_maker:  # the taker bought
            self.taker_buy_volume += q
            self.taker_buy_quote_volume += p * q

    def rest_row(self, div: int) -> list:
        """The REST ``/api/v3/klines`` row."""
        return [
            self.open_time // div, self.open, self.high, self.low, self.close,
            _fmt(self.volume), (self.close_time - div) // div, _fmt(self.quote_volume),
            self.trades, _fmt(self.taker_buy_volume), _fmt(self.taker_buy_quote_volume), "0",
        ]  # fmt: skip


def build_klines(
    symbol: str, interval: str, trades: Iterable[TradeRec], *, prev_close: str = ""
) -> list[KlineBar]:
    """Bars of ``interval`` from time-ordered ``trades``, empty bars filled between them."""
    bars: list[KlineBar] = []
    bar: KlineBar | None = None
    for t in trades:
        if bar is None or t.ts >= bar.close_time:
            if bar is not None:
                prev_close = bar.close
                o, c = interval_bounds(interval, bar.close_time)
                while c <= t.ts:  # whole intervals without a trade
                    bars.append(KlineBar(symbol, interval, o, c, prev_close))
                    o, c = interval_bounds(interval, c)
            o, c = interval_bounds(interval, t.ts)
            bar = KlineBar(symbol, interval, o, c, prev_close)
            bars.append(bar)
        bar.add(t)
    return bars


class _Book:
    """History of one symbol."""

    __slots__ = ("agg_ids", "aggs", "ids", "next_agg", "pending", "quote", "times", "trades")

    def __init__(self) -> None:
        self.trades: list[TradeRec] = []
        self.ids: list[int] = []
        self.times: list[int] = []
        self.aggs: list[AggRec] = []
        self.agg_ids: list[int] = []
        self.next_agg: int | None = None
        self.pending: list[TradeRec] = []
        self.quote: QuoteIn | None = None


def _is_zero(q: str) -> bool:
    return float(q) == 0.0


class _DepthBook:
    """The exchange's own book of one symbol: price string -> quantity string per side."""

    __slots__ = ("asks", "bids", "update_id")

    def __init__(self) -> None:
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.update_id = -1  # no snapshot yet

    def apply(self, d: DepthIn) -> None:
        for side, levels in ((self.bids, d.bids), (self.asks, d.asks)):
            for p, q in levels:
                if _is_zero(q):
                    side.pop(p, None)
                else:
                    side[p] = q
        self.update_id = d.last_id


class Market:
    """Every trade, aggTrade and quote the exchange has produced, and the frames to send.

    Parameters
    ----------
    specs
        The listed symbols (``exchangeInfo``).
    """

    def __init__(self, specs: Iterable[SymbolSpec]) -> None:
        self.specs: dict[str, SymbolSpec] = {s.symbol: s for s in specs}
        self.books: dict[str, _Book] = {s: _Book() for s in self.specs}
        self.clock = 0  # largest exchange time seen, µs
        self._bars: dict[tuple[str, str], tuple[KlineBar, int]] = {}  # -> (bar, next push)
        self._pending_orders: dict[str, Hashable] = {}
        self.depth_books: dict[str, _DepthBook] = {}
        self.depth_first: dict[str, DepthSnapIn] = {}  # the source's snapshot, as given
        self.depth_gaps = 0  # diffs that did not follow the exchange's own book (a bad source)

    # -- intake -----------------------------------------------------------------------
    def _book(self, symbol: str) -> _Book:
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = _Book()
        return book

    def add_trade(self, t: TradeIn, out: list[OutFrame]) -> None:
        """Record trade ``t``; append its ``@trade`` frame (and any closed aggTrade) to ``out``."""
        book = self._book(t.symbol)
        x = t.trade_type
        if x is not None and x != "MARKET":  # a futures marker: on the socket only
            out.append(
                OutFrame(
                    t.symbol.lower() + "@trade", t.symbol, "futuresTrade",
                    (t.symbol, t.trade_id, t.price, t.qty, t.ts, t.event_ts, t.is_buyer_maker, x),
                )
            )  # fmt: skip
            return
        rec = TradeRec(t.trade_id, t.price, t.qty, t.ts, t.event_ts, t.is_buyer_maker)
        if book.pending and (
            self._pending_orders.get(t.symbol) != t.order
            or book.pending[-1].trade_id + 1 != t.trade_id
        ):
            self._close_agg(t.symbol, book, out)
        if book.next_agg is None:
            book.next_agg = t.trade_id
        book.pending.append(rec)
        self._pending_orders[t.symbol] = t.order
        book.trades.append(rec)
        book.ids.append(t.trade_id)
        book.times.append(t.ts)
        lower = t.symbol.lower()
        fields: tuple = (t.symbol, t.trade_id, t.price, t.qty, t.ts, t.event_ts, t.is_buyer_maker)
        out.append(
            OutFrame(
                lower + "@trade", t.symbol, "trade" if x is None else "futuresTrade",
                fields if x is None else (*fields, x), (t.trade_id,),
            )
        )  # fmt: skip
        for key, (bar, nxt) in list(self._bars.items()) if self._bars else ():
            if key[0] == t.symbol:
                bar = self._roll_bar(key, bar, nxt, t.ts, out)
                bar.add(rec)
        if t.event_ts > self.clock:
            self.tick(t.event_ts, out)

    def add_quote(self, q: QuoteIn, out: list[OutFrame]) -> None:
        """Record best bid/ask ``q``; closes the symbol's pending aggTrade first."""
        book = self._book(q.symbol)
        if book.pending:
            self._close_agg(q.symbol, book, out)
        book.quote = q
        fields = (q.symbol, q.update_id, q.bid, q.bid_qty, q.ask, q.ask_qty)
        out.append(
            OutFrame(
                q.symbol.lower() + "@bookTicker", q.symbol,
                "futuresBookTicker" if q.event_ts else "bookTicker",
                (*fields, q.ts, q.event_ts) if q.event_ts else fields,
            )
        )  # fmt: skip

    def add_depth_snapshot(self, s: DepthSnapIn) -> None:
        """Start (or restart) the exchange's book of ``s.symbol`` from a full snapshot."""
        self.depth_first[s.symbol] = s
        book = self.depth_books[s.symbol] = _DepthBook()
        book.bids = {p: q for p, q in s.bids if not _is_zero(q)}
        book.asks = {p: q for p, q in s.asks if not _is_zero(q)}
        book.update_id = s.last_update_id

    def add_depth(self, d: DepthIn, out: list[OutFrame]) -> None:
        """Move the exchange's book by diff ``d`` (when it is newer than the book) and append
        its ``@depth@100ms`` and ``@depth`` frames to ``out``."""
        book = self.depth_books.get(d.symbol)
        if book is not None and book.update_id >= 0 and d.last_id > book.update_id:
            if d.first_id > book.update_id + 1:
                self.depth_gaps += 1
            book.apply(d)
        enc = _levels_json
        fields = (d.symbol, d.first_id, d.last_id, d.prev_last_id, enc(d.bids), enc(d.asks), d.ts)
        lower = d.symbol.lower()
        out.append(OutFrame(lower + "@depth@100ms", d.symbol, "depthUpdate", fields))
        out.append(OutFrame(lower + "@depth", d.symbol, "depthUpdate", fields))

    def depth(self, symbol: str, limit: int, *, first: bool = False) -> dict[str, object] | None:
        """The REST ``/api/v3/depth`` answer: the top ``limit`` levels of the exchange's book
        and ``lastUpdateId`` (``None``: the source gave no snapshot of this symbol yet).
        ``first``: the source's snapshot instead, as it was given (an old book)."""
        book = self.depth_books.get(symbol)
        if book is None or book.update_id < 0:
            return None
        if first and symbol in self.depth_first:
            snap = self.depth_first[symbol]
            book = _DepthBook()
            book.bids, book.asks = dict(snap.bids), dict(snap.asks)
            book.update_id = snap.last_update_id
        bids = sorted(book.bids.items(), key=lambda pq: -float(pq[0]))[:limit]
        asks = sorted(book.asks.items(), key=lambda pq: float(pq[0]))[:limit]
        return {
            "lastUpdateId": book.update_id,
            "bids": [list(pq) for pq in bids],
            "asks": [list(pq) for pq in asks],
        }

    def flush(self, out: list[OutFrame]) -> None:
        """Close every pending aggTrade (the source paused)."""
        for symbol, book in self.books.items():
            if book.pending:
                self._close_agg(symbol, book, out)

    def _close_agg(self, symbol: str, book: _Book, out: list[OutFrame]) -> None:
        fills = book.pending
        book.pending = []
        total = sum((Decimal(f.qty) for f in fills), _ZERO)
        qty = fills[0].qty if len(fills) == 1 else _fmt(total)
        a = book.next_agg
        assert a is not None
        book.next_agg = a + 1
        last = fills[-1]
        rec = AggRec(
            a, fills[0].price, qty, fills[0].trade_id, last.trade_id, fills[0].ts,
            last.event_ts, fills[0].is_buyer_maker,
        )  # fmt: skip
        book.aggs.append(rec)
        book.agg_ids.append(a)
        out.append(
            OutFrame(
                symbol.lower() + "@aggTrade", symbol, "aggTrade",
                (symbol, a, rec.price, qty, rec.first_id, rec.last_id, rec.ts, rec.event_ts,
                 rec.is_buyer_maker),
                tuple(f.trade_id for f in fills),
            )
        )  # fmt: skip

    # -- klines -----------------------------------------------------------------------
    def activate_kline(self, symbol: str, interval: str) -> None:
        """Start building ``symbol``'s ``interval`` bars (a connection subscribed to them)."""
        key = (symbol, interval)
        if key in self._bars or interval not in KLINE_INTERVALS:
            return
        book = self._book(symbol)
        now = self.clock or (book.times[-1] if book.times else 0)
        o, c = interval_bounds(interval, now)
        i = bisect.bisect_left(book.times, o)
        prev = book.trades[i - 1].price if i > 0 else ""
        bars = build_klines(symbol, interval, book.trades[i:], prev_close=prev)
        bar = (
            bars[-1] if bars and bars[-1].open_time == o else KlineBar(symbol, interval, o, c, prev)
        )
        step = _SECOND if interval == "1s" else 2 * _SECOND
        self._bars[key] = (bar, (now // step + 1) * step)

    def _roll_bar(
        self, key: tuple[str, str], bar: KlineBar, nxt: int, ts: int, out: list[OutFrame]
    ) -> KlineBar:
        emitted = 0
        while ts >= bar.close_time:
            if bar.open or bar.trades:
                out.append(_kline_frame(bar, bar.close_time, True))
                emitted += 1
            if emitted >= 60 or not (bar.open or bar.trades):
                o, c = interval_bounds(key[1], ts)  # jump over a long silence
            else:
                o, c = interval_bounds(key[1], bar.close_time)
            bar = KlineBar(key[0], key[1], o, c, bar.close)
        self._bars[key] = (bar, nxt)
        return bar

    def tick(self, now: int, out: list[OutFrame]) -> None:
        """Advance the market clock to ``now`` (µs): kline pushes and closes."""
        self.clock = now
        for key, (bar, nxt) in list(self._bars.items()):
            bar = self._roll_bar(key, bar, nxt, now, out)
            if now >= nxt:
                step = _SECOND if key[1] == "1s" else 2 * _SECOND
                if bar.open or bar.trades:
                    out.append(_kline_frame(bar, now, False))
                self._bars[key] = (bar, (now // step + 1) * step)

    # -- queries (REST and tests) ------------------------------------------------------
    def trade_events(self, symbol: str) -> list[Trade]:
        """Every trade of ``symbol`` so far, as :class:`lq.feeds.events.Trade`."""
        book = self.books.get(symbol)
        if book is None:
            return []
        return [
            Trade(
                symbol=symbol,
                trade_id=t.trade_id,
                price=float(t.price),
                qty=float(t.qty),
                ts=t.ts,
                event_ts=t.event_ts,
                is_buyer_maker=t.is_buyer_maker,
            )
            for t in book.trades
        ]

    def agg_events(self, symbol: str) -> list[AggTrade]:
        """Every closed aggTrade of ``symbol`` so far, as :class:`lq.feeds.events.AggTrade`."""
        book = self.books.get(symbol)
        if book is None:
            return []
        return [
            AggTrade(
                symbol=symbol,
                agg_id=a.agg_id,
                first_id=a.first_id,
                last_id=a.last_id,
                price=float(a.price),
                qty=float(a.qty),
                ts=a.ts,
                event_ts=a.event_ts,
                is_buyer_maker=a.is_buyer_maker,
            )
            for a in book.aggs
        ]


def _kline_frame(bar: KlineBar, event_ts: int, closed: bool) -> OutFrame:
    snap = KlineBar(bar.symbol, bar.interval, bar.open_time, bar.close_time, bar.close)
    for name in KlineBar.__slots__:
        setattr(snap, name, getattr(bar, name))
    return OutFrame(
        f"{bar.symbol.lower()}@kline_{bar.interval}", bar.symbol, "kline", (snap, event_ts, closed)
    )


def server_shutdown_frame(event_ts: int) -> OutFrame:
    """The ``serverShutdown`` event (combined stream name ``!serverShutdown``)."""
    return OutFrame("!serverShutdown", "", "serverShutdown", (event_ts,))
