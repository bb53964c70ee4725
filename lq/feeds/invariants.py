"""What every market event lq keeps must satisfy: one place for the rules, used everywhere.

The parser (:mod:`lq.venues.binance.parser`), the REST decoders (:mod:`lq.venues.binance.rest`) and the writer
(:mod:`lq.store.writer`, for rows from any source: live, backfill, import, replay) all check
events against the rules below, so a row that breaks one can never be stored, whichever way it
came in. The parser enforces the numeric bounds at decode time through the msgspec types
defined here (:data:`Id`, :data:`Price`, ...), which are built from the same constants as the
``*_problem`` functions; ``tests/feeds/test_invariants.py`` checks that the two agree.

Bounds, and why no real market breaks them:

=================== ============================= ============================================
value               accepted                      evidence
=================== ============================= ============================================
ids                 ``0 .. 2**63 - 1``            SQLite's INTEGER is a signed int64; Binance
                                                  ids are non-negative (``f = L = -1`` only in
                                                  klines without trades, ``f = -1`` in audited
                                                  aggTrades, which are not stored)
times               2009-01-01 .. 2100-01-01 UTC  Bitcoin's genesis block is 2009-01-03
price               ``1e-10 .. 1e12``             Binance prints prices with 8 decimals, so
                                                  the smallest non-zero price is 1e-8; the
                                                  largest today is BTC in IDR (~1.6e9)
trade quantity      ``1e-10 .. 1e15``             quantities have 8 decimals too (>= 1e-8);
                                                  1e15 of the cheapest token is still > $1e5
book quantity       ``0`` or ``1e-10 .. 1e15``    an empty side shows ``0``
kline volumes       ``0 .. 1e20``                 a month of the busiest low-priced token is
                                                  ~1e15
=================== ============================= ============================================

Denormals (``1e-320``), infinities, NaN and ``1e308`` all fall outside. Consistency rules:
a trade's and a quote's symbol is an exchange symbol (:func:`symbol_problem`: upper case, no
spaces, control, format or markup characters); an aggTrade has ``0 <= f <= l``; a book is not
crossed (``bid <= ask``); a kline has ``0 < low <= open, close <= high``, ``open_time <
close_time`` one interval apart (:data:`KLINE_INTERVALS`, or lq's ``<N>s`` bars), volumes
``>= 0`` with the quote volume between ``low * volume`` and ``high * volume`` (Binance's
``q`` is the sum of price x quantity; COIN-M klines, whose ``q`` is a base volume, are not
supported), taker volumes at most the totals, and trade-id ranges ``f <= L`` that hold at
least ``n`` trades (``f = L = -1`` when Binance does not say).
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

import msgspec

from lq.feeds.events import AggTrade, BookResync, BookTicker, BookTop, Kline, Trade

__all__ = [
    "KLINE_INTERVALS",
    "MAX_ID",
    "MAX_PRICE",
    "MAX_QTY",
    "MAX_TS",
    "MAX_VOLUME",
    "MIN_PRICE",
    "MIN_QTY",
    "MIN_TS",
    "Id",
    "KlineId",
    "Price",
    "Qty",
    "Time",
    "Volume",
    "agg_trade_problem",
    "book_resync_problem",
    "book_ticker_problem",
    "book_top_problem",
    "interval_us",
    "kline_problem",
    "problem",
    "symbol_problem",
    "trade_problem",
    "ts_problem",
]

MAX_ID = 2**63 - 1
MIN_TS = 1_230_768_000_000_000  # 2009-01-01 UTC, µs
MAX_TS = 4_102_444_800_000_000  # 2100-01-01 UTC, µs (exclusive)
MIN_PRICE = 1e-10
MAX_PRICE = 1e12
MIN_QTY = 1e-10
MAX_QTY = 1e15
MAX_VOLUME = 1e20
MAX_SYMBOL_LEN = 32

KLINE_INTERVALS: tuple[str, ...] = (
    "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w",
    "1M",
)  # fmt: skip
"""Binance's kline intervals (``shared/reference/binance-protocol.md`` §1.6)."""

