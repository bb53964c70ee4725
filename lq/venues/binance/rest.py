"""Binance REST market-data client for backfill (``httpx.AsyncClient``).

Endpoints (``shared/reference/binance-protocol.md`` §2): ``historicalTrades`` (weight 25),
``aggTrades`` (4), ``klines`` (2), ``exchangeInfo`` (20), ``time`` (1), under ``/api/v3`` (spot)
or ``/fapi/v1`` (USD-M futures).

Hygiene (§5.3.8):

* the used weight is read from ``X-MBX-USED-WEIGHT-1M`` after every call, and a call that
  would exceed ``weight_limit`` first waits for the next minute;
* 429 and 418 are obeyed: the client sleeps ``Retry-After`` seconds and retries, at most
  ``max_retries`` times, and raises :class:`~lq.errors.RateLimitError` beyond that or when the
  wait exceeds ``max_retry_after``;
* ``-1127`` (window too large) narrows a ``startTime``/``endTime`` window by halves;
* invalid aggregate trades (``f = -1``, from Binance's 2022 audit, with ``p = q = 0``) and
  historical "trades" with ``price = qty = 0`` (Binance's mark for a voided id; USD-M's
  non-market entries, which the ``@trade`` stream marks ``X = NA``, carry ``p = 0``) are not
  trades: they are left out and their ids listed in :attr:`RestClient.void_ids`;
* every row is checked against :mod:`lq.feeds.invariants` (ids in int64, sane prices and
  quantities, times in 2009..2100, complete klines); a row that fails is left out and kept in
  :attr:`RestClient.rejected_rows` with the reason, so one bad row never costs the page;
* ``historicalTrades`` carries the API key, when one is given, in ``X-MBX-APIKEY`` (USD-M
  and Binance.US answer it only then); the key is never logged or shown;
* 5xx and transport errors are retried ``max_retries`` times with a short growing wait.

``sleep`` and ``clock`` are injectable so tests run without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import httpx
import msgspec

from lq.errors import RateLimitError, RestError, ValidationError
from lq.feeds.events import AggTrade, Kline, Trade
from lq.feeds.invariants import agg_trade_problem, kline_problem
from lq.feeds.invariants import problem as row_problem
from lq.venues.binance.endpoints import Endpoint, resolve_endpoint
from lq.venues.binance.parser import TimeUnit, to_us

__all__ = ["RestClient"]

log = logging.getLogger(__name__)

_Num = Annotated[float, msgspec.Meta(ge=0.0, le=1.7e308)]

WEIGHTS = {"historicalTrades": 25, "aggTrades": 4, "klines": 2, "exchangeInfo": 20, "time": 1}


class _HistTrade(msgspec.Struct, gc=False):
    id: int
    price: _Num
    qty: _Num
    time: int
    isBuyerMaker: bool


class _RestAgg(msgspec.Struct, gc=False):
    a: int
    p: _Num
    q: _Num
    f: int
    l: int  # noqa: E741
    T: int
    m: bool


_KlineRow = tuple[int, _Num, _Num, _Num, _Num, _Num, int, _Num, int, _Num, _Num, Any]


class _ServerTime(msgspec.Struct):
    serverTime: int


class _ErrBody(msgspec.Struct):
    code: int | None = None
    msg: str = ""


class RestClient:
    """Async Binance REST client for market data.

    Parameters
    ----------
    endpoint
        Preset name or :class:`~lq.venues.binance.endpoints.Endpoint` (gives base URL and path prefix).
    rest_url
        Override of the base URL (e.g. a :class:`lq.exchange.LocalExchange`'s ``rest_url``).
    http
        An ``httpx.AsyncClient`` to use; by default one is created and owned.
    sleep, clock
        Injectable ``await sleep(seconds)`` and wall clock (seconds since the epoch).
    max_retries
        Retries after 429/418/5xx/transport errors before giving up.
    max_retry_after
        Longest ``Retry-After`` (seconds) that is waited out; longer bans raise at once.
    weight_limit
        ``REQUEST_WEIGHT`` per minute (6000 spot, 1200 Binance.US).
    timeout
        Per-request timeout, seconds.
    exchange
        Label put in the events.
    time_unit
        Unit of the times in responses: ``"auto"`` (by magnitude), ``"ms"`` or ``"us"``.
    api_key
        A Binance API key, sent as ``X-MBX-APIKEY`` with ``historicalTrades`` (needed on USD-M
        futures and Binance.US). Read it from the environment or the config file
        (``LQ_BINANCE_API_KEY``, ``[binance] api_key``), never from code.
    """

    def __init__(
        self,
        *,
        endpoint: str | Endpoint = "spot",
        rest_url: str | None = None,
        http: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        max_retries: int = 5,
        max_retry_after: float = 300.0,
        weight_limit: int = 6000,
        timeout: float = 10.0,
        exchange: str = "binance",
        time_unit: TimeUnit = "auto",
        api_key: str | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValidationError("max_retries", max_retries, "must be >= 0")
        self.endpoint = resolve_endpoint(endpoint, rest_url=rest_url)
        self._own = http is None
        self._http = (
            http if http is not None else httpx.AsyncClient(timeout=timeout, trust_env=False)
        )
        self._sleep = sleep
        self._clock = clock
        self.max_retries = max_retries
        self.max_retry_after = max_retry_after
        self.weight_limit = weight_limit
        self.exchange = exchange
        self.time_unit: TimeUnit = time_unit
        self.used_weight: int | None = None
        """Last ``X-MBX-USED-WEIGHT-1M`` seen."""
        self.rate_limited = 0
        """429/418 responses received (and waited out or raised)."""
        self.requests = 0
        self.rejected_rows: list[tuple[str, str]] = []
        """``(reason, raw row)`` of response rows refused by the invariants (callers drain it)."""
        self.void_ids: list[int] = []
        """Ids of rows that are not trades (``f = -1`` aggregates, ``p = q = 0`` historical
        rows) seen in responses; callers drain it."""
        self._api_key = api_key or None
        self._hist = msgspec.json.Decoder(list[_HistTrade], strict=False)
        self._agg = msgspec.json.Decoder(list[_RestAgg], strict=False)
        self._kl = msgspec.json.Decoder(list[_KlineRow], strict=False)
        self._time = msgspec.json.Decoder(_ServerTime)
        self._err = msgspec.json.Decoder(_ErrBody)

    @property
    def has_api_key(self) -> bool:
        """Whether an API key was given (the key itself is never exposed)."""
        return self._api_key is not None

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"RestClient(endpoint={self.endpoint.name!r}, api_key={key})"

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._own:
            await self._http.aclose()

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- endpoints ----------------------------------------------------------------------------

    async def historical_trades(
        self, symbol: str, *, from_id: int | None = None, limit: int = 1000
    ) -> list[Trade]:
        """``GET historicalTrades``: up to ``limit`` trades from ``from_id`` (inclusive), oldest first.

        Raises :class:`~lq.errors.RestError` if the endpoint has no ``historicalTrades``
        (``data-api.binance.vision``).
        """
        if not self.endpoint.has_historical_trades:
            raise RestError(
                f"endpoint={self.endpoint.name!r} ({self.endpoint.rest_url}) has no "
                "historicalTrades: trade ids cannot be backfilled there; use the 'spot' preset "
                "or the aggTrade channel",
                status=None,
            )
        _check_limit(limit, 1000)
        params: dict[str, Any] = {"symbol": symbol, "limit": limit}
        if from_id is not None:
            params["fromId"] = from_id
        body = await self._get("historicalTrades", params, key=True)
        rows = self._decode(self._hist, body, "historicalTrades")
        now = self._now_us()
        unit = self.time_unit
        ex = self.exchange
        out = []
        for r in rows:
            if r.price == 0 and r.qty == 0:  # not a trade: a voided id or a futures marker
                self.void_ids.append(r.id)
                continue
            t = Trade(
                symbol=symbol,
                trade_id=r.id,
                price=r.price,
                qty=r.qty,
                ts=to_us(r.time, unit),
                event_ts=to_us(r.time, unit),
                is_buyer_maker=r.isBuyerMaker,
                recv_ts=now,
                exchange=ex,
            )
            if self._keep(t, r, "historicalTrades"):
                out.append(t)
        return out

    async def agg_trades(
        self,
        symbol: str,
        *,
        from_id: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int = 1000,
    ) -> list[AggTrade]:
        """``GET aggTrades``: oldest first; times are µs. Invalid rows (``f = -1``) are dropped.

        With both ``start_time`` and ``end_time`` and a server that answers ``-1127`` (window
        too large), the window is halved (down to 1 ms) until accepted; empty sub-windows are skipped so an
        empty result means the whole window is empty.
        """
        _check_limit(limit, 1000)
        if from_id is not None or start_time is None or end_time is None:
            return await self._agg_once(symbol, from_id, start_time, end_time, limit)
        window = end_time - start_time + 1
        lo = start_time
        while True:
            hi = min(end_time, lo + window - 1)
            try:
                rows = await self._agg_once(symbol, None, lo, hi, limit)
            except RestError as exc:
                if exc.code == -1127 and window > 1_000:
                    window //= 2
                    log.info("aggTrades %s: -1127, narrowing the window to %d µs", symbol, window)
                    continue
                raise
            if rows or hi >= end_time:
                return rows
            lo = hi + 1

    async def klines(
        self,
        symbol: str,
        *,
        interval: str,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int = 500,
    ) -> list[Kline]:
        """``GET klines``: candles oldest first; ``closed`` is whether ``close_time`` has passed."""
        _check_limit(limit, 1000)
        params: dict[str, Any] = {"symbol": symbol, "interval": interval, "limit": limit}
        if start_time is not None:
            params["startTime"] = start_time // 1000
        if end_time is not None:
            params["endTime"] = end_time // 1000
        body = await self._get("klines", params)
        rows = self._decode(self._kl, body, "klines")
        now = self._now_us()
        unit = self.time_unit
        out = []
        for r in rows:
            close_time = to_us(r[6], unit)
            k = Kline(
                symbol=symbol,
                interval=interval,
                open_time=to_us(r[0], unit),
                close_time=close_time,
                open=r[1],
                high=r[2],
                low=r[3],
                close=r[4],
                volume=r[5],
                quote_volume=r[7],
                trades=r[8],
                taker_buy_volume=r[9],
                taker_buy_quote_volume=r[10],
                first_id=-1,
                last_id=-1,
                closed=close_time < now,
                event_ts=now,
                recv_ts=now,
                exchange=self.exchange,
            )
            if self._keep(k, r, "klines"):
                out.append(k)
        return out

    async def exchange_info(self, *, symbols: list[str] | None = None) -> dict[str, Any]:
        """``GET exchangeInfo`` as a dict (``rateLimits``, ``symbols``...)."""
        params: dict[str, Any] = {}
        if symbols:
            params["symbols"] = msgspec.json.encode(symbols).decode()
        body = await self._get("exchangeInfo", params)
        out = self._decode(msgspec.json.Decoder(dict[str, Any]), body, "exchangeInfo")
        return out  # type: ignore[no-any-return]

    async def depth(self, symbol: str, *, limit: int = 1000) -> bytes:
        """``GET depth``: the order-book snapshot's body, as received (parse it with
        :class:`lq.feeds.DepthParser`, passing ``symbol=``). Its weight depends on ``limit``
        (:func:`depth_weight`: 50 for 1000 levels, 250 for 5000) and is obeyed like any other."""
        _check_limit(limit, 5000)
        return await self._get(
            "depth", {"symbol": symbol, "limit": limit}, weight=depth_weight(limit)
        )

    async def server_time(self) -> int:
        """``GET time``: the server's clock, µs since the epoch."""
        body = await self._get("time", {})
        return to_us(self._decode(self._time, body, "time").serverTime, self.time_unit)

    # -- plumbing -----------------------------------------------------------------------------

    def _now_us(self) -> int:
        return int(self._clock() * 1_000_000)

    async def _agg_once(
        self, symbol: str, from_id: int | None, start: int | None, end: int | None, limit: int
    ) -> list[AggTrade]:
        params: dict[str, Any] = {"symbol": symbol, "limit": limit}
        if from_id is not None:
            params["fromId"] = from_id
        if start is not None:
            params["startTime"] = start // 1000
        if end is not None:
            params["endTime"] = end // 1000
        body = await self._get("aggTrades", params)
        rows = self._decode(self._agg, body, "aggTrades")
        now = self._now_us()
        unit = self.time_unit
        ex = self.exchange
        out = []
        for r in rows:
            if r.f == -1:  # voided by Binance's 2022 audit (p = q = 0, f = l = -1)
                self.void_ids.append(r.a)
                continue
            a = AggTrade(
                symbol=symbol,
                agg_id=r.a,
                first_id=r.f,
                last_id=r.l,
                price=r.p,
                qty=r.q,
                ts=to_us(r.T, unit),
                event_ts=to_us(r.T, unit),
                is_buyer_maker=r.m,
                recv_ts=now,
                exchange=ex,
            )
            if self._keep(a, r, "aggTrades"):
                out.append(a)
        return out

    def _keep(self, event: Trade | AggTrade | Kline, row: object, what: str) -> bool:
        """Whether a decoded row obeys :mod:`lq.feeds.invariants`; if not, it is recorded in
        :attr:`rejected_rows` and logged (without the key, which is never in a row)."""
        if type(event) is Kline:
            why = kline_problem(event)
        elif type(event) is AggTrade:
            why = agg_trade_problem(event)
        else:
            why = row_problem(event)
        if why is None:
            return True
        try:
            raw = msgspec.json.encode(row).decode()
        except (TypeError, ValueError):
            raw = repr(row)
        self.rejected_rows.append((f"REST {what} row: {why}", raw))
        log.warning("REST %s: row refused: %s", what, why)
        return False

    def _decode(self, dec: msgspec.json.Decoder[Any], body: bytes, what: str) -> Any:
        try:
            return dec.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise RestError(f"{what}: unexpected response body: {exc} ({body[:120]!r})") from None

    async def _get(
        self, name: str, params: dict[str, Any], *, key: bool = False, weight: int | None = None
    ) -> bytes:
        url = f"{self.endpoint.rest_url}{self.endpoint.rest_prefix}/{name}"
        if weight is None:
            weight = WEIGHTS.get(name, 1)
        headers = {"X-MBX-TIME-UNIT": "MICROSECOND"} if self.endpoint.micros else {}
        if key and self._api_key is not None:
            headers["X-MBX-APIKEY"] = self._api_key
        attempt = 0
        while True:
            if self.used_weight is not None and self.used_weight + weight > self.weight_limit:
                wait = 60.0 - (self._clock() % 60.0) + 0.05
                log.warning(
                    "REST weight %d/%d used: waiting %.1f s for the next minute",
                    self.used_weight,
                    self.weight_limit,
                    wait,
                )
                await self._sleep(wait)
                self.used_weight = None
            self.requests += 1
            try:
                resp = await self._http.get(url, params=params, headers=headers)
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise RestError(f"GET {url} {params}: {type(exc).__name__}: {exc}") from exc
                attempt += 1
                await self._sleep(min(0.25 * 2**attempt, 10.0))
                continue
            used = resp.headers.get("X-MBX-USED-WEIGHT-1M")
            if used is not None and used.isdigit():
                self.used_weight = int(used)
            status = resp.status_code
            if status == 200:
                return resp.content
            err = self._error_body(resp.content)
            if status in (429, 418):
                self.rate_limited += 1
                retry_after = _retry_after(resp.headers.get("Retry-After"))
                msg = (
                    f"GET {name} {params}: HTTP {status} code {err.code}: {err.msg} "
                    f"(Retry-After={retry_after:g} s)"
                )
                if attempt >= self.max_retries or retry_after > self.max_retry_after:
                    raise RateLimitError(msg, status=status, retry_after=retry_after, code=err.code)
                log.warning("%s; waiting", msg)
                attempt += 1
                await self._sleep(retry_after)
                self.used_weight = None  # Retry-After is the wait the server asked for
                continue
            if status >= 500 and attempt < self.max_retries:
                attempt += 1
                log.warning("GET %s: HTTP %d; retry %d", name, status, attempt)
                await self._sleep(min(0.25 * 2**attempt, 10.0))
                continue
            raise RestError(
                f"GET {name} {params}: HTTP {status} code {err.code}: {err.msg}",
                status=status,
                code=err.code,
            )

    def _error_body(self, content: bytes) -> _ErrBody:
        try:
            return self._err.decode(content)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return _ErrBody(code=None, msg=content[:200].decode("utf-8", "replace"))


def depth_weight(limit: int) -> int:
    """Binance spot's weight of ``GET depth`` for ``limit`` levels (§2: 5 up to 100, 25 up to
    500, 50 up to 1000, 250 up to 5000)."""
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def _retry_after(value: str | None) -> float:
    """Seconds from a ``Retry-After`` header (missing or unreadable: 60 s, Binance's minute)."""
    if value is None:
        return 60.0
    try:
        v = float(value)
    except ValueError:
        return 60.0
    return v if v >= 0 else 60.0


def _check_limit(limit: int, top: int) -> None:
    if not 1 <= limit <= top:
        raise ValidationError("limit", limit, f"must be in 1..{top}")
