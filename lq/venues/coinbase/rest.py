"""Coinbase Exchange REST trade history: pure request building and decoding.

``GET /products/{product_id}/trades?after=&before=&limit=`` (docs ``exchange/rest-api/
pagination``, reference §1.6): newest first, ``limit`` at most 1000, cursor pagination by
trade id: ``after=X`` returns the trades **older** than ``X`` (ids ``< X``), ``before=X``
the newer ones. Time-based paging is impossible ("it can only be done with Ids", ccxt#22617).
``side`` there is the **maker** side; lq stores ``is_buyer_maker = (side == "buy")``.

Paging forward from ``after_id`` (the recipe of the reference): ask ``after = c + limit + 1``
with ``c`` the highest id held so far, which returns exactly ``c+1 .. c+limit`` while they
exist. At the head of the history the same request returns the newest ``limit`` trades (ids
``<= c`` among them): :func:`decode_history` tells that from the request it answers (pass
``request=`` the params :func:`history_request` built): a page whose newest id is below
``after - 1`` is the last one.

Also decoded: the Advanced Trade ``/api/v3/brokerage/products/{id}/ticker`` body
(``{"trades":[...], "best_bid", "best_ask"}``, ``side`` = **taker** side): a time-window
endpoint without an id cursor, so its page has ``next_cursor = None``.

Rate limit: public endpoints 10 requests/s per IP, bursts up to 15; above it HTTP 429
(docs ``exchange/rest-api/rate-limits.md``; no ``Retry-After`` is documented).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec

from lq.errors import FrameError
from lq.feeds.events import Trade
from lq.feeds.invariants import problem
from lq.feeds.parsing import reason

from .parser import iso_to_us
from .protocol import NAME

__all__ = [
    "BURST",
    "HISTORY_LIMIT",
    "HISTORY_PATH",
    "MAX_LIMIT",
    "RATE_LIMIT_PER_S",
    "HistoryPage",
    "classify_error",
    "decode_history",
    "first_cursor",
    "history_request",
]

HISTORY_PATH = "/products/{symbol}/trades"
MAX_LIMIT = 1000
HISTORY_LIMIT = MAX_LIMIT
"""Page size the framework asks for: the most a page holds: fewer calls at 10/s."""
RATE_LIMIT_PER_S = 10.0  # public Exchange REST, per IP (rate-limits.md)
BURST = 15


class HistoryPage(msgspec.Struct, kw_only=True):
    """One decoded history page: ``trades`` ascending by id, ``next_cursor`` for the next
    :func:`history_request` (``None``: no more), rows that break an invariant in
    ``rejected`` as ``(raw row, reason)``."""

    trades: list[Trade]
    next_cursor: object | None = None
    rejected: list[tuple[str, str]] = []


def first_cursor(after_id: int | None, after_ts_us: int | None) -> int | None:
    """The cursor of a refill's first page: Coinbase pages by id, so none is needed
    (``after_id`` is used)."""
    return None


def history_request(
    symbol: str, *, after_id: int | None, cursor: object | None, limit: int
) -> tuple[str, dict[str, str]]:
    """Path and query for the trades with ids above ``cursor`` (or ``after_id`` on the first
    page), oldest first across pages. ``after_id=None`` and no cursor: the newest page.

    >>> history_request("BTC-USD", after_id=100, cursor=None, limit=1000)
    ('/products/BTC-USD/trades', {'limit': '1000', 'after': '1101'})
    """
    n = max(1, min(int(limit), MAX_LIMIT))
    path = HISTORY_PATH.format(symbol=symbol)
    c = cursor if cursor is not None else after_id
    if c is None:
        return path, {"limit": str(n)}
    if type(c) is not int or c < 0:
        raise ValueError(f"cursor={c!r}: expected a trade id (int >= 0)")
    return path, {"limit": str(n), "after": str(c + n + 1)}


class _Row(msgspec.Struct, gc=False):
    time: str
    trade_id: int
    price: float
    size: float
    side: Literal["buy", "sell"]


class _ATRow(msgspec.Struct, gc=False):
    trade_id: int
    product_id: str
    price: float
    size: float
    time: str
    side: Literal["BUY", "SELL"]


class _ATBody(msgspec.Struct):
    trades: list[msgspec.Raw]


_rows = msgspec.json.Decoder(list[msgspec.Raw])
_row = msgspec.json.Decoder(_Row, strict=False)
_at_body = msgspec.json.Decoder(_ATBody)
_at_row = msgspec.json.Decoder(_ATRow, strict=False)


def decode_history(
    body: bytes,
    symbol: str,
    *,
    exchange: str = NAME,
    recv_ts: int = 0,
    request: Mapping[str, str] | None = None,
) -> HistoryPage:
    """Decode one page of ``/products/{symbol}/trades`` (or an Advanced Trade ticker body).

    Raises :class:`~lq.errors.FrameError` when the body is not a trade list at all; single
    rows that break a rule are set aside in ``rejected``. ``request`` (the params of
    :func:`history_request`) lets the page say whether it is the last one; without it the
    cursor is the newest id of the page and a page that brings no new id ends the paging.
    """
    b = bytes(body)
    advanced = b.lstrip()[:1] == b"{"
    try:
        raws = _at_body.decode(b).trades if advanced else _rows.decode(b)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FrameError(f"coinbase trades page for {symbol}: {reason(exc)}", b[:200]) from None
    trades: list[Trade] = []
    rejected: list[tuple[str, str]] = []
    for r in raws:
        text = bytes(r).decode("utf-8", "replace")
        try:
            if advanced:
                a = _at_row.decode(r)
                if a.product_id != symbol:
                    raise ValueError(f"product_id={a.product_id!r} is not {symbol!r}")
                tid, price, qty, tm = a.trade_id, a.price, a.size, a.time
                buyer_maker = a.side == "SELL"  # Advanced Trade: taker side
            else:
                d = _row.decode(r)
                tid, price, qty, tm = d.trade_id, d.price, d.size, d.time
                buyer_maker = d.side == "buy"  # Exchange: maker side
            ts = iso_to_us(tm)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            rejected.append((text, reason(exc)))
            continue
        t = Trade(
            symbol=symbol,
            trade_id=tid,
            price=price,
            qty=qty,
            ts=ts,
            event_ts=ts,
            is_buyer_maker=buyer_maker,
            recv_ts=recv_ts,
            exchange=exchange,
        )
        why = problem(t)
        if why is not None:
            rejected.append((text, why))
            continue
        trades.append(t)
    trades.sort(key=lambda t: t.trade_id)
    if advanced or not raws:
        return HistoryPage(trades=trades, next_cursor=None, rejected=rejected)
    top = max(
        [t.trade_id for t in trades] + [_id_of(text) for text, _ in rejected if _id_of(text) >= 0]
        or [-1]
    )
    nxt: int | None = top if top >= 0 else None
    if request is not None and "after" in request and nxt is not None:
        try:
            asked_below = int(request["after"])
        except ValueError:
            asked_below = -1
        if top < asked_below - 1:
            nxt = None  # the page did not reach the window's top: this is the newest trade
    return HistoryPage(trades=trades, next_cursor=nxt, rejected=rejected)


def _id_of(row: str) -> int:
    """The ``trade_id`` of a refused row if it has a sane one (so paging goes past it)."""
    try:
        v = msgspec.json.decode(row.encode())
        tid = v.get("trade_id") if isinstance(v, dict) else None
        return int(tid) if tid is not None and 0 <= int(tid) < 2**63 else -1
    except Exception:
        return -1


def classify_error(
    status: int, headers: Mapping[str, str], body: bytes
) -> tuple[Literal["ok", "rate_limited", "retry", "fatal"], float | None]:
    """What to do with a reply: ``("ok", None)`` for a 2xx, ``("rate_limited", wait_s)`` for
    429 (``Retry-After`` if given, else 1 s: the bucket refills at 10/s), ``("retry", s)`` for
    5xx, ``("fatal", None)`` for other 4xx (unknown product: 404 ``{"message":"NotFound"}``)."""
    if 200 <= status < 300:
        return "ok", None
    if status == 429:
        wait = _retry_after(headers)
        return "rate_limited", wait if wait is not None else 1.0
    if status >= 500 or status == 408:
        return "retry", 1.0
    return "fatal", None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for k, v in headers.items():
        if k.lower() == "retry-after":
            try:
                s = float(v)
            except ValueError:
                return None
            return s if 0 <= s < 3600 else None
    return None
