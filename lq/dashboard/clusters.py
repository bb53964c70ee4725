"""Correlation and clusters panel: ordered heatmap, dendrogram, pair scanner (all slow path)."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy.cluster.hierarchy import dendrogram

from lq.analytics import ClusterResult, cluster_symbols, correlation_matrix, returns, scan_pairs
from lq.dashboard._widgets import error_html, figure, labelled, note_html, sync_figure_state
from lq.dashboard.feed import BarFeed
from lq.errors import ValidationError
from lq.formatting import header, table

__all__ = ["ClusterView", "CorrelationPanel", "cluster_view"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What the panel draws: the clustering, its correlation matrix and the scanned pairs."""

    clusters: ClusterResult
    correlation: pd.DataFrame  # rows and columns in dendrogram leaf order
    pairs: pd.DataFrame
    nobs: int


def cluster_view(prices: pd.DataFrame, *, n_clusters: int = 2) -> ClusterView:
    """Cluster symbols on log returns and rank the pairs by cointegration (lq.analytics)."""
    if prices.shape[1] < 2:
        raise ValidationError("symbols", list(prices.columns), "need at least two symbols")
    if len(prices) < 30:
        raise ValidationError("bars", len(prices), "need at least 30 aligned bars")
    r = returns(prices, kind="log").dropna()
    k = max(1, min(int(n_clusters), prices.shape[1] - 1))
    cl = cluster_symbols(r, n_clusters=k)
    order = list(cl.order)
    corr = correlation_matrix(r).loc[order, order]
    return ClusterView(clusters=cl, correlation=corr, pairs=scan_pairs(prices), nobs=len(r))


