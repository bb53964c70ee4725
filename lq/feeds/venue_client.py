"""The client of a venue described by pure protocol modules (:class:`~lq.venues.base.ProtocolVenue`).

The shared loop (:class:`~lq.feeds.connection.FeedClient`: reconnect, back-off, watchdog,
rotation, sequencer) with the venue's knowledge taken from its modules:

* after connecting, every frame of ``protocol.subscribe_messages(symbols)`` is sent; where
  the venue needs an application keepalive (``protocol.ping_message()`` every
  ``protocol.PING_INTERVAL_S``), a task sends it for as long as the connection lives;
* frames go through ``parser.Parser(symbols, exchange=label).parse`` (``FrameError`` ->
  ``Rejected``);
* a hole in trade ids is backfilled over REST page by page:
  ``rest.history_request(symbol, after_id=, cursor=, limit=)`` -> GET ->
  ``rest.decode_history(body, symbol, ...)`` (trades ascending, ``next_cursor``, rejected
  rows), never faster than ``rest.RATE_LIMIT_PER_S`` requests per second for this feed;
  an error reply is classified by ``rest.classify_error(status, headers, body)``:
  ``rate_limited`` waits the venue's retry time (counted in ``rate_limited``) and asks
  again, ``retry`` waits and asks again (at most ``max_retries`` times in a row),
  ``fatal`` ends the backfill and reports the hole unfilled with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx
from websockets.exceptions import ConnectionClosed

from lq.errors import FrameError, ValidationError
from lq.feeds.connection import FeedClient, Sink, _Conn, _now_us
from lq.feeds.events import Duplicate, Gap, Rejected, Trade
from lq.feeds.recording import FrameRecorder
from lq.feeds.sequencer import BackfillRequest, StreamKind

if TYPE_CHECKING:
    from lq.venues.base import ProtocolVenue

__all__ = ["VenueClient"]

log = logging.getLogger(__name__)


class VenueClient(FeedClient):
    """Live trades of one venue, exactly once per id where the venue's ids allow it.

    Parameters
    ----------
    venue
        The :class:`~lq.venues.base.ProtocolVenue`.
    symbols
        The venue's own symbols (``BTC-USD``, ``BTC/USD``, ``BTC-USDT``).
    ws_url, rest_url
        Overrides of the venue's production endpoints (a local exchange's).
    rest_rate_limit
        Requests per second backfill may make (default the venue's ``RATE_LIMIT_PER_S``).
    max_retries
        Consecutive ``retry``/``rate_limited`` answers before a backfill gives up.
    http
        An ``httpx.AsyncClient`` to use (default: one is made on ``rest_url`` and owned).
    hole_times
        ``{(symbol, first missing id): time (µs) of the stored trade before it}`` for holes
        this client did not see open (reloaded at start, or the gap after ``resume_ids``): a
        venue whose history pages by time (Kraken's ``first_cursor``) starts its refill
        there instead of at the newest page, which holds only the last 1,000 trades.
    **options
        The loop's settings (:class:`~lq.feeds.connection.FeedClient`).
    """

    def __init__(
        self,
        *,
        venue: ProtocolVenue,
        symbols: Sequence[str],
        sink: Sink,
        exchange_label: str | None = None,
        ws_url: str | None = None,
        rest_url: str | None = None,
        resume_ids: Mapping[tuple[str, StreamKind], int] | None = None,
        record: FrameRecorder | None = None,
        rest_rate_limit: float | None = None,
        max_retries: int = 10,
        http: httpx.AsyncClient | None = None,
        hole_times: Mapping[tuple[str, int], int] | None = None,
        **options: Any,
    ) -> None:
        options.setdefault("compression", None)
        super().__init__(
            symbols=list(symbols),
            sink=sink,
            exchange_label=exchange_label or venue.name,
            id_rule=venue.id_rule,
            resume_ids=resume_ids,
            record=record,
            **options,
        )
        proto = venue.protocol
        cap = getattr(proto, "MAX_STREAMS_PER_CONNECTION", None)
        if cap is not None and len(self.symbols) > cap:
            raise ValidationError(
                "symbols",
                len(self.symbols),
                f"{venue.name} allows {cap} per connection; split them over several feeds",
            )
        self.venue = venue
        self.ws_base = ws_url or venue.ws_url
        self.rest_base = rest_url or venue.rest_url
        self.links = [(self.ws_base, tuple(self.symbols))]
        self._link_up = {self.ws_base: False}
        self.parser = venue.parser_module.Parser(self.symbols, exchange=self.exchange_label)
        rate = rest_rate_limit if rest_rate_limit is not None else venue.rest.RATE_LIMIT_PER_S
        if not (rate > 0 and math.isfinite(rate)):
            raise ValidationError("rest_rate_limit", rate, "must be a positive number per second")
        self.rest_rate_limit = float(rate)
        self.max_retries = max_retries
        self._rest = http
        self._own_rest = http is None
        self._next_call = 0.0
        self._last_ts: dict[str, tuple[int, int]] = {}
        self._hole_ts: dict[tuple[str, int], int] = {
            (str(sym), int(first)): int(ts) for (sym, first), ts in (hole_times or {}).items()
        }
        self._n["rest_calls"] = 0
        self._n["rate_limited"] = 0
        self.rest_call_times: list[float] = []
        """Monotonic times of the REST calls made (the last 1000; tests check the rate)."""

    # -- the venue's protocol ------------------------------------------------------------

    def _make_rest(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.rest_base, timeout=10.0, trust_env=False)

    async def _after_open(self, conn: _Conn) -> None:
        proto = self.venue.protocol
        for text in proto.subscribe_messages(list(self.symbols)):
            await conn.ws.send(text)
        ping = proto.ping_message() if hasattr(proto, "ping_message") else None
        every = getattr(proto, "PING_INTERVAL_S", None)
        if ping is not None and every:
            self._spawn(
                self._keepalive(conn, ping, float(every)), f"lq.feeds.ping[{self.venue.name}]"
            )

    async def _keepalive(self, conn: _Conn, text: str, every: float) -> None:
        with contextlib.suppress(ConnectionClosed):
            while conn.pump is not None and not conn.pump.done():
                await asyncio.sleep(every)
                await conn.ws.send(text)

    # -- backfill over REST --------------------------------------------------------------

    async def _pace(self) -> None:
        """Never more than ``rest_rate_limit`` calls per second (measured call to call)."""
        now = time.monotonic()
        if now < self._next_call:
            await asyncio.sleep(self._next_call - now)
        now = time.monotonic()
        self._next_call = now + 1.0 / self.rest_rate_limit
        self.rest_call_times.append(now)
        del self.rest_call_times[:-1000]

    async def _backfill(self, req: BackfillRequest) -> None:
        seq = self.sequencer
        rest = self.venue.rest
        if self.backfill_delay:
            await asyncio.sleep(self.backfill_delay)
        limit = int(getattr(rest, "HISTORY_LIMIT", None) or getattr(rest, "MAX_LIMIT", None) or 100)
        reason = ""
        # the time of the trade before the hole (venues that page by time need it: Kraken)
        after_ts = self._hole_ts.pop((req.symbol, req.first_id), None)
        first_cursor = getattr(rest, "first_cursor", None)
        for lo, hi in seq.missing(req.symbol, req.kind, req.first_id, req.last_id):
            after_id: int | None = lo - 1
            # starting at the hole's first id's predecessor time is safe for a sub-range too:
            # ids below lo are skipped
            cursor: object | None = first_cursor(lo - 1, after_ts) if first_cursor else None
            pages = 0
            max_pages = 10 + 4 * math.ceil((hi - lo + 1) / max(1, limit))
            while pages < max_pages:
                pages += 1
                page, why = await self._page(req.symbol, after_id, cursor, limit)
                if page is None:
                    reason = why
                    break
                top = after_id if after_id is not None else lo - 1
                for raw, bad in page.rejected:
                    self._n["rejected"] += 1
                    reason = (
                        reason or f"REST rows for these ids were refused (in dead_letters): {bad}"
                    )
                    self._emit(
                        Rejected(
                            raw=raw, reason=bad, recv_ts=_now_us(), exchange=self.exchange_label
                        )
                    )
                for ev in page.trades:
                    i = ev.trade_id
                    top = max(top, i)
                    # a page holds up to `limit` trades: it also fills any other open hole it
                    # covers (Kraken drops trades often; one call per hole fell behind)
                    if (i < lo or i > hi) and not seq.missing(req.symbol, req.kind, i, i):
                        continue
                    step = seq.on_trade(ev, now=ev.recv_ts or _now_us())
                    if step.deliver:
                        self._n["backfilled"] += 1
                        self._emit(ev)
                    elif lo <= i <= hi and not step.rejected:  # stored already: the same?
                        self._emit(Duplicate(ev))
                if not seq.missing(req.symbol, req.kind, lo, hi) or top >= hi:
                    break
                if page.next_cursor is None and (not page.trades or top <= (after_id or 0)):
                    reason = reason or f"REST history of {req.symbol} has no ids from {top + 1}"
                    break
                if top == after_id and page.next_cursor == cursor:
                    reason = reason or f"REST history of {req.symbol} made no progress at {top}"
                    break
                after_id, cursor = top, page.next_cursor
            else:
                reason = reason or f"gave up after {max_pages} REST pages"
        self._gaps(seq.settle(req, now=_now_us(), reason=reason))

    def _emit(self, ev: Any) -> None:
        t = type(ev)
        if t is Trade:
            self._last_ts[ev.symbol] = (ev.trade_id, ev.ts)
        elif t is Gap and ev.status == "found":
            last = self._last_ts.get(ev.symbol)
            if last is not None and last[0] == ev.first_missing - 1:
                self._hole_ts[(ev.symbol, ev.first_missing)] = last[1]
                if len(self._hole_ts) > 10_000:
                    self._hole_ts.pop(next(iter(self._hole_ts)))
        super()._emit(ev)

    async def _page(
        self, symbol: str, after_id: int | None, cursor: object | None, limit: int
    ) -> tuple[Any, str]:
        """Fetch and decode one page, obeying the venue's rate limit and error replies."""
        rest = self.venue.rest
        http = self._rest
        assert http is not None
        path, params = rest.history_request(symbol, after_id=after_id, cursor=cursor, limit=limit)
        tries = 0
        while True:
            await self._pace()
            self._n["rest_calls"] += 1
            why = ""
            try:
                res = await http.get(path, params=params)
            except httpx.HTTPError as exc:
                kind: str = "retry"
                delay: float | None = 1.0
                why = f"{type(exc).__name__}: {exc}"
            else:
                body = res.content
                headers = {k.lower(): v for k, v in res.headers.items()}
                status = res.status_code
                if status == 200:
                    try:
                        page = rest.decode_history(
                            body, symbol, exchange=self.exchange_label, recv_ts=_now_us()
                        )
                    except FrameError:
                        page = None  # an error in a 200 reply (Kraken): classified below
                    if page is not None:
                        return page, ""
                kind, delay = rest.classify_error(status, headers, body)
                why = f"HTTP {status} {body[:200].decode('utf-8', 'replace')}"
            if kind == "fatal":
                return None, f"REST {path}: {why}"
            if kind == "rate_limited":
                self._n["rate_limited"] += 1
                log.warning(
                    "%s: rate limited on %s; waiting %.2f s", self.venue.name, path, delay or 1.0
                )
            tries += 1
            if tries > self.max_retries:
                return None, f"REST {path}: {why} ({tries} attempts)"
            wait = delay if delay is not None and delay > 0 else 1.0
            self._next_call = max(self._next_call, time.monotonic() + wait)

    @property
    def rest_stats(self) -> dict[str, int]:
        """``rest_calls`` made and ``rate_limited`` answers received."""
        return {"rest_calls": self._n["rest_calls"], "rate_limited": self._n["rate_limited"]}