_SECONDS = {
    "1s": 1, "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 7200,
    "4h": 14400, "6h": 21600, "8h": 28800, "12h": 43200, "1d": 86400, "3d": 259200,
    "1w": 604800,
}  # fmt: skip
_DAY_US = 86_400_000_000
_MONTH_US = frozenset(d * _DAY_US for d in (28, 29, 30, 31))

# msgspec types for decoding: the same bounds, enforced in C while the frame is decoded.
Id = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
KlineId = Annotated[int, msgspec.Meta(ge=-1, le=MAX_ID)]
Time = Annotated[int, msgspec.Meta(ge=MIN_TS // 1000, le=MAX_TS)]
"""A wire time in ms or µs; after conversion to µs it must still pass :func:`ts_problem`."""
Price = Annotated[float, msgspec.Meta(ge=MIN_PRICE, le=MAX_PRICE)]
Qty = Annotated[float, msgspec.Meta(ge=MIN_QTY, le=MAX_QTY)]
BookQty = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_QTY)]
Volume = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_VOLUME)]
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]

_ASCII_OK = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./")  # "/": Kraken's BTC/USD
_good_symbols: set[str] = set()


def symbol_problem(symbol: object) -> str | None:
    """Why ``symbol`` is not an exchange symbol, or ``None``.

    1 to 32 characters, each an ASCII upper-case letter, digit, ``-``, ``_``, ``.`` or ``/``
    (Kraken's WS v2 names pairs ``BTC/USD``, and lq stores the venue's own symbol), or a
    non-ASCII letter or digit that is not lower case (Binance lists some symbols in UTF-8
    since 2025-12). Lower case, spaces, control and format characters (such as the RTL
    override U+202E) and markup (``<``, ``&``, quotes) are refused.
    """
    if not isinstance(symbol, str) or not symbol:
        return f"symbol: empty or not a string ({symbol!r})"
    if len(symbol) > MAX_SYMBOL_LEN:
        return f"symbol={symbol[:40]!r}...: longer than {MAX_SYMBOL_LEN} characters"
    if symbol in _good_symbols:
        return None
    for c in symbol:
        if c in _ASCII_OK:
            continue
        if c.isascii() or not c.isalnum() or c.islower():
            name = unicodedata.name(c, f"U+{ord(c):04X}")
            return (
                f"symbol={symbol!r}: character {c!r} ({name}) is not allowed "
                "(upper-case letters, digits, '-', '_', '.', '/')"
            )
    if len(_good_symbols) < 100_000:
        _good_symbols.add(symbol)
    return None


def _not_int(name: str, value: object) -> str | None:
    if type(value) is int:
        return None
    return f"{name}={value!r}: not an int ({type(value).__name__})"


def _not_number(name: str, value: object) -> str | None:
    if type(value) is int or isinstance(value, float):
        return None
    return f"{name}={value!r}: not a number ({type(value).__name__})"


def ts_problem(name: str, ts: int) -> str | None:
    """Why a µs time is out of range, or ``None``."""
    if type(ts) is int and MIN_TS <= ts < MAX_TS:
        return None
    return _not_int(name, ts) or (
        f"{name}={ts!r}: outside 2009-01-01..2100-01-01 in µs (ms given as µs?)"
    )


def _id_problem(name: str, value: int, low: int = 0) -> str | None:
    if type(value) is int and low <= value <= MAX_ID:
        return None
    return _not_int(name, value) or f"{name}={value!r}: outside {low}..2**63-1"


def _range_problem(name: str, value: float, low: float, high: float) -> str | None:
    why = _not_number(name, value)
    if why is not None:
        return why
    if low <= value <= high:  # False for NaN
        return None
    return f"{name}={value!r}: outside {low:g}..{high:g}"


def trade_problem(symbol: str, trade_id: int, ts: int, price: float, qty: float) -> str | None:
    """Why a trade row is refused, or ``None`` when it is fine (also used for aggTrades)."""
    try:
        if (
            MIN_PRICE <= price <= MAX_PRICE
            and MIN_QTY <= qty <= MAX_QTY
            and MIN_TS <= ts < MAX_TS
            and 0 <= trade_id <= MAX_ID
            and symbol in _good_symbols
            and type(trade_id) is int
            and type(ts) is int
        ):
            return None
    except TypeError:  # a hand-built event with a field of the wrong type
        pass
    return (
        symbol_problem(symbol)
        or _range_problem("price", price, MIN_PRICE, MAX_PRICE)
        or _range_problem("qty", qty, MIN_QTY, MAX_QTY)
        or ts_problem("ts", ts)
        or _id_problem("trade_id", trade_id)
    )


