"""The one plotly template of the product: ``"lq"`` (dark), used by every chart.

The dashboard's figures (:func:`lq.dashboard._widgets.figure`), the backtest charts
(:mod:`lq.backtest.charts`) and the research notebooks all draw with it, so a chart looks the
same wherever it is shown. Importing this module registers the template with plotly.
Styling only: nothing here touches data.
"""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

__all__ = ["COLORWAY", "TEMPLATE", "template", "use"]

TEMPLATE = "lq"
#: Series colours, in order (readable on the dark background, distinct for colour-blind eyes
#: in the first four).
COLORWAY = (
    "#42a5f5",
    "#ffa726",
    "#26a69a",
    "#ef5350",
    "#ab47bc",
    "#d4e157",
    "#8d6e63",
    "#90a4ae",
)


def template() -> go.layout.Template:
    """plotly_dark, with lq's fonts, colours, grid and hover labels."""
    base = go.layout.Template(pio.templates["plotly_dark"])
    axis = {
        "gridcolor": "rgba(255,255,255,0.08)",
        "zerolinecolor": "rgba(255,255,255,0.25)",
        "linecolor": "rgba(255,255,255,0.3)",
        "ticks": "outside",
        "tickcolor": "rgba(255,255,255,0.3)",
        "title": {"standoff": 8, "font": {"size": 12}},
        "automargin": True,
    }
    base.layout.update(
        font={"family": "Inter, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif", "size": 12},
        colorway=list(COLORWAY),
        paper_bgcolor="#111111",
        plot_bgcolor="#15181c",
        hoverlabel={"font": {"family": "ui-monospace, Menlo, Consolas, monospace"}},
        hovermode="x unified",
        xaxis=axis,
        yaxis=axis,
        legend={"bgcolor": "rgba(0,0,0,0)", "font": {"size": 11}},
    )
    return base


pio.templates[TEMPLATE] = template()


def use() -> None:
    """Make ``"lq"`` plotly's default template (what a research notebook calls first)."""
    pio.templates.default = TEMPLATE
