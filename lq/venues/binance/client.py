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

* **order books** (``depth@100ms`` / ``depth`` channels): per symbol a
  :class:`~lq.feeds.booksync.BookSync` is fed from the diff stream; while it waits (at the
  start and after every resync) its events are buffered and the REST snapshot is fetched
  (``GET depth``, ``snapshot_limit`` levels, its weight obeyed) once the first event is
  buffered, and fetched again while the snapshot is older than the buffered events. Every
  resync (a sequence gap, a crossed or locked book, an old snapshot) goes to the sink as a
  :class:`~lq.feeds.events.BookResync`; once per ``book_interval`` seconds of exchange time
  (the diffs' ``E``) the top ``book_levels`` levels of the synced book go to the sink as a
  :class:`~lq.feeds.events.BookTop` (after the first diff of each interval: the state
  Binance's own book had at that diff's ``u``). :attr:`BinanceClient.books` is the health.

The sink is called synchronously on the event loop with every event, in order per
connection: trades (exactly once per id), ``Gap``, ``Rejected``, ``BookTicker``, ``Kline``,
``ServerShutdown``, ``ControlReply``. It should be quick (append to a batch).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import msgspec

from lq.errors import FrameError, RestError, ValidationError
from lq.feeds.backoff import AttemptBudget, Backoff
from lq.feeds.booksync import BookSync
from lq.feeds.connection import FeedClient, Sink, _now_us
from lq.feeds.depth import DepthParser
from lq.feeds.events import (
    AggTrade,
    BookResync,
    BookTop,
    DepthSnapshot,
    DepthUpdate,
    Duplicate,
    Event,
    Rejected,
    Trade,
)
from lq.feeds.recording import FrameRecorder
from lq.feeds.sequencer import BackfillRequest, Hole, StreamKind
from lq.feeds.status import FeedStatus
from lq.venues.binance.endpoints import Endpoint, plan_urls, resolve_endpoint
from lq.venues.binance.parser import Parser, TimeUnit
from lq.venues.binance.rest import RestClient

__all__ = ["DEPTH_CHANNELS", "BinanceClient"]

log = logging.getLogger(__name__)

DEPTH_CHANNELS = ("depth@100ms", "depth")
"""The diff-stream channels that keep a local order book per symbol."""


class _BookParser(Parser):
    """Binance's parser, with depth frames handed to the client's books."""

    def __init__(self, on_depth: Callable[[bytes | str, int], list[Event]], **kw: Any) -> None:
        super().__init__(**kw)
        self._on_depth = on_depth

    def parse(self, raw: bytes | str, recv_ts: int) -> list[Event]:
        if (b"@depth" in raw[:64]) if isinstance(raw, bytes) else ("@depth" in raw[:64]):
            return self._on_depth(raw, recv_ts)
        return super().parse(raw, recv_ts)


class BinanceClient(FeedClient):
    """Live Binance market data with exactly-once trades.

    Parameters
    ----------
    symbols
        Uppercase symbols, e.g. ``["BTCUSDT", "ETHUSDT"]``.
    channels
        Streams per symbol: ``"trade"``, ``"aggTrade"``, ``"bookTicker"``, ``"kline_<i>"``,
        ``"depth@100ms"``/``"depth"`` (a synced order book per symbol, see above).
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
    book_levels
        Levels per side of each :class:`~lq.feeds.events.BookTop` (depth channels; default 20).
    book_interval
        Seconds of exchange time between two :class:`~lq.feeds.events.BookTop` of a symbol.
    snapshot_limit
        Levels of the REST snapshot (``GET depth``; 1000: weight 50, 5000: weight 250).
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
        book_levels: int = 20,
        book_interval: float = 1.0,
        snapshot_limit: int = 1000,
    ) -> None:
        if not 1 <= book_levels <= 5000:
            raise ValidationError("book_levels", book_levels, "must be in 1..5000")
        if not book_interval > 0:
            raise ValidationError("book_interval", book_interval, "must be > 0 seconds")
        if not 1 <= snapshot_limit <= 5000:
            raise ValidationError("snapshot_limit", snapshot_limit, "must be in 1..5000")
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
        self.parser = _BookParser(
            self._on_depth, exchange=exchange_label, time_unit=time_unit, symbols=self.symbols
        )
        self.book_levels = book_levels
        self.book_interval_us = int(book_interval * 1_000_000)
        self.snapshot_limit = snapshot_limit
        self._depth = DepthParser(
            exchange=exchange_label, time_unit=time_unit, symbols=self.symbols
        )
        market: Literal["spot", "usdm"] = (
            "usdm" if self.endpoint.rest_prefix.startswith("/fapi") else "spot"
        )
        depth = any(c in DEPTH_CHANNELS for c in self.channels)
        self.book_syncs: dict[str, BookSync] = (
            {s: BookSync(s, market=market) for s in self.symbols} if depth else {}
        )
        """Per symbol, the local book and its sync state (depth channels only)."""
        self._book_bucket: dict[str, int] = {}
        self._fetching: set[str] = set()
        self._crossed: dict[str, int] = {}
        self._last_break: dict[str, BookResync] = {}
        self._rest = rest
        self._own_rest = rest is None
        self._api_key = api_key or None

    @property
    def books(self) -> dict[str, dict[str, Any]]:
        """Book health per symbol: synced, update id, resyncs (per reason), the last sequence
        break, crossed/locked books seen, snapshots loaded, stale snapshots refused (older
        than one already used: never loaded, fetched again), duplicates dropped."""
        out: dict[str, dict[str, Any]] = {}
        for sym, sync in self.book_syncs.items():
            brk = self._last_break.get(sym)
            out[sym] = {
                "synced": sync.synced,
                "update_id": sync.book.update_id if sync.synced else None,
                "resyncs": sync.resync_total,
                "resync_reasons": dict(sync.resync_counts),
                "last_break_ts": None if brk is None else brk.recv_ts,
                "last_break_reason": None if brk is None else brk.reason,
                "crossed": sync.resync_counts.get("crossed", 0)
                + sync.resync_counts.get("locked", 0),
                "snapshots": sync.snapshots_loaded,
                "stale_snapshots": sync.stale_snapshots,
                "duplicates": sync.duplicates,
            }
        return out

    @property
    def status(self) -> FeedStatus:
        """The feed's health (:class:`~lq.feeds.status.FeedStatus`), with :attr:`books`."""
        st = super().status
        return msgspec.structs.replace(st, books=self.books) if self.book_syncs else st

    # -- order books ------------------------------------------------------------------------

    def _on_depth(self, raw: bytes | str, recv_ts: int) -> list[Event]:
        ev = self._depth.parse(raw, recv_ts)
        if ev is None:
            return []
        if type(ev) is Rejected:
            raise FrameError(ev.reason, raw)
        if type(ev) is not DepthUpdate:  # a partial-book frame: not subscribed by lq
            return []
        sync = self.book_syncs.get(ev.symbol)
        if sync is None:  # a depth frame without a depth channel: nothing to keep
            return []
        out: list[Event] = []
        before = sync.resync_total
        res = sync.on_update(ev)
        if sync.resync_total != before:
            out.append(self._resynced(sync))
        elif res == "applied":
            bucket = ev.ts // self.book_interval_us
            if self._book_bucket.get(ev.symbol) != bucket:
                self._book_bucket[ev.symbol] = bucket
                out.append(self._top(sync, ev.ts, recv_ts))
        if not sync.synced and ev.symbol not in self._fetching:
            self._fetching.add(ev.symbol)
            self._spawn(self._snapshots(ev.symbol), name=f"lq.feeds.book[{ev.symbol}]")
        return out

    def _top(self, sync: BookSync, ts: int, recv_ts: int) -> BookTop:
        top = sync.book.top(self.book_levels)
        return BookTop(
            symbol=sync.symbol,
            update_id=sync.book.update_id,
            ts=ts,
            recv_ts=recv_ts,
            levels=self.book_levels,
            bids=tuple(zip(top.bid_price.tolist(), top.bid_qty.tolist(), strict=True)),
            asks=tuple(zip(top.ask_price.tolist(), top.ask_qty.tolist(), strict=True)),
            exchange=self.exchange_label,
        )

    def _resynced(self, sync: BookSync) -> BookResync:
        r = sync.resyncs[-1]
        self._last_break[sync.symbol] = r
        self._book_bucket.pop(sync.symbol, None)  # the next synced diff gives a snapshot
        log.warning("%s %s book resync (%s): %s", self.exchange_label, r.symbol, r.reason, r.detail)
        return r

    async def _snapshots(self, symbol: str) -> None:
        """Fetch REST snapshots for ``symbol`` until its book is synced (Binance's procedure:
        events are buffered first, the snapshot must reach the first buffered one)."""
        sync = self.book_syncs[symbol]
        delay = 0.0
        try:
            while True:
                need = sync.needs_snapshot
                if need is None:
                    return
                if need.min_update_id is None:  # buffer an event first
                    await asyncio.sleep(0.02)
                    continue
                if delay:
                    await asyncio.sleep(delay)
                delay = min(max(0.1, delay * 2), 5.0)
                rest = self._rest
                if rest is None:
                    continue
                try:
                    body = await rest.depth(symbol, limit=self.snapshot_limit)
                except RestError as exc:
                    log.warning("%s %s depth snapshot: %s", self.exchange_label, symbol, exc)
                    continue
                snap = self._depth.parse(body, _now_us(), symbol=symbol)
                if type(snap) is not DepthSnapshot:
                    why = snap.reason if type(snap) is Rejected else "not a depth snapshot"
                    self._reject(body, f"REST depth snapshot of {symbol}: {why}", _now_us())
                    continue
                before = sync.resync_total
                res = sync.on_snapshot(snap)
                if sync.resync_total != before:
                    self._emit(self._resynced(sync))
                if res == "synced":
                    log.info(
                        "%s %s book synced at update id %d",
                        self.exchange_label, symbol, sync.book.update_id,
                    )  # fmt: skip
                    delay = 0.0
        finally:
            self._fetching.discard(symbol)

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
