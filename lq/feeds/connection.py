"""The venue-independent connection loop: connect, reconnect, rotate, watchdog, gap backfill.

:class:`FeedClient` is the I/O shell every venue's client is built on (Binance's
:class:`~lq.venues.binance.client.BinanceClient`, and :class:`~lq.feeds.venue_client.VenueClient`
for the venues described by pure protocol modules). A subclass supplies what is venue
knowledge and nothing else:

* ``self.links``: ``[(url, streams), ...]``, one supervised connection per entry;
* ``self.parser``: a sans-I/O parser, ``parse(raw, recv_ts) -> list[Event]``, which raises
  only :class:`~lq.errors.FrameError`;
* :meth:`FeedClient._after_open` (optional): what to send once a connection is open
  (subscribe frames) and any keepalive task;
* :meth:`FeedClient._make_rest` and :meth:`FeedClient._backfill`: the REST backfill of one
  :class:`~lq.feeds.sequencer.BackfillRequest`.

The loop itself (``shared/reference/binance-protocol.md`` §5.3, and the same rules for every
venue): **every** close is followed by a reconnect with jittered exponential back-off, the
rolling attempt budget and ``max_attempts`` consecutive failures before
:class:`~lq.errors.ExhaustedRetriesError`; a staleness watchdog replaces a connection that
delivered nothing for ``stale_after`` s; before ``rotate_after`` and on a venue's shutdown
notice (:class:`~lq.feeds.events.ServerShutdown`) the connection is replaced by overlap (the
new one opened and its first frame awaited before the old one closes); gaps in trade ids
are backfilled by a background task, so the receive loop never waits; a frame the parser
refuses becomes a :class:`~lq.feeds.events.Rejected` event.

``id_rule="none"`` (a venue whose trade ids are not contiguous): no gap detection at all
(:class:`~lq.feeds.sequencer.NullSequencer`), and :attr:`FeedClient.status` says the gaps are
not checkable (``gaps_found`` etc. are ``None``, never a reassuring 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.client import ClientConnection, connect

from lq.errors import ExhaustedRetriesError, FeedError, FrameError, ValidationError
from lq.feeds.backoff import AttemptBudget, Backoff
from lq.feeds.events import (
    MAX_REASON,
    AggTrade,
    Duplicate,
    Event,
    Gap,
    Rejected,
    ServerShutdown,
    Trade,
    TradeMarker,
    capped_raw,
)
from lq.feeds.recording import FrameRecorder
from lq.feeds.sequencer import BackfillRequest, Hole, NullSequencer, Sequencer, StreamKind
from lq.feeds.status import FeedState, FeedStatus

__all__ = ["FeedClient", "FrameParser", "IdRule", "Sink"]

log = logging.getLogger(__name__)

Sink = Callable[[Event], None]
IdRule = Literal["contiguous", "none"]


class FrameParser(Protocol):
    """What the loop needs of a venue's sans-I/O parser."""

    def parse(self, raw: bytes | str, recv_ts: int) -> list[Event]: ...


class _Conn:
    """One open WebSocket and the task that reads it."""

    __slots__ = (
        "close_code",
        "close_reason",
        "first",
        "last_msg",
        "messages",
        "notice",
        "opened",
        "pump",
        "retired",
        "rotate_at",
        "stale",
        "url",
        "wake",
        "ws",
    )

    def __init__(self, ws: ClientConnection, url: str, opened: float, rotate_at: float) -> None:
        self.ws = ws
        self.url = url
        self.opened = opened
        self.last_msg = opened
        self.rotate_at = rotate_at
        self.messages = 0
        self.first = asyncio.Event()  # first frame received
        self.wake = asyncio.Event()  # the supervisor should look: closed or serverShutdown
        self.notice = False  # serverShutdown received
        self.retired = False  # closed on purpose by a rotation or stop()
        self.stale = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.pump: asyncio.Task[None] | None = None


