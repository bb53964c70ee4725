"""Backtest charts: one figure with price and trades, equity against buy-and-hold, drawdown;
and the metrics table. Shared by ``notebooks/backtest.ipynb`` and the dashboard's Backtest
tab (:mod:`lq.dashboard.backtest_tab`), which restyles the same traces in place.

Plotting only: every number comes from a :class:`~lq.backtest.BacktestResult`.

:func:`metrics_table` is how a backtest's numbers are shown everywhere (notebook, dashboard):
annualised figures from a short sample (:mod:`lq.analytics.reliability`) are greyed with the
reason in a note and a tooltip; a ruined run's Sharpe, Sortino, CAGR, Calmar and PSR read
"ruined". The raw values stay in ``result.metrics``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from pandas.io.formats.style import Styler
from plotly.subplots import make_subplots

from lq.backtest.engine import BacktestResult
from lq.formatting import BAD_CSS, GREY_CSS, fmt, table
from lq.theme import TEMPLATE

__all__ = [
    "DEFAULT_MAX_MARKERS",
    "DEFAULT_MAX_POINTS",
    "GREY_CSS",
    "RUINED_CSS",
    "RUINED_METRICS",
    "TRACE_NAMES",
    "fill_figure",
    "format_metric",
    "metrics_frame",
    "metrics_table",
    "metrics_text",
    "new_figure",
    "result_figure",
    "ruin_note",
]

#: The figure's traces, always in this order (the tab restyles them in place).
TRACE_NAMES = (
    "price 1",
    "price 2",
    "long entry",
    "short entry",
    "exit",
    "equity",
    "buy and hold",
    "drawdown",
)
DEFAULT_MAX_POINTS = 4000
DEFAULT_MAX_MARKERS = 2000
_PERCENT = {"total_return", "cagr", "max_drawdown", "win_rate", "exposure", "psr", "dsr"}
#: Metrics a ruined run shows as "ruined" (their values are the worst possible, by decree).
RUINED_METRICS = ("cagr", "sharpe", "sortino", "calmar", "psr", "dsr")
RUINED_CSS = BAD_CSS
#: Rows of the metrics table that are not metrics (shown elsewhere: the note, the caption).
_NOT_ROWS = {"periods_per_year", "caveats", "ruined", "ruined_at"}


# ----------------------------------------------------------------------------- charts
def new_figure(*, widget: bool = False, height: int = 640) -> go.Figure:
    """An empty backtest figure: price and trades, equity vs buy-and-hold, drawdown.

    ``widget=True`` returns a live ``FigureWidget`` (the tab); otherwise a static
    ``go.Figure`` (the notebook). The traces are :data:`TRACE_NAMES`, in that order.
    """
    base = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.05,
        row_heights=[0.45, 0.35, 0.2],
        subplot_titles=("price and trades", "equity vs buy-and-hold", "drawdown"),
    )
    colours = ("#42a5f5", "#ffa726")
    for i in range(2):
        base.add_trace(
            go.Scattergl(name=f"price {i + 1}", mode="lines", line={"color": colours[i]}),
            row=1,
            col=1,
        )
    for name, symbol, colour in (
        ("long entry", "triangle-up", "#66bb6a"),
        ("short entry", "triangle-down", "#ef5350"),
        ("exit", "x", "#bdbdbd"),
    ):
        base.add_trace(
            go.Scattergl(
                name=name, mode="markers", marker={"symbol": symbol, "size": 9, "color": colour}
            ),
            row=1,
            col=1,
        )
    base.add_trace(
        go.Scattergl(name="equity", mode="lines", line={"color": "#26c6da"}), row=2, col=1
    )
    base.add_trace(
        go.Scattergl(name="buy and hold", mode="lines", line={"color": "#9e9e9e", "dash": "dot"}),
        row=2,
        col=1,
    )
    base.add_trace(
        go.Scatter(
            name="drawdown", mode="lines", fill="tozeroy", line={"color": "#ef5350", "width": 1}
        ),
        row=3,
        col=1,
    )
    base.update_layout(
        template=TEMPLATE,
        height=height,
        margin={"l": 60, "r": 20, "t": 40, "b": 30},
        legend={"orientation": "h", "y": 1.06, "x": 0, "yanchor": "bottom"},
        uirevision="keep",
    )
    base.update_yaxes(tickformat=".1%", title_text="drawdown (%)", row=3, col=1)
    return go.FigureWidget(base) if widget else base


def _thin_index(n: int, max_points: int) -> np.ndarray:
    """Positions of at most ``max_points`` evenly spaced samples, the last one included."""
    if n <= max_points:
        return np.arange(n)
    step = math.ceil(n / max_points)
    idx = np.arange(0, n, step)
    return idx if idx[-1] == n - 1 else np.r_[idx, n - 1]


def _block_min(values: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Minimum of each block (keeps the deepest drawdown visible) and each block's start."""
    n = values.size
    if n <= max_points:
        return np.arange(n), values
    step = math.ceil(n / max_points)
    starts = np.arange(0, n, step)
    return starts, np.minimum.reduceat(values, starts)


