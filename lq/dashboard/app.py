"""The dashboard: panels in tabs, one refresh loop, a heartbeat so closed tabs end it."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import ipywidgets as W

from lq.dashboard._widgets import PAGE_CSS, Heartbeat, error_html, note_html, sync_figure_state
from lq.dashboard.clusters import CorrelationPanel
from lq.dashboard.data import DataPanel
from lq.dashboard.feed import BarFeed
from lq.dashboard.market import MarketPanel
from lq.dashboard.pairs import PairsPanel
from lq.dashboard.status import StatusBar
from lq.dashboard.volatility import VolatilityPanel
from lq.errors import ValidationError
from lq.store import Store

__all__ = ["PLUGIN_TABS", "Dashboard"]

log = logging.getLogger(__name__)

PLUGIN_TABS = (
    "lq.dashboard.alerts_tab",
    "lq.dashboard.backtest_tab",
    "lq.dashboard.forecast_tab",
    "lq.dashboard.venues_tab",
)
#: Seconds after a tab is shown before its figures measure their width again.
REFIT_DELAY = 0.6
#: Seconds a tab's first build waits for the page to load plotly's module.
MODULE_WAIT = 20.0


def wait_for_viewer() -> None:
    """In a kernel Voila pre-started for the next viewer (``preheat_kernel``), wait until
    someone opens the page; anywhere else return at once.

    ``lq dashboard`` keeps one kernel warm with the notebook's imports done (the slow part
    of opening the page), and the live loop must not start before a browser is there to
    beat (voila-notes P12)."""
    if os.environ.get("VOILA_PREHEAT", "False") == "False":
        return
    from voila.utils import wait_for_request

    preload()
    # to the server's log (<db>.dashboard.log): Voila says its pool is "filled" when the
    # kernel starts, before these imports are done; this line says a page will open fast
    print(WARM_LINE, file=sys.__stderr__, flush=True)
    wait_for_request()


def preload() -> None:
    """Import what building the page imports on first use: plotly's FigureWidget (its renderers
    pull in nbformat and jsonschema) and every tab's module. In a warm kernel this runs before
    the viewer arrives: on a loaded 2-core machine those imports took 24 of the 25 s between
    a page opening and its first chart; the page's own build then takes 0.2 s."""
    import plotly.graph_objects as go

    go.FigureWidget  # noqa: B018 (plotly resolves it, and its imports, on first access)
    for modname in PLUGIN_TABS:
        try:
            importlib.import_module(modname)
        except ModuleNotFoundError:
            continue  # a tab not in this build


def _figures(panel: Any) -> list[Any]:
    """The plotly FigureWidgets a panel owns (its attributes)."""
    import plotly.graph_objects as go

    if panel is None:
        return []
    return [v for v in vars(panel).values() if isinstance(v, go.FigureWidget)]


#: written by a pre-started kernel once its imports are done (see :func:`wait_for_viewer`)
WARM_LINE = "lq dashboard: a kernel is warm, waiting for a viewer"
ORPHAN_ENV = "LQ_DASH_ORPHAN_TIMEOUT"
DEFAULT_ORPHAN_TIMEOUT = 120.0
MIN_INTERVAL = 0.2  # never more than ~5 chart updates per second


