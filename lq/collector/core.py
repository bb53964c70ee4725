"""The collector: one process that owns the feed and the database file.

``feed -> parser -> sink (buffer, event hooks) -> batched writer (a worker thread) -> hooks``. Every
``flush_interval`` (100 ms by default), or sooner when ``max_batch`` events are waiting, the
buffer is swapped out and written in one transaction on a worker thread, so the event loop
keeps receiving while SQLite commits. After each commit the hooks run on the loop (streaming
analytics and alerts attach here). Every ``status_interval`` the feed's health is published
in ``feed_status`` (and ``<db>.status``, see :mod:`lq.collector.health`) for the dashboard.
Retention runs on a timer in the same worker, so there is still exactly one writer.

Storage failure is a state, not an exception (``docs/architecture.md``). When the database
itself fails (:class:`~lq.errors.StorageFailedError`: disk full, I/O error, read-only, the
file or its WAL deleted or replaced), the collector goes on receiving: failed batches wait in
memory (at most ``max_buffer`` events), the oldest of them move to the spill directory
(:mod:`lq.collector.spill`), and every ``retry_interval`` the spill and then the memory are
written again, oldest first, each batch in a transaction of its own. When even the spill
fails, the events dropped are counted, and the trades among them become ``found`` gaps that
are backfilled once the database takes writes again. A spill left by an earlier run is
re-imported at start-up. Status says ``not storing`` with the reason all along, and so does
the exit code (:attr:`Collector.exit_code`).

Holes are data: at start-up every ``found`` gap of each feed's exchange label and symbols is
reloaded from the ``gaps`` table and handed to that feed, which backfills it alongside the
live stream; a gap that cannot be filled ends ``unfilled`` with its reason. With several
feeds everything is keyed by the feed's label: resume ids, reloaded and lost holes, and the
status rows (one per feed, each with the shared storage state).

Sources:

* ``live``: Binance itself (the endpoint preset, ``spot`` by default);
* ``local``: a :class:`~lq.exchange.LocalExchange` running a seeded market simulator, started
  in this process on 127.0.0.1;
* ``replay:FILE[,FILE...]``: the local exchange replaying recordings;
* any source with ``ws_url``/``rest_url`` overrides: an exchange you started yourself
  (``lq exchange``) or another Binance-compatible endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import msgspec
import numpy as np

from lq.collector.health import StatusFile
from lq.collector.spill import (
    SpillFile,
    SpillImport,
    import_spill,
    pending_files,
    spill_dir_for,
)
from lq.errors import StorageFailedError, ValidationError
from lq.feeds.events import Gap, Trade
from lq.feeds.recording import FrameRecorder
from lq.feeds.sequencer import TRADE_IDS_NOT_AGGREGATES, Hole
from lq.store.retention import purge
from lq.store.writer import Batch, BatchResult, Writer, storage_failure

__all__ = ["Collector", "CollectorHook", "CollectorStats", "FeedSpec", "source_label"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class CollectorHook(Protocol):
    """Something that reacts to every committed batch, on the event loop (alerts, analytics)."""

    def on_batch(self, batch: Batch, result: BatchResult) -> None: ...


def source_label(source: str, exchange_label: str | None = None) -> str:
    """The banner text for a source: LIVE BINANCE, LOCAL EXCHANGE or REPLAY (a ``live``
    source whose rows are not labelled ``binance``, such as ``--ws-url`` to an lq exchange,
    is named by its label, never LIVE BINANCE)."""
    if source == "live" and exchange_label not in (None, "binance"):
        return {"local": "LOCAL EXCHANGE", "replay": "REPLAY"}.get(
            str(exchange_label), str(exchange_label).upper()
        )
    if source == "live":
        return "LIVE BINANCE"
    if source == "local":
        return "LOCAL EXCHANGE"
    if source.startswith("replay:"):
        return "REPLAY"
    return source.upper()


@dataclass(frozen=True, kw_only=True)
class FeedSpec:
    """One feed of a collector: a venue, its symbols, and where the rows go.

    ``venue``: a registered venue (:func:`lq.venues.get_venue`); ``symbols``: the venue's own
    symbols (stored as they are); ``label``: the ``exchange`` column of the rows and the key of
    the feed's status row (default: the venue's name live; ``local`` for a lone Binance feed
    on the local exchange, ``local-<venue>`` otherwise); ``ws_url``/``rest_url``: overrides of
    the venue's endpoints; ``endpoint``: Binance's preset; ``options``: keyword arguments for
    the venue's client.
    """

    venue: str = "binance"
    symbols: tuple[str, ...] = ()
    channels: tuple[str, ...] = ("trade",)
    label: str | None = None
    ws_url: str | None = None
    rest_url: str | None = None
    endpoint: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CollectorStats:
    batches: int = 0
    events: int = 0
    trades_new: int = 0
    trades_by_label: dict[str, int] = field(default_factory=dict)
    """Trades received per feed label (duplicates included), with several feeds."""
    rows_by_label: dict[str, int] = field(default_factory=dict)
    """New rows stored per feed label (every table), as the writer counted them."""
    trades_duplicate: int = 0
    dead_letters: int = 0
    write_errors: int = 0
    purges: int = 0
    last_commit_ts: int = 0
    events_spilled: int = 0
    """Events written to the spill directory (by this run)."""
    bytes_spilled: int = 0
    events_reimported: int = 0
    """Events re-imported from the spill directory into the database."""
    events_lost: int = 0
    """Events dropped because neither the database nor the spill would take them."""
    outages: int = 0
    commit_latency_us: deque[int] = field(default_factory=lambda: deque(maxlen=20_000))

    def latency_ms(self, q: float) -> float | None:
        if not self.commit_latency_us:
            return None
        return float(np.percentile(np.fromiter(self.commit_latency_us, dtype=np.int64), q)) / 1e3


_FIELDS = ("gaps", "trades", "agg_trades", "book_tickers", "klines", "rejected")
_FILE_PROBLEMS = frozenset(
    {"database file deleted", "database file replaced", "WAL file deleted", "WAL file replaced"}
)


def _joined(a: Batch, b: Batch) -> Batch:
    """``a`` followed by ``b`` (both bounded: one flush worth each)."""
    for name in _FIELDS:
        getattr(a, name).extend(getattr(b, name))
    return a


def _ranges_without(lo: int, hi: int, have: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """The sub-ranges of ``lo..hi`` not in the sorted ids ``have``."""
    out = []
    nxt = lo
    for i in have:
        if i > nxt:
            out.append((nxt, i - 1))
        nxt = max(nxt, i + 1)
    if nxt <= hi:
        out.append((nxt, hi))
    return tuple(out)


def _events_in(directory: Path) -> int:
    """Events of the spill files not marked as re-imported yet."""
    from lq.collector.spill import _read_done, read_spill

    n = 0
    for path in pending_files(directory):
        done = _read_done(path)
        for k, batch in enumerate(read_spill(path)):
            if k >= done:
                n += len(batch)
    return n


def _holes(batch: Batch, max_ids: Callable[[str], int]) -> dict[str, list[Hole]]:
    """The trades and aggTrades of ``batch`` as runs of contiguous ids (at most
    ``max_ids(label)`` each), per exchange label, symbol and stream: each feed's own."""
    ids: dict[tuple[str, str, str], list[int]] = {}
    for t in batch.trades:
        ids.setdefault((t.exchange, t.symbol, "trade"), []).append(t.trade_id)
    for a in batch.agg_trades:
        ids.setdefault((a.exchange, a.symbol, "aggTrade"), []).append(a.agg_id)
    out: dict[str, list[Hole]] = {}
    for (label, sym, kind), xs in ids.items():
        xs.sort()
        cap = max_ids(label)
        start = prev = xs[0]
        for i in [*xs[1:], None]:
            if i is not None and i == prev + 1 and i - start < cap:
                prev = i
                continue
            if i is not None and i == prev:
                continue
            out.setdefault(label, []).append(
                Hole(symbol=sym, kind=kind, first_id=start, last_id=prev)  # type: ignore[arg-type]
            )
            if i is not None:
                start = prev = i
    return out


