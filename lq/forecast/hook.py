"""The collector's forecaster: deployed models score every bar as it closes.

Wiring (see :meth:`ForecastHook.attach`)::

    collector.event_hooks ──► hook.on_event(trade / book ticker)   (on the loop, O(1))
        LiveScorer per deployed model ──► ForecastPoint / Resolved
    ForecastPoint ──► listeners (the alert engine: metric "forecast")  immediately
    every second: rows ──► collector.run_in_writer(insert_points, resolve_points)
                  poll forecast_models; load new or redeployed models (warmed up from bars)

A model is warmed up from the stored bars before it scores (its features need
:meth:`FeatureSpec.warmup` bars of history), so forecasts are defined from the first live
bar. A model file that cannot be loaded is logged with the reason and skipped; the other
models go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lq.feeds.events import BookTicker, Trade
from lq.forecast.points import MIN_RESOLVED, ForecastPoint, Resolved

if TYPE_CHECKING:
    from lq.forecast.live import LiveScorer

__all__ = ["ForecastHook", "ForecastUpdate"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class ForecastUpdate:
    """A new forecast, as the alert engine sees it: ``ts`` is the scored bar's close time
    (µs, exchange time), ``value`` the forecast, ``edge`` the running score against the
    baseline (baseline loss minus model loss; > 0: the model is better), over ``n``
    resolved forecasts."""

    model: str
    symbol: str
    ts: int
    value: float
    edge: float
    n: int


class ForecastHook:
    """Scores the database's deployed models on the collector's live events.

    Parameters
    ----------
    db
        The database (deployments, bars for warm-up, forecasts rows).
    run_in_writer
        The collector's :meth:`~lq.collector.Collector.run_in_writer`; None writes through
        a short-lived connection of its own (tests, no collector).
    exchange
        Exchange label of the stored bars used for warm-up.
    poll_interval
        Seconds between writes of new rows and checks of ``forecast_models``.
    window
        Resolved forecasts in each model's running score.
    """

    def __init__(
        self,
        *,
        db: str | Path,
        run_in_writer: Callable[[Callable[[Any], Any]], Awaitable[Any]] | None = None,
        exchange: str | None = None,
        poll_interval: float = 1.0,
        window: int = 500,
        warmup: bool = True,
    ) -> None:
        self.db = Path(db)
        self._riw = run_in_writer
        self.exchange = exchange
        self.poll_interval = poll_interval
        self.window = window
        self.warmup = warmup
        self.scorers: dict[str, LiveScorer] = {}
        self._sha: dict[str, str] = {}
        self._by_symbol: dict[str, list[LiveScorer]] = {}
        self._by_pair: dict[str, list[LiveScorer]] = {}
        self._points: list[ForecastPoint] = []
        self._resolved: list[Resolved] = []
        self._listeners: list[Callable[[object], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self.errors: dict[str, str] = {}
        self.stored = 0

    @classmethod
    def attach(cls, collector: Any, **kw: Any) -> ForecastHook:
        """A hook fed by ``collector``'s events and storing through its writer; call
        :meth:`start`, and ``await hook.stop()`` before ``await collector.stop()``."""

        async def run_in_writer(fn: Callable[[Any], Any]) -> Any:
            if getattr(collector, "_stopping", False):
                raise RuntimeError("collector is not running")
            return await collector.run_in_writer(fn)

        hook = cls(
            db=collector.db, run_in_writer=run_in_writer, exchange=collector.exchange_label, **kw
        )
        collector.event_hooks.append(hook.on_event)
        return hook

    def subscribe(self, fn: Callable[[object], None]) -> None:
        """Call ``fn(ForecastUpdate)`` on the loop for every new forecast."""
        self._listeners.append(fn)

    # -- the hot path -----------------------------------------------------------------------
    def on_event(self, event: object) -> None:
        """The collector's event hook: O(1) per event, never raises into the feed."""
        if self._stopped:
            return
        t = type(event)
        if t is Trade:
            sym = event.symbol  # type: ignore[attr-defined]
            for s in self._by_pair.get(sym, ()):
                s.on_pair_trade(event.ts, event.price)  # type: ignore[attr-defined]
            for s in self._by_symbol.get(sym, ()):
                out = s.on_trade(event.ts, event.price, event.qty, event.is_buyer_maker)  # type: ignore[attr-defined]
                if out:
                    self._emit(out)
        elif t is BookTicker:
            for s in self._by_symbol.get(event.symbol, ()):  # type: ignore[attr-defined]
                e: Any = event
                s.on_quote(e.ts, e.bid, e.bid_qty, e.ask, e.ask_qty)

    def _emit(self, out: list[Any]) -> None:
        for ev in out:
            if isinstance(ev, ForecastPoint):
                self._points.append(ev)
                # an edge from fewer than MIN_RESOLVED forecasts is not reported (NaN): a
                # rule on it waits, as the Forecast tab's warning does
                edge = ev.edge if ev.resolved >= MIN_RESOLVED else math.nan
                up = ForecastUpdate(ev.model, ev.symbol, ev.close_ts, ev.value, edge, ev.resolved)
                for fn in self._listeners:
                    try:
                        fn(up)
                    except Exception:
                        log.exception("forecast listener %r failed", fn)
            else:
                self._resolved.append(ev)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        """Load the deployments and run the write/poll loop; returns the task."""
        if self._task is not None and not self._task.done():
            raise RuntimeError("forecast hook already running")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lq.forecast.hook")
        return self._task

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the deployments have been loaded once."""
        deadline = time.monotonic() + timeout
        while self._version is None:
            if time.monotonic() > deadline:
                raise TimeoutError("forecast models not loaded in time")
            await asyncio.sleep(0.05)

    _version: tuple[Any, ...] | None = None

    async def stop(self) -> None:
        """Write what is pending and stop. Idempotent."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()

    async def _run(self) -> None:
        while True:
            try:
                await self.reload()
            except sqlite3.Error as exc:  # the database under a fault: one line, and retry
                log.warning("forecast models poll failed (%s); will retry", exc)
            except Exception:
                log.exception("forecast models poll failed")
            try:
                await self.flush()
            except Exception:
                log.exception("storing forecasts failed; will retry")
            await asyncio.sleep(self.poll_interval)

    # -- deployments ------------------------------------------------------------------------
    async def reload(self) -> bool:
        """Load new or redeployed models, drop undeployed ones; True when something changed."""
        from lq.forecast.store import deployed_models

        if not self.db.exists():
            self._version = ()
            return False
        rows = await asyncio.to_thread(deployed_models, self.db)
        version = tuple(zip(rows["name"], rows["sha256"], strict=True))
        if version == self._version:
            return False
        wanted = dict(
            zip(rows["name"], zip(rows["path"], rows["sha256"], strict=True), strict=True)
        )
        for name in list(self.scorers):
            if name not in wanted or wanted[name][1] != self._sha.get(name):
                self._drop(name)
        for name, (path, sha) in wanted.items():
            if name in self.scorers or self.errors.get(name) == sha:
                continue
            try:
                scorer = await asyncio.to_thread(self._load, name, path)
            except Exception as exc:
                self.errors[name] = sha
                log.error("forecast model %s not scored: %s", name, exc)
                continue
            self.errors.pop(name, None)
            self._install(name, scorer, sha)
        self._version = version
        return True

    def _load(self, name: str, path: str) -> LiveScorer:
        from lq.forecast.persist import load_model

        model = load_model(path)
        model = dataclasses.replace(model, name=name)
        from lq.forecast.live import LiveScorer  # the lab's imports, only with a model deployed

        scorer = LiveScorer(model, window=self.window)
        if self.warmup:
            self._warm(scorer)
        return scorer

    def _warm(self, scorer: LiveScorer) -> None:
        from lq.forecast.data import add_book, add_flow
        from lq.store import Store

        m = scorer.model
        need = m.features.warmup(m.params)
        with Store(self.db) as store:
            ts = store.conn.execute(
                "SELECT max(ts) FROM bars_1s WHERE symbol = ?", (m.symbol,)
            ).fetchone()[0]
            if ts is None:
                return
            step = m.interval_us
            start = int(ts) - (need + 2) * step
            bars = store.bars(
                m.symbol, f"{step // 1_000_000}s", start, None, exchange=self.exchange
            )
            if bars.empty:
                return
            bars = bars.iloc[-need:] if len(bars) > need else bars
            # the newest bar may still be filling: score it live instead
            bars = bars.iloc[:-1]
            if m.features.flow_windows:
                bars = add_flow(store, bars, m.symbol, step, exchange=self.exchange)
            if m.features.book:
                bars = add_book(store, bars, m.symbol, step)
            pair = None
            if m.pair:
                pair = store.bars(
                    m.pair, f"{step // 1_000_000}s", start, None, exchange=self.exchange
                )
        used = scorer.warm_up(bars, pair)
        log.info("forecast model %s warmed up on %d stored bars", m.name, used)

    def _install(self, name: str, scorer: LiveScorer, sha: str) -> None:
        self.scorers[name] = scorer
        self._sha[name] = sha
        self._by_symbol.setdefault(scorer.model.symbol, []).append(scorer)
        if scorer.model.pair:
            self._by_pair.setdefault(scorer.model.pair, []).append(scorer)
        log.info("scoring %s", scorer.model.describe())

    def _drop(self, name: str) -> None:
        s = self.scorers.pop(name)
        self._sha.pop(name, None)
        for table in (self._by_symbol, self._by_pair):
            for k in list(table):
                table[k] = [x for x in table[k] if x is not s]
                if not table[k]:
                    del table[k]
        log.info("stopped scoring %s", name)

    # -- storage ----------------------------------------------------------------------------
    async def flush(self) -> None:
        """Store the forecasts and resolutions made since the last flush."""
        from lq.forecast.store import insert_points, resolve_points

        pts, res = self._points, self._resolved
        if not pts and not res:
            return
        self._points, self._resolved = [], []

        def write(w: Any) -> int:
            conn = w.conn
            n = insert_points(conn, pts)
            resolve_points(conn, res)
            return n

        try:
            if self._riw is not None:
                try:
                    self.stored += await self._riw(write)
                    return
                except RuntimeError as exc:
                    if "not running" not in str(exc):
                        raise
            from lq.store.sqlite import connect_writer

            def own() -> int:
                conn = connect_writer(self.db)
                try:
                    return write(type("W", (), {"conn": conn})())
                finally:
                    conn.close()

            self.stored += await asyncio.to_thread(own)
        except Exception:
            self._points[:0], self._resolved[:0] = pts, res  # keep them for the next try
            raise
