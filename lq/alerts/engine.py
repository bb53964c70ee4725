"""The alert engine: rules evaluated inside the collector, on every trade, in O(1).

Wiring (see :meth:`AlertEngine.attach`)::

    collector.event_hooks  ──► engine.on_event(trade)      (on the loop, per event, O(1))
        Sampler (per clock) ──► metric.update ──► evaluate.step ──► firing
    firing ──► await collector.run_in_writer(insert_events)   (stored now, not at next flush)
           ──► Delivery.submit (queues; never blocks)   ──► set_delivery (status per channel)
    every second: poll alert_rules (count, max updated_ts); rebuild changed rules

Per trade the engine only touches the samplers of that symbol (one per distinct
``(symbols, sample)`` clock); metrics update once per closed bucket, and rules that share a
metric (same :attr:`~lq.alerts.rules.Rule.metric_key`) share its state, so 100 rules cost
little more than their distinct metrics.

Restarts: rules live in ``alert_rules``; on start (and when a rule appears) each metric is
warmed up from stored bars (the same samples :mod:`lq.alerts.history` uses) and each rule's
last firing time is read back from ``alert_events``; evaluation never fires at or before that
time, and ``fired_key`` (rule id + exchange time) is UNIQUE, so an event is never stored or
delivered twice. Warm-up steps the rules through the stored samples without firing: an
excursion that was alerted before a restart stays disarmed, while a condition that holds but
was never alerted (the rule is new, or no collector ran when it came true) fires on the next
live sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from lq.alerts.delivery import Delivery, RetryPolicy
from lq.alerts.evaluate import Firing, RuleState, quiet_interval, step
from lq.alerts.metrics import GarchVolMetric, Metric, Sampler, VenueSampler, make_metric
from lq.alerts.rules import EVENT_METRICS, VENUE_METRICS, Rule
from lq.alerts.store import (
    AlertEvent,
    StoredRule,
    insert_events,
    last_fired,
    load_rules,
    rules_version,
    set_delivery,
)
from lq.feeds.events import Gap, Trade

__all__ = ["AlertEngine", "EngineStats"]

log = logging.getLogger(__name__)

T = TypeVar("T")
RunInWriter = Callable[[Callable[[Any], T]], Awaitable[T]]


@dataclass(slots=True)
class EngineStats:
    samples: int = 0
    fired: int = 0
    stored: int = 0
    duplicates: int = 0
    store_errors: int = 0
    reloads: int = 0
    #: frame received -> event stored, µs (trade-triggered firings)
    latency_us: deque[int] = field(default_factory=lambda: deque(maxlen=100_000))

    def latency_ms(self, q: float) -> float | None:
        if not self.latency_us:
            return None
        return float(np.percentile(np.fromiter(self.latency_us, dtype=np.int64), q)) / 1e3


class _Live:
    __slots__ = ("hash", "rid", "rule", "state")

    def __init__(self, rid: int, rule: Rule, state: RuleState) -> None:
        self.rid = rid
        self.rule = rule
        self.hash = rule.content_hash
        self.state = state


class _Entry:
    __slots__ = ("fitting", "key", "metric", "qhi", "qlo", "rules")

    def __init__(self, key: tuple[Any, ...], metric: Metric) -> None:
        self.key = key
        self.metric = metric
        self.rules: list[_Live] = []
        self.fitting = False
        self.qlo, self.qhi = math.inf, -math.inf  # no quiet interval until computed

    def requiet(self) -> None:
        """Intersect the rules' quiet intervals (see :func:`quiet_interval`)."""
        lo, hi = -math.inf, math.inf
        for live in self.rules:
            a, b = quiet_interval(live.rule, live.state)
            lo, hi = max(lo, a), min(hi, b)
        self.qlo, self.qhi = lo, hi


class _Group:
    __slots__ = ("entries", "sampler", "symbols")

    def __init__(self, symbols: tuple[str, ...], sample_us: int, venue: bool = False) -> None:
        self.symbols = symbols
        # venue metrics' legs ("BTC-USD@coinbase") also carry when each leg last traded
        cls = VenueSampler if venue else Sampler
        self.sampler = cls(n_legs=len(symbols), sample_us=sample_us)
        self.entries: list[_Entry] = []


def _conn(writer: Any) -> Any:
    conn = writer.conn
    if conn is None:  # the collector closed its writer between our call and our turn
        raise RuntimeError("collector is not running")
    return conn


