"""The collector: one process that owns the feed and the database file.

``feed -> parser -> sink (buffer, event hooks) -> batched writer (a worker thread) -> hooks``. Every
``flush_interval`` (100 ms by default), or sooner when ``max_batch`` events are waiting, the
buffer is swapped out and written in one transaction on a worker thread, so the event loop
keeps receiving while SQLite commits. After each commit the hooks run on the loop (streaming
analytics and alerts attach here). Every ``status_interval`` the feed's health is published
in ``feed_status`` for the dashboard. Retention runs on a timer in the same worker, so there
is still exactly one writer.

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
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import msgspec
import numpy as np

from lq.errors import ValidationError
from lq.feeds.events import Trade
from lq.feeds.recording import FrameRecorder
from lq.store.retention import purge
from lq.store.writer import Batch, BatchResult, Writer

__all__ = ["Collector", "CollectorHook", "CollectorStats", "source_label"]

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


@dataclass(slots=True)
class CollectorStats:
    batches: int = 0
    events: int = 0
    trades_new: int = 0
    trades_duplicate: int = 0
    dead_letters: int = 0
    write_errors: int = 0
    purges: int = 0
    last_commit_ts: int = 0
    commit_latency_us: deque[int] = field(default_factory=lambda: deque(maxlen=20_000))

    def latency_ms(self, q: float) -> float | None:
        if not self.commit_latency_us:
            return None
        return float(np.percentile(np.fromiter(self.commit_latency_us, dtype=np.int64), q)) / 1e3


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
        Extra keyword arguments for :class:`~lq.feeds.BinanceClient` (backoff, stale_after...).
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
        if isinstance(symbols, str) or not symbols:
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
        self.exchange_label = exchange_label or default_label
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
        self.exchange: Any = None  # the LocalExchange for local/replay sources
        self.client: Any = None
        self.writer: Writer | None = None
        self._buf = Batch()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._recorder: FrameRecorder | None = None
        self._io_lock = asyncio.Lock()
        self._last_purge = time.monotonic()
        self._inbox = Path(str(self.db) + ".inbox")

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
            if self.client is not None and self.client.status.state == "live":
                return
            if self._task is not None and self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)
        raise TimeoutError(f"feed not live after {timeout} s")

    async def _start_source(self) -> tuple[str | None, str | None]:
        if self.source == "live":
            return self.ws_url, self.rest_url
        from lq.exchange import LocalExchange, ReplaySource, SimulatorSource

        src: Any
        if self.source == "local":
            src = SimulatorSource(symbols=self.symbols, **self.simulator)
        else:
            src = ReplaySource(self.replay_paths, **self.replay)
        self.exchange = LocalExchange(source=src, host="127.0.0.1", port=0, **self.exchange_options)
        await self.exchange.start()
        log.info("local exchange (%s) at %s", source_label(self.source), self.exchange.ws_url)
        return self.exchange.ws_url, self.exchange.rest_url

    async def _run(self) -> None:
        from lq.feeds import BinanceClient

        assert self.writer is not None
        try:
            ws_url, rest_url = await self._start_source()
            if self.record_path is not None:
                self._recorder = FrameRecorder(self.record_path)
            resume: dict[tuple[str, Any], int] = {
                (sym, "trade"): tid
                for (exch, sym), tid in self.writer.last_trade_ids().items()
                if exch == self.exchange_label and sym in self.symbols
            }
            self.client = BinanceClient(
                symbols=self.symbols,
                channels=self.channels,
                endpoint=self.endpoint,
                ws_url=ws_url,
                rest_url=rest_url,
                sink=self._sink,
                resume_ids=resume or None,
                exchange_label=self.exchange_label,
                record=self._recorder,
                **self._client_kwargs(),
            )
            feed = self.client.start()
            log.info(
                "collecting %s %s from %s into %s",
                ",".join(self.symbols),
                ",".join(self.channels),
                source_label(self.source, self.exchange_label),
                self.db,
            )
            next_status = 0.0
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval)
                self._wake.clear()
                if feed.done() and not self._stopping:
                    feed.result()  # a failed feed (attempts exhausted) ends the collector
                now = time.monotonic()
                status = None
                if now >= next_status:
                    status = self._status_detail()
                    next_status = now + self.status_interval
                await self._flush(status)
                if status is not None and self._inbox.is_dir():
                    await self._import_inbox()
                if self.retention_ticks and now - self._last_purge >= self.purge_every:
                    self._last_purge = now
                    await self._purge()
                if self._stopping:
                    break
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.stop()
        with contextlib.suppress(Exception):
            await self._flush(self._status_detail(state="stopped"))
        if self.exchange is not None:
            with contextlib.suppress(Exception):
                await self.exchange.stop()
        if self._recorder is not None:
            self._recorder.close()
        async with self._io_lock:  # never close the connection under a run_in_writer call
            if self.writer is not None:
                self.writer.close()
                self.writer = None
        log.info(
            "collector stopped: %d trades stored, %d duplicates ignored",
            self.stats.trades_new,
            self.stats.trades_duplicate,
        )

    # -- writing ----------------------------------------------------------------------------
    async def _flush(self, status: dict[str, Any] | None = None) -> None:
        batch, self._buf = self._buf, Batch()
        if not len(batch) and status is None:
            return
        if self._recorder is not None:
            self._recorder.flush()
        async with self._io_lock:
            try:
                result = await asyncio.to_thread(self._write, batch, status)
            except Exception:
                self.stats.write_errors += 1
                log.exception(
                    "batch of %d events failed to write; will retry with the next one", len(batch)
                )
                self._requeue(batch)
                return
        if result is None:
            return
        self._account(batch, result)
        for hook in self.hooks:
            try:
                hook.on_batch(batch, result)
            except Exception:
                log.exception("collector hook %r failed", hook)

    def _write(self, batch: Batch, status: dict[str, Any] | None) -> BatchResult | None:
        assert self.writer is not None
        result = self.writer.write_batch(batch) if len(batch) else None
        if status is not None:
            self.writer.set_feed_status(
                exchange=self.exchange_label,
                source=self.source,
                state=status.pop("state"),
                detail=status,
            )
        return result

    def _requeue(self, batch: Batch) -> None:
        """A failed write keeps its events: they go back in front of the new buffer."""
        new = self._buf
        for name in ("trades", "agg_trades", "book_tickers", "klines", "gaps", "rejected"):
            getattr(batch, name).extend(getattr(new, name))
        self._buf = batch

    def _account(self, batch: Batch, result: BatchResult) -> None:
        s = self.stats
        s.batches += 1
        s.events += len(batch)
        s.trades_new += result.trades.new
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

    def _status_detail(self, state: str | None = None) -> dict[str, Any]:
        st = self.client.status if self.client is not None else None
        feed = msgspec.structs.asdict(st) if st is not None else {}
        return {
            **feed,
            "state": state or (st.state if st is not None else "starting"),
            "source_label": source_label(self.source, self.exchange_label),
            "symbols": list(self.symbols),
            "channels": list(self.channels),
            "trades_stored": self.stats.trades_new,
            "duplicates_ignored": self.stats.trades_duplicate,
            "dead_letters": self.stats.dead_letters,
            "write_errors": self.stats.write_errors,
            "commit_latency_p50_ms": self.stats.latency_ms(50),
            "commit_latency_p99_ms": self.stats.latency_ms(99),
            "ws_url": getattr(self.exchange, "ws_url", None) or self.ws_url,
        }

    async def run_in_writer(self, fn: Callable[[Writer], T]) -> T:
        """Run ``fn(writer)`` on the writer's thread, between batches (e.g. store an alert event
        now, without waiting for the next flush)."""
        async with self._io_lock:
            writer = self.writer
            if writer is None:
                raise RuntimeError("collector is not running")
            return await asyncio.to_thread(fn, writer)

    # -- convenience for notebooks and tests ------------------------------------------------
    def trades_of(self, symbol: str) -> list[Trade]:
        """The local exchange's truth for ``symbol`` (local/replay sources only)."""
        if self.exchange is None:
            raise RuntimeError("trades_of() needs a local or replay source")
        return self.exchange.trades(symbol)

    def add_hook(self, hook: CollectorHook | Callable[[Batch, BatchResult], None]) -> None:
        """Attach a hook; a plain function ``f(batch, result)`` is accepted too."""
        if not hasattr(hook, "on_batch"):
            fn = hook

            class _Fn:
                def on_batch(self, batch: Batch, result: BatchResult) -> None:
                    fn(batch, result)  # type: ignore[operator]

            hook = _Fn()
        self.hooks.append(hook)  # type: ignore[arg-type]
