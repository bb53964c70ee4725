"""Pairs panel: normalised prices, hedge ratio, spread and z-score with bands, ADF, correlation."""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lq.analytics import (
    ADFResult,
    HedgeRatio,
    adf,
    half_life,
    hedge_ratio,
    interval_us,
    kalman_hedge_ratio,
    rolling_correlation,
    rolling_hedge_ratio,
    spread,
    zscore,
)
from lq.dashboard._widgets import error_html, figure, labelled, note_html, sync_figure_state
from lq.dashboard.feed import BarFeed
from lq.errors import ValidationError
from lq.formatting import fmt, fmt_duration

__all__ = ["PairStats", "PairsPanel", "pair_reading", "pair_stats"]

log = logging.getLogger(__name__)

Method = Literal["ols", "huber", "kalman"]
MIN_BARS = 12


@dataclass(frozen=True, slots=True)
class PairStats:
    """What the pairs panel draws, computed by lq.analytics on aligned log prices."""

    prices: pd.DataFrame
    beta: pd.Series  # hedge ratio over time (rolling OLS, or the Kalman filter state)
    hedge: HedgeRatio | None  # the fit on the trailing window (ols/huber); None for kalman
    spread: pd.Series
    zscore: pd.Series
    correlation: pd.Series
    adf: ADFResult | None
    half_life: float
    window: int
    window_asked: int  # the window asked for (``window`` is smaller on a short history)