def agg_trade_problem(a: AggTrade) -> str | None:
    """Why an aggTrade is refused: the trade rules, plus ``0 <= first_id <= last_id``."""
    try:
        if 0 <= a.first_id <= a.last_id <= MAX_ID and (
            MIN_PRICE <= a.price <= MAX_PRICE
            and MIN_QTY <= a.qty <= MAX_QTY
            and MIN_TS <= a.ts < MAX_TS
            and 0 <= a.agg_id <= MAX_ID
            and a.symbol in _good_symbols
            and type(a.first_id) is int
            and type(a.last_id) is int
            and type(a.agg_id) is int
            and type(a.ts) is int
        ):
            return None
    except TypeError:
        pass
    reason = trade_problem(a.symbol, a.agg_id, a.ts, a.price, a.qty)
    if reason is not None:
        return reason.replace("trade_id=", "agg_id=", 1)
    reason = _id_problem("first_id", a.first_id, -1) or _id_problem("last_id", a.last_id, -1)
    if reason is not None:
        return reason
    if a.first_id < 0:
        return f"first_id={a.first_id!r}: invalid aggTrade (f = -1 marks an audited duplicate)"
    if a.first_id > a.last_id:
        return f"first_id={a.first_id!r} > last_id={a.last_id!r}"
    return None  # the fast path only missed a symbol not yet in the cache


def _book_qty_problem(name: str, q: float) -> str | None:
    why = _not_number(name, q)
    if why is not None:
        return why
    if q == 0.0 or MIN_QTY <= q <= MAX_QTY:
        return None
    return f"{name}={q!r}: neither 0 nor within {MIN_QTY:g}..{MAX_QTY:g}"


def book_ticker_problem(b: BookTicker) -> str | None:
    """Why a best bid/ask is refused: bounds, and a crossed book (``bid > ask``)."""
    bid, ask, bq, aq = b.bid, b.ask, b.bid_qty, b.ask_qty
    try:
        if (
            MIN_PRICE <= bid <= ask <= MAX_PRICE
            and (bq == 0.0 or MIN_QTY <= bq <= MAX_QTY)
            and (aq == 0.0 or MIN_QTY <= aq <= MAX_QTY)
            and MIN_TS <= b.ts < MAX_TS
            and 0 <= b.update_id <= MAX_ID
            and b.symbol in _good_symbols
            and type(b.update_id) is int
            and type(b.ts) is int
        ):
            return None
    except TypeError:
        pass
    reason = (
        symbol_problem(b.symbol)
        or _id_problem("update_id", b.update_id)
        or _range_problem("bid", b.bid, MIN_PRICE, MAX_PRICE)
        or _range_problem("ask", b.ask, MIN_PRICE, MAX_PRICE)
        or _book_qty_problem("bid_qty", b.bid_qty)
        or _book_qty_problem("ask_qty", b.ask_qty)
        or ts_problem("ts", b.ts)
    )
    if reason is None and b.bid > b.ask:
        reason = f"bid={b.bid!r} > ask={b.ask!r}: crossed book"
    return reason


MAX_BOOK_LEVELS = 5_000
_RESYNC_REASONS = frozenset(("start", "gap", "crossed", "locked", "snapshot_older_than_events"))


def _side_problem(name: str, side: object, levels: int, descending: bool) -> str | None:
    if not isinstance(side, tuple):
        return f"{name}: expected a tuple of (price, qty) levels"
    if len(side) > levels:
        return f"{name}: {len(side)} levels, more than levels={levels}"
    prev = None
    for k, level in enumerate(side):
        try:
            price, qty = level
        except (TypeError, ValueError):
            return f"{name}[{k}]={level!r}: expected (price, qty)"
        reason = _range_problem(f"{name}[{k}] price", price, MIN_PRICE, MAX_PRICE) or (
            _range_problem(f"{name}[{k}] qty", qty, MIN_QTY, MAX_QTY)
        )
        if reason is not None:
            return reason
        if prev is not None and (price >= prev if descending else price <= prev):
            order = "descending" if descending else "ascending"
            return f"{name}[{k}] price={price!r} after {prev!r}: levels must be strictly {order}"
        prev = price
    return None


