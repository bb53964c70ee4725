"""The Binance adapter's client: the venue-independent loop (:class:`~lq.feeds.connection.FeedClient`)
with Binance's URLs, parser and REST backfill.

A thin I/O layer over the pure parts (:class:`~lq.venues.binance.parser.Parser`,
:class:`~lq.feeds.sequencer.Sequencer`, :class:`~lq.feeds.backoff.Backoff`,
:func:`~lq.venues.binance.endpoints.plan_urls`). Design rules from
``shared/reference/binance-protocol.md`` §5.3:

* every stream goes in the URL (``/stream?streams=a@trade/b@trade``, combined), split over
  connections at the endpoint's per-connection limit and URL length; no SUBSCRIBE is sent, so
  the inbound message limit is only touched by keepalive pings;
* **every** close is followed by a reconnect (1000, 1001, 1006, 1008 with a longer wait,
  1011, TCP reset, handshake failures), with jittered exponential back-off, the rolling
  attempt budget, and ``max_attempts`` consecutive failures before
  :class:`~lq.errors.ExhaustedRetriesError`; only :meth:`BinanceClient.stop` ends the loop;
* a staleness watchdog closes a connection that delivered nothing for ``stale_after`` s;
* before ``rotate_after`` (23 h) and on ``serverShutdown`` the connection is replaced by
  overlap: the new one is opened, its first message awaited, then the old one closed; the
  sequencer drops the overlap's duplicates;
* a gap in trade ids is backfilled over REST by a background task (the receive loop never
  waits for it), in pages of 1000 (``historicalTrades`` costs weight 25 whatever the limit);
  backfilled trades go to the sink, then ``Gap(status="filled")`` or ``"unfilled"`` with the
  reason. Where the endpoint cannot backfill a channel (``@trade`` on ``spot-data``; on
  ``usdm`` and ``us`` without an API key) no REST call is made: once ``backfill_delay`` has
  given stragglers their chance, what is still missing is reported unfilled, with the reason
  and the way out (:meth:`~lq.venues.binance.endpoints.Endpoint.backfill`);
* a frame the parser refuses becomes a :class:`~lq.feeds.events.Rejected` event, counted,
  never fatal; so does a REST row that breaks :mod:`lq.feeds.invariants`;
* USD-M ``@trade`` entries that are not trades (``X`` = ``NA``, ``INSURANCE_FUND``, ...) are
  counted (``markers_skipped``) and their ids accounted for in the sequencer; the sink never
  sees them, so neither does any hook.

The sink is called synchronously on the event loop with every event, in order per
connection: trades (exactly once per id), ``Gap``, ``Rejected``, ``BookTicker``, ``Kline``,
``ServerShutdown``, ``ControlReply``. It should be quick (append to a batch).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Literal

from lq.errors import RestError
from lq.feeds.backoff import AttemptBudget, Backoff
from lq.feeds.connection import FeedClient, Sink, _now_us
from lq.feeds.events import AggTrade, Duplicate, Rejected, Trade
from lq.feeds.recording import FrameRecorder
from lq.feeds.sequencer import BackfillRequest, Hole, StreamKind
from lq.venues.binance.endpoints import Endpoint, plan_urls, resolve_endpoint
from lq.venues.binance.parser import Parser, TimeUnit
from lq.venues.binance.rest import RestClient

__all__ = ["BinanceClient"]

log = logging.getLogger(__name__)


class BinanceClient(FeedClient):
    """Live Binance market data with exactly-once trades.

    Parameters
    ----------
    symbols
        Uppercase symbols, e.g. ``["BTCUSDT", "ETHUSDT"]``.
    channels
        Streams per symbol: ``"trade"``, ``"aggTrade"``, ``"bookTicker"``, ``"kline_<i>"``.
    endpoint
        Preset name (``"spot"``, ``"spot-data"``, ``"us"``, ``"usdm"``) or an ``Endpoint``.
    ws_url, rest_url
        Overrides of the endpoint's base URLs (a local exchange's ``ws_url``/``rest_url``).
    sink
        Called with every event, synchronously, on the event loop.
    resume_ids
        ``{(symbol, "trade"|"aggTrade"): last_stored_id}``: after a restart the first live
        trade is checked against these and the gap backfilled.
    holes
        Holes known before the start (``found`` rows of the gap ledger, reloaded after a
        restart): tracked by the sequencer, so their trades are delivered once whichever way
        they come, and fetched by the backfill worker alongside the live feed.
    exchange_label
        The ``exchange`` field of every event.
    backoff
        Reconnect delay policy (also the minimum wait after a 1008 close).
    max_attempts
        Consecutive failed connections (no message received) before
        :class:`~lq.errors.ExhaustedRetriesError`; ``None`` retries forever.
    attempt_budget
        Rolling connection-attempt budget (Binance: 300 per 5 min); the client waits, never
        exceeds it.
    stale_after
        Seconds without any frame on a connection before it is closed and replaced.
    rotate_after
        Connection age (s) at which it is replaced by overlap (Binance closes at 24 h).
    record
        Every raw frame is written here with its receive time (ns).
    max_backfill
        Largest number of ids backfilled for one gap; the rest is reported unfilled.
    backfill_delay
        Seconds a gap is given to close by itself (overlap, stragglers) before REST is asked.
    rest
        REST client for backfill; by default one is built on the endpoint (and owned).
    api_key
        Binance API key for the default REST client (``historicalTrades`` needs one on
        ``usdm`` and ``us``). Pass it from the environment or config, never from code.
    time_unit
        Unit of times in frames: ``"auto"``, ``"ms"`` or ``"us"``.
    ping_interval, ping_timeout, open_timeout, close_timeout
        ``websockets`` connection settings (seconds).
    compression
        ``"deflate"`` (Binance offers it) or ``None``.
    """

    def __init__(
        self,
        *,
        symbols: Sequence[str],
        channels: Sequence[str] = ("trade",),
        endpoint: str | Endpoint = "spot",
        ws_url: str | None = None,
        rest_url: str | None = None,
        sink: Sink,
        resume_ids: Mapping[tuple[str, StreamKind], int] | None = None,
        holes: Sequence[Hole] = (),
        exchange_label: str = "binance",
        backoff: Backoff | None = None,
        max_attempts: int | None = 50,
        attempt_budget: AttemptBudget | None = None,
        stale_after: float = 60.0,
        rotate_after: float = 23 * 3600.0,
        record: FrameRecorder | None = None,
        max_backfill: int = 100_000,
        backfill_delay: float = 0.25,
        rest: RestClient | None = None,
        api_key: str | None = None,
        time_unit: TimeUnit = "auto",
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        open_timeout: float = 10.0,
        close_timeout: float = 2.0,
        compression: Literal["deflate"] | None = "deflate",
    ) -> None:
        self.endpoint = resolve_endpoint(endpoint, ws_url=ws_url, rest_url=rest_url)
        super().__init__(
            symbols=[s.upper() for s in symbols] if not isinstance(symbols, str) else symbols,
            sink=sink,
            exchange_label=exchange_label,
            resume_ids=resume_ids,
            holes=holes,
            backoff=backoff,
            max_attempts=max_attempts,
            attempt_budget=attempt_budget,
            stale_after=stale_after,
            rotate_after=rotate_after,
            record=record,
            max_backfill=max_backfill,
            backfill_delay=backfill_delay,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            open_timeout=open_timeout,
            close_timeout=close_timeout,
            compression=compression,
            agg_trade_ids_contiguous=self.endpoint.agg_trade_ids_contiguous,
        )
        self.channels = tuple(channels)
        self.links = plan_urls(self.endpoint, [(s, c) for s in self.symbols for c in self.channels])
        self._link_up = {url: False for url, _ in self.links}
        self.parser = Parser(exchange=exchange_label, time_unit=time_unit, symbols=self.symbols)
        self._rest = rest
        self._own_rest = rest is None
        self._api_key = api_key or None

    def _make_rest(self) -> RestClient:
        return RestClient(
            endpoint=self.endpoint, exchange=self.exchange_label, api_key=self._api_key
        )

    async def _backfill(self, req: BackfillRequest) -> None:
        seq = self.sequencer
        rest = self._rest
        assert rest is not None
        if self.backfill_delay:  # stragglers (overlap, reordering) may close it by themselves
            await asyncio.sleep(self.backfill_delay)
        cannot = self.endpoint.backfill(req.kind, api_key=getattr(rest, "has_api_key", False))
        if cannot is not None:  # no REST call can fill it: say so now, with the way out
            if seq.missing(req.symbol, req.kind, req.first_id, req.last_id):
                log.warning(
                    "backfill %s %s %d..%d: %s",
                    req.symbol, req.kind, req.first_id, req.last_id, cannot,
                )  # fmt: skip
            self._gaps(seq.settle(req, now=_now_us(), reason=cannot))
            return
        reason = ""
        refused = ""
        missing = seq.missing(req.symbol, req.kind, req.first_id, req.last_id)
        ended: list[str] = []  # where REST history had nothing: named in the reason
        try:
            for lo, hi in missing:
                nxt = lo
                while nxt <= hi:
                    left = seq.missing(req.symbol, req.kind, nxt, hi)  # an earlier page filled?
                    if not left:
                        break
                    nxt = left[0][0]
                    # always a full page: the weight is the same whatever the limit
                    batch: Sequence[Trade | AggTrade]
                    if req.kind == "trade":
                        batch = await rest.historical_trades(req.symbol, from_id=nxt, limit=1000)
                    else:
                        batch = await rest.agg_trades(req.symbol, from_id=nxt, limit=1000)
                    top = nxt - 1
                    top, why = self._rest_leftovers(rest, req, nxt, hi, top)
                    refused = refused or why
                    for ev in batch:
                        i = ev.trade_id if type(ev) is Trade else ev.agg_id  # type: ignore[union-attr]
                        inside = nxt <= i <= hi
                        # a page of 1,000 also fills any other open hole it covers (one call
                        # per hole, 0.25 s apart, fell behind a feed that skips often)
                        if not inside and not seq.missing(req.symbol, req.kind, i, i):
                            continue
                        if inside:
                            top = max(top, i)
                        step = seq.on_trade(ev, now=ev.recv_ts)
                        if step.deliver:
                            self._n["backfilled"] += 1
                            self._emit(ev)
                        elif inside and not step.rejected:  # stored already: must be the same
                            self._emit(Duplicate(ev))
                    if top < nxt:
                        ended.append(f"{nxt}..{hi}" if hi > nxt else f"{nxt}")
                        break
                    nxt = top + 1
            if ended:
                reason = refused or f"REST {req.kind} history has no ids {', '.join(ended)}"
        except RestError as exc:
            reason = str(exc)
            if exc.status == 401:
                reason = (
                    f"historicalTrades refused the API key ({exc}); check LQ_BINANCE_API_KEY "
                    "or [binance] api_key, or subscribe aggTrade (no key needed)"
                )
            log.warning(
                "backfill %s %s %d..%d: %s", req.symbol, req.kind, req.first_id, req.last_id, reason
            )
        self._gaps(seq.settle(req, now=_now_us(), reason=reason or refused))

    def _rest_leftovers(
        self, rest: RestClient, req: BackfillRequest, lo: int, hi: int, top: int
    ) -> tuple[int, str]:
        """Account for what the last REST page held besides trades: rows Binance voided
        (their ids are not holes) and rows the invariants refused (dead letters, holes left
        open). Returns the highest id covered and the first refusal's reason."""
        now = _now_us()
        for i in getattr(rest, "void_ids", ()):
            if lo <= i <= hi:
                top = max(top, i)
                self.sequencer.on_marker(req.symbol, req.kind, i, now=now)
        refused = ""
        for why, raw in getattr(rest, "rejected_rows", ()):
            self._n["rejected"] += 1
            refused = refused or f"REST rows for these ids were refused (in dead_letters): {why}"
            self._emit(Rejected(raw=raw, reason=why, recv_ts=now, exchange=self.exchange_label))
        if hasattr(rest, "void_ids"):
            rest.void_ids.clear()
            rest.rejected_rows.clear()
        return top, refused
