"""Small widget helpers shared by the panels: dark figures, the browser heartbeat, HTML bits.

Widgets only; nothing here computes a statistic.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable
from copy import deepcopy
from typing import Any

import anywidget
import ipywidgets as W
import plotly.graph_objects as go
import traitlets
from plotly.subplots import make_subplots

from lq.theme import TEMPLATE

__all__ = [
    "PAGE_CSS",
    "Heartbeat",
    "empty_state_html",
    "error_html",
    "figure",
    "figure_widget",
    "note_html",
    "sync_figure_state",
]

log = logging.getLogger(__name__)

#: The page's CSS (one ``<style>``, shown once by the dashboard): tab titles take the width
#: they need instead of ipywidgets' fixed 144 px (which cut "Correlation & clusters" off),
#: and lq's tables (:mod:`lq.formatting`) read well on Voila's dark theme.
PAGE_CSS = """<style>
.lq-dashboard .lm-TabBar-tab, .lq-dashboard .p-TabBar-tab {
  flex: 0 0 auto !important; min-width: 0 !important; max-width: none !important;
  padding: 0 14px !important;
}
.lq-dashboard .lm-TabBar-tabLabel, .lq-dashboard .p-TabBar-tabLabel {
  overflow: visible !important; text-overflow: clip !important;
}
.lq-dashboard table.lq-table { margin: 4px 0 10px 0; }
.lq-empty { border: 1px dashed rgba(128,128,128,0.5); border-radius: 6px; padding: 48px 24px;
  margin: 8px 0; text-align: center; color: #aaa; font-size: 110%; }
</style>"""


def figure(
    *,
    rows: int = 1,
    cols: int = 1,
    height: int = 420,
    row_heights: list[float] | None = None,
    subplot_titles: tuple[str, ...] | None = None,
    shared_xaxes: bool = True,
    specs: list[list[dict[str, Any]]] | None = None,
) -> go.FigureWidget:
    """An empty dark ``FigureWidget`` with subplots (the live, diff-updated plotly figure)."""
    base = make_subplots(
        rows=rows,
        cols=cols,
        shared_xaxes=shared_xaxes,
        # unshared x axes carry their own tick labels: leave room for them under each row
        vertical_spacing=(0.04 if shared_xaxes else 0.1) if rows > 1 else 0.0,
        row_heights=row_heights,
        subplot_titles=subplot_titles,
        specs=specs,
    )
    base.update_layout(
        template=TEMPLATE,
        height=height,
        # the legend sits in the figure's top margin, above the first subplot's title
        margin={"l": 50, "r": 20, "t": 58 if subplot_titles else 34, "b": 30},
        legend={"orientation": "h", "yref": "container", "y": 1, "yanchor": "top", "x": 0},
        uirevision="keep",  # zoom and pan survive data updates
    )
    return figure_widget(base)


#: plotly's FigureWidget module as this page loaded it (an http(s) URL on the dashboard's
#: server), once the page's :class:`Heartbeat` reported it; None before (or in a notebook).
_plotly_module_url: str | None = None


def _module_path() -> str:
    """Where the dashboard server offers plotly's module, naming the installed version."""
    import plotly

    from lq.dashboard.server import PLOTLY_MODULE_PATH

    return f"{PLOTLY_MODULE_PATH}?v={plotly.__version__}"


class _FigureWidget(go.FigureWidget):
    """A FigureWidget whose front-end module is the page's loaded copy when there is one.

    plotly's own FigureWidget sends its 5 MB module with every figure, and the browser
    compiles it once per figure; anywidget gives a figure 2 s to load its module, after
    which the figure drops every message (its state, every restyle) without a word: on a
    loaded machine a chart created after the page opened showed empty white axes for good.
    Given as the URL the page already loaded (:class:`Heartbeat`), the module is found at
    once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if _plotly_module_url is not None:
            self._esm = _plotly_module_url  # read by anywidget's __init__ as the module
        super().__init__(*args, **kwargs)


def figure_widget(base: go.Figure) -> go.FigureWidget:
    """``base`` as a live FigureWidget (see :class:`_FigureWidget`)."""
    return _FigureWidget(base)


def sync_figure_state(fig: go.FigureWidget) -> None:
    """Copy a FigureWidget's traces and layout into its synced state.

    plotly 7 syncs ``_widget_data``/``_widget_layout`` only in ``__init__`` and when the
    figure itself is displayed; a figure shown *inside* a container (VBox, Tab) would render
    with the traces it had at construction, and later restyles would address traces the
    browser does not have ("trace index is out of bounds"). Call this after adding traces
    and before the view is created.
    """
    fig._widget_layout = deepcopy(fig._layout_obj._props)
    fig._widget_data = deepcopy(fig._data)


def note_html(text: str, *, cls: str = "lq-note") -> str:
    return f'<div class="{cls}" style="color:#aaa;font-size:90%">{html.escape(text)}</div>'


def empty_state_html(title: str, hint: str, *, cls: str = "lq-empty") -> str:
    """A clear empty state (instead of empty axes): what will be here, and how to fill it."""
    return (
        f'<div class="{cls}"><div style="font-weight:bold;margin-bottom:6px">'
        f"{html.escape(title)}</div><div>{html.escape(hint)}</div></div>"
    )


def error_html(text: str, *, cls: str = "lq-error") -> str:
    return (
        f'<div class="{cls}" style="color:#ff6b6b;font-weight:bold;white-space:pre-wrap">'
        f"{html.escape(text)}</div>"
    )


class Heartbeat(anywidget.AnyWidget):
    """An invisible widget whose browser side sets ``beat`` every ``period_ms``.

    The kernel cannot see a closed tab; it can see the beats stop. The dashboard's loop ends
    when no beat arrived for its ``orphan_timeout``, the kernel goes idle and the server's
    culler reaps it. It also reports the browser window's resizes (``resized``, debounced),
    since plotly's FigureWidget does not follow them by itself.
    """

    _esm = """
    function loadPlotly(model) {
      // plotly's FigureWidget module, once per page, from the dashboard's server
      const path = model.get("module_path");
      if (!path || model.get("module_url")) return;
      let base = "/";
      try {
        const cfg = document.getElementById("jupyter-config-data");
        if (cfg) base = JSON.parse(cfg.textContent).baseUrl || "/";
      } catch (e) {}
      const url = new URL(base.replace(/\\/+$/, "") + path, window.location.origin).href;
      import(url).then(
        () => { model.set("module_url", url); model.set("module_state", "loaded"); model.save_changes(); },
        (e) => {
          console.warn("lq: plotly's module not loaded from " + url + ": " + e);
          model.set("module_state", "failed"); model.save_changes();
        },
      );
    }
    function render({ model, el }) {
      el.style.display = "none";
      el.classList.add("lq-heartbeat");
      loadPlotly(model);
      const send = () => { model.set("beat", Date.now()); model.save_changes(); };
      send();
      const id = setInterval(send, model.get("period_ms"));
      let t = null;
      const resized = () => {
        clearTimeout(t);
        t = setTimeout(() => { model.set("resized", Date.now()); model.save_changes(); }, 250);
      };
      window.addEventListener("resize", resized);
      return () => { clearInterval(id); clearTimeout(t); window.removeEventListener("resize", resized); };
    }
    export default { render };
    """
    beat = traitlets.Float(0.0).tag(sync=True)
    resized = traitlets.Float(0.0).tag(sync=True)
    period_ms = traitlets.Int(5000).tag(sync=True)
    #: plotly's module below the page's base URL (set here), and the URL the page loaded it
    #: from (set by the page once loaded; later figures use it, see _FigureWidget)
    module_path = traitlets.Unicode("").tag(sync=True)
    module_url = traitlets.Unicode("").tag(sync=True)
    #: "" while the page loads it, then "loaded" or "failed"
    module_state = traitlets.Unicode("").tag(sync=True)

    def __init__(self, *, period_ms: int = 5000, clock: Callable[[], float] = time.monotonic):
        super().__init__(period_ms=period_ms, module_path=_module_path())
        self._clock = clock
        self.last_beat = clock()  # the page is still loading: count from creation
        self.beats = 0
        self.observe(self._on_beat, names="beat")
        self.observe(self._on_module, names="module_url")

    def _on_module(self, change: dict[str, Any]) -> None:
        self.use_module_url(str(change["new"]))

    def use_module_url(self, url: str) -> None:
        """New figures load plotly's module from ``url`` (the page's loaded copy)."""
        global _plotly_module_url
        if not url or url == _plotly_module_url:
            return
        path = self.module_path
        if url.startswith(("http://", "https://")) and url.endswith(path):
            _plotly_module_url = url
            log.info("plotly's module is loaded in the page from %s", url)
        else:
            log.warning("ignored a plotly module URL the page reported: %r", url[:200])

    def _on_beat(self, change: dict[str, Any]) -> None:
        self.last_beat = self._clock()
        self.beats += 1

    def silent_for(self) -> float:
        """Seconds since the last beat (or since creation, before the first one)."""
        return self._clock() - self.last_beat


def labelled(label: str, widget: W.Widget, width: str = "auto") -> W.Widget:
    widget.layout.width = width
    return W.HBox([W.Label(label), widget], layout=W.Layout(align_items="center"))