def book_top_problem(b: BookTop) -> str | None:
    """Why a stored book snapshot is refused: ids, times, bounds, level order, a crossed or
    locked book (best bid >= best ask)."""
    reason = (
        symbol_problem(b.symbol)
        or _id_problem("update_id", b.update_id)
        or ts_problem("ts", b.ts)
        or ts_problem("recv_ts", b.recv_ts)
        or _not_int("levels", b.levels)
    )
    if reason is None and not 1 <= b.levels <= MAX_BOOK_LEVELS:
        reason = f"levels={b.levels}: must be within 1..{MAX_BOOK_LEVELS}"
    reason = (
        reason
        or _side_problem("bids", b.bids, b.levels, descending=True)
        or _side_problem("asks", b.asks, b.levels, descending=False)
    )
    if reason is None and b.bids and b.asks and b.bids[0][0] >= b.asks[0][0]:
        what = "locked" if b.bids[0][0] == b.asks[0][0] else "crossed"
        reason = f"best bid {b.bids[0][0]!r} >= best ask {b.asks[0][0]!r}: {what} book"
    return reason


def book_resync_problem(r: BookResync) -> str | None:
    """Why a resync record is refused: its reason, ids and times."""
    reason = symbol_problem(r.symbol) or ts_problem("ts", r.ts) or ts_problem("recv_ts", r.recv_ts)
    if reason is None and r.reason not in _RESYNC_REASONS:
        reason = f"reason={r.reason!r}: expected one of {sorted(_RESYNC_REASONS)}"
    if reason is None:
        reason = _not_int("book_update_id", r.book_update_id)
    if reason is None and not -1 <= r.book_update_id <= MAX_ID:
        reason = f"book_update_id={r.book_update_id}: must be -1 (not synced) or an int64 id"
    for name in ("first_id", "last_id", "prev_last_id"):
        value = getattr(r, name)
        if reason is None and value is not None:
            reason = _id_problem(name, value)
    return reason


def interval_us(interval: str) -> int | frozenset[int] | None:
    """Length of one kline of ``interval`` in µs (the four month lengths for ``1M``); ``None``
    if it is neither a Binance interval nor lq's ``<N>s``."""
    if interval == "1M":
        return _MONTH_US
    s = _SECONDS.get(interval)
    if s is not None:
        return s * 1_000_000
    if 2 <= len(interval) <= 12 and interval[-1] == "s" and interval[:-1].isdecimal():
        n = int(interval[:-1])
        return n * 1_000_000 if n > 0 and interval[:-1].isascii() else None
    return None


def _close(x: float, low: float, high: float, v: float) -> bool:
    # Binance rounds volumes to 8 decimals: allow that rounding at both ends
    return (
        low * max(v - 1e-8, 0.0) * (1 - 1e-9) - 1e-8 <= x <= high * (v + 1e-8) * (1 + 1e-9) + 1e-8
    )


def _unknown(x: object) -> bool:
    """NaN: a value the source does not state (an OHLC file has no quote volume, trade count
    or taker volumes); stored as NULL. The stream's decode types (``Volume``, ``Count``) never
    let a NaN through, so only files and hand-built rows carry one."""
    return type(x) is float and x != x


def _optional(problem: str | None, value: object) -> str | None:
    return None if _unknown(value) else problem