class CorrelationPanel:
    """Heatmap ordered by hierarchical clustering, its dendrogram, and the pair scanner.

    Everything here is recomputed off the event loop every ``slow_interval`` seconds.
    """

    title = "Correlation & clusters"

    def __init__(
        self,
        feed: BarFeed,
        *,
        symbols: Sequence[str],
        interval: Literal["1s", "1m", "5m"] = "1s",
        n_clusters: int = 2,
        bars: int = 3600,
        slow_interval: float = 60.0,
    ) -> None:
        self.feed = feed
        self.symbols = [s.upper() for s in symbols]
        self.bars, self.slow_interval = bars, slow_interval
        self.interval = W.ToggleButtons(options=["1s", "1m", "5m"], value=interval)
        self.interval.style.button_width = "48px"
        self.n_clusters = W.BoundedIntText(value=n_clusters, min=1, max=20)
        self.info = W.HTML(note_html("clustering: first run pending"))
        self.table = W.HTML()
        self.fig = figure(
            rows=1,
            cols=2,
            height=460,
            shared_xaxes=False,
            subplot_titles=("correlation of log returns (cluster order)", "dendrogram"),
        )
        self.fig.add_trace(
            go.Heatmap(
                z=[],
                x=[],
                y=[],
                zmin=-1,
                zmax=1,
                colorscale="RdBu",
                reversescale=True,
                colorbar={"x": 0.45, "len": 0.9, "title": {"text": "ρ", "side": "right"}},
                text=[],
                texttemplate="%{z:.2f}",
                textfont={"size": 12},
                hovertemplate="%{y} ~ %{x}: ρ = %{z:.3f}<extra></extra>",
            ),
            row=1,
            col=1,
        )
        self.fig.update_yaxes(autorange="reversed", row=1, col=1)
        # the dendrogram: leaves along x (room kept at both ends for their labels), the
        # merge height on y in the unit scipy's correlation distance has
        self.fig.update_xaxes(tickangle=-45, automargin=True, row=1, col=2)
        self.fig.update_yaxes(title_text="distance √((1−ρ)/2)", row=1, col=2)
        self.fig.update_layout(margin={"b": 80})
        self._n_dendro = 0
        controls = W.HBox(
            [self.interval, labelled("clusters ", self.n_clusters, "70px")],
            layout=W.Layout(align_items="center"),
        )
        sync_figure_state(self.fig)
        self.widget = W.VBox(
            [controls, self.info, self.fig, W.HTML("<b>Pair scanner</b>"), self.table]
        )
        self.slow_due = True
        for w in (self.interval, self.n_clusters):
            w.observe(lambda _c: self._request(), names="value")

    def _request(self) -> None:
        self.slow_due = True
        self.info.value = note_html("clustering: recomputing...")

    def refresh(self) -> None:
        """Nothing cheap to do: the whole panel is slow-path work."""

    def prepare_slow(self) -> Callable[[], object]:
        self.slow_due = False
        prices = self.feed.closes(self.symbols, self.interval.value, last=self.bars)
        k = int(self.n_clusters.value)

        def work() -> object:
            try:
                return cluster_view(prices, n_clusters=k)
            except Exception as exc:
                return exc

        return work

    def apply_slow(self, result: object) -> None:
        if isinstance(result, Exception):
            self.info.value = (
                note_html(f"clustering: waiting for data: {result}")
                if isinstance(result, ValidationError)
                else error_html(f"clustering failed: {result}")
            )
            return
        assert isinstance(result, ClusterView)
        v = result
        names = list(v.correlation.columns)
        dg = dendrogram(
            v.clusters.linkage, labels=list(v.clusters.correlation.columns), no_plot=True
        )
        with self.fig.batch_update():
            hm = self.fig.data[0]
            hm.z, hm.x, hm.y = v.correlation.to_numpy(), names, names
            # dendrogram segments: drop the old ones, add the new (few traces)
            keep = self.fig.data[:1]
            self.fig.data = keep
            for xs, ys in zip(dg["icoord"], dg["dcoord"], strict=True):
                self.fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=ys,
                        mode="lines",
                        line={"color": "#ccc"},
                        showlegend=False,
                        hoverinfo="skip",
                    ),
                    row=1,
                    col=2,
                )
            ticks = 5.0 + 10.0 * np.arange(len(dg["ivl"]))
            # the last leaf sits at 10 n - 5: a range of [0, 10 n] keeps its label inside
            self.fig.update_xaxes(
                tickvals=ticks,
                ticktext=dg["ivl"],
                range=[0, 10.0 * len(dg["ivl"])],
                row=1,
                col=2,
            )
        if len(names) < 3:
            # two symbols are one pair, not a clustering: say so instead of "1 cluster"
            rho = float(v.correlation.iloc[0, 1])
            what = (
                f"only {len(names)} symbols: too few to cluster (that needs 3 or more); "
                f"their correlation is ρ = {rho:.2f}"
            )
        else:
            k = int(v.clusters.labels.max())
            groups = [
                "{" + ", ".join(v.clusters.labels.index[v.clusters.labels == c]) + "}"
                for c in range(1, k + 1)
            ]
            what = f"{k} clusters: {' '.join(groups)}"
        self.info.value = (
            f'<div class="lq-clusters">{len(names)} symbols on {v.nobs:,} returns of '
            f"{html.escape(self.interval.value)} bars · {html.escape(what)}</div>"
        )
        self.table.value = _pairs_table(v.pairs, interval=self.interval.value)


def _pairs_table(df: pd.DataFrame, *, interval: str = "1s") -> str:
    """The pair scanner's ranking as an lq table: p-values to 3 decimals, the half-life in
    bars and in time (``interval`` is the bar)."""
    if df.empty:
        return note_html("no pairs")
    from lq.analytics import interval_us

    frame = df.copy()
    if "half_life" in frame:
        frame["half_life_s"] = frame["half_life"] * interval_us(interval) / 1e6
    return table(
        frame,
        kinds={
            "pvalue": "pvalue",
            "statistic": "fixed2",
            "hedge_ratio": "ratio",
            "alpha": "ratio",
            "half_life": "fixed2",
            "half_life_s": "duration",
        },
        headers={
            "pvalue": "EG p-value",
            "statistic": "EG statistic",
            "hedge_ratio": "hedge ratio β",
            "alpha": "α",
            "half_life": header("half-life", f"bars of {interval}"),
            "half_life_s": "half-life (time)",
        },
        caption="Engle-Granger cointegration on log prices, best first; "
        "p < 0.05 rejects 'no cointegration'.",
        cls="lq-pair-table",
    ).to_html()