class Dashboard:
    """Every panel in one widget, refreshed by one loop on the kernel's event loop.

    Parameters
    ----------
    db
        The SQLite database (default: ``store.db`` from the settings, i.e. ``$LQ_DB``).
    symbols
        Symbols offered by the pickers (default: the collector's configured symbols plus
        any already stored).
    interval
        Seconds between refreshes of the status bar and the visible tab (>= 0.2).
    orphan_timeout
        Seconds without a browser heartbeat after which the loop ends (the tab is gone).
        Default: ``$LQ_DASH_ORPHAN_TIMEOUT`` (set by ``lq dashboard --orphan-timeout``) or
        120 s; keep it above 60 s, since browsers throttle timers of hidden tabs.
    history
        Seconds of 1 s bars kept in memory.
    live
        Start the refresh loop when displayed (False: draw once, e.g. under papermill).

    Examples
    --------
    In JupyterLab or a Voila page::

        from lq.dashboard import Dashboard
        Dashboard(db="lq.sqlite")          # the last expression displays it
    """

    def __init__(
        self,
        *,
        db: str | os.PathLike[str] | None = None,
        symbols: Sequence[str] | None = None,
        interval: float = 0.5,
        orphan_timeout: float | None = None,
        history: float = 6 * 3600,
        live: bool = True,
    ) -> None:
        if not interval >= MIN_INTERVAL:
            raise ValidationError("interval", interval, f"must be >= {MIN_INTERVAL} s")
        if orphan_timeout is None:
            orphan_timeout = float(os.environ.get(ORPHAN_ENV, DEFAULT_ORPHAN_TIMEOUT))
        if not orphan_timeout > 0:
            raise ValidationError("orphan_timeout", orphan_timeout, "must be positive seconds")
        from lq.config import load_settings

        settings = load_settings() if db is None or symbols is None else None
        self.db = Path(db) if db is not None else settings.db  # type: ignore[union-attr]
        self.store = Store(self.db)
        if symbols is None:
            syms = list(settings.collector.symbols)  # type: ignore[union-attr]
            try:
                syms += [s for s in self.store.symbols() if s not in syms]
            except Exception as exc:  # no database yet
                log.debug("no stored symbols yet: %s", exc)
        else:
            syms = [s.upper() for s in symbols]
        if not syms:
            raise ValidationError("symbols", symbols, "no symbols given, configured or stored")
        self.symbols = syms
        self.interval = float(interval)
        self.orphan_timeout = float(orphan_timeout)
        self.live = live
        self.feed = BarFeed(self.store, syms, history=history)
        self.status = StatusBar(self.store)
        self.heartbeat = Heartbeat()
        self._executor = self._new_executor()
        self._factories: list[tuple[str, Callable[[], Any]]] = [
            ("Market", lambda: MarketPanel(self.feed, symbols=syms)),
            ("Pairs", lambda: PairsPanel(self.feed, symbols=syms)),
            ("Volatility", lambda: VolatilityPanel(self.feed, symbols=syms)),
            ("Correlation & clusters", lambda: CorrelationPanel(self.feed, symbols=syms)),
            ("Data", lambda: DataPanel(self.store, db=self.db, symbols=syms)),
        ]
        for modname in PLUGIN_TABS:
            factory = self._plugin(modname)
            if factory is not None:
                self._factories.append(factory)
        self.panels: dict[int, Any] = {}
        # VBox: a column stretches its children to the full width (a Box row would shrink them
        # to their content, and plotly then sizes a figure to its 700 px default)
        self._holders = [W.VBox([W.HTML(note_html("loading..."))]) for _ in self._factories]
        self.tabs = W.Tab(children=self._holders)
        for i, (title, _f) in enumerate(self._factories):
            self.tabs.set_title(i, title)
        self.tabs.observe(lambda _c: self._select(self.tabs.selected_index), names="selected_index")
        # a resized browser window: the visible tab's figures measure their width again
        self.heartbeat.observe(lambda _c: self._refit_visible(), names="resized")
        # a page that beats after the loop gave up on it (it took longer than the orphan
        # timeout to render, e.g. on a loaded machine) gets its loop back
        self.heartbeat.observe(lambda _c: self._resume(), names="beat")
        self.heartbeat.observe(lambda _c: self._module_ready(), names="module_state")
        self._shown_at: float | None = None
        self.widget = W.VBox([W.HTML(PAGE_CSS), self.status.widget, self.tabs, self.heartbeat])
        self.widget.add_class("lq-dashboard")
        self.refreshes = 0
        self.stopped_reason: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._slow: dict[int, tuple[asyncio.Future[Any], float]] = {}
        self._refit: dict[int, float] = {}
        self._last_slow: dict[int, float] = {}
        self._select(0)

    # -- tabs -----------------------------------------------------------------------------
    def _plugin(self, modname: str) -> tuple[str, Callable[[], Any]] | None:
        """A tab from ``modname`` if that module exists: its class with widget/title/refresh."""
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name == modname:
                return None
            raise
        cls = None
        for obj in vars(mod).values():
            if (
                inspect.isclass(obj)
                and obj.__module__ == mod.__name__
                and hasattr(obj, "refresh")
                and hasattr(obj, "title")
            ):
                cls = obj
                break
        if cls is None:
            log.warning("%s has no tab class (a class with title, widget and refresh())", modname)
            return None
        offered = {"store": self.store, "db": self.db, "feed": self.feed, "symbols": self.symbols}
        params = inspect.signature(cls).parameters
        kwargs = {k: v for k, v in offered.items() if k in params}
        title = str(getattr(cls, "title", modname.rsplit(".", 1)[-1]))
        return title, lambda: cls(**kwargs)

    def _module_pending(self) -> bool:
        """The page is still loading plotly's module (a figure created now would send and
        compile its own 5 MB copy, and lose its state past anywidget's 2 s; see
        lq.dashboard._widgets._FigureWidget). Waited for at most MODULE_WAIT s after
        the page was shown."""
        if self._shown_at is None or self.heartbeat.module_state:
            return False
        return time.monotonic() - self._shown_at < MODULE_WAIT

    def _module_ready(self) -> None:
        """The page has (or could not load) plotly's module: build the tab waiting for it."""
        self.heartbeat.use_module_url(self.heartbeat.module_url)  # whichever trait came first
        idx = self.tabs.selected_index
        if idx is not None and idx not in self.panels:
            self._select(idx)

    def panel(self, index: int) -> Any:
        """The panel of tab ``index``, built on first use (each FigureWidget costs page time)."""
        if index not in self.panels:
            title, factory = self._factories[index]
            if self._module_pending():
                self._holders[index].children = [W.HTML(note_html(f"{title}: loading..."))]
                return None  # built once the page has the module (_module_ready)
            try:
                p = factory()
            except Exception as exc:
                log.exception("building the %s tab failed", title)
                self._holders[index].children = [W.HTML(error_html(f"{title}: {exc}"))]
                self.panels[index] = None
                return None
            self.panels[index] = p
            self._safe(p.refresh, title)  # draw before the first view exists...
            for fig in _figures(p):
                sync_figure_state(fig)  # ...so the browser renders it with data
            self._holders[index].children = [p.widget]
        return self.panels[index]

    def _select(self, index: int | None) -> None:
        if index is None:
            return
        p = self.panel(index)
        if p is not None:
            self._safe(p.refresh, self._factories[index][0])
            self._refit[index] = time.monotonic() + REFIT_DELAY

    def _refit_visible(self) -> None:
        idx = self.tabs.selected_index
        if idx is not None:
            self._refit[idx] = time.monotonic()

    def _refit_widths(self) -> None:
        """Re-autosize the figures of a tab shortly after it is shown.

        plotly's FigureWidget measures its container once, when its view is first rendered;
        a figure rendered in a tab that is still hidden or laying out gets plotly's 700 px
        default and keeps it (the anywidget view has no resize hook). Toggling ``autosize``
        makes plotly measure the container again, now that it is visible."""
        now = time.monotonic()
        for idx, due in list(self._refit.items()):
            if now < due:
                continue
            del self._refit[idx]
            for fig in _figures(self.panels.get(idx)):
                with contextlib.suppress(Exception):
                    fig.layout.autosize = False
                    fig.layout.autosize = True

    @staticmethod
    def _safe(fn: Callable[[], Any], what: str) -> None:
        try:
            fn()
        except Exception:  # a panel bug must not end the loop
            log.exception("refreshing %s failed", what)

    # -- the loop -------------------------------------------------------------------------
    def refresh(self) -> None:
        """One pass: read new rows, redraw the status bar and the visible tab."""
        self.feed.update()
        self._safe(self.status.refresh, "status")
        if self._refit:
            self._refit_widths()
        idx = self.tabs.selected_index
        if idx is not None:
            p = self.panel(idx)
            if p is not None:
                self._safe(p.refresh, self._factories[idx][0])
        self.refreshes += 1

    def _schedule_slow(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start due heavy work (GARCH refit, clustering) in the executor; apply finished work."""
        now = time.monotonic()
        for idx, (fut, _t0) in list(self._slow.items()):
            if fut.done():
                del self._slow[idx]
                p = self.panels.get(idx)
                if p is not None and not fut.cancelled():
                    exc = fut.exception()
                    if exc is not None:
                        log.error("slow work of tab %d failed: %s", idx, exc)
                    else:
                        result = fut.result()
                        self._safe(partial(p.apply_slow, result), "slow result")
        idx = self.tabs.selected_index
        p = self.panels.get(idx) if idx is not None else None
        if p is None or not hasattr(p, "prepare_slow") or idx in self._slow:
            return
        due = getattr(p, "slow_due", False) or now - self._last_slow.get(idx, -1e9) >= getattr(
            p, "slow_interval", 60.0
        )
        if due:
            self._last_slow[idx] = now
            job = p.prepare_slow()
            self._slow[idx] = (loop.run_in_executor(self._executor, job), now)

    async def run(self) -> None:
        """Refresh until the browser stops beating for ``orphan_timeout`` s (or cancelled)."""
        loop = asyncio.get_running_loop()
        log.info("dashboard loop started (every %.2f s) on %s", self.interval, self.db)
        try:
            while True:
                silent = self.heartbeat.silent_for()
                if silent > self.orphan_timeout:
                    self.stopped_reason = f"no browser heartbeat for {silent:.0f} s"
                    log.info("dashboard loop ends: %s", self.stopped_reason)
                    return
                t0 = loop.time()
                self.refresh()
                self._schedule_slow(loop)
                await asyncio.sleep(max(MIN_INTERVAL / 2, self.interval - (loop.time() - t0)))
        finally:
            for fut, _t in self._slow.values():
                fut.cancel()
            self._slow.clear()
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._new_executor()  # for a restart (see _resume)
            self.store.close()

    @staticmethod
    def _new_executor() -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="lq-dashboard")

    def _resume(self) -> None:
        ended = self._task is not None and self._task.done()
        if not (self.live and ended and (self.stopped_reason or "").startswith("no browser")):
            return
        log.info("a browser heartbeat after %s: the loop starts again", self.stopped_reason)
        self.stopped_reason = None
        try:
            self.start()
        except RuntimeError:  # no running loop
            log.info("no running event loop: not restarted")

    def start(self) -> asyncio.Task[None]:
        """Start the loop as a task on the running loop (never blocks the cell)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run())
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self.stopped_reason = self.stopped_reason or "stopped"

    # -- display --------------------------------------------------------------------------
    def _ipython_display_(self) -> None:
        from IPython.display import display

        self.refresh()
        # the visible tab's figures were drawn before any view exists: put those traces in
        # the synced state, so the page's first render already shows data (plotly 7 would
        # render the construction-time, empty traces and lose the first restyles)
        for fig in _figures(self.panels.get(self.tabs.selected_index or 0)):
            sync_figure_state(fig)
        display(self.widget)
        self._shown_at = time.monotonic()
        if self.live:
            try:
                self.start()
            except RuntimeError:  # no running loop (a plain console): draw once only
                log.info("no running event loop: the dashboard is drawn once, not live")
