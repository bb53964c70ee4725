"""Typed market events: what the parser produces and the collector consumes.

All times are int64 microseconds since the Unix epoch, UTC (``ts`` is exchange time,
``recv_ts`` the local wall clock at receipt). Prices and quantities are parsed once from
Binance's decimal strings into float64. Symbols are uppercase.

These are frozen msgspec structs: cheap to build (the hot path builds one per frame)
and immutable.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "MAX_DEAD_RAW",
    "MAX_REASON",
    "AggTrade",
    "BookResync",
    "BookTicker",
    "BookTop",
    "ControlReply",
    "DepthSnapshot",
    "DepthUpdate",
    "Duplicate",
    "Event",
    "Gap",
    "Kline",
    "Rejected",
    "ServerShutdown",
    "Trade",
    "TradeMarker",
    "capped_raw",
]


class Trade(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One trade (``@trade``). Identity: (exchange, symbol, trade_id)."""

    symbol: str
    trade_id: int
    price: float
    qty: float
    ts: int  # trade time T, µs
    event_ts: int  # event time E, µs
    is_buyer_maker: bool
    recv_ts: int = 0
    exchange: str = "binance"


class TradeMarker(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A non-market entry of a USD-M futures ``@trade`` stream (``X`` other than ``MARKET``:
    ``NA``, ``INSURANCE_FUND``, ``ADL``...), often with ``p = "0"``.

    It is not a trade and is never delivered to the sink or stored. Its id (``None`` if the
    frame has none) is a slot of the trade-id sequence: USD-M aggTrades leave insurance-fund
    and ADL trades out of their ``f..l`` ranges, and the futures dumps have matching holes
    (``shared/reference/binance-protocol.md`` §3, §4.1), so the client counts the id as seen.
    """

    symbol: str
    trade_id: int | None
    trade_type: str
    ts: int
    recv_ts: int = 0
    exchange: str = "binance"


class AggTrade(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One aggregated trade (``@aggTrade``): the fills ``first_id..last_id`` of one taker order."""

    symbol: str
    agg_id: int
    first_id: int
    last_id: int
    price: float
    qty: float
    ts: int
    event_ts: int
    is_buyer_maker: bool
    recv_ts: int = 0
    exchange: str = "binance"


class BookTicker(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Best bid/ask (``@bookTicker``). Spot sends no event time: ``ts`` is then ``recv_ts``."""

    symbol: str
    update_id: int
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float
    ts: int
    recv_ts: int = 0
    exchange: str = "binance"


class DepthUpdate(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One diff of the order book (``@depth`` / ``@depth@100ms``, event ``depthUpdate``).

    ``first_id``/``last_id`` are Binance's ``U``/``u``: the event holds every book change with
    an update id in ``U..u``. ``prev_last_id`` is USD-M's ``pu`` (the previous event's ``u``);
    spot sends none (``None``). Each level is ``(price, qty)``: the level's new absolute
    quantity, ``0.0`` to delete it. Not part of :data:`Event`: the trade client ignores
    depth streams; :class:`lq.feeds.depth.DepthParser` makes these and
    :class:`lq.feeds.booksync.BookSync` consumes them.
    """

    symbol: str
    first_id: int  # U
    last_id: int  # u
    prev_last_id: int | None  # pu (USD-M futures); None on spot
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]
    ts: int  # transaction time T (futures), else event time E, µs
    event_ts: int  # event time E, µs
    recv_ts: int = 0
    exchange: str = "binance"


class DepthSnapshot(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A whole book at ``last_update_id``: the REST ``/api/v3/depth`` (``/fapi/v1/depth``)
    answer, or a partial-book stream frame (``@depth5/10/20``, ``source="partial"``).

    Levels are best first. ``ts`` is the futures snapshot's ``T`` (else ``recv_ts``: a spot
    snapshot carries no time).
    """

    symbol: str
    last_update_id: int
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]
    ts: int
    recv_ts: int = 0
    source: Literal["rest", "partial"] = "rest"
    exchange: str = "binance"


ResyncReason = Literal["start", "gap", "crossed", "locked", "snapshot_older_than_events"]


class BookResync(msgspec.Struct, frozen=True, kw_only=True):
    """One resync of a local book: why, when, and the ids that showed it (the resync ledger).

    ``book_update_id`` is the book's id before the event (``-1`` if not synced);
    ``first_id``/``last_id``/``prev_last_id`` are the offending event's ``U``/``u``/``pu``
    (or the snapshot's ``lastUpdateId`` in ``last_id`` for ``snapshot_older_than_events``).
    ``ts`` is the exchange time of the event (the receive time for a snapshot), µs.
    :class:`lq.feeds.booksync.BookSync` makes these (``Resync`` there is this class); the
    store keeps them in ``book_resyncs``.
    """

    symbol: str
    reason: ResyncReason
    detail: str
    ts: int
    recv_ts: int
    book_update_id: int
    first_id: int | None = None
    last_id: int | None = None
    prev_last_id: int | None = None
    exchange: str = "binance"


class BookTop(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The top levels of a synced local book at one moment: what the store keeps every
    interval in ``book_snapshots`` (see :mod:`lq.store.bookcodec` for the encoding).

    ``update_id`` is the book's last applied update id (Binance ``u``, or the snapshot's
    ``lastUpdateId``); ``ts`` the exchange time of that update (µs), ``recv_ts`` the local
    time the snapshot was taken. ``levels`` is the depth asked for (default 20): a side may
    hold fewer levels when the book is thin. Levels are ``(price, qty)``, best first, every
    qty > 0.
    """

    symbol: str
    update_id: int
    ts: int
    recv_ts: int
    levels: int
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]
    exchange: str = "binance"


class Kline(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A candlestick update (``@kline_<interval>``); ``closed`` is Binance's ``x``."""

    symbol: str
    interval: str
    open_time: int
    close_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trades: int
    taker_buy_volume: float
    taker_buy_quote_volume: float
    first_id: int
    last_id: int
    closed: bool
    event_ts: int
    recv_ts: int = 0
    exchange: str = "binance"


class ServerShutdown(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Binance's ``serverShutdown`` event: reconnect at once."""

    event_ts: int
    recv_ts: int = 0


class ControlReply(msgspec.Struct, frozen=True, kw_only=True):
    """Reply to SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS/SET_PROPERTY/GET_PROPERTY."""

    id: int | str | None
    result: object = None
    error_code: int | None = None
    error_msg: str | None = None


class Gap(msgspec.Struct, frozen=True, kw_only=True):
    """Missing ids ``first_missing..last_missing`` (inclusive) of one symbol's trade stream.

    The transport emits ``status="found"`` when it sees the hole, then ``"filled"`` or
    ``"unfilled"`` once backfill has finished; an unfilled gap is stored, never hidden.
    """

    symbol: str
    kind: Literal["trade", "aggTrade"]
    first_missing: int
    last_missing: int
    status: Literal["found", "filled", "unfilled"]
    detected_ts: int
    reason: str = ""
    exchange: str = "binance"


#: characters of a a rejected input kept (``Rejected.raw``, a dead letter's ``raw``): enough to read any real frame, while a hostile
#: or runaway frame (tens of MB) cannot grow the database by its size with every copy
MAX_DEAD_RAW = 64 * 1024


def capped_raw(raw: str, limit: int = MAX_DEAD_RAW) -> str:
    """``raw`` cut to ``limit`` characters, saying how much was left out (a text cut once is
    left as it is)."""
    if len(raw) <= limit or (len(raw) < limit + 64 and raw.endswith(_CUT_END)):
        return raw
    return f"{raw[:limit]}... [cut: {len(raw) - limit:,}{_CUT_END}"


#: characters of a rejection's reason kept (a reason quotes the offending value)
MAX_REASON = 1000
_CUT_END = " more characters not kept]"


class Duplicate(msgspec.Struct, frozen=True):
    """A trade whose id its stream already delivered, dropped by the sequencer: the store
    checks that it equals the stored trade, so one id sent with two prices is reported (a
    dead letter naming both), never silently deduplicated."""

    event: Any  # the Trade or AggTrade


class Rejected(msgspec.Struct, frozen=True, kw_only=True):
    """A frame the parser refused: stored in the dead-letter table with the reason."""

    raw: str
    reason: str
    recv_ts: int
    exchange: str = "binance"


Event = (
    Trade
    | AggTrade
    | BookTicker
    | Kline
    | ServerShutdown
    | ControlReply
    | Gap
    | Rejected
    | BookTop
    | BookResync
    | TradeMarker
    | Duplicate
)