class Collector:
    """Feed -> store, with health published and hooks run after each commit.

    Parameters
    ----------
    db
        The SQLite file; the collector takes its writer lock for as long as it runs.
    source
        ``"live"``, ``"local"`` or ``"replay:FILE"``.
    symbols, channels
        What to subscribe (``"trade"``, ``"aggTrade"``, ``"bookTicker"``, ``"kline_1m"``...).
    endpoint, ws_url, rest_url
        The preset for live data and optional URL overrides.
    exchange_label
        The ``exchange`` column of stored rows; defaults to ``binance`` (live), ``local``
        (simulator) or ``replay``. Simulated data never mixes with real data.
    flush_interval, max_batch, status_interval
        Batching and health publication (seconds, events, seconds).
    retention_ticks, purge_every
        Seconds of ticks to keep (None: forever) and how often to purge.
    record
        Write every raw frame to this file (``<recv ns> <frame>`` lines; ``.gz`` compresses).
    simulator, replay
        Keyword arguments for the local exchange's data source (seed, rate, speed, loop...).
    client_options
        Extra keyword arguments for every feed's client (backoff, stale_after...).
    feeds
        Several venues at once (:class:`FeedSpec` each, one connection loop, sequencer and
        status row per feed, one writer). Without it, one Binance feed is built from
        ``symbols``/``channels``/``endpoint``/``ws_url``/``rest_url``/``exchange_label``.
    spill_dir
        Where events go that a failing database cannot take (default ``<db>.spill/``).
    max_buffer
        Events kept in memory while the database fails before the oldest are spilled.
    retry_interval
        Seconds between attempts to write again while the database fails.
    idle_after
        A connected feed that receives messages but stores nothing new for this long is
        reported as not storing (an error in the log and the status).
    file_check_interval
        Seconds between checks that the database file and its WAL are still the ones opened.
    """

    def __init__(
        self,
        *,
        db: str | os.PathLike[str],
        source: str = "live",
        symbols: Sequence[str] = ("BTCUSDT", "ETHUSDT"),
        channels: Sequence[str] = ("trade",),
        endpoint: str = "spot",
        ws_url: str | None = None,
        rest_url: str | None = None,
        exchange_label: str | None = None,
        flush_interval: float = 0.1,
        max_batch: int = 20_000,
        status_interval: float = 1.0,
        retention_ticks: float | None = None,
        purge_every: float = 600.0,
        record: str | os.PathLike[str] | None = None,
        simulator: dict[str, Any] | None = None,
        replay: dict[str, Any] | None = None,
        exchange_options: dict[str, Any] | None = None,
        client_options: dict[str, Any] | None = None,
        hooks: Sequence[CollectorHook] = (),
        event_hooks: Sequence[Callable[[object], None]] = (),
        spill_dir: str | os.PathLike[str] | None = None,
        max_buffer: int = 200_000,
        retry_interval: float = 1.0,
        idle_after: float = 10.0,
        file_check_interval: float = 1.0,
        feeds: Sequence[FeedSpec] | None = None,
    ) -> None:
        if source not in ("live", "local") and not source.startswith("replay:"):
            raise ValidationError("source", source, "expected 'live', 'local' or 'replay:FILE'")
        self.replay_paths = (
            [Path(p) for p in source[7:].split(",")] if source.startswith("replay:") else []
        )
        for p in self.replay_paths:
            if not p.exists():
                raise ValidationError("source", source, f"no such recording: {p}")
        if not flush_interval > 0:
            raise ValidationError("flush_interval", flush_interval, "must be > 0 seconds")
        for name, v in (
            ("retry_interval", retry_interval),
            ("idle_after", idle_after),
            ("file_check_interval", file_check_interval),
        ):
            if not v > 0:
                raise ValidationError(name, v, "must be > 0 seconds")
        if max_buffer < 1:
            raise ValidationError("max_buffer", max_buffer, "must be >= 1 event")
        if feeds is None and (isinstance(symbols, str) or not symbols):
            raise ValidationError(
                "symbols", symbols, "expected a non-empty list such as ['BTCUSDT']"
            )
        self.db = Path(db)
        self.source = source
        self.symbols = tuple(s.upper() for s in symbols)
        self.channels = tuple(channels)
        self.endpoint = endpoint
        self.ws_url = ws_url
        self.rest_url = rest_url
        default_label = {"live": "binance", "local": "local"}.get(source, "replay")
        if feeds is None:
            feeds = [
                FeedSpec(
                    venue="binance",
                    symbols=self.symbols,
                    channels=self.channels,
                    label=exchange_label or default_label,
                    ws_url=ws_url,
                    rest_url=rest_url,
                    endpoint=endpoint,
                )
            ]
        self.feeds = self._resolve_feeds(list(feeds), source)
        self.exchange_label = self.feeds[0].label or default_label
        if len(self.feeds) > 1 or feeds[0].venue != "binance":
            self.symbols = tuple(s for f in self.feeds for s in f.symbols)
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.status_interval = status_interval
        self.retention_ticks = retention_ticks
        self.purge_every = purge_every
        self.record_path = Path(record) if record else None
        self.simulator = dict(simulator or {})
        self.replay = dict(replay or {})
        self.exchange_options = dict(exchange_options or {})
        self.client_options = dict(client_options or {})
        self.hooks: list[CollectorHook] = list(hooks)
        self.event_hooks: list[Callable[[object], None]] = list(event_hooks)
        self.stats = CollectorStats()
        self.exchange: Any = None  # the LocalExchange for local/replay sources (first feed's)
        self.exchanges: dict[str, Any] = {}  # label -> local exchange
        self.client: Any = None  # the first feed's client
        self.clients: dict[str, Any] = {}  # label -> client
        self.writer: Writer | None = None
        self._buf = Batch()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._recorder: FrameRecorder | None = None
        self._io_lock = asyncio.Lock()
        self._last_purge = time.monotonic()
        self._inbox = Path(str(self.db) + ".inbox")
        self.spill_dir = Path(spill_dir) if spill_dir is not None else spill_dir_for(self.db)
        self.max_buffer = max_buffer
        self.retry_interval = retry_interval
        self.idle_after = idle_after
        self.file_check_interval = file_check_interval
        self.exit_code = 0
        """0 after a clean stop; 3 when it stopped while not storing and every event it could
        not store is in the spill directory; 4 when events were lost (see the last log line)."""
        # storage state: the reason the database is not taking writes ("" when it is)
        self._failure = ""
        self._failure_since = 0
        self._outage_since = 0  # first failure of the outage not yet fully written back
        # label -> "connected, no new rows for N s" (the database works; that feed adds nothing)
        self._idle: dict[str, str] = {}
        self._backlog: deque[Batch] = deque()  # failed batches, oldest first
        self._backlog_events = 0
        self._spill: SpillFile | None = None
        self._spill_pending = False  # spill files wait for re-import
        self._lost_gaps: list[Gap] = []  # found gaps for lost trades, stored with the next batch
        self._lost_holes: dict[
            str, list[Hole]
        ] = {}  # label -> holes, backfilled once storing again
        self._next_retry = 0.0
        self._next_file_check = 0.0
        self._last_new: dict[str, float] = {}  # label -> monotonic time of its last new row
        self._live_since: dict[str, float] = {}  # label -> connected (live) since, monotonic
        self._msgs_mark: dict[str, int] = {}  # label -> its messages at the later of those two
        self._status_file: StatusFile | None = None
        self._reloaded: dict[str, list[Hole]] = {}  # label -> found gaps reloaded at start
        # label -> {(symbol, a hole's first id): time of the stored trade before it}
        self._hole_times: dict[str, dict[tuple[str, int], int]] = {}
        self._in_spill = 0  # events in the spill directory not re-imported yet
        self._venues: Any = None

    @staticmethod
    def _resolve_feeds(feeds: list[FeedSpec], source: str) -> list[FeedSpec]:
        """Check the feeds and give each its label (see :class:`FeedSpec`)."""
        from dataclasses import replace

        from lq.venues.registry import get_venue

        if not feeds:
            raise ValidationError("feeds", feeds, "at least one feed")
        multi = len(feeds) > 1 or feeds[0].venue != "binance"
        out = []
        for f in feeds:
            venue = get_venue(f.venue)  # ValidationError naming the known venues
            if isinstance(f.symbols, str) or not f.symbols:
                raise ValidationError(
                    f"feeds[{f.venue}].symbols", f.symbols, "expected a non-empty list of symbols"
                )
            if hasattr(venue, "check_channels"):  # a channel the venue lacks: refused here
                venue.check_channels(f.channels)
            if source.startswith("replay:") and f.venue != "binance":
                raise ValidationError(
                    "source", source, f"replay serves Binance recordings only, not {f.venue}"
                )
            label = f.label
            if label is None:
                if source == "live":
                    label = f.venue
                elif source == "local":
                    label = f"local-{f.venue}" if multi else "local"
                else:
                    label = "replay"
            out.append(
                replace(
                    f,
                    venue=venue.name,
                    symbols=tuple(venue.normalize_symbols(f.symbols)),
                    label=label,
                    channels=tuple(f.channels),
                )
            )
        labels = [f.label for f in out]
        if len(set(labels)) != len(labels):
            raise ValidationError(
                "feeds", labels, "two feeds would store rows under the same exchange label"
            )
        return out

    # -- the sink: runs on the loop for every event -----------------------------------------
    def _sink(self, event: object) -> None:
        self._buf.add(event)
        for hook in self.event_hooks:  # per event, on the loop: must be O(1) and never raise
            try:
                hook(event)
            except Exception:
                log.exception("event hook %r failed", hook)
        if len(self._buf.trades) + len(self._buf.book_tickers) >= self.max_batch:
            self._wake.set()

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        """Open the database (taking the writer lock), start the source, the feed and the
        flush loop; returns the task that runs until :meth:`stop`."""
        if self._task is not None and not self._task.done():
            raise RuntimeError("collector already running")
        self.writer = Writer(self.db, source="feed")  # raises WriterLockedError if one runs
        self._started_us = time.time_ns() // 1000
        self._status_file = StatusFile(self.db)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lq.collector")
        return self._task

    async def stop(self) -> None:
        """Stop the feed, flush what is buffered, release the database. Idempotent."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_started(self, timeout: float = 30.0) -> None:
        """Wait until the feed is connected (or raise TimeoutError)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.clients and all(c.status.state == "live" for c in self.clients.values()):
                return
            if self._task is not None and self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)
        raise TimeoutError(f"feed not live after {timeout} s")

    async def _start_source(self) -> dict[str, tuple[str | None, str | None]]:
        """Start the local exchanges a local/replay source needs; ``{label: (ws, rest)}``."""
        if self.source == "live":
            return {f.label or "": (f.ws_url, f.rest_url) for f in self.feeds}
        from lq.exchange import LocalExchange, ReplaySource, SimulatorSource

        if self.source.startswith("replay:") or (
            len(self.feeds) == 1 and self.feeds[0].venue == "binance"
        ):
            src: Any
            f = self.feeds[0]
            aggs: dict[str, int] = {}
            if self.source == "local":
                cont = self._continue()
                aggs = cont.pop("start_agg_ids", {})
                params = {**self.simulator, **cont}  # the stored series wins: ids, prices, time
                if "start_time_us" in cont and self.simulator.get("start_time_us") is not None:
                    # a start time the user asked for holds only if it is after the stored
                    # series: new ids at earlier times would put trades into a stored past
                    params["start_time_us"] = max(
                        int(self.simulator["start_time_us"]), int(cont["start_time_us"])
                    )
                src = SimulatorSource(symbols=f.symbols, **params)
            else:
                src = ReplaySource(self.replay_paths, **self.replay)
            self.exchange = LocalExchange(
                source=src, host="127.0.0.1", port=0, **self.exchange_options
            )
            for sym, first in aggs.items():  # aggregate ids go on after the stored ones too
                self.exchange.market._book(sym).next_agg = first
            await self.exchange.start()
            self.exchanges = {f.label or "": self.exchange}
            log.info("local exchange (%s) at %s", source_label(self.source), self.exchange.ws_url)
            return {f.label or "": (self.exchange.ws_url, self.exchange.rest_url)}
        from lq.exchange.multi import LocalVenues

        sim = dict(self.simulator)
        cont = self._continue_venues() if self.source == "local" else {}
        start = sim.pop("start_time_us", None)
        if "start_time_us" in cont:  # never before the stored series (see _continue)
            start = max(int(start or 0), int(cont.pop("start_time_us")))
        self._venues = LocalVenues(
            [(f.venue, f.symbols) for f in self.feeds],
            seed=sim.pop("seed", 7),
            rate=sim.pop("rate", None),
            speed=sim.pop("speed", 1.0),
            start_time_us=start,
            exchange_options=self.exchange_options.get("venues"),
            **cont,
        )
        await self._venues.start()
        self.exchanges = {f.label or "": self._venues[f.venue] for f in self.feeds}
        self.exchange = self.exchanges[self.feeds[0].label or ""]
        for label, ex in self.exchanges.items():
            log.info("local exchange %s at %s", label, ex.ws_url)
        return {label: (ex.ws_url, ex.rest_url) for label, ex in self.exchanges.items()}

    def _make_clients(
        self,
        urls: dict[str, tuple[str | None, str | None]],
        resume_state: tuple[dict[str, dict[tuple[str, Any], int]], dict[str, list[Hole]]],
    ) -> None:
        from lq.venues.base import ProtocolVenue
        from lq.venues.registry import get_venue

        resume_all, holes_all = resume_state
        for f in self.feeds:
            label = f.label or ""
            ws_url, rest_url = urls[label]
            resume = resume_all.get(label, {})
            holes = holes_all.get(label, [])
            options = {**self._client_kwargs(), **f.options}
            venue = get_venue(f.venue)
            if f.venue == "binance":
                options["endpoint"] = f.endpoint or self.endpoint
            else:
                options.pop("api_key", None)
            if isinstance(venue, ProtocolVenue) and self._hole_times.get(label):
                options["hole_times"] = self._hole_times[label]
            client = venue.client(
                symbols=f.symbols,
                channels=f.channels,
                ws_url=ws_url,
                rest_url=rest_url,
                sink=self._sink,
                resume_ids=resume or None,
                holes=holes,
                exchange_label=label,
                record=self._recorder,
                **options,
            )
            self.clients[label] = client
        self.client = self.clients[self.feeds[0].label or ""]

    async def _run(self) -> None:
        assert self.writer is not None
        try:
            await self._startup_reimport()
            resume_state = await self._resume_state()
            urls = await self._start_source()
            if self.record_path is not None:
                self._recorder = FrameRecorder(self.record_path)
            self._make_clients(urls, resume_state)
            tasks = [c.start() for c in self.clients.values()]
            for f in self.feeds:
                log.info(
                    "collecting %s %s %s from %s into %s",
                    f.venue,
                    ",".join(f.symbols),
                    ",".join(f.channels),
                    source_label(self.source, f.label),
                    self.db,
                )
            next_status = 0.0
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval)
                self._wake.clear()
                if not self._stopping:
                    for feed in tasks:
                        if feed.done():
                            feed.result()  # a failed feed (attempts exhausted) ends the collector
                now = time.monotonic()
                if now >= self._next_file_check:
                    self._next_file_check = now + self.file_check_interval
                    await self._check_files()
                await self._flush()
                self._check_idle(now)
                if now >= next_status:
                    next_status = now + self.status_interval
                    await self._publish(self._status_details())
                    if self._inbox.is_dir() and self.storing:
                        await self._import_inbox()
                if (
                    self.retention_ticks
                    and self.storing
                    and now - self._last_purge >= self.purge_every
                ):
                    self._last_purge = now
                    await self._purge()
                if self._stopping:
                    break
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                await client.stop()
        with contextlib.suppress(Exception):
            await self._flush()
        if not self.storing and (self._backlog or self._spill_pending):
            with contextlib.suppress(Exception):
                await self._recover(final=True)  # the database may take it now
        if self._backlog or self._buf or self._lost_gaps:
            await self._spill_all()
        with contextlib.suppress(Exception):
            await self._publish(self._status_details(state="stopped"))
        for ex in self.exchanges.values():
            with contextlib.suppress(Exception):
                await ex.stop()
        if self._recorder is not None:
            self._recorder.close()
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        async with self._io_lock:  # never close the connection under a run_in_writer call
            if self.writer is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.writer.close)
                self.writer = None
        if self._status_file is not None:
            self._status_file.close()
        s = self.stats
        pending = self._spilled_pending()
        if s.events_lost:
            self.exit_code = 4
            log.error(
                "collector stopped: %d trades stored, %d duplicates ignored; %s events LOST "
                "(neither the database nor the spill took them: %s)%s",
                s.trades_new,
                self.duplicates,
                f"{s.events_lost:,}",
                self._failure or "see above",
                f"; {pending:,} events are in {self.spill_dir} (re-imported at the next start)"
                if pending
                else "",
            )
        elif pending or self._failure:
            self.exit_code = 3
            log.error(
                "collector stopped while not storing (%s): %s events spilled to %s "
                "(re-imported at the next start), 0 lost; %d trades stored",
                self._failure or "spill not re-imported yet",
                f"{pending:,}",
                self.spill_dir,
                s.trades_new,
            )
        else:
            log.info(
                "collector stopped: %d trades stored, %d duplicates ignored",
                s.trades_new,
                self.duplicates,
            )

    @property
    def duplicates(self) -> int:
        """Trades received twice: dropped by a feed's sequencer (an id already delivered) or
        ignored by the store (an id already stored)."""
        dropped = sum(
            int(getattr(getattr(c, "sequencer", None), "duplicates", 0))
            for c in self.clients.values()
        )
        return self.stats.trades_duplicate + dropped

    # -- writing ----------------------------------------------------------------------------
    @property
    def storing(self) -> bool:
        """True while batches are being committed: no database failure, nothing waiting in
        memory or in the spill directory."""
        return not self._failure and not self._backlog and not self._spill_pending

    async def _flush(self) -> None:
        batch, self._buf = self._buf, Batch()
        if self._recorder is not None and len(batch):
            self._recorder.flush()
        if self.storing and not self._lost_gaps:
            if not len(batch) and not batch.echoes:
                return
            try:
                async with self._io_lock:
                    result = await asyncio.to_thread(self._write, batch)
            except StorageFailedError as exc:
                if exc.reason in _FILE_PROBLEMS and not await self._check_files():
                    self._buf = _joined(batch, self._buf)  # reopened: write it at once
                    self._wake.set()
                    return
                self._fail(exc)
                self._keep(batch)
                return
            self._committed(batch, result)
            return
        if len(batch):
            self._keep(batch)
        if time.monotonic() >= self._next_retry:
            await self._recover()
        await self._bound_backlog()

    def _write(self, batch: Batch) -> BatchResult:
        assert self.writer is not None
        return self.writer.write_batch(batch)

    def _committed(self, batch: Batch, result: BatchResult) -> None:
        self._account(batch, result)
        for hook in self.hooks:
            try:
                hook.on_batch(batch, result)
            except Exception:
                log.exception("collector hook %r failed", hook)

    def _keep(self, batch: Batch) -> None:
        self._backlog.append(batch)
        self._backlog_events += len(batch)

    def _fail(self, exc: BaseException) -> None:
        """The database failed: from now on events wait in memory and the spill."""
        reason = storage_failure(exc) or f"{type(exc).__name__}: {exc}"
        self.stats.write_errors += 1
        if not self._failure:
            self.stats.outages += 1
            self._failure_since = time.time_ns() // 1000
            self._outage_since = self._outage_since or self._failure_since
            log.error(
                "not storing: %s (%s); receiving goes on into memory (up to %s events) and %s",
                reason,
                self.db,
                f"{self.max_buffer:,}",
                self.spill_dir,
            )
        elif reason != self._failure:
            log.error("still not storing: %s", reason)
        self._failure = reason
        self._next_retry = time.monotonic() + self.retry_interval

    async def _recover(self, *, final: bool = False) -> None:
        """Write the spill, then the memory, oldest first, one bounded transaction at a time;
        back to storing when both are empty."""
        assert self.writer is not None
        self._next_retry = time.monotonic() + self.retry_interval
        # keep receiving meanwhile; on the way out at most 10 s (a stop timeout is often 30 s)
        deadline = time.monotonic() + (10.0 if final else 0.5)
        try:
            if self._failure and await self._check_files():
                return
            if self._spill_pending:
                if self._spill is not None:  # a new outage will start a new file
                    self._spill.close()
                    self._spill = None
                while time.monotonic() < deadline:
                    try:
                        async with self._io_lock:
                            rep, finished = await asyncio.to_thread(
                                import_spill, self.writer, self.spill_dir, keep_batches=True,
                                max_records=5,
                            )  # fmt: skip
                    except StorageFailedError as exc:
                        self._reimported(getattr(exc, "partial", None))
                        raise
                    self._reimported(rep)
                    if rep.records or finished:
                        self._writes_again()
                    if finished:
                        self._spill_pending = False
                        break
                if self._spill_pending:
                    self._next_retry = 0.0  # progress: go on at the next flush
                    return
            while self._backlog or self._lost_gaps:
                if time.monotonic() >= deadline:
                    self._next_retry = 0.0
                    return
                n_gaps = len(self._lost_gaps)
                batch = self._take_backlog()
                try:
                    async with self._io_lock:
                        result = await asyncio.to_thread(self._write, batch)
                except BaseException:
                    del batch.gaps[:n_gaps]  # they stay in _lost_gaps, for the next attempt
                    self._backlog.appendleft(batch)
                    self._backlog_events += len(batch)
                    raise
                self._lost_gaps.clear()
                self._writes_again()
                self._committed(batch, result)
        except StorageFailedError as exc:
            self._fail(exc)
            return
        except Exception as exc:  # never let a recovery attempt end the collector
            log.exception("retrying to store failed")
            self._fail(StorageFailedError(f"retry failed: {type(exc).__name__}: {exc}"))
            return
        self._writes_again()
        if self._outage_since:
            log.warning(
                "storing again, %.1f s after the failure: everything kept meanwhile is stored "
                "(%s events re-imported from the spill, %s lost)",
                (time.time_ns() // 1000 - self._outage_since) / 1e6,
                f"{self.stats.events_reimported:,}",
                f"{self.stats.events_lost:,}",
            )
            self._outage_since = 0
        for label, holes in list(self._lost_holes.items()):
            client = self.clients.get(label)
            if client is None:  # not started yet: kept for when it is
                continue
            for h in holes:  # each hole back to the feed whose trades were lost
                client.backfill(h)
            del self._lost_holes[label]

    def _writes_again(self) -> None:
        """A write went through: the database itself works again (what waits is still being
        written, and status says so until it is done)."""
        if self._failure:
            log.warning(
                "the database takes writes again after %.1f s (%s); writing what was kept: %s "
                "events in memory, %s in the spill",
                (time.time_ns() // 1000 - self._failure_since) / 1e6,
                self._failure,
                f"{self._backlog_events:,}",
                f"{self._in_spill:,}",
            )
            self._failure = ""

    def _reimported(self, rep: SpillImport | None) -> None:
        for b, r in rep.batches if rep is not None else ():
            self.stats.events_reimported += len(b)
            self._in_spill = max(self._in_spill - len(b), 0)
            self._committed(b, r)

    def _take_backlog(self, limit: int | None = None) -> Batch:
        """The oldest waiting batches merged up to ``max_batch`` events (one transaction of
        bounded size, never an ever-growing one), with any found gaps for lost trades."""
        limit = limit or self.max_batch
        out = Batch(gaps=list(self._lost_gaps))
        while self._backlog and (not len(out) or len(out) + len(self._backlog[0]) <= limit):
            b = self._backlog.popleft()
            self._backlog_events -= len(b)
            for name in _FIELDS:
                getattr(out, name).extend(getattr(b, name))
        return out

    async def _bound_backlog(self) -> None:
        """Move the oldest waiting batches to the spill while memory holds more than
        ``max_buffer`` events."""
        while self._backlog_events > self.max_buffer and self._backlog:
            await self._spill_out(self._take_backlog())

    async def _spill_all(self) -> None:
        """On the way out: everything still in memory goes to the spill (what the spill will
        not take is counted as lost)."""
        if len(self._buf):
            self._keep(self._buf)
            self._buf = Batch()
        while self._backlog:
            if not await self._spill_out(self._take_backlog()):
                rest = Batch()
                while self._backlog:
                    rest = _joined(rest, self._take_backlog())
                if len(rest):
                    self._lose(rest, OSError("the spill failed just before"))
                break

    async def _spill_out(self, batch: Batch) -> bool:
        if self._spill is None:
            self._spill = SpillFile(self.spill_dir)
        try:
            n = await asyncio.to_thread(self._spill.append, batch)
        except OSError as exc:
            self._lose(batch, exc)
            return False
        self._lost_gaps.clear()
        self._spill_pending = True
        self._in_spill += len(batch)
        self.stats.events_spilled += len(batch)
        self.stats.bytes_spilled += n
        return True

    def _lose(self, batch: Batch, exc: BaseException) -> None:
        """Neither the database nor the spill takes these events: count them, and turn the
        trades among them into found gaps (stored with the next batch that leaves memory)
        that are backfilled once storing again."""
        self._spill = None  # a fresh file next time (this one may have a torn tail)
        gaps = [g for g in batch.gaps if g.status == "found"]  # gap rows that were never stored
        lost = len(batch) - len(self._lost_gaps)
        self.stats.events_lost += lost
        why = (
            f"dropped while the database failed ({self._failure or 'unknown'}) and the spill "
            f"failed ({type(exc).__name__}: {exc})"
        )
        now = time.time_ns() // 1000
        n_new = 0
        for label, new in _holes(batch, self._max_backfill).items():  # per feed, by its label
            for h in new:
                gaps.append(
                    Gap(
                        symbol=h.symbol,
                        kind=h.kind,
                        first_missing=h.first_id,
                        last_missing=h.last_id,
                        status="found",
                        detected_ts=now,
                        reason=why,
                        exchange=label,
                    )
                )
            self._lost_holes.setdefault(label, []).extend(new)
            n_new += len(new)
        self._lost_gaps = gaps
        log.error(
            "%s events LOST (%s); their %d trade ranges will be backfilled once storing again",
            f"{lost:,}",
            why,
            n_new,
        )

    def _max_backfill(self, label: str) -> int:
        client = self.clients.get(label)
        return int(getattr(getattr(client, "sequencer", None), "max_backfill", 100_000))

    def _spilled_pending(self) -> int:
        """Events in the spill directory not yet re-imported (this run's and older runs')."""
        return self._in_spill if self._spill_pending else 0

    async def _check_files(self) -> bool:
        """Compare the database file and its WAL with those opened; on a change, save what
        they held and reopen (see :meth:`~lq.store.Writer.recover`). True if a problem
        remains."""
        w = self.writer
        if w is None:
            return False
        problem = await asyncio.to_thread(w.check_files)
        if problem is None:
            return False
        log.error("%s: %s; saving what it held and reopening", self.db, problem)
        try:
            async with self._io_lock:
                done = await asyncio.to_thread(w.recover, problem)
        except (StorageFailedError, OSError, sqlite3.Error) as exc:
            self._fail(exc if isinstance(exc, StorageFailedError) else StorageFailedError(
                f"{problem}; recovery failed: {exc}", path=str(self.db)))  # fmt: skip
            return True
        log.error("%s", done)
        return False

    def _messages(self) -> int:
        """Messages received so far by every feed."""
        return sum(c.status.messages for c in self.clients.values())

    def _check_idle(self, now: float) -> None:
        """A feed connected for ``idle_after`` seconds that has added no new row in that time
        is an error, said once and named in that feed's status (issue 10's rule: "nothing
        new stored after 10 s of a connected feed"). Judged per feed: one stalled venue does
        not hide behind another that stores. A database failure is its own state."""
        if not self.storing:
            return
        for f in self.feeds:
            label = f.label or ""
            client = self.clients.get(label)
            if client is None:
                continue
            st = client.status
            if st.state != "live":  # not connected: its status says so (reconnecting...)
                self._live_since.pop(label, None)
                if self._idle.pop(label, None):
                    log.warning("%s: not connected any more (%s)", label, st.state)
                continue
            since = self._live_since.get(label)
            if since is None:
                since = self._live_since[label] = now
                if self._last_new.get(label, -1.0) < since:
                    self._msgs_mark[label] = st.messages
            quiet = now - max(since, self._last_new.get(label, since))
            if quiet < self.idle_after or label in self._idle:
                continue
            received = st.messages - self._msgs_mark.get(label, 0)
            if received > 0:
                why = (
                    f"connected, no new rows for {quiet:.0f} s: {received:,} messages received "
                    f"but nothing new stored (every event was already in the database; "
                    f"{self.stats.trades_duplicate:,} duplicate trades so far, all feeds)"
                )
            else:
                why = (
                    f"connected, no new rows for {quiet:.0f} s: nothing new stored, no message "
                    f"received (the venue sends nothing on an open connection)"
                )
            self._idle[label] = why
            log.error("%s: not storing: %s", label, why)

    async def _publish(self, details: dict[str, dict[str, Any]]) -> None:
        """Health in ``feed_status`` (one row per feed, keyed by its label, if the database
        takes it) and ``<db>.status`` (always; every feed's row)."""
        now = time.time_ns() // 1000
        rows = []
        for label, detail in details.items():
            detail = dict(detail)
            state = detail.pop("state")
            rows.append(
                {
                    "exchange": label,
                    "source": self.source,
                    "updated_ts": now,
                    "state": state,
                    "pid": os.getpid(),
                    "detail": detail,
                }
            )
        if self._status_file is not None:
            self._status_file.write(rows[0] if len(rows) == 1 else {"rows": rows})
        w = self.writer
        if w is None or (self._failure and self._backlog):
            return

        def write_rows() -> None:
            for row in rows:
                w.set_feed_status(
                    exchange=row["exchange"],
                    source=self.source,
                    state=row["state"],
                    detail=row["detail"],
                )

        try:
            async with self._io_lock:
                await asyncio.to_thread(write_rows)
        except (StorageFailedError, sqlite3.Error) as exc:
            log.debug("feed_status not written: %s", exc)

    def _account(self, batch: Batch, result: BatchResult) -> None:
        for label, n in result.echo_conflicts.items():  # not duplicates: dead letters
            seq = getattr(self.clients.get(label), "sequencer", None)
            if seq is not None:
                seq.duplicates = max(0, seq.duplicates - n)
        s = self.stats
        mono = time.monotonic()
        for label, n in result.new_by_exchange.items():
            if not n:
                continue
            s.rows_by_label[label] = s.rows_by_label.get(label, 0) + n
            self._last_new[label] = mono
            client = self.clients.get(label)
            self._msgs_mark[label] = client.status.messages if client is not None else 0
            was = self._idle.pop(label, None)
            if was:
                log.warning("%s: storing new rows again (was: %s)", label, was)
        s.batches += 1
        s.events += len(batch)
        s.trades_new += result.trades.new
        if len(self.feeds) > 1 and batch.trades:
            by = s.trades_by_label
            for t in batch.trades:  # received per feed (duplicates included: the writer's job)
                by[t.exchange] = by.get(t.exchange, 0) + 1
        s.trades_duplicate += result.trades.duplicates
        s.dead_letters += result.dead_letters
        now_us = time.time_ns() // 1000
        s.last_commit_ts = now_us
        if batch.trades:
            recv = np.fromiter(
                (t.recv_ts for t in batch.trades), dtype=np.int64, count=len(batch.trades)
            )
            s.commit_latency_us.extend((now_us - recv[recv > 0]).tolist())

    def _client_kwargs(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"compression": None} if self.exchange is not None else {}
        return {**extra, **self.client_options}  # loopback: no deflate

    async def _import_inbox(self) -> None:
        """Files uploaded while we run (``lq import``, the dashboard) are imported by us, the
        database's one writer."""
        from lq.importer import process_inbox

        assert self.writer is not None
        async with self._io_lock:
            reports = await asyncio.to_thread(process_inbox, self.writer)
        for r in reports:
            log.info("imported upload %s", r.summary())

    async def _purge(self) -> None:
        assert self.writer is not None and self.retention_ticks
        cutoff = int((time.time() - self.retention_ticks) * 1e6)
        async with self._io_lock:
            res = await asyncio.to_thread(purge, self.writer, cutoff)
        self.stats.purges += 1
        log.info("retention: removed %s", res.deleted)

    def _status_details(self, state: str | None = None) -> dict[str, dict[str, Any]]:
        """One ``feed_status`` detail per feed, keyed by the feed's label."""
        return {f.label or "": self._status_detail(state, f) for f in self.feeds}

    def _status_detail(self, state: str | None = None, f: FeedSpec | None = None) -> dict[str, Any]:
        """The published health of one feed. ``state`` is ``live`` only while the feed is
        connected *and* rows are being committed; ``not storing`` says the database is failing
        (or nothing new is stored although messages arrive), with ``storage_reason``. The
        database is shared, so every feed's row carries the same storage state."""
        from lq.venues.registry import get_venue

        f = f or self.feeds[0]
        label = f.label or ""
        client = self.clients.get(label)
        st = client.status if client is not None else None
        feed = msgspec.structs.asdict(st) if st is not None else {}
        feed_state = st.state if st is not None else "starting"
        reason = self._failure or self._idle.get(label, "")
        if not reason and (self._spill_pending or self._backlog):
            reason = (
                f"writing back what was kept while the database failed: "
                f"{self._in_spill:,} events in the spill, {self._backlog_events:,} in memory"
            )
        storage = "not storing" if reason else "storing"
        s = self.stats
        if state is None:
            state = "not storing" if reason and feed_state != "stopped" else feed_state
        age = st.last_message_age_s if st is not None else None
        id_rule = get_venue(f.venue).id_rule
        ex = self.exchanges.get(label)
        return {
            **feed,
            "state": state,
            "feed_state": feed_state,
            "storage": storage,
            "storage_reason": reason,
            "storage_since_ts": (self._outage_since or None) if reason else None,
            # a message within the last 10 s ("receiving but not storing" must be true)
            "receiving": feed_state == "live" and age is not None and age < 10,
            "buffered_events": self._backlog_events + len(self._buf),
            "spilled_events": self._spilled_pending(),
            "spill_dir": str(self.spill_dir),
            "lost_events": s.events_lost,
            "lost_holes": sum(h.last_id - h.first_id + 1 for h in self._lost_holes.get(label, ())),
            "reimported_events": s.events_reimported,
            "last_commit_ts": s.last_commit_ts or None,
            "source_label": source_label(self.source, label),
            "venue": f.venue,
            "id_rule": id_rule,
            "gap_check": "checked" if id_rule == "contiguous" else "not checkable",
            "symbols": list(f.symbols),
            "channels": list(f.channels),
            **(
                {"trades_stored": s.trades_new}
                if len(self.feeds) == 1
                else {
                    "trades_received": s.trades_by_label.get(label, 0),
                    "rows_stored": s.rows_by_label.get(label, 0),  # this feed's new rows
                    "trades_stored_all_feeds": s.trades_new,
                }
            ),
            "duplicates_ignored": s.trades_duplicate,  # by the store; the feed's own: below
            "started_ts": getattr(self, "_started_us", None),
            "dead_letters": s.dead_letters,
            "write_errors": s.write_errors,
            "commit_latency_p50_ms": s.latency_ms(50),
            "commit_latency_p99_ms": s.latency_ms(99),
            "ws_url": getattr(ex, "ws_url", None) or f.ws_url,
        }

    # -- start-up: the spill of an earlier run, its holes, where to resume ------------------
    async def _startup_reimport(self) -> None:
        """A spill left by an earlier run goes in before anything else."""
        files = pending_files(self.spill_dir)
        if not files:
            return
        self._spill_pending = True
        log.warning(
            "%s: %d spill file(s) from an earlier run: re-importing", self.spill_dir, len(files)
        )
        assert self.writer is not None
        try:
            async with self._io_lock:
                rep, _ = await asyncio.to_thread(import_spill, self.writer, self.spill_dir)
        except StorageFailedError as exc:
            part = getattr(exc, "partial", None)
            self.stats.events_reimported += part.events if part is not None else 0
            self._in_spill = await asyncio.to_thread(_events_in, self.spill_dir)
            self._fail(exc)
            return
        self._spill_pending = False
        self.stats.events_reimported += rep.events
        log.warning("%s", rep.summary())

    async def _resume_state(
        self,
    ) -> tuple[dict[str, dict[tuple[str, Any], int]], dict[str, list[Hole]]]:
        """Per feed (keyed by its label): where it resumes (highest stored ids) and the holes
        still open (``found`` gaps of that label and its symbols), narrowed to the ids not
        stored yet."""
        if self._failure:
            return {}, {}
        assert self.writer is not None
        try:
            async with self._io_lock:
                return await asyncio.to_thread(self._read_resume_state)
        except (sqlite3.Error, StorageFailedError) as exc:
            self._fail(exc)
            return {}, {}

    def _read_resume_state(
        self,
    ) -> tuple[dict[str, dict[tuple[str, Any], int]], dict[str, list[Hole]]]:
        w = self.writer
        assert w is not None
        from lq.store.provenance import last_collected_ids

        # where each feed stopped collecting: imported rows (a file of other or future ids)
        # are not where the live feed was, and resuming above them dropped live trades
        last = last_collected_ids(w.conn)
        resumes: dict[str, dict[tuple[str, Any], int]] = {}
        reloaded: dict[str, list[Hole]] = {}
        for f in self.feeds:
            label = f.label or ""
            resume: dict[tuple[str, Any], int] = {
                (sym, "trade"): tid
                for (exch, sym), tid in last.items()
                if exch == label and sym in f.symbols
            }
            if "aggTrade" in f.channels:
                for sym in f.symbols:
                    (top,) = w.execute(
                        "SELECT max(agg_id) FROM agg_trades WHERE symbol = ? AND exchange = ?",
                        (sym, label),
                    ).fetchone()
                    if top is not None:
                        resume[(sym, "aggTrade")] = int(top)
            resumes[label] = resume
            holes: list[Hole] = []
            marks = ",".join("?" * len(f.symbols))
            # open holes: still being fetched when the last run ended (found), or given up by
            # it (unfilled: a long 429, a network failure, a restart): fetched again, so a hole
            # left by a transient failure is not given up for good; one too large to fetch is
            # tracked, so its trades arriving late are stored once (not dropped as duplicates)
            rows = w.execute(
                "SELECT symbol, kind, first_missing, last_missing, status, reason FROM gaps"
                " WHERE exchange = ? AND status IN ('found', 'unfilled')"
                f" AND symbol IN ({marks}) ORDER BY symbol, kind, first_missing",
                (label, *f.symbols),
            ).fetchall()
            cap = self._max_backfill(label)
            per_stream: dict[tuple[str, str], int] = {}
            for sym, kind, *_ in reversed(rows):  # the newest 10k per stream: all it tracks
                per_stream[(sym, kind)] = per_stream.get((sym, kind), 0) + 1
            seen: dict[tuple[str, str], int] = {}
            for sym, kind, lo, hi, _status, why in rows:
                seen[(sym, kind)] = k = seen.get((sym, kind), 0) + 1
                if per_stream[(sym, kind)] - k >= 10_000:
                    continue
                if kind not in ("trade", "aggTrade"):
                    continue
                if kind == "aggTrade" and why.startswith(TRADE_IDS_NOT_AGGREGATES):
                    continue  # trade ids between aggregates: no aggregate is missing
                if hi - lo + 1 > cap:  # given up as too large: tracked, not fetched
                    holes.append(Hole(symbol=sym, kind=kind, first_id=lo, last_id=hi, fetch=False))
                    continue
                table, col = ("ticks", "trade_id") if kind == "trade" else ("agg_trades", "agg_id")
                have = [
                    i
                    for (i,) in w.execute(
                        f"SELECT {col} FROM {table} WHERE symbol = ? AND {col} BETWEEN ? AND ?"
                        " AND exchange = ? ORDER BY 1",
                        (sym, lo, hi, label),
                    )
                ]
                holes.append(
                    Hole(
                        symbol=sym,
                        kind=kind,
                        first_id=lo,
                        last_id=hi,
                        missing=_ranges_without(lo, hi, have),
                    )
                )
            if holes:
                n = sum(sum(b - a + 1 for a, b in h.missing or ()) for h in holes if h.fetch)
                log.warning(
                    "%s: %d hole(s) left open by an earlier run (%s ids still missing): "
                    "backfilling them alongside the live feed",
                    label,
                    len(holes),
                    f"{n:,}",
                )
                reloaded[label] = holes
            # the time of the stored trade before each hole (the restart's gap after the
            # resume id included): venues whose history pages by time (Kraken) start there
            times: dict[tuple[str, int], int] = {}
            for (sym, kind), tid in resume.items():
                if kind == "trade":
                    row = w.execute(
                        "SELECT ts FROM ticks WHERE exchange = ? AND symbol = ? AND trade_id = ?",
                        (label, sym, tid),
                    ).fetchone()
                    if row is not None:
                        times[(sym, tid + 1)] = int(row[0])
            for h in holes:
                if h.kind == "trade":
                    row = w.execute(
                        "SELECT ts FROM ticks WHERE exchange = ? AND symbol = ? AND trade_id < ?"
                        " ORDER BY trade_id DESC LIMIT 1",
                        (label, h.symbol, h.first_id),
                    ).fetchone()
                    if row is not None:
                        times[(h.symbol, h.first_id)] = int(row[0])
            self._hole_times[label] = times
        self._reloaded = reloaded
        return resumes, reloaded

    def _continue_venues(self) -> dict[str, Any]:
        """:meth:`_continue` for the local venues of several feeds: each venue's trade and
        book-update ids go on after the ones stored under its feed's label, the common price
        process from the newest stored price of each asset, and time after every stored
        trade (else the second run of a multi-venue demo would store nothing new)."""
        from lq.exchange.multi import sim_symbol
        from lq.venues.registry import get_venue

        w = self.writer
        if w is None or self._failure:
            return {}
        ids: dict[str, dict[str, int]] = {}
        books: dict[str, dict[str, int]] = {}
        newest: dict[str, tuple[int, float]] = {}  # simulator symbol -> (ts, price)
        top_ts = 0
        try:
            for f in self.feeds:
                label = f.label or ""
                venue = get_venue(f.venue)
                for sym in f.symbols:
                    row = w.execute(
                        "SELECT trade_id, ts, price FROM ticks WHERE exchange = ? AND symbol = ?"
                        " ORDER BY trade_id DESC LIMIT 1",
                        (label, sym),
                    ).fetchone()
                    if row is not None:
                        ids.setdefault(f.venue, {})[sym] = int(row[0]) + 1
                        top_ts = max(top_ts, int(row[1]))
                        key = sim_symbol(venue.instrument(sym).base)
                        if int(row[1]) > newest.get(key, (-1, 0.0))[0]:
                            newest[key] = (int(row[1]), float(row[2]))
                    (u,) = w.execute(
                        "SELECT max(update_id) FROM book_tickers WHERE exchange = ? AND symbol = ?",
                        (label, sym),
                    ).fetchone()
                    if u is not None:
                        books.setdefault(f.venue, {})[sym] = int(u) + 1
        except sqlite3.Error as exc:
            log.warning("the local venues start afresh (stored ids unreadable: %s)", exc)
            return {}
        if not ids and not books:
            return {}
        start = max(time.time_ns() // 1_000_000 * 1000, top_ts // 1000 * 1000 + 1000)
        log.info(
            "the simulator continues the stored series of every venue: ids %s, from %s",
            "; ".join(
                f"{v} " + ", ".join(f"{k} {n:,}" for k, n in m.items()) for v, m in ids.items()
            ),
            time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(start / 1e6)),
        )
        return {
            "start_ids": ids,
            "start_update_ids": books,
            "start_prices": {k: p for k, (_, p) in newest.items()},
            "start_time_us": start,
        }

    def _continue(self) -> dict[str, Any]:
        """For the local simulator on a database that holds its data already: ids, update ids,
        prices and time go on after the stored ones (else every trade would be a duplicate)."""
        w = self.writer
        if w is None or self._failure:
            return {}
        ids: dict[str, int] = {}
        books: dict[str, int] = {}
        aggs: dict[str, int] = {}
        prices: dict[str, float] = {}
        top_ts = 0
        try:
            for sym in self.symbols:
                row = w.execute(
                    "SELECT trade_id, ts, price FROM ticks WHERE symbol = ? AND exchange = ?"
                    " ORDER BY trade_id DESC LIMIT 1",
                    (sym, self.exchange_label),
                ).fetchone()
                if row is not None:
                    ids[sym], prices[sym] = int(row[0]) + 1, float(row[2])
                    top_ts = max(top_ts, int(row[1]))
                (u,) = w.execute(
                    "SELECT max(update_id) FROM book_tickers WHERE symbol = ? AND exchange = ?",
                    (sym, self.exchange_label),
                ).fetchone()
                if u is not None:
                    books[sym] = int(u) + 1
                (a,) = w.execute(
                    "SELECT max(agg_id) FROM agg_trades WHERE symbol = ? AND exchange = ?",
                    (sym, self.exchange_label),
                ).fetchone()
                if a is not None:
                    aggs[sym] = int(a) + 1
        except sqlite3.Error as exc:
            log.warning("simulator starts afresh (stored ids unreadable: %s)", exc)
            return {}
        if not ids and not books:
            return {}
        start = max(time.time_ns() // 1_000_000 * 1000, top_ts // 1000 * 1000 + 1000)
        log.info(
            "the simulator continues the stored series: ids %s, from %s",
            ", ".join(f"{k} {v:,}" for k, v in ids.items()),
            time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(start / 1e6)),
        )
        return {
            "start_ids": ids,
            "start_update_ids": books,
            "start_agg_ids": aggs,
            "start_prices": prices,
            "start_time_us": start,
        }

    async def run_in_writer(self, fn: Callable[[Writer], T]) -> T:
        """Run ``fn(writer)`` on the writer's thread, between batches (e.g. store an alert event
        now, without waiting for the next flush)."""
        async with self._io_lock:
            writer = self.writer
            if writer is None:
                raise RuntimeError("collector is not running")

            def call() -> T:
                writer.verify_files()  # never into an unlinked file (StorageFailedError)
                return fn(writer)

            return await asyncio.to_thread(call)

    # -- convenience for notebooks and tests ------------------------------------------------
    def trades_of(self, symbol: str, label: str | None = None) -> list[Trade]:
        """The local exchange's truth for ``symbol`` (local/replay sources only); ``label``
        picks the feed's exchange when several venues run."""
        if self.exchange is None:
            raise RuntimeError("trades_of() needs a local or replay source")
        ex = self.exchanges[label] if label is not None else self.exchange
        return ex.trades(symbol)

    def add_hook(self, hook: CollectorHook | Callable[[Batch, BatchResult], None]) -> None:
        """Attach a hook; a plain function ``f(batch, result)`` is accepted too."""
        if not hasattr(hook, "on_batch"):
            fn = hook

            class _Fn:
                def on_batch(self, batch: Batch, result: BatchResult) -> None:
                    fn(batch, result)  # type: ignore[operator]

            hook = _Fn()
        self.hooks.append(hook)  # type: ignore[arg-type]