def pair_stats(prices: pd.DataFrame, *, method: Method = "ols", window: int = 120) -> PairStats:
    """Every pair statistic of the panel for two aligned price columns ``[y, x]``.

    The hedge ratio is fitted on the trailing ``window`` bars (``ols``/``huber``) or tracked
    by a Kalman filter; the spread ``log y - alpha - beta log x`` and its rolling z-score,
    the ADF test (one lag) and half-life on the trailing window, and the rolling correlation
    of log returns are all computed by :mod:`lq.analytics`. While fewer than ``2 * window``
    bars exist the window shrinks to half the bars (never below 5) so that a fresh
    database shows something.
    """
    if prices.shape[1] != 2:
        raise ValidationError("prices", list(prices.columns), "expected two columns [y, x]")
    n = len(prices)
    if n < MIN_BARS:
        raise ValidationError("bars", n, f"need at least {MIN_BARS} aligned bars")
    w = int(min(window, max(5, n // 2)))
    ly, lx = np.log(prices.iloc[:, 0]), np.log(prices.iloc[:, 1])
    hedge: HedgeRatio | None
    if method == "kalman":
        k = kalman_hedge_ratio(ly, lx)
        beta, hedge = k["beta"], None
        spr = spread(ly, lx, k["beta"], alpha=k["alpha"])
    else:
        hedge = hedge_ratio(ly.iloc[-w:], lx.iloc[-w:], method=method)
        beta = rolling_hedge_ratio(ly, lx, w)
        spr = spread(ly, lx, hedge.beta, alpha=hedge.alpha)
    spr = pd.Series(np.asarray(spr, dtype=float), index=prices.index, name="spread")
    z = pd.Series(np.asarray(zscore(spr, w), dtype=float), index=prices.index, name="zscore")
    corr = rolling_correlation(ly.diff(), lx.diff(), w)
    tail = spr.iloc[-w:]
    try:
        adf_res: ADFResult | None = adf(tail, maxlag=1, autolag=None)
        hl = half_life(tail)
    except (ValidationError, ValueError, np.linalg.LinAlgError):
        adf_res, hl = None, float("nan")
    return PairStats(
        prices=prices,
        beta=pd.Series(np.asarray(beta, dtype=float), index=prices.index, name="beta"),
        hedge=hedge,
        spread=spr,
        zscore=z,
        correlation=pd.Series(np.asarray(corr, dtype=float), index=prices.index),
        adf=adf_res,
        half_life=float(hl),
        window=w,
        window_asked=int(window),
    )


def half_life_text(bars: float, interval: str) -> str:
    """``"12.3 bars of 1s (12.3 s)"``: a half-life in bars and in time."""
    if not math.isfinite(bars) or bars <= 0:
        return "– (the spread does not revert)"
    secs = bars * interval_us(interval) / 1e6
    return f"{bars:.1f} bars of {interval} ({fmt_duration(secs)})"


def pair_reading(
    adf_res: ADFResult | None, half_life_bars: float, *, interval: str, level: float = 0.05
) -> str:
    """One line a trader can act on, from the ADF p-value and the half-life."""
    if adf_res is None:
        return "not enough variation in the spread to test it yet"
    hl = ""
    if math.isfinite(half_life_bars) and half_life_bars > 0:
        hl = f"; half-life {half_life_text(half_life_bars, interval)}"
    if adf_res.pvalue < level:
        return f"ADF p={adf_res.pvalue:.3f} < {level}: the spread looks mean-reverting{hl}"
    return (
        f"ADF p={adf_res.pvalue:.3f} ≥ {level}: no evidence the spread mean-reverts "
        f"(cannot reject a unit root){hl}"
    )


class PairsPanel:
    """Two symbols and their spread.

    Parameters
    ----------
    feed
        The shared incremental view of the store.
    symbols
        Choices for the two pickers; the first two are selected (y, x).
    method, window
        Hedge-ratio method and rolling window (bars).
    entry, exit
        z-score bands drawn on the z-score chart.
    bars
        Bars shown (statistics use ``bars + window``).
    """

    title = "Pairs"

    def __init__(
        self,
        feed: BarFeed,
        *,
        symbols: Sequence[str],
        interval: Literal["1s", "1m", "5m"] = "1s",
        method: Method = "ols",
        window: int = 120,
        entry: float = 2.0,
        exit: float = 0.5,
        bars: int = 600,
    ) -> None:
        self.feed = feed
        syms = [s.upper() for s in symbols]
        self.y = W.Dropdown(options=syms, value=syms[0] if syms else None)
        self.x = W.Dropdown(options=syms, value=syms[1] if len(syms) > 1 else None)
        self.interval = W.ToggleButtons(options=["1s", "1m", "5m"], value=interval)
        self.interval.style.button_width = "48px"
        self.method = W.ToggleButtons(options=["ols", "huber", "kalman"], value=method)
        self.method.style.button_width = "64px"
        self.window = W.BoundedIntText(value=window, min=5, max=5000, step=10)
        self.entry = W.BoundedFloatText(value=entry, min=0.1, max=10, step=0.1)
        self.exit = W.BoundedFloatText(value=exit, min=0.0, max=10, step=0.1)
        self.bars = bars
        self.stats = W.HTML(note_html("waiting for bars of both symbols..."))
        self.fig = figure(
            rows=5,
            height=760,
            row_heights=[0.24, 0.14, 0.18, 0.26, 0.18],
            subplot_titles=(
                "normalised prices",
                "hedge ratio",
                "spread (log)",
                "spread z-score",
                "rolling correlation of log returns",
            ),
        )
        f = self.fig
        for name, colour in (("y", "#42a5f5"), ("x", "#f5c242")):
            f.add_trace(
                go.Scatter(name=name, x=[], y=[], mode="lines", line={"color": colour}),
                row=1,
                col=1,
            )
        f.add_trace(
            go.Scatter(name="hedge ratio", x=[], y=[], mode="lines", line={"color": "#ab47bc"}),
            row=2,
            col=1,
        )
        f.add_trace(
            go.Scatter(name="spread", x=[], y=[], mode="lines", line={"color": "#26a69a"}),
            row=3,
            col=1,
        )
        f.add_trace(
            go.Scatter(name="z-score", x=[], y=[], mode="lines", line={"color": "#ef5350"}),
            row=4,
            col=1,
        )
        band = {
            "mode": "lines",
            "line": {"color": "#888", "dash": "dash", "width": 1},
            "showlegend": False,
        }
        for nm in ("+entry", "-entry", "+exit", "-exit"):
            f.add_trace(go.Scatter(name=nm, x=[], y=[], **band), row=4, col=1)
        f.add_trace(
            go.Scatter(name="correlation", x=[], y=[], mode="lines", line={"color": "#90a4ae"}),
            row=5,
            col=1,
        )
        f.update_yaxes(title_text="× first bar", row=1, col=1)
        f.update_yaxes(title_text="β", row=2, col=1)
        f.update_yaxes(title_text="log units", row=3, col=1)
        f.update_yaxes(title_text="σ", row=4, col=1)
        f.update_yaxes(range=[-1, 1], title_text="ρ", row=5, col=1)
        controls = W.HBox(
            [
                labelled("y ", self.y, "130px"),
                labelled("x ", self.x, "130px"),
                self.interval,
                self.method,
                labelled("window ", self.window, "80px"),
                labelled("entry ±", self.entry, "70px"),
                labelled("exit ±", self.exit, "70px"),
            ],
            layout=W.Layout(flex_flow="row wrap", align_items="center"),
        )
        sync_figure_state(self.fig)
        self.widget = W.VBox([controls, self.stats, self.fig])
        self._drawn: tuple[object, ...] | None = None
        for w in (self.y, self.x, self.interval, self.method, self.window, self.entry, self.exit):
            w.observe(lambda _change: self.refresh(), names="value")

    def refresh(self) -> None:
        key = (
            self.feed.version,
            self.y.value,
            self.x.value,
            self.interval.value,
            self.method.value,
            self.window.value,
            self.entry.value,
            self.exit.value,
        )
        if key == self._drawn or not self.y.value or not self.x.value:
            return
        self._drawn = key
        if self.y.value == self.x.value:
            self.stats.value = error_html("pick two different symbols")
            return
        w = int(self.window.value)
        prices = self.feed.closes(
            [self.y.value, self.x.value], self.interval.value, last=self.bars + w
        )
        try:
            st = pair_stats(prices, method=self.method.value, window=w)
        except ValidationError as exc:
            self.stats.value = note_html(f"waiting for data: {exc}")
            return
        view = slice(max(0, len(prices) - self.bars), None)
        x = prices.index[view].tz_convert(None)
        p = prices.iloc[view]
        norm = p / p.iloc[0]  # display scaling only
        entry, ex = float(self.entry.value), float(self.exit.value)
        d = self.fig.data
        with self.fig.batch_update():
            d[0].x, d[0].y, d[0].name = x, norm.iloc[:, 0].to_numpy(), str(p.columns[0])
            d[1].x, d[1].y, d[1].name = x, norm.iloc[:, 1].to_numpy(), str(p.columns[1])
            d[2].x, d[2].y = x, st.beta.iloc[view].to_numpy()
            d[3].x, d[3].y = x, st.spread.iloc[view].to_numpy()
            d[4].x, d[4].y = x, st.zscore.iloc[view].to_numpy()
            ends = [x[0], x[-1]]
            for trace, level in zip(d[5:9], (entry, -entry, ex, -ex), strict=True):
                trace.x, trace.y = ends, [level, level]
            d[9].x, d[9].y = x, st.correlation.iloc[view].to_numpy()
        self.stats.value = self._stats_html(st)

    def _stats_html(self, st: PairStats) -> str:
        method = self.method.value
        if st.hedge is not None:
            fit = f"β={st.hedge.beta:.4f}, α={st.hedge.alpha:.4f} ({method}, last {st.window} bars)"
        else:
            fit = f"β={st.beta.iloc[-1]:.4f} (kalman, latest)"
        z = st.zscore.iloc[-1]
        reading = pair_reading(st.adf, st.half_life, interval=self.interval.value)
        pv = "–" if st.adf is None else fmt(st.adf.pvalue, "pvalue")
        hl = half_life_text(st.half_life, self.interval.value)
        n = len(st.prices)
        if st.window < st.window_asked:
            # said on screen: the statistics use fewer bars than the window box shows
            win = (
                f"<span class='lq-window-short' style='color:#ffb74d'>window {st.window} bars "
                f"(asked {st.window_asked}: only {n} bars of {self.interval.value} so far, "
                f"so half of them are used)</span>"
            )
        else:
            win = f"window {st.window} bars"
        return (
            '<div class="lq-pairs-stats">'
            f"<b>{html.escape(str(st.prices.columns[0]))} ~ {html.escape(str(st.prices.columns[1]))}</b>"
            f" · hedge ratio {fit} · z = <b class='lq-z'>{z:+.2f}</b>"
            f" · ADF p <b class='lq-adf-p'>{pv}</b> · half-life <b class='lq-half-life'>{hl}</b>"
            f" · {win}<br><i class='lq-reading'>{html.escape(reading)}</i></div>"
        )