class _ConnWriter:
    """Stands in for the collector's writer when the engine runs on its own (tests, CLI)."""

    def __init__(self, db: Path) -> None:
        from lq.store.sqlite import connect_writer

        self.conn = connect_writer(db)


class AlertEngine:
    """Evaluates the stored rules on a live event stream and stores/delivers firings.

    Parameters
    ----------
    db
        The database holding ``alert_rules`` and ``alert_events`` (and the bars for warm-up).
    run_in_writer
        ``await run_in_writer(fn)`` runs ``fn(writer)`` where ``writer.conn`` is the database
        writer connection: the collector's :meth:`~lq.collector.Collector.run_in_writer`.
        None: the engine writes through its own short transactions (no collector).
    delivery
        Where stored events go (None: stored only).
    exchange
        Exchange label of the stored bars used for warm-up (the collector's).
    poll_interval
        Seconds between checks of ``alert_rules`` for changes (and staleness evaluation).
    warmup
        Warm new metrics up from stored bars/ticks.
    """

    def __init__(
        self,
        *,
        db: str | Path,
        run_in_writer: RunInWriter[Any] | None = None,
        delivery: Delivery | None = None,
        exchange: str | None = None,
        poll_interval: float = 1.0,
        warmup: bool = True,
    ) -> None:
        self.db = Path(db)
        self._riw = run_in_writer
        self.delivery = delivery
        self.exchange = exchange
        self.poll_interval = poll_interval
        self.warmup = warmup
        self.stats = EngineStats()
        self._rules: dict[int, _Live] = {}
        self._entries: dict[tuple[Any, ...], _Entry] = {}
        self._groups: dict[tuple[tuple[str, ...], int, bool], _Group] = {}
        self._by_symbol: dict[str, list[tuple[_Group, int]]] = {}
        self._venue_legs = 0  # groups whose legs are "symbol@exchange" (venue metrics and others)
        self._event_rules: dict[str, list[_Live]] = {}  # "staleness"/"unfilled_gap"
        self._last_seen: dict[str, int] = {}  # symbol -> local receipt time of its last trade
        self._started_us = time.time_ns() // 1000
        self._pending: list[AlertEvent] = []
        self._store_task: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._version: tuple[int, int, int] | None = None
        self._own: _ConnWriter | None = None
        self._own_lock = asyncio.Lock()
        self._listeners: list[Callable[[AlertEvent], None]] = []
        self._bg: set[asyncio.Task[Any]] = set()
        self._stopped = False
        self._reader: Any = None  # sqlite3 read-only connection for polling alert_rules
        # a cancelled ``asyncio.to_thread`` call keeps running on its thread: every use of
        # ``_reader``/``_own`` on a worker thread, and their close, hold this lock, so stop()
        # never closes a connection under a query still running (that crashes the process)
        self._conn_lock = threading.Lock()

    # -- wiring -----------------------------------------------------------------------------
    @classmethod
    def attach(
        cls,
        collector: Any,
        settings: Any = None,
        *,
        channels: dict[str, Any] | None = None,
        policy: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> AlertEngine:
        """An engine fed by ``collector``'s event hook, storing through its writer.

        Call :meth:`start` (before or after ``collector.start()``), and on the way out
        ``await engine.stop()`` (pending firings are stored and delivered) then
        ``await collector.stop()``. ``channels`` default to those configured in ``settings``
        (:func:`~lq.alerts.channels.channels_from_settings`).
        """
        if channels is None:
            from lq.alerts.channels import channels_from_settings
            from lq.config import load_settings

            channels = channels_from_settings(settings or load_settings())

        async def run_in_writer(fn: Callable[[Any], T]) -> T:
            # a stopping collector closes its writer without waiting for run_in_writer
            # callers: write through our own connection from then on
            if getattr(collector, "_stopping", False):
                raise RuntimeError("collector is not running")
            return await collector.run_in_writer(fn)  # type: ignore[no-any-return]

        engine = cls(
            db=collector.db,
            run_in_writer=run_in_writer,
            exchange=collector.exchange_label,
            **kwargs,
        )
        engine.delivery = Delivery(channels, record=engine.record_delivery, policy=policy)
        collector.event_hooks.append(engine.on_event)
        return engine

    def subscribe(self, fn: Callable[[AlertEvent], None]) -> None:
        """Call ``fn(event)`` on the loop for every newly stored event."""
        self._listeners.append(fn)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        """Load the rules (with warm-up) and poll for changes; returns the task."""
        if self._task is not None and not self._task.done():
            raise RuntimeError("alert engine already running")
        if self.delivery is not None:
            self.delivery.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lq.alerts.engine")
        return self._task

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the rules are loaded and warmed up."""
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def stop(self) -> None:
        """Store what is pending, give delivery a few seconds, stop. Idempotent.

        Events arriving after this are ignored. Stop the engine before the collector (a
        stopping collector closes its writer; the engine then falls back to its own
        connection, but the collector does not wait for writes already handed to it).
        """
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._store_task is not None:
            with contextlib.suppress(Exception):
                await self._store_task
        for t in list(self._bg):
            t.cancel()
        if self.delivery is not None:
            await self.delivery.stop()
        await asyncio.to_thread(self._close_conns)

    def _close_conns(self) -> None:
        with self._conn_lock:
            if self._own is not None:
                self._own.conn.close()
                self._own = None
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    async def _run(self) -> None:
        try:
            await self.reload()
        finally:
            self._ready.set()
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.reload()
                self._check_staleness()
            except Exception:
                log.exception("alert rules poll failed")

    # -- writes -----------------------------------------------------------------------------
    async def _write(self, fn: Callable[[Any], T], *, control: bool = False) -> T:
        """Run ``fn(writer)``: on the collector's writer (event inserts, the latency path) or,
        for ``control`` writes (delivery status) and when there is no running collector, on
        the engine's own connection in short transactions."""
        if self._riw is not None and not control:
            try:
                return await self._riw(fn)
            except RuntimeError as exc:  # the collector has stopped: write on our own
                if "not running" not in str(exc):
                    raise
        async with self._own_lock:
            if self._own is None:
                self._own = await asyncio.to_thread(_ConnWriter, self.db)
            return await asyncio.to_thread(self._on_own, fn)

    def _on_own(self, fn: Callable[[Any], T]) -> T:
        with self._conn_lock:
            if self._own is None:
                raise RuntimeError("the alert engine has stopped: its connection is closed")
            return fn(self._own)

    async def record_delivery(self, event_id: int, channel: str, status: dict[str, object]) -> None:
        """Store one channel's delivery status on an event (used by :class:`Delivery`)."""
        await self._write(lambda w: set_delivery(_conn(w), event_id, channel, status), control=True)

    # -- rules ------------------------------------------------------------------------------
    def _read(self) -> tuple[tuple[int, int, int], list[StoredRule], dict[int, int]] | None:
        """One cheap query per poll on a connection kept open (runs on a worker thread)."""
        from lq.store.sqlite import connect_reader

        with self._conn_lock:
            if self._stopped:
                return None
            if self._reader is None:
                if not self.db.exists():
                    return None
                self._reader = connect_reader(self.db)
            conn = self._reader
            v = rules_version(conn)
            if v == self._version:
                return v, [], {}
            return v, load_rules(conn), last_fired(conn)

    async def reload(self) -> bool:
        """Re-read ``alert_rules`` if it changed; returns True when rules were rebuilt."""
        got = await asyncio.to_thread(self._read)
        if got is None or got[0] == self._version:
            return False
        version, stored, fired = got
        wanted = {s.id: s.rule for s in stored if s.enabled}
        # drop removed, disabled or edited rules
        for rid in list(self._rules):
            if rid not in wanted or wanted[rid].content_hash != self._rules[rid].hash:
                self._remove(rid)
        new = [(rid, r) for rid, r in wanted.items() if rid not in self._rules]
        if new:
            built = await asyncio.to_thread(self._build, new, fired)
            for key, entry, lives in built:
                self._install(key, entry, lives)
        self._version = version
        self.stats.reloads += 1
        log.info("alert rules loaded: %d enabled", len(self._rules))
        return True

    def _remove(self, rid: int) -> None:
        live = self._rules.pop(rid)
        rule = live.rule
        if rule.metric in EVENT_METRICS:
            self._event_rules[rule.metric] = [
                x for x in self._event_rules.get(rule.metric, []) if x.rid != rid
            ]
            return
        entry = self._entries.get(rule.metric_key)
        if entry is None:
            return
        entry.rules = [x for x in entry.rules if x.rid != rid]
        if entry.rules:
            entry.requiet()
            return
        del self._entries[rule.metric_key]
        gkey = (rule.symbols, rule.sample_us, rule.metric in VENUE_METRICS)
        group = self._groups[gkey]
        group.entries = [e for e in group.entries if e is not entry]
        if not group.entries:
            del self._groups[gkey]
            self._venue_legs -= "@" in rule.symbols[0]
            for sym in group.symbols:
                self._by_symbol[sym] = [(g, i) for g, i in self._by_symbol[sym] if g is not group]

    def _build(
        self, new: Sequence[tuple[int, Rule]], fired: dict[int, int]
    ) -> list[tuple[tuple[Any, ...], _Entry, list[_Live]]]:
        """Metric states and rule states for new rules, warmed up (runs on a thread)."""
        out: dict[tuple[Any, ...], tuple[_Entry, list[_Live]]] = {}
        for rid, rule in new:
            state = RuleState(last_fired_ts=fired.get(rid))
            live = _Live(rid, rule, state)
            key = rule.metric_key if rule.metric not in EVENT_METRICS else ("event", rid)
            if key not in out:
                existing = self._entries.get(key)
                out[key] = (existing or _Entry(key, make_metric(rule)), [])
            out[key][1].append(live)
        if self.warmup:
            for key, (entry, lives) in out.items():
                if key[0] == "event" or key in self._entries:
                    continue
                try:
                    self._warm(entry, lives)
                except Exception:
                    log.exception("warm-up of %s failed; starting cold", key)
        return [(k, e, lv) for k, (e, lv) in out.items()]

    def _warm(self, entry: _Entry, lives: list[_Live]) -> None:
        from lq.alerts.history import load_samples, warmup_samples
        from lq.store import Store

        rule = lives[0].rule
        with Store(self.db) as store:
            ts, prices = load_samples(
                store, rule, last=warmup_samples(rule), exchange=self.exchange
            )
        m = entry.metric
        garch = isinstance(m, GarchVolMetric)
        for i in range(len(ts)):
            t = int(ts[i])
            m.update(t, tuple(float(p) for p in prices[i]))
            if garch:
                continue
            v = m.value
            for live in lives:
                # evaluation state only: nothing fires from the warm-up window. A stored firing
                # disarms the rule as it did live (see step); a trigger nobody was told about
                # (no engine ran then, or the rule was just added) leaves the rule armed, so a
                # condition that still holds fires on the next live sample
                f, st = step(live.rid, live.rule, v, t, live.state)
                if f is not None:
                    st = RuleState(last_value=v, last_fired_ts=live.state.last_fired_ts)
                live.state = st

    def _install(self, key: tuple[Any, ...], entry: _Entry, lives: list[_Live]) -> None:
        for live in lives:
            self._rules[live.rid] = live
        rule = lives[0].rule
        if rule.metric in EVENT_METRICS:
            self._event_rules.setdefault(rule.metric, []).extend(lives)
            return
        if key in self._entries:
            self._entries[key].rules.extend(lives)
            self._entries[key].requiet()
            return
        entry.rules = list(lives)
        entry.requiet()
        self._entries[key] = entry
        gkey = (rule.symbols, rule.sample_us, rule.metric in VENUE_METRICS)
        group = self._groups.get(gkey)
        if group is None:
            group = self._groups[gkey] = _Group(rule.symbols, rule.sample_us, gkey[2])
            self._venue_legs += "@" in rule.symbols[0]
            for leg, sym in enumerate(rule.symbols):
                self._by_symbol.setdefault(sym, []).append((group, leg))
        group.entries.append(entry)

    @property
    def rules(self) -> dict[int, Rule]:
        """The rules being evaluated now (id -> rule)."""
        return {rid: live.rule for rid, live in self._rules.items()}

    # -- the hot path -----------------------------------------------------------------------
    def on_event(self, event: object) -> None:
        """The collector's event hook: O(1) per trade, never raises into the feed."""
        if self._stopped:
            return
        if type(event) is Trade:
            sym = event.symbol
            self._last_seen[sym] = event.recv_ts
            subs = self._by_symbol.get(sym)
            if self._venue_legs:  # labelled legs ("BTC-USD@coinbase") follow one exchange
                vsubs = self._by_symbol.get(f"{sym}@{event.exchange}")
                if vsubs:
                    subs = vsubs + subs if subs else vsubs
            if not subs:
                return
            price, ts = event.price, event.ts
            for group, leg in subs:
                s = group.sampler.on_trade(leg, price, ts)
                if s is not None:
                    self._on_sample(group, s[0], s[1], event.recv_ts)
        elif type(event) is Gap and event.status == "unfilled":
            self._on_gap(event)
        elif type(event).__name__ == "ForecastUpdate":  # from lq.forecast.hook
            self._on_forecast(event)

    def _on_forecast(self, up: Any) -> None:
        for live in self._event_rules.get("forecast", ()):
            r = live.rule
            if r.model != up.model or r.symbol != up.symbol:
                continue
            v = up.value if r.output == "prediction" else up.edge
            if v != v:
                continue  # warming up, or no resolved forecast yet
            f, live.state = step(live.rid, r, float(v), up.ts, live.state)
            if f is not None:
                self._fire(f, 0)

    def _on_sample(self, group: _Group, ts: int, prices: tuple[float, ...], recv_ts: int) -> None:
        self.stats.samples += 1
        for entry in group.entries:
            m = entry.metric
            m.update(ts, prices)
            if type(m) is GarchVolMetric:
                if m.due and not entry.fitting:
                    self._fit(entry, m)
                continue
            v = m.value
            if v != v or entry.qlo < v < entry.qhi:
                continue  # NaN (warm-up), or no rule of this metric can fire or re-arm
            changed = False
            for live in entry.rules:
                f, st = step(live.rid, live.rule, v, ts, live.state)
                if st is not live.state:
                    live.state = st
                    changed = True
                if f is not None:
                    self._fire(f, recv_ts)
            if changed:
                entry.requiet()

    def _fit(self, entry: _Entry, m: GarchVolMetric) -> None:
        entry.fitting = True
        ts, rets = m.take()

        async def run() -> None:
            try:
                v = await asyncio.to_thread(m.fit, rets)
                m.set_value(ts, v)
                for live in entry.rules:
                    f, live.state = step(live.rid, live.rule, v, ts, live.state)
                    if f is not None:
                        self._fire(f, 0)
            finally:
                entry.fitting = False

        self._spawn(run())

    def _on_gap(self, gap: Gap) -> None:
        for live in self._event_rules.get("unfilled_gap", ()):
            if live.rule.symbol != gap.symbol:
                continue
            size = float(gap.last_missing - gap.first_missing + 1)
            # each unfilled gap is judged on its own: the rule is re-armed for every gap
            st = RuleState(last_fired_ts=live.state.last_fired_ts)
            f, live.state = step(live.rid, live.rule, size, gap.detected_ts, st)
            if f is not None:
                self._fire(f, 0)

    def _check_staleness(self) -> None:
        lives = self._event_rules.get("staleness")
        if not lives:
            return
        now = time.time_ns() // 1000
        ts = now // 1_000_000 * 1_000_000
        for live in lives:
            seen = self._last_seen.get(live.rule.symbol) or self._started_us
            f, live.state = step(live.rid, live.rule, (now - seen) / 1e6, ts, live.state)
            if f is not None:
                self._fire(f, 0)

    # -- firing -----------------------------------------------------------------------------
    def _fire(self, f: Firing, recv_ts: int) -> None:
        self.stats.fired += 1
        self._pending.append(
            AlertEvent.from_firing(f, local_ts=time.time_ns() // 1000, recv_ts=recv_ts)
        )
        if self._store_task is None or self._store_task.done():
            self._store_task = asyncio.get_running_loop().create_task(self._store_pending())

    async def _store_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []

            def insert(w: Any, b: list[AlertEvent] = batch) -> list[AlertEvent]:
                return insert_events(_conn(w), b)

            try:
                new = await self._write(insert)
            except Exception:
                self.stats.store_errors += 1
                log.exception("could not store %d alert events", len(batch))
                continue
            now = time.time_ns() // 1000
            self.stats.stored += len(new)
            self.stats.duplicates += len(batch) - len(new)
            for ev in new:
                if ev.recv_ts:
                    self.stats.latency_us.append(now - ev.recv_ts)
                log.info("alert fired: %s (event %s)", ev.message, ev.id)
                if self.delivery is not None:
                    self.delivery.submit(ev)
                for fn in self._listeners:
                    try:
                        fn(ev)
                    except Exception:
                        log.exception("alert listener %r failed", fn)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)

    # -- evaluation without a feed (tests, notebooks) -----------------------------------------
    def feed(self, events: Sequence[object]) -> None:
        """Run ``on_event`` over ``events`` (on the loop)."""
        for ev in events:
            self.on_event(ev)

    async def flush(self) -> None:
        """Wait until every firing so far is stored."""
        while self._store_task is not None and not self._store_task.done():
            await self._store_task