def kline_problem(k: Kline) -> str | None:
    """Why a kline is refused: bounds, OHLC order, interval and span, volumes, id range.
    ``quote_volume``, ``trades`` and the taker volumes may be NaN (not known, see
    :func:`_unknown`); every stated value is checked."""
    reason = (
        symbol_problem(k.symbol)
        or ts_problem("open_time", k.open_time)
        or ts_problem("close_time", k.close_time)
        or _range_problem("open", k.open, MIN_PRICE, MAX_PRICE)
        or _range_problem("high", k.high, MIN_PRICE, MAX_PRICE)
        or _range_problem("low", k.low, MIN_PRICE, MAX_PRICE)
        or _range_problem("close", k.close, MIN_PRICE, MAX_PRICE)
        or _range_problem("volume", k.volume, 0.0, MAX_VOLUME)
        or _optional(
            _range_problem("quote_volume", k.quote_volume, 0.0, MAX_VOLUME), k.quote_volume
        )
        or _optional(
            _range_problem("taker_buy_volume", k.taker_buy_volume, 0.0, MAX_VOLUME),
            k.taker_buy_volume,
        )
        or _optional(
            _range_problem("taker_buy_quote_volume", k.taker_buy_quote_volume, 0.0, MAX_VOLUME),
            k.taker_buy_quote_volume,
        )
        or _optional(_id_problem("trades", k.trades), k.trades)
        or _id_problem("first_id", k.first_id, -1)
        or _id_problem("last_id", k.last_id, -1)
    )
    if reason is not None:
        return reason
    if not k.low <= min(k.open, k.close) <= max(k.open, k.close) <= k.high:
        return (
            f"open={k.open!r} high={k.high!r} low={k.low!r} close={k.close!r}: "
            "not low <= open, close <= high"
        )
    span = interval_us(k.interval) if isinstance(k.interval, str) else None
    if span is None:
        return f"interval={k.interval!r}: not one of {', '.join(KLINE_INTERVALS)} (or <N>s)"
    if k.open_time >= k.close_time:
        return f"open_time={k.open_time} >= close_time={k.close_time}"
    d = k.close_time - k.open_time
    spans = span if isinstance(span, frozenset) else (span,)
    # close_time is the last µs (or ms, for ms frames) of the interval
    if not any(d + 1 == s or d + 1000 == s for s in spans):
        return (
            f"close_time - open_time = {d} µs does not match interval {k.interval!r} "
            "(close_time is the interval's last ms or µs)"
        )
    if not _unknown(k.quote_volume) and not _close(k.quote_volume, k.low, k.high, k.volume):
        return (
            f"quote_volume={k.quote_volume!r} is not within low*volume..high*volume "
            f"({k.low!r}*{k.volume!r}..{k.high!r}*{k.volume!r})"
        )
    if k.taker_buy_volume > k.volume + 1e-8:
        return f"taker_buy_volume={k.taker_buy_volume!r} > volume={k.volume!r}"
    if not _unknown(k.taker_buy_quote_volume) and (
        k.taker_buy_quote_volume > k.quote_volume + 1e-8  # False if quote_volume is NaN
        or not _close(k.taker_buy_quote_volume, k.low, k.high, k.taker_buy_volume)
    ):
        return (
            f"taker_buy_quote_volume={k.taker_buy_quote_volume!r} is inconsistent with "
            f"taker_buy_volume={k.taker_buy_volume!r} and quote_volume={k.quote_volume!r}"
        )
    f, last = k.first_id, k.last_id
    if (f < 0) != (last < 0):
        return f"first_id={f} last_id={last}: only one of them is -1"
    if f >= 0 and (f > last or k.trades > last - f + 1):
        return f"first_id={f} last_id={last} cannot hold trades={k.trades}"
    return None


def problem(event: object) -> str | None:
    """Why a :class:`Trade`, :class:`AggTrade`, :class:`BookTicker` or :class:`Kline` is refused
    (``None``: fine). Other objects are not market rows: ``None``."""
    t = type(event)
    if t is Trade:
        e = event
        assert isinstance(e, Trade)
        return trade_problem(e.symbol, e.trade_id, e.ts, e.price, e.qty) or ts_problem(
            "event_ts", e.event_ts
        )
    if t is AggTrade:
        assert isinstance(event, AggTrade)
        return agg_trade_problem(event)
    if t is BookTicker:
        assert isinstance(event, BookTicker)
        return book_ticker_problem(event)
    if t is Kline:
        assert isinstance(event, Kline)
        return kline_problem(event) or ts_problem("event_ts", event.event_ts)
    return None
