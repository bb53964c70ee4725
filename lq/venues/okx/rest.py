"""OKX REST trade history ``GET /api/v5/market/history-trades``: pure request building and
decoding.

``?instId=BTC-USDT&type=1&after=<tradeId>&before=<tradeId>&limit=<=100`` (docs mirror
``Get_Trades_History.md``, reference §3.5): the trades of the last **3 months**, newest first,
``type=1`` pages by trade id: ``after=X`` returns the trades **older** than ``X`` (ids ``< X``),
``before=X`` newer ones; ``limit`` at most 100. Body ``{"code":"0","msg":"","data":[{"instId",
"tradeId","px","sz","side","ts"}]}`` with ``side`` the taker side and ``ts`` ms. The same body
comes from ``/api/v5/market/trades`` (the newest 500 only).

Paging forward from ``after_id``: ask ``after = c + limit + 1`` (``c`` = highest id held),
which returns exactly ``c+1 .. c+limit`` while they exist; at the head the page is the newest
``limit`` trades and :func:`decode_history` (given ``request=``) ends the paging when the
page's newest id is below ``after - 1``. Ids older than 3 months are not served (an empty page:
the framework reports them unfillable).

Errors: ``{"code":"50011","msg":"Rate limit reached..."}`` (HTTP 429, or 200 on older
gateways), ``50013`` "Systems are busy" (retry), ``50001``/``50004`` (retry), other codes
(``51001`` instrument does not exist, ``51000`` parameter error) fatal. Limit: **20 requests
per 2 s per IP** for history-trades.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec

from lq.errors import FrameError
from lq.feeds.events import Trade
from lq.feeds.invariants import problem
from lq.feeds.parsing import reason

from .protocol import NAME

__all__ = [
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

HISTORY_PATH = "/api/v5/market/history-trades"
MAX_LIMIT = 100
HISTORY_LIMIT = MAX_LIMIT
"""Page size the framework asks for: the most a page holds (100)."""
RATE_LIMIT_PER_S = 10.0  # 20 requests / 2 s per IP (Get_Trades_History.md)
RATE_LIMITED_WAIT_S = 2.0  # one full 2 s window
_RETRY_CODES = frozenset({"50001", "50004", "50013", "50026"})
_LIMIT_CODES = frozenset({"50011", "50061"})


class HistoryPage(msgspec.Struct, kw_only=True):
    """One decoded page: ``trades`` ascending by id, ``next_cursor`` (the newest id held) for
    the next :func:`history_request` (``None``: no more), refused rows in ``rejected``."""

    trades: list[Trade]
    next_cursor: object | None = None
    rejected: list[tuple[str, str]] = []


def first_cursor(after_id: int | None, after_ts_us: int | None) -> int | None:
    """The cursor of a refill's first page: OKX pages by id, so none is needed (``after_id``
    is used)."""
    return None


def history_request(
    symbol: str, *, after_id: int | None, cursor: object | None, limit: int
) -> tuple[str, dict[str, str]]:
    """Path and query for the trades with ids above ``cursor`` (or ``after_id``), oldest first
    across pages; with neither, the newest page.

    >>> history_request("BTC-USDT", after_id=100, cursor=None, limit=100)
    ('/api/v5/market/history-trades', {'instId': 'BTC-USDT', 'type': '1', 'limit': '100', 'after': '201'})
    """
    n = max(1, min(int(limit), MAX_LIMIT))
    params = {"instId": symbol, "type": "1", "limit": str(n)}
    c = cursor if cursor is not None else after_id
    if c is None:
        return HISTORY_PATH, params
    if type(c) is not int or c < 0:
        raise ValueError(f"cursor={c!r}: expected a trade id (int >= 0)")
    params["after"] = str(c + n + 1)
    return HISTORY_PATH, params


class _Body(msgspec.Struct):
    code: str | int
    msg: str = ""
    data: list[msgspec.Raw] = []


class _Row(msgspec.Struct, gc=False):
    instId: str
    tradeId: int
    px: float
    sz: float
    side: Literal["buy", "sell"]
    ts: int


_body = msgspec.json.Decoder(_Body)
_row = msgspec.json.Decoder(_Row, strict=False)


def decode_history(
    body: bytes,
    symbol: str,
    *,
    exchange: str = NAME,
    recv_ts: int = 0,
    request: Mapping[str, str] | None = None,
) -> HistoryPage:
    """Decode one history-trades (or market/trades) page of ``symbol``.

    Raises :class:`~lq.errors.FrameError` when the body is no trade page, including a non-zero
    ``code`` (50011 comes with HTTP 200 on some gateways): the caller then asks
    :func:`classify_error` what to do.
    """
    b = bytes(body)
    try:
        env = _body.decode(b)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FrameError(f"okx trades page for {symbol}: {reason(exc)}", b[:200]) from None
    code = str(env.code)
    if code != "0":
        what = "rate limited" if code in _LIMIT_CODES else "refused"
        raise FrameError(f"okx trades for {symbol}: {what}: code {code}: {env.msg[:200]}", b[:200])
    trades: list[Trade] = []
    rejected: list[tuple[str, str]] = []
    top = -1
    for r in env.data:
        text = bytes(r).decode("utf-8", "replace")
        try:
            d = _row.decode(r)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            rejected.append((text, reason(exc)))
            continue
        if 0 <= d.tradeId < 2**63:
            top = max(top, d.tradeId)  # a refused row still moves the cursor past it
        if d.instId != symbol:
            rejected.append((text, f"instId={d.instId!r} is not {symbol!r}"))
            continue
        ts = d.ts * 1000
        t = Trade(
            symbol=symbol,
            trade_id=d.tradeId,
            price=d.px,
            qty=d.sz,
            ts=ts,
            event_ts=ts,
            is_buyer_maker=d.side == "sell",  # taker side
            recv_ts=recv_ts,
            exchange=exchange,
        )
        why = problem(t)
        if why is not None:
            rejected.append((text, why))
            continue
        trades.append(t)
    trades.sort(key=lambda t: t.trade_id)
    nxt: int | None = top if top >= 0 else None
    if request is not None and nxt is not None and "after" in request:
        try:
            below = int(request["after"])
        except ValueError:
            below = -1
        if top < below - 1:
            nxt = None  # the page did not reach the window's top: the newest trade
    return HistoryPage(trades=trades, next_cursor=nxt, rejected=rejected)


def classify_error(
    status: int, headers: Mapping[str, str], body: bytes
) -> tuple[Literal["ok", "rate_limited", "retry", "fatal"], float | None]:
    """``("ok", None)`` for code 0; 429 or code 50011 -> ``("rate_limited", 2.0)`` (one 2 s
    window, or ``Retry-After``); 50013/50001/50004 and 5xx -> ``("retry", 1.0)``; other codes
    and 4xx -> ``("fatal", None)``."""
    code: str | None = None
    try:
        code = str(_body.decode(bytes(body)).code)
    except (msgspec.DecodeError, msgspec.ValidationError):
        code = None
    if status == 429 or code in _LIMIT_CODES:
        return "rate_limited", _retry_after(headers) or RATE_LIMITED_WAIT_S
    if code in _RETRY_CODES or status >= 500 or status == 408:
        return "retry", 1.0
    if 200 <= status < 300 and code == "0":
        return "ok", None
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
