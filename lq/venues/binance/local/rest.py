"""Binance spot REST endpoints served by the local exchange: pure request -> response.

``RestApi.handle(method, target, headers, now)`` returns a :class:`RestResponse`; the server
only moves bytes. Endpoints, parameters, weights, limits and error bodies follow
``shared/reference/binance-protocol.md`` section 2:

========================== ====== ==========================================================
path                       weight parameters
========================== ====== ==========================================================
``/api/v3/ping``             1    none
``/api/v3/time``             1    none
``/api/v3/exchangeInfo``    20    ``symbol`` or ``symbols`` (optional)
``/api/v3/aggTrades``        4    ``symbol``, ``fromId``, ``startTime``, ``endTime``, ``limit``
``/api/v3/historicalTrades`` 25   ``symbol``, ``fromId``, ``limit``
``/api/v3/trades``          25    ``symbol``, ``limit``
``/api/v3/klines``           2    ``symbol``, ``interval``, ``startTime``, ``endTime``, ``limit``
``/api/v3/depth``         5-250   ``symbol``, ``limit`` (default 100, at most 5000; weight 5
                                  up to 100, 25 up to 500, 50 up to 1000, 250 above)
========================== ====== ==========================================================

``/api/v3/depth`` answers the exchange's own book (:meth:`lq.exchange.market.Market.depth`):
as it stands after the last diff sent, ``lastUpdateId`` its ``u``; 404 ``code -1`` when the
source has no book of that symbol (the simulator, a recording without depth).

Every response carries ``X-MBX-USED-WEIGHT-1M`` (weight used in the current clock minute).
Past ``weight_limit`` the answer is 429 with ``Retry-After`` (seconds to the next minute) and
``{"code":-1003,...}``; a client that keeps calling while told to wait gets 418 (banned for
``ban_seconds``). :meth:`RestApi.force` makes the next N calls answer 429 or 418 (a fault
switch for tests). Errors: -1102 mandatory parameter missing, -1100 illegal characters,
-1121 invalid symbol, -1120 invalid interval, all with HTTP 400.

The local exchange says what it is, which real Binance never does: every response carries
``X-LQ-Exchange: <label>`` (:data:`IDENTITY_HEADER`) and ``exchangeInfo`` an ``lqExchange``
field with the same label (``"local"`` for the simulator, ``"replay"`` for recordings). A
collector pointed at it with ``--ws-url`` labels its rows by that, never as live Binance.

``limit`` above 1000 is clamped to 1000 (lq's choice). ``startTime``/``endTime`` accept ms or
µs (16 digits or more means µs); returned times are ms unless the request carries
``X-MBX-TIME-UNIT: MICROSECOND``.

The same endpoints answer under USD-M futures' ``/fapi/v1/`` prefix. With ``api_key`` set,
``historicalTrades`` imitates USD-M and Binance.US, where it needs an API key: without an
``X-MBX-APIKEY`` header the answer is HTTP 401 ``{"code":-2014,"msg":"API-key format
invalid."}``, with another key 401 ``{"code":-2015,...}``.
"""

from __future__ import annotations

import bisect
import json
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from lq.exchange.market import KlineBar, Market, build_klines, interval_bounds
from lq.feeds.invariants import KLINE_INTERVALS

__all__ = ["IDENTITY_FIELD", "IDENTITY_HEADER", "WEIGHTS", "RestApi", "RestResponse"]

#: Response header (and ``exchangeInfo`` field) naming the local exchange's data label.
IDENTITY_HEADER = "X-LQ-Exchange"
IDENTITY_FIELD = "lqExchange"

WEIGHTS: dict[str, int] = {
    "/api/v3/ping": 1,
    "/api/v3/time": 1,
    "/api/v3/exchangeInfo": 20,
    "/api/v3/aggTrades": 4,
    "/api/v3/historicalTrades": 25,
    "/api/v3/trades": 25,
    "/api/v3/klines": 2,
    # answered for third-party clients (python-binance's get_ticker, ccxt's fetch_ticker)
    "/api/v3/ticker/24hr": 2,
    "/api/v3/ticker/price": 2,
    "/api/v3/ticker/bookTicker": 2,
    "/api/v3/depth": 5,  # by limit: see depth_weight
}
_JSON = ("Content-Type", "application/json;charset=UTF-8")