class FeedClient:
    """The connection loop of one venue's feed (see the module docstring for the contract).

    Parameters
    ----------
    symbols
        The venue's own symbols (as stored).
    sink
        Called with every event, synchronously, on the event loop.
    exchange_label
        The ``exchange`` field of every event (and of the stored rows).
    id_rule
        ``"contiguous"``: trade ids are +1 per symbol, gaps are detected and backfilled;
        ``"none"``: no gap detection, gaps are reported as not checkable.
    resume_ids
        ``{(symbol, "trade"|"aggTrade"): last_stored_id}`` from the store after a restart.
    holes
        Holes known before the start (``found`` rows of the gap ledger, reloaded after a
        restart): tracked by the sequencer, so their trades are delivered once whichever way
        they come, and fetched by the backfill worker alongside the live feed.
    backoff, max_attempts, attempt_budget, stale_after, rotate_after
        Reconnect policy, watchdog and planned rotation (seconds).
    record
        Every raw frame is written here with its receive time (ns).
    max_backfill, backfill_delay
        Largest hole backfilled; seconds a hole is given to close by itself first.
    ping_interval, ping_timeout, open_timeout, close_timeout, compression
        ``websockets`` connection settings.
    max_frame_bytes
        Largest frame accepted (after decompression); a larger one closes the connection
        (1009), which reconnects and backfills like any drop. The largest real frames (a
        Coinbase level2 snapshot) are a few MB.
    """

    links: Sequence[tuple[str, Sequence[str]]]
    parser: FrameParser

    def __init__(
        self,
        *,
        symbols: Sequence[str],
        sink: Sink,
        exchange_label: str,
        id_rule: IdRule = "contiguous",
        resume_ids: Mapping[tuple[str, StreamKind], int] | None = None,
        holes: Sequence[Hole] = (),
        backoff: Backoff | None = None,
        max_attempts: int | None = 50,
        attempt_budget: AttemptBudget | None = None,
        stale_after: float = 60.0,
        rotate_after: float = 23 * 3600.0,
        record: FrameRecorder | None = None,
        max_backfill: int = 100_000,
        backfill_delay: float = 0.25,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        open_timeout: float = 10.0,
        close_timeout: float = 2.0,
        compression: Literal["deflate"] | None = "deflate",
        max_frame_bytes: int | None = 64 * 2**20,
        agg_trade_ids_contiguous: bool = True,
    ) -> None:
        if isinstance(symbols, str):
            raise ValidationError("symbols", symbols, "expected a list of symbols, not a string")
        if not symbols:
            raise ValidationError("symbols", symbols, "at least one symbol is needed")
        if not callable(sink):
            raise ValidationError("sink", sink, "must be callable")
        if max_attempts is not None and max_attempts < 1:
            raise ValidationError("max_attempts", max_attempts, "must be >= 1 or None")
        for name, v in (("stale_after", stale_after), ("rotate_after", rotate_after)):
            if not v > 0:
                raise ValidationError(name, v, "must be > 0 seconds")
        if not backfill_delay >= 0:
            raise ValidationError("backfill_delay", backfill_delay, "must be >= 0")
        if id_rule not in ("contiguous", "none"):
            raise ValidationError("id_rule", id_rule, "expected 'contiguous' or 'none'")
        self.symbols = tuple(symbols)
        self.exchange_label = exchange_label
        self.id_rule: IdRule = id_rule
        self.sink = sink
        self.backoff = backoff if backoff is not None else Backoff()
        self.max_attempts = max_attempts
        self.attempt_budget = attempt_budget if attempt_budget is not None else AttemptBudget()
        self.stale_after = stale_after
        self.rotate_after = rotate_after
        self.record = record
        self.backfill_delay = backfill_delay
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.compression = compression
        self.max_frame_bytes = max_frame_bytes
        self.sequencer: Sequencer = (
            Sequencer(
                resume_ids=resume_ids,
                max_backfill=max_backfill,
                exchange=exchange_label,
                agg_trade_ids_contiguous=agg_trade_ids_contiguous,
            )
            if id_rule == "contiguous"
            else NullSequencer(exchange=exchange_label)
        )
        self._rest: Any = None
        self._own_rest = True
        self._rng = random.Random(self.backoff.seed)
        self._task: asyncio.Task[None] | None = None
        self._backfill_q: asyncio.Queue[BackfillRequest] = asyncio.Queue()
        for h in holes:
            self.backfill(h)
        self._conns: set[_Conn] = set()
        self._aux: set[asyncio.Task[Any]] = set()  # keepalive tasks etc., cancelled at the end
        self._link_up: dict[str, bool] = {}
        self._state: FeedState = "idle"
        self._error: str | None = None
        self._started = 0.0
        self._last_msg: float | None = None
        self._sec = 0
        self._sec_count = 0
        self._per_sec: deque[tuple[int, int]] = deque(maxlen=11)
        self._lags: deque[int] = deque(maxlen=2048)
        self._n = {
            "messages": 0, "reconnects": 0, "rotations": 0, "connect_failures": 0,
            "gaps_found": 0, "gaps_filled": 0, "gaps_unfilled": 0, "backfilled": 0,
            "rejected": 0, "sink_errors": 0, "markers_skipped": 0,
        }  # fmt: skip

    # -- what a venue's client supplies ---------------------------------------------------

    def _make_rest(self) -> Any:
        """The REST client backfill uses (owned: closed with ``aclose()`` at the end)."""
        return None

    async def _after_open(self, conn: _Conn) -> None:
        """Called once a connection is open and its reader runs: send subscriptions here."""

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        """Run a helper task (a keepalive) that ends with the feed."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._aux.add(task)
        task.add_done_callback(self._aux.discard)
        return task

    async def _backfill(self, req: BackfillRequest) -> None:
        """Fetch the missing ids of ``req`` over REST, deliver them, and settle the request."""
        self._gaps(
            self.sequencer.settle(req, now=_now_us(), reason="this feed has no REST backfill")
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Start on the running loop and return the task (it ends only on failure or stop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise FeedError(
                "start() needs a running event loop (call it from async code)"
            ) from None
        if self._task is not None and not self._task.done():
            raise FeedError(f"{type(self).__name__} is already running")
        self._task = loop.create_task(self._run(), name=f"lq.feeds.{self.exchange_label}")
        return self._task

    async def stop(self) -> None:
        """Close every connection, cancel backfill, and end the task. Idempotent."""
        task = self._task
        if task is None:
            return
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, FeedError):
            await task
        if self._state != "failed":
            self._state = "stopped"

    def backfill(self, hole: Hole) -> BackfillRequest:
        """Fetch a hole that is not part of the live stream any more: a ``found`` gap reloaded
        after a restart, or trades a failing database lost. Its ids are tracked as missing
        again (a straggler or the backfill delivers each once), the request is queued for the
        backfill worker, and the ``Gap`` settling it is emitted when it ends. No ``found`` gap
        is emitted here: the caller stores (or has stored) that row itself."""
        req = self.sequencer.reopen(
            hole.symbol, hole.kind, hole.first_id, hole.last_id, hole.missing
        )
        if not hole.fetch:
            log.info(
                "%s %s %s: tracking known hole %d..%d (too large to backfill; a late trade "
                "in it is still stored once)",
                self.exchange_label, req.symbol, req.kind, req.first_id, req.last_id,
            )  # fmt: skip
            return req
        self._backfill_q.put_nowait(req)
        log.info(
            "%s %s %s: backfilling known hole %d..%d (%d ids)",
            self.exchange_label,
            req.symbol,
            req.kind,
            req.first_id,
            req.last_id,
            req.size,
        )
        return req

    @property
    def status(self) -> FeedStatus:
        """A frozen snapshot of the feed's health."""
        now = time.monotonic()
        sec = int(now)
        recent = [c for s, c in self._per_sec if s >= sec - 10 and s < sec]
        span = min(10.0, max(now - self._started, 1e-9)) if self._started else 0.0
        rate = sum(recent) / span if span else 0.0
        p50 = p99 = low = None
        if self._lags:
            lags = sorted(self._lags)
            p50 = lags[min(len(lags) - 1, int(0.50 * len(lags)))] / 1000.0
            p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))] / 1000.0
            low = lags[0] / 1000.0
        n = self._n
        checkable = self.id_rule == "contiguous"
        return FeedStatus(
            state=self._state,
            connections=len(self._conns),
            streams=sum(len(s) for _, s in self.links),
            messages=n["messages"],
            messages_per_s=rate,
            reconnects=n["reconnects"],
            rotations=n["rotations"],
            connect_failures=n["connect_failures"],
            lag_p50_ms=p50,
            lag_p99_ms=p99,
            lag_min_ms=low,
            id_rule=self.id_rule,
            gaps_found=n["gaps_found"] if checkable else None,
            gaps_filled=n["gaps_filled"] if checkable else None,
            gaps_unfilled=n["gaps_unfilled"] if checkable else None,
            backfilled=n["backfilled"],
            duplicates_dropped=self.sequencer.duplicates,
            rejected=n["rejected"],
            markers_skipped=n["markers_skipped"],
            sink_errors=n["sink_errors"],
            last_message_age_s=None if self._last_msg is None else now - self._last_msg,
            error=self._error,
        )

    async def _run(self) -> None:
        self._state = "connecting"
        self._started = time.monotonic()
        if not self._link_up:
            self._link_up = {url: False for url, _ in self.links}
        if self._rest is None:
            self._rest = self._make_rest()
            self._own_rest = True
        backfill = asyncio.create_task(self._backfill_worker(), name="lq.feeds.backfill")
        sups = [
            asyncio.create_task(self._supervise(url), name=f"lq.feeds.link[{i}]")
            for i, (url, _) in enumerate(self.links)
        ]
        try:
            done, _ = await asyncio.wait(sups, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                exc = t.exception()
                if exc is not None:
                    self._state = "failed"
                    self._error = str(exc)
                    raise exc
        finally:
            aux = list(self._aux)
            for t in [*sups, backfill, *aux]:
                t.cancel()
            await asyncio.gather(*sups, backfill, *aux, return_exceptions=True)
            await asyncio.gather(
                *(self._close(c) for c in list(self._conns)), return_exceptions=True
            )
            if self._own_rest and self._rest is not None:
                with contextlib.suppress(Exception):
                    await self._rest.aclose()
                self._rest = None
            if self.record is not None:
                self.record.flush()
            if self._state != "failed":
                self._state = "stopped"

    # -- connections --------------------------------------------------------------------------

    async def _open(self, url: str) -> _Conn:
        wait = self.attempt_budget.wait_needed(time.monotonic())
        if wait > 0:
            log.warning(
                "connection-attempt budget (%d per %g s) spent: waiting %.1f s",
                self.attempt_budget.attempts,
                self.attempt_budget.period,
                wait,
            )
            await asyncio.sleep(wait)
        self.attempt_budget.record(time.monotonic())
        host = urlsplit(url).hostname or ""
        proxy: Any = None if host in ("127.0.0.1", "localhost", "::1") else True
        ws = await connect(
            url,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            open_timeout=self.open_timeout,
            close_timeout=self.close_timeout,
            max_size=self.max_frame_bytes,
            compression=self.compression,
            proxy=proxy,
            user_agent_header="lq",
        )
        now = time.monotonic()
        conn = _Conn(ws, url, now, now + self.rotate_after)
        conn.pump = asyncio.create_task(self._pump(conn), name="lq.feeds.pump")
        self._conns.add(conn)
        try:
            await self._after_open(conn)
        except BaseException:
            await self._close(conn)
            raise
        log.info("connected %s", _short(url))
        return conn

    async def _close(self, conn: _Conn) -> None:
        conn.retired = True
        try:
            await conn.ws.close()
        finally:
            if conn.pump is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await conn.pump
            self._conns.discard(conn)

    def _set_link(self, url: str, up: bool) -> None:
        self._link_up[url] = up
        if self._state in ("failed", "stopped"):
            return
        if all(self._link_up.values()):
            self._state = "live"
        elif self._state == "live":
            self._state = "reconnecting"

    async def _supervise(self, url: str) -> None:
        delays = self.backoff.delays(self._rng)
        failures = 0
        cur: _Conn | None = None
        while True:
            if cur is None:
                try:
                    cur = await self._open(url)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # refused, reset, handshake rejected, timeout
                    failures += 1
                    self._n["connect_failures"] += 1
                    log.warning(
                        "connect %s failed (%d in a row): %s: %s",
                        _short(url),
                        failures,
                        type(exc).__name__,
                        exc,
                    )
                    if self.max_attempts is not None and failures >= self.max_attempts:
                        raise ExhaustedRetriesError(
                            f"max_attempts={self.max_attempts}: {failures} consecutive connection "
                            f"attempts to {_short(url)} failed; last: {type(exc).__name__}: {exc}"
                        ) from exc
                    await asyncio.sleep(next(delays))
                    continue
                self._set_link(url, True)

            now = time.monotonic()
            if cur.pump is not None and cur.pump.done():
                self._conns.discard(cur)
                self._set_link(url, False)
                self._n["reconnects"] += 1
                lived = now - cur.opened
                if lived >= self.backoff.healthy_after:
                    delays = self.backoff.delays(self._rng)
                    failures = 0
                elif cur.messages > 0:
                    failures = 0
                else:
                    failures += 1
                    if self.max_attempts is not None and failures >= self.max_attempts:
                        raise ExhaustedRetriesError(
                            f"max_attempts={self.max_attempts}: {failures} consecutive "
                            f"connections to {_short(url)} closed before any message; last "
                            f"close code {cur.close_code} {cur.close_reason!r}"
                        )
                delay = next(delays)
                if cur.close_code == 1008:
                    delay = max(delay, self.backoff.policy_violation_delay)
                why = "stale" if cur.stale else f"code {cur.close_code} {cur.close_reason!r}"
                log.warning(
                    "connection %s closed (%s) after %.1f s, %d messages; reconnecting in %.2f s",
                    _short(url),
                    why,
                    lived,
                    cur.messages,
                    delay,
                )
                cur = None
                await asyncio.sleep(delay)
                continue

            if cur.notice or now >= cur.rotate_at:
                cur = await self._rotate(url, cur, delays)
                continue

            idle = now - cur.last_msg
            if idle >= self.stale_after:
                log.warning(
                    "no message on %s for %.1f s (stale_after=%g): closing",
                    _short(url),
                    idle,
                    self.stale_after,
                )
                cur.stale = True
                with contextlib.suppress(Exception):
                    await cur.ws.close()
                if cur.pump is not None and not cur.pump.done():
                    # the reader has not ended with the close (a peer that never answers
                    # it): give it close_timeout, then cut the connection, never spin here
                    done, _ = await asyncio.wait({cur.pump}, timeout=self.close_timeout + 0.5)
                    if not done:
                        cur.ws.transport.abort()
                        await asyncio.wait({cur.pump}, timeout=self.close_timeout + 0.5)
                    if not cur.pump.done():
                        cur.pump.cancel()
                        await asyncio.gather(cur.pump, return_exceptions=True)
                        cur.close_code = 1006
                        cur.close_reason = "stale, reader cancelled"
                continue

            timeout = max(0.01, min(cur.rotate_at - now, self.stale_after - idle) + 0.001)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await cur.wake.wait()

    async def _rotate(self, url: str, old: _Conn, delays: Iterable[float]) -> _Conn:
        why = "serverShutdown" if old.notice else f"age {time.monotonic() - old.opened:.0f} s"
        log.info("rotating %s (%s): opening the replacement first", _short(url), why)
        try:
            new = await self._open(url)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._n["connect_failures"] += 1
            delay = next(iter(delays))
            log.warning(
                "rotation of %s failed to connect (%s); retrying in %.2f s", _short(url), exc, delay
            )
            old.notice = False
            old.rotate_at = time.monotonic() + delay
            return old
        first = asyncio.create_task(new.first.wait())
        assert new.pump is not None
        try:
            await asyncio.wait(
                {first, new.pump}, timeout=self.stale_after, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            first.cancel()
        if not new.first.is_set():
            log.warning(
                "replacement for %s sent nothing within %g s; keeping the old one",
                _short(url),
                self.stale_after,
            )
            await self._close(new)
            old.notice = False
            old.rotate_at = time.monotonic() + next(iter(delays))
            return old
        self._n["rotations"] += 1
        await self._close(old)
        return new

    async def _pump(self, conn: _Conn) -> None:
        ws = conn.ws
        on_frame = self._on_frame
        try:
            while True:
                raw = await ws.recv(decode=False)
                on_frame(raw, conn)  # type: ignore[arg-type]
        except websockets.ConnectionClosed as exc:
            rcvd = exc.rcvd
            conn.close_code = rcvd.code if rcvd is not None else 1006
            conn.close_reason = rcvd.reason if rcvd is not None else "no close frame"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("receive loop on %s failed", _short(conn.url))
            conn.close_code = None
            conn.close_reason = f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):
                await ws.close(1011)
        finally:
            conn.wake.set()

    # -- the hot path -------------------------------------------------------------------------

    def _emit(self, ev: Event) -> None:
        try:
            self.sink(ev)
        except Exception:
            self._n["sink_errors"] += 1
            log.exception("sink raised on %s", type(ev).__name__)

    def _on_frame(self, raw: bytes, conn: _Conn) -> None:
        recv_ns = time.time_ns()
        mono = time.monotonic()
        conn.last_msg = mono
        conn.messages += 1
        self._last_msg = mono
        n = self._n
        n["messages"] += 1
        sec = int(mono)
        if sec != self._sec:
            self._per_sec.append((self._sec, self._sec_count))
            self._sec = sec
            self._sec_count = 0
        self._sec_count += 1
        if self.record is not None:
            self.record.write(recv_ns, raw)
        recv_ts = recv_ns // 1000
        try:
            events = self.parser.parse(raw, recv_ts)
        except FrameError as exc:
            self._reject(raw, exc.reason, recv_ts)
            events = []
        for ev in events:
            t = type(ev)
            if t is Trade or t is AggTrade:
                self._lags.append(recv_ts - ev.event_ts)  # type: ignore[union-attr]
                step = self.sequencer.on_trade(ev, now=recv_ts)  # type: ignore[arg-type]
                if step.gaps:
                    self._gaps(step.gaps)
                if step.deliver:
                    self._emit(ev)
                elif step.rejected:
                    self._reject(raw, step.rejected, recv_ts)
                else:  # a duplicate: the store checks it is the same trade
                    self._emit(Duplicate(ev))
                for req in step.requests:
                    self._backfill_q.put_nowait(req)
            elif t is TradeMarker:  # not a trade: account for its id, deliver nothing
                n["markers_skipped"] += 1
                tid = ev.trade_id  # type: ignore[union-attr]
                if tid is not None:
                    step = self.sequencer.on_marker(ev.symbol, "trade", tid, now=recv_ts)  # type: ignore[union-attr]
                    if step.rejected:
                        self._reject(raw, step.rejected, recv_ts)
                    if step.gaps:
                        self._gaps(step.gaps)
                    for req in step.requests:
                        self._backfill_q.put_nowait(req)
            else:
                if t is ServerShutdown:
                    log.warning("serverShutdown on %s: rotating", _short(conn.url))
                    conn.notice = True
                    conn.wake.set()
                self._emit(ev)
        if not conn.first.is_set():
            conn.first.set()

    def _reject(self, raw: bytes | str, reason: str, recv_ts: int) -> None:
        """Set a frame aside as a dead letter (counted), so the frames after it go on."""
        self._n["rejected"] += 1
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        self._emit(
            Rejected(
                raw=capped_raw(text),
                reason=capped_raw(reason, MAX_REASON),
                recv_ts=recv_ts,
                exchange=self.exchange_label,
            )
        )

    def _gaps(self, gaps: Iterable[Gap]) -> None:
        for g in gaps:
            self._n["gaps_" + g.status] += 1
            self._emit(g)

    # -- backfill -----------------------------------------------------------------------------

    async def _backfill_worker(self) -> None:
        while True:
            req = await self._backfill_q.get()
            try:
                await self._backfill(req)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let one request kill the worker
                log.exception("backfill of %s failed", req)
                self._gaps(
                    self.sequencer.settle(req, now=_now_us(), reason=f"{type(exc).__name__}: {exc}")
                )


def _now_us() -> int:
    return time.time_ns() // 1000


def _short(url: str) -> str:
    return url if len(url) <= 100 else url[:97] + "..."
