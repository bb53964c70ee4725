"""Kraken REST trade history ``GET /0/public/Trades``: pure request building and decoding.

``?pair=XBTUSDT&since=<cursor>&count=<=1000`` returns ``{"error":[],"result":{"<REST pair>":
[[price, volume, time, "b"|"s", "l"|"m", misc, trade_id], ...], "last":"<ns>"}}``, oldest
first, full history (docs ``rest-api/get-recent-trades``; real page:
``shared/data/kraken/rest_trades_xbtusdt_20251110.txt``). ``since`` is an **exclusive
nanosecond-time cursor**, not an id: ``last`` is the ns time of the page's last trade and the
next page's ``since``. Kraken cannot page by trade id, so the first page of a refill starts
from a time: pass ``cursor=cursor_at(ts_us)`` with ``ts_us`` the time of the trade
``after_id`` (the page then starts at that trade and its same-time siblings, which the
caller drops by id). Without a cursor the request returns the newest 1000 trades.

Row side ``"b"``/``"s"`` is the taker side (``"s"`` -> ``is_buyer_maker``); ``time`` is decimal
seconds with ~100 ns digits, converted to µs from its digits (no float).

Errors come in the body, often with HTTP 200: ``{"error":["EGeneral:Too many requests"]}``
(rate limit; "additional calls would be restricted for a few seconds", support.kraken.com
206548367), ``EAPI:Rate limit exceeded``, ``EService:Unavailable``/``Busy`` (retry),
``EQuery:Unknown asset pair`` (fatal). Limit: about **1 call/s per IP and pair** for Trades.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from typing import Literal

import msgspec

from lq.errors import FrameError
from lq.feeds.events import Trade
from lq.feeds.invariants import symbol_problem, trade_problem
from lq.feeds.parsing import reason

from .protocol import NAME

__all__ = [
    "HISTORY_LIMIT",
    "HISTORY_PATH",
    "MAX_LIMIT",
    "RATE_LIMITED_WAIT_S",
    "RATE_LIMIT_PER_S",
    "HistoryPage",
    "classify_error",
    "cursor_at",
    "decode_history",
    "first_cursor",
    "history_request",
    "rest_pair",
]

HISTORY_PATH = "/0/public/Trades"
MAX_LIMIT = 1000
HISTORY_LIMIT = MAX_LIMIT
"""Page size the framework asks for: the most a page holds: at ~1 call/s per pair every call counts, and a refill without a time cursor reads the newest page."""
RATE_LIMIT_PER_S = 1.0  # per IP and pair for Trades (support.kraken.com 206548367)
RATE_LIMITED_WAIT_S = 5.0  # "restricted for a few seconds" after the limit is hit

#: v2 asset codes whose REST spelling differs (``BTC/USDT`` is ``XBTUSDT`` on REST).
REST_ASSETS = {"BTC": "XBT", "DOGE": "XDG"}


class HistoryPage(msgspec.Struct, kw_only=True):
    """One decoded page: ``trades`` ascending by id, ``next_cursor`` (an int ns time) for the
    next :func:`history_request` (``None``: no more), refused rows in ``rejected``."""

    trades: list[Trade]
    next_cursor: object | None = None
    rejected: list[tuple[str, str]] = []


def rest_pair(symbol: str) -> str:
    """The REST ``pair`` parameter for a v2 pair: ``"BTC/USDT"`` -> ``"XBTUSDT"``."""
    base, sep, quote = symbol.partition("/")
    if not sep:
        return symbol
    return REST_ASSETS.get(base, base) + REST_ASSETS.get(quote, quote)


def first_cursor(after_id: int | None, after_ts_us: int | None) -> int | None:
    """The cursor of a refill's first page: Kraken pages by time only, so it is
    :func:`cursor_at` the time of the trade ``after_id`` (``None`` if unknown: the newest
    page)."""
    return cursor_at(after_ts_us) if after_ts_us is not None else None


def cursor_at(ts_us: int) -> int:
    """The ``since`` cursor that starts a page at the trades of time ``ts_us`` (µs) included:
    one ns before it (``since`` is exclusive)."""
    return ts_us * 1000 - 1


def history_request(
    symbol: str, *, after_id: int | None, cursor: object | None, limit: int
) -> tuple[str, dict[str, str]]:
    """Path and query of the next page. ``cursor`` is a ns time (from :func:`cursor_at` or a
    page's ``next_cursor``); ``after_id`` cannot be turned into a time here, so with no cursor
    the request is for the newest trades.

    >>> history_request("BTC/USDT", after_id=None, cursor=1762820035982277754, limit=1000)
    ('/0/public/Trades', {'pair': 'XBTUSDT', 'count': '1000', 'since': '1762820035982277754'})
    """
    n = max(1, min(int(limit), MAX_LIMIT))
    params = {"pair": rest_pair(symbol), "count": str(n)}
    if cursor is not None:
        if type(cursor) is not int or cursor < 0:
            raise ValueError(f"cursor={cursor!r}: expected a ns time (int >= 0)")
        params["since"] = str(cursor)
    return HISTORY_PATH, params


_Row = tuple[float, float, decimal.Decimal, Literal["b", "s"], str, str, int]


class _Body(msgspec.Struct):
    error: list[str]
    result: dict[str, msgspec.Raw] = {}


_body = msgspec.json.Decoder(_Body)
_rows = msgspec.json.Decoder(list[msgspec.Raw])
_row = msgspec.json.Decoder(_Row, strict=False)
_last = msgspec.json.Decoder(int | str)
_US = decimal.Decimal(1_000_000)
_CTX = decimal.Context(prec=60)


def seconds_to_us(d: decimal.Decimal) -> int:
    """Decimal seconds -> µs, floored, exactly (``1762795433.9717445`` -> ``1762795433971744``)."""
    if not d.is_finite():
        raise ValueError(f"time={d}: not finite")
    return int(_CTX.multiply(d, _US).to_integral_value(rounding=decimal.ROUND_FLOOR))


def _raise_for_errors(errors: list[str], symbol: str, body: bytes) -> None:
    if not errors:
        return
    kind, _ = _classify_messages(errors)
    what = {"rate_limited": "rate limited", "retry": "venue busy"}.get(kind, "refused")
    raise FrameError(f"kraken Trades for {symbol}: {what}: {'; '.join(errors)[:200]}", body[:200])


def decode_history(
    body: bytes,
    symbol: str,
    *,
    exchange: str = NAME,
    recv_ts: int = 0,
    request: Mapping[str, str] | None = None,
) -> HistoryPage:
    """Decode one ``/0/public/Trades`` page for the v2 pair ``symbol``.

    Raises :class:`~lq.errors.FrameError` when the body is no trade page, including Kraken's
    errors, which come with HTTP 200 (``{"error":["EGeneral:Too many requests"]}``): the
    caller then asks :func:`classify_error` what to do. ``request`` (the params sent) lets a short page end the paging; without it
    only an empty page does.
    """
    if symbol_problem(symbol.replace("/", "-", 1)) is not None or symbol.count("/") != 1:
        raise ValueError(f"symbol={symbol!r}: not a Kraken v2 pair 'BASE/QUOTE'")
    check_sym = symbol.replace("/", "-", 1)  # the invariants' symbol rule, '/' aside
    b = bytes(body)
    try:
        env = _body.decode(b)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FrameError(f"kraken Trades page for {symbol}: {reason(exc)}", b[:200]) from None
    _raise_for_errors(env.error, symbol, b)
    keys = [k for k in env.result if k != "last"]
    if len(keys) != 1 or "last" not in env.result:
        raise FrameError(
            f"kraken Trades page for {symbol}: expected one pair and 'last' in result, got "
            f"{sorted(env.result)[:5]}",
            b[:200],
        )
    try:
        raws = _rows.decode(env.result[keys[0]])
        last = _last.decode(env.result["last"])
        last_ns = int(last)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise FrameError(f"kraken Trades page for {symbol}: {reason(exc)}", b[:200]) from None
    trades: list[Trade] = []
    rejected: list[tuple[str, str]] = []
    for r in raws:
        text = bytes(r).decode("utf-8", "replace")
        try:
            price, qty, tsec, side, _ord, _misc, tid = _row.decode(r)
            ts = seconds_to_us(tsec)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, ArithmeticError) as exc:
            rejected.append((text, reason(exc)))
            continue
        why = trade_problem(check_sym, tid, ts, price, qty)
        if why is not None:
            rejected.append((text, why))
            continue
        trades.append(
            Trade(
                symbol=symbol,
                trade_id=tid,
                price=price,
                qty=qty,
                ts=ts,
                event_ts=ts,
                is_buyer_maker=side == "s",  # taker side: s = the taker sold
                recv_ts=recv_ts,
                exchange=exchange,
            )
        )
    trades.sort(key=lambda t: t.trade_id)
    nxt: int | None = last_ns if raws else None
    if request is not None and nxt is not None:
        try:
            asked = int(request.get("count", MAX_LIMIT))
        except ValueError:
            asked = MAX_LIMIT
        if len(raws) < asked:
            nxt = None  # a short page: the newest trades
    return HistoryPage(trades=trades, next_cursor=nxt, rejected=rejected)


def _classify_messages(errors: list[str]) -> tuple[str, float | None]:
    text = " ".join(errors)
    if "Too many requests" in text or "Rate limit" in text or "EAPI:Rate" in text:
        return "rate_limited", RATE_LIMITED_WAIT_S
    if text.startswith("EService:") or "Unavailable" in text or "Busy" in text:
        return "retry", 2.0
    return "fatal", None


def classify_error(
    status: int, headers: Mapping[str, str], body: bytes
) -> tuple[Literal["ok", "rate_limited", "retry", "fatal"], float | None]:
    """``("ok", None)`` for a good page; Kraken's rate-limit errors (HTTP 200 with
    ``{"error":["EGeneral:Too many requests"]}``, or 429) -> ``("rate_limited", 5.0)``;
    ``EService`` errors and 5xx -> ``("retry", 2.0)``; other errors -> ``("fatal", None)``."""
    errors: list[str] = []
    try:
        env = _body.decode(bytes(body))
        errors = env.error
    except (msgspec.DecodeError, msgspec.ValidationError):
        errors = []
    if status == 429:
        return "rate_limited", _retry_after(headers) or RATE_LIMITED_WAIT_S
    if errors:
        kind, wait = _classify_messages(errors)
        return kind, wait  # type: ignore[return-value]
    if 200 <= status < 300:
        return "ok", None
    if status >= 500 or status == 408:
        return "retry", 2.0
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