@dataclass(frozen=True, slots=True, kw_only=True)
class RestResponse:
    """HTTP status, headers and body of one REST answer."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


class _BadRequest(Exception):
    def __init__(self, code: int, msg: str) -> None:
        self.code = code
        self.msg = msg


class _NotServed(Exception):
    """A Binance endpoint lq knows but does not serve yet (HTTP 404, JSON body)."""


def depth_weight(limit: int) -> int:
    """Binance spot's weight of ``/api/v3/depth`` for ``limit`` levels."""
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def _depth_limit(q: Mapping[str, str]) -> int:
    limit = _int_param(q, "limit")
    return 100 if limit is None else max(1, min(limit, 5000))


def _fmt8(d: Decimal) -> str:
    return f"{d.quantize(Decimal('0.00000001')):f}"


@dataclass(slots=True)
class _Forced:
    status: Literal[429, 418]
    remaining: int
    retry_after: int


@dataclass(slots=True)
class _Limiter:
    weight_limit: int
    ban_after: int
    ban_seconds: int
    minute: int = -1
    used: int = 0
    retry_until: float = 0.0
    ignored: int = 0
    banned_until: float = 0.0
    forced: list[_Forced] = field(default_factory=list)


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _mandatory(name: str) -> _BadRequest:
    return _BadRequest(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def _int_param(q: Mapping[str, str], name: str) -> int | None:
    raw = q.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise _BadRequest(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        ) from None


def _to_us(t: int | None) -> int | None:
    if t is None:
        return None
    return t if t >= 10**14 else t * 1000


class RestApi:
    """The REST half of the local exchange, answering from ``market``.

    Parameters
    ----------
    market
        The exchange's record (shared with the socket side).
    weight_limit
        ``REQUEST_WEIGHT`` per clock minute (Binance: 6000).
    ban_after
        Calls made while a 429 ``Retry-After`` is running before the IP is banned (418).
    ban_seconds
        Length of a ban (Binance: 2 minutes to 3 days).
    identity
        The label of the data served (``"local"`` simulator, ``"replay"``), sent in
        :data:`IDENTITY_HEADER` and ``exchangeInfo.lqExchange``.
    api_key
        When set, ``historicalTrades`` answers only requests carrying this key in
        ``X-MBX-APIKEY`` (as on USD-M futures and Binance.US).
    """

    def __init__(
        self,
        market: Market,
        *,
        weight_limit: int = 6000,
        ban_after: int = 5,
        ban_seconds: int = 120,
        identity: str = "local",
        api_key: str | None = None,
    ) -> None:
        self.market = market
        self.identity = identity
        self.api_key = api_key or None
        self._lim = _Limiter(
            weight_limit=weight_limit, ban_after=ban_after, ban_seconds=ban_seconds
        )
        self.calls: dict[str, int] = {}
        self.old_depth: dict[str, int] = {}
        """Per symbol, ``/api/v3/depth`` answers still to give from the source's first
        snapshot (the ``old_depth_snapshot`` fault: a cached, older book)."""
        self.targets: deque[str] = deque(maxlen=1000)
        """The last request targets (path and query) received, newest last (for tests)."""

    @property
    def used_weight(self) -> int:
        """Weight used in the current minute."""
        return self._lim.used

    def force(self, status: Literal[429, 418], *, count: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``count`` calls with ``status`` and ``Retry-After: retry_after``."""
        self._lim.forced.append(_Forced(status, count, retry_after))

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], now: float
    ) -> RestResponse:
        """Answer one request (``now``: wall clock, seconds since the epoch)."""
        parts = urlsplit(target)
        path = parts.path
        if path.startswith("/fapi/v1/"):  # USD-M futures' prefix: the same endpoints
            path = "/api/v3/" + path[len("/fapi/v1/") :]
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        lim = self._lim
        minute = int(now // 60)
        if minute != lim.minute:
            lim.minute, lim.used = minute, 0
        weight = WEIGHTS.get(path)
        if path == "/api/v3/depth":
            try:
                weight = depth_weight(_depth_limit(query))
            except _BadRequest:
                weight = 5  # answered as a bad request below
        if weight is None:  # Binance's errors are JSON {"code","msg"}; so is every one here
            return RestResponse(
                status=404,
                headers=(_JSON, (IDENTITY_HEADER, self.identity)),
                body=_dumps(
                    {
                        "code": -1,
                        "msg": f"lq's local exchange does not serve {path}; it serves "
                        + ", ".join(sorted(WEIGHTS)),
                    }
                ),
            )
        self.calls[path] = self.calls.get(path, 0) + 1
        self.targets.append(target)
        if method != "GET":
            return self._error(405, -1000, f"Method {method} not allowed.")
        denied = self._rate_check(weight, now)
        if denied is not None:
            return denied
        lim.used += weight
        if self.api_key is not None and path == "/api/v3/historicalTrades":
            given = headers.get("x-mbx-apikey", headers.get("X-MBX-APIKEY"))
            if not given:
                return self._error(401, -2014, "API-key format invalid.")
            if given != self.api_key:
                return self._error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        micro = headers.get("x-mbx-time-unit", headers.get("X-MBX-TIME-UNIT", "")).upper()
        div = 1 if micro == "MICROSECOND" else 1000
        try:
            body = self._route(path, query, div, now)
        except _BadRequest as exc:
            return self._error(400, exc.code, exc.msg)
        except _NotServed as exc:
            return self._error(404, -1, str(exc))
        return RestResponse(status=200, headers=self._headers(), body=_dumps(body))

    # -- limits -----------------------------------------------------------------------
    def _used_header(self) -> tuple[str, str]:
        return ("X-MBX-USED-WEIGHT-1M", str(self._lim.used))

    def _headers(self, *extra: tuple[str, str]) -> tuple[tuple[str, str], ...]:
        return (_JSON, self._used_header(), (IDENTITY_HEADER, self.identity), *extra)

    def _limited(self, status: int, retry_after: int, now: float) -> RestResponse:
        if status == 418:
            until = now + retry_after
            msg = (
                f"Way too much request weight used; IP banned until {int(until * 1000)}. "
                "Please use WebSocket Streams for live updates to avoid bans."
            )
        else:
            msg = (
                f"Too much request weight used; current limit is {self._lim.weight_limit} "
                "request weight per 1 MINUTE. Please use WebSocket Streams for live updates "
                "to avoid polling the API."
            )
        return RestResponse(
            status=status,
            headers=self._headers(("Retry-After", str(retry_after))),
            body=_dumps({"code": -1003, "msg": msg}),
        )

    def _rate_check(self, weight: int, now: float) -> RestResponse | None:
        lim = self._lim
        if lim.forced:
            f = lim.forced[0]
            f.remaining -= 1
            if f.remaining <= 0:
                lim.forced.pop(0)
            return self._limited(f.status, f.retry_after, now)
        if now < lim.banned_until:
            return self._limited(418, math.ceil(lim.banned_until - now), now)
        if now < lim.retry_until:
            lim.ignored += 1
            if lim.ignored >= lim.ban_after:
                lim.banned_until = now + lim.ban_seconds
                lim.ignored = 0
                return self._limited(418, lim.ban_seconds, now)
            return self._limited(429, math.ceil(lim.retry_until - now), now)
        if lim.used + weight > lim.weight_limit:
            retry = max(1, math.ceil((lim.minute + 1) * 60 - now))
            lim.retry_until = now + retry
            lim.ignored = 0
            return self._limited(429, retry, now)
        return None

    def _error(self, status: int, code: int, msg: str) -> RestResponse:
        return RestResponse(
            status=status,
            headers=self._headers(),
            body=_dumps({"code": code, "msg": msg}),
        )

    # -- endpoints --------------------------------------------------------------------
    def _symbol(self, q: Mapping[str, str]) -> str:
        sym = q.get("symbol")
        if not sym:
            raise _mandatory("symbol")
        if sym not in self.market.specs:
            raise _BadRequest(-1121, "Invalid symbol.")
        return sym

    @staticmethod
    def _limit(q: Mapping[str, str], default: int = 500) -> int:
        limit = _int_param(q, "limit")
        if limit is None:
            return default
        return max(1, min(limit, 1000))

    def _route(self, path: str, q: Mapping[str, str], div: int, now: float) -> object:
        if path == "/api/v3/ping":
            return {}
        if path == "/api/v3/time":
            return {"serverTime": int(now * 1_000_000) // div}
        if path == "/api/v3/exchangeInfo":
            return self._exchange_info(q, now, div)
        if path == "/api/v3/aggTrades":
            return self._agg_trades(q, div)
        if path in ("/api/v3/historicalTrades", "/api/v3/trades"):
            return self._trades(q, div, recent_only=path == "/api/v3/trades")
        if path.startswith("/api/v3/ticker/"):
            return self._tickers(path.rsplit("/", 1)[1], q, now, div)
        if path == "/api/v3/depth":
            sym = self._symbol(q)
            old = self.old_depth.get(sym, 0) > 0
            book = self.market.depth(sym, _depth_limit(q), first=old)
            if old and book is not None:
                self.old_depth[sym] -= 1
            if book is None:
                raise _NotServed(
                    f"/api/v3/depth: lq's local exchange has no order book of {sym}: its "
                    "source has no depth (replay a recording with @depth frames and a snapshot)"
                )
            return book
        return self._klines(q, div)

    def _ticker_symbols(self, q: Mapping[str, str]) -> tuple[list[str], bool]:
        if q.get("symbol"):
            return [self._symbol(q)], True
        if q.get("symbols"):
            try:
                names = json.loads(q["symbols"])
            except ValueError:
                raise _mandatory("symbols") from None
            if not isinstance(names, list) or not all(n in self.market.specs for n in names):
                raise _BadRequest(-1121, "Invalid symbol.")
            return list(names), False
        return list(self.market.specs), False

    def _tickers(self, kind: str, q: Mapping[str, str], now: float, div: int) -> object:
        """``ticker/24hr``, ``ticker/price``, ``ticker/bookTicker`` from the exchange's own
        trades (the rolling 24 h before ``now``) and its last quote."""
        names, single = self._ticker_symbols(q)
        out: list[dict[str, object]] = []
        now_us = int(now * 1_000_000)
        for sym in names:
            book = self.market.books.get(sym)
            trades = book.trades if book is not None else []
            quote = book.quote if book is not None else None
            last = trades[-1] if trades else None
            if kind == "price":
                out.append({"symbol": sym, "price": last.price if last else "0.00000000"})
                continue
            if kind == "bookTicker":
                out.append(
                    {
                        "symbol": sym,
                        "bidPrice": quote.bid if quote else "0.00000000",
                        "bidQty": quote.bid_qty if quote else "0.00000000",
                        "askPrice": quote.ask if quote else "0.00000000",
                        "askQty": quote.ask_qty if quote else "0.00000000",
                    }
                )
                continue
            i = bisect.bisect_left(book.times, now_us - 86_400_000_000) if book else 0
            day = trades[i:]
            prices = [Decimal(t.price) for t in day]
            vol = sum((Decimal(t.qty) for t in day), Decimal(0))
            qvol = sum((Decimal(t.qty) * Decimal(t.price) for t in day), Decimal(0))
            first = prices[0] if prices else Decimal(0)
            close = prices[-1] if prices else Decimal(0)
            change = close - first
            pct = (change / first * 100) if first else Decimal(0)
            z = "0.00000000"
            row: dict[str, object] = {
                "symbol": sym,
                "priceChange": _fmt8(change),
                "priceChangePercent": f"{pct:.3f}",
                "weightedAvgPrice": _fmt8(qvol / vol) if vol else z,
                "prevClosePrice": _fmt8(first) if prices else z,
                "lastPrice": _fmt8(close) if prices else z,
                "lastQty": last.qty if last else z,
                "bidPrice": quote.bid if quote else z,
                "bidQty": quote.bid_qty if quote else z,
                "askPrice": quote.ask if quote else z,
                "askQty": quote.ask_qty if quote else z,
                "openPrice": _fmt8(first) if prices else z,
                "highPrice": _fmt8(max(prices)) if prices else z,
                "lowPrice": _fmt8(min(prices)) if prices else z,
                "volume": _fmt8(vol),
                "quoteVolume": _fmt8(qvol),
                "openTime": (day[0].ts if day else now_us - 86_400_000_000) // div,
                "closeTime": (day[-1].ts if day else now_us) // div,
                "firstId": day[0].trade_id if day else -1,
                "lastId": day[-1].trade_id if day else -1,
                "count": len(day),
            }
            out.append(row)
        return out[0] if single else out

    def _exchange_info(self, q: Mapping[str, str], now: float, div: int) -> object:
        wanted = list(self.market.specs)
        if q.get("symbol"):
            wanted = [self._symbol(q)]
        elif q.get("symbols"):
            try:
                names = json.loads(q["symbols"])
            except ValueError:
                raise _mandatory("symbols") from None
            for n in names:
                if n not in self.market.specs:
                    raise _BadRequest(-1121, "Invalid symbol.")
            wanted = names
        symbols = []
        for name in wanted:
            s = self.market.specs[name]
            symbols.append(
                {
                    "symbol": s.symbol, "status": "TRADING", "baseAsset": s.base,
                    "baseAssetPrecision": 8, "quoteAsset": s.quote, "quotePrecision": 8,
                    "quoteAssetPrecision": 8, "orderTypes": ["LIMIT", "MARKET"],
                    "isSpotTradingAllowed": True,
                    "filters": [
                        {"filterType": "PRICE_FILTER", "minPrice": s.tick_size,
                         "maxPrice": "1000000.00000000", "tickSize": s.tick_size},
                        {"filterType": "LOT_SIZE", "minQty": s.lot_size,
                         "maxQty": "9000.00000000", "stepSize": s.lot_size},
                    ],
                }
            )  # fmt: skip
        return {
            "timezone": "UTC",
            "serverTime": int(now * 1_000_000) // div,
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": self._lim.weight_limit,
                },
                {
                    "rateLimitType": "RAW_REQUESTS",
                    "interval": "MINUTE",
                    "intervalNum": 5,
                    "limit": 300000,
                },
            ],
            "exchangeFilters": [],
            "symbols": symbols,
            IDENTITY_FIELD: self.identity,  # real Binance never sends this field
        }

    def _agg_trades(self, q: Mapping[str, str], div: int) -> object:
        sym = self._symbol(q)
        limit = self._limit(q)
        from_id = _int_param(q, "fromId")
        start = _to_us(_int_param(q, "startTime"))
        end = _to_us(_int_param(q, "endTime"))
        book = self.market.books[sym]
        aggs = book.aggs
        if from_id is not None:
            i = bisect.bisect_left(book.agg_ids, from_id)
            rows = aggs[i : i + limit]
            if end is not None:
                rows = [a for a in rows if a.ts <= end]
        elif start is not None:
            i = _first_at_or_after(aggs, start)
            rows = aggs[i : i + limit]
            if end is not None:
                rows = [a for a in rows if a.ts <= end]
        elif end is not None:
            j = _first_at_or_after(aggs, end + 1)
            rows = aggs[max(0, j - limit) : j]
        else:
            rows = aggs[-limit:]
        return [
            {"a": a.agg_id, "p": a.price, "q": a.qty, "f": a.first_id, "l": a.last_id,
             "T": a.ts // div, "m": a.is_buyer_maker, "M": True}
            for a in rows
        ]  # fmt: skip

    def _trades(self, q: Mapping[str, str], div: int, *, recent_only: bool) -> object:
        sym = self._symbol(q)
        limit = self._limit(q)
        book = self.market.books[sym]
        from_id = None if recent_only else _int_param(q, "fromId")
        if from_id is None:
            rows = book.trades[-limit:]
        else:
            i = bisect.bisect_left(book.ids, from_id)
            rows = book.trades[i : i + limit]
        return [
            {"id": t.trade_id, "price": t.price, "qty": t.qty,
             "quoteQty": _quote_qty(t.price, t.qty),
             "time": t.ts // div, "isBuyerMaker": t.is_buyer_maker, "isBestMatch": True}
            for t in rows
        ]  # fmt: skip

    def _klines(self, q: Mapping[str, str], div: int) -> object:
        sym = self._symbol(q)
        interval = q.get("interval")
        if not interval:
            raise _mandatory("interval")
        if interval not in KLINE_INTERVALS:
            raise _BadRequest(-1120, "Invalid interval.")
        limit = self._limit(q)
        start = _to_us(_int_param(q, "startTime"))
        end = _to_us(_int_param(q, "endTime"))
        book = self.market.books[sym]
        lo = (
            0
            if start is None
            else bisect.bisect_left(book.times, interval_bounds(interval, start)[0])
        )
        hi = len(book.times) if end is None else bisect.bisect_right(book.times, end)
        if start is None and end is None and book.times:
            # most recent: only the trades of the last `limit` intervals are needed
            first_open = book.times[-1]
            for _ in range(limit - 1):
                first_open = interval_bounds(interval, first_open)[0] - 1
            lo = bisect.bisect_left(book.times, interval_bounds(interval, first_open)[0])
        prev = book.trades[lo - 1].price if lo > 0 else ""
        bars: list[KlineBar] = build_klines(sym, interval, book.trades[lo:hi], prev_close=prev)
        if start is not None:
            bars = [b for b in bars if b.close_time > start]
        if end is not None:
            bars = [b for b in bars if b.open_time <= end]
        bars = bars[:limit] if start is not None else bars[-limit:]
        return [b.rest_row(div) for b in bars]


def _quote_qty(price: str, qty: str) -> str:
    text = f"{Decimal(price) * Decimal(qty):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _first_at_or_after(aggs: list, ts: int) -> int:
    lo, hi = 0, len(aggs)
    while lo < hi:
        mid = (lo + hi) // 2
        if aggs[mid].ts < ts:
            lo = mid + 1
        else:
            hi = mid
    return lo