def _frames(data: pd.DataFrame | Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    if isinstance(data, pd.DataFrame):
        return {str(data.attrs.get("symbol", "asset")): data}
    return dict(data)


def fill_figure(
    fig: go.Figure,
    result: BacktestResult,
    data: pd.DataFrame | Mapping[str, pd.DataFrame],
    *,
    max_points: int = DEFAULT_MAX_POINTS,
    max_markers: int = DEFAULT_MAX_MARKERS,
) -> go.Figure:
    """Draw ``result`` into a figure from :func:`new_figure` (in place; returns it).

    One symbol: its close. Several: each close rebased to 100 at the first bar, so both legs
    share an axis; trades are marked on the first symbol (the ``y`` leg of a pair) at their
    fill prices. Long series are thinned to ``max_points`` (drawdown by block minima, so the
    deepest point stays visible); only the last ``max_markers`` trades are marked.
    """
    frames = _frames(data)
    symbols = list(result.config.symbols)
    index = result.equity.index
    rebase = len(symbols) > 1
    keep = _thin_index(len(index), max_points)
    x = index[keep]
    factors: dict[str, float] = {}
    with _batch(fig):
        for i in range(2):
            tr = fig.data[i]
            if i < len(symbols):
                s = symbols[i]
                close = frames[s]["close"].reindex(index).to_numpy(dtype=float)
                factors[s] = 100.0 / close[0] if rebase else 1.0
                tr.x, tr.y = x, close[keep] * factors[s]
                tr.name = f"{s} (rebased to 100)" if rebase else s
                tr.visible = True
            else:
                tr.x, tr.y = [], []
                tr.visible = False
        trades = result.trades.tail(max_markers)
        s0 = symbols[0]
        f0 = factors.get(s0, 1.0)
        entry_px = trades[f"entry_price_{s0}"].to_numpy(dtype=float) * f0
        side = trades["side"].to_numpy()
        for j, sel in ((2, side > 0), (3, side < 0)):
            fig.data[j].x = trades["entry_time"][sel]
            fig.data[j].y = entry_px[sel]
        closed = ~trades["open"].to_numpy(dtype=bool)
        fig.data[4].x = trades["exit_time"][closed]
        fig.data[4].y = trades[f"exit_price_{s0}"].to_numpy(dtype=float)[closed] * f0
        fig.data[5].x, fig.data[5].y = x, result.equity.to_numpy()[keep]
        fig.data[6].x, fig.data[6].y = x, result.benchmark.to_numpy()[keep]
        starts, dd = _block_min(result.drawdown.to_numpy(dtype=float), max_points)
        fig.data[7].x, fig.data[7].y = index[starts], dd
        fig.layout.yaxis.title = "price (rebased to 100)" if rebase else "price (quote ccy)"
        fig.layout.yaxis2.title = "equity (account ccy)"
    return fig


class _batch:
    """``fig.batch_update()`` for a FigureWidget, nothing for a static figure."""

    def __init__(self, fig: go.Figure) -> None:
        self._cm = fig.batch_update() if isinstance(fig, go.FigureWidget) else None

    def __enter__(self) -> None:
        if self._cm is not None:
            self._cm.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self._cm is not None:
            self._cm.__exit__(*exc)


def result_figure(
    result: BacktestResult,
    data: pd.DataFrame | Mapping[str, pd.DataFrame],
    *,
    max_points: int = DEFAULT_MAX_POINTS,
) -> go.Figure:
    """A static plotly figure of a backtest (what the notebook shows)."""
    return fill_figure(new_figure(), result, data, max_points=max_points)


def format_metric(name: str, v: Any, *, ruined: bool = False) -> str:
    """One metric for a table: percentages for returns and rates, durations for times.

    ``ruined=True`` shows the metrics of :data:`RUINED_METRICS` as ``"ruined"``.
    """
    if ruined and name in RUINED_METRICS:
        return "ruined"
    if isinstance(v, str):  # "inf" / "-inf" as stored by canonical_json
        try:
            v = float(v)
        except ValueError:
            return v
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if name == "span_seconds":
        from lq.analytics.reliability import format_span

        return format_span(float(v))
    if name.endswith("_seconds"):
        return fmt(v, "duration")
    if name in ("number_of_trades", "bars"):
        return fmt(v, "int")
    if name in _PERCENT:
        return fmt(v, "pct")
    if isinstance(v, float | int) and not isinstance(v, bool):
        return fmt(v, "ratio")
    return str(v)


def ruin_note(ruined_at: Any) -> str:
    """The sentence that says a run was ruined (``ruined_at``: ISO time or Timestamp)."""
    t = pd.Timestamp(ruined_at)
    when = t.strftime("%Y-%m-%d %H:%M:%S") if not pd.isna(t) else "some close"
    return (
        f"ruined: equity reached zero at {when} UTC; the account was liquidated at the next "
        "open and traded no more"
    )


def _metrics_cells(
    result: BacktestResult,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    """Display strings, same-shaped frames of CSS and tooltips, and the caption lines."""
    cols = {"strategy": result.metrics, "buy and hold": result.benchmark_metrics}
    dicts = {c: m.to_dict() for c, m in cols.items()}
    rows = [k for k in dicts["strategy"] if k not in _NOT_ROWS]
    text: dict[str, list[str]] = {}
    css: dict[str, list[str]] = {}
    notes: list[str] = []
    caption: list[str] = []
    for c, m in cols.items():
        d = dicts[c]
        text[c] = [format_metric(k, d.get(k), ruined=m.ruined) for k in rows]
        css[c] = [
            RUINED_CSS if m.ruined and k in RUINED_METRICS else GREY_CSS if k in m.caveats else ""
            for k in rows
        ]
        if m.ruined:
            caption.append(f"{c}: {ruin_note(m.ruined_at)}.")
    tips: dict[str, list[str]] = {c: [m.caveats.get(k, "") for k in rows] for c, m in cols.items()}
    for k in rows:
        # the strategy's reason (the buy-and-hold one is its span part, or says so)
        s_r, b_r = result.metrics.caveats.get(k), result.benchmark_metrics.caveats.get(k)
        notes.append(s_r if s_r else f"buy and hold: {b_r}" if b_r else "")
    if any(notes):
        caption.append(
            "Greyed figures (annualised ones, and the PSR built on the Sharpe ratio) come from "
            "too short a sample to mean anything (kept for reference; see the note)."
        )
    index = pd.Index([_label(k) for k in rows], name="metric")
    frame = pd.DataFrame({**text, "note": notes}, index=index)
    style = pd.DataFrame({**css, "note": [GREY_CSS if n else "" for n in notes]}, index=index)
    tip = pd.DataFrame({**tips, "note": [""] * len(rows)}, index=index)
    return frame, style, tip, caption


_LABELS = {
    "cagr": "CAGR",
    "sharpe": "Sharpe",
    "sortino": "Sortino",
    "calmar": "Calmar",
    "psr": "PSR",
    "dsr": "DSR",
    "number_of_trades": "trades",
}


def _label(metric: str) -> str:
    """A metric's row label: acronyms in capitals, words spaced (``max_drawdown`` -> ...)."""
    return _LABELS.get(metric, metric.removesuffix("_seconds").replace("_", " "))


def metrics_text(result: BacktestResult) -> pd.DataFrame:
    """The metrics table as text: strategy next to buy-and-hold, and a ``note`` column that
    says why a greyed figure means little (short sample); a ruined run reads "ruined"."""
    return _metrics_cells(result)[0]


def metrics_table(result: BacktestResult) -> Styler:
    """The metrics table as a pandas ``Styler`` (a notebook shows it; ``.to_html()`` for the
    dashboard; ``.data`` is :func:`metrics_text`): figures from a short sample greyed, with
    the reason in the note and as a tooltip; a ruined run's figures in red, with a caption
    saying when it went bust."""
    frame, style, tips, caption = _metrics_cells(result)
    # the cells are display text already (format_metric): figures right-aligned, the note not
    return table(
        frame,
        kinds={c: "text" for c in frame.columns},
        right=["strategy", "buy and hold"],
        css=style,
        tooltips=tips,
        caption=" ".join(caption),
        index=True,
        cls="lq-backtest-metrics",
    )


#: The name the backtest notebook calls (``metrics_frame(result)`` renders the styled table).
metrics_frame = metrics_table
