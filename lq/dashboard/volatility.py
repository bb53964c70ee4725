"""Volatility panel: realised vol at several windows, EWMA, and a GARCH-family forecast."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Sequence
from typing import Literal

import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lq.analytics import GarchForecast, ewma_vol, garch_forecast, interval_us, realized_vol, returns
from lq.dashboard._widgets import error_html, figure, labelled, note_html, sync_figure_state
from lq.dashboard.feed import BarFeed
from lq.errors import ValidationError

__all__ = ["VolatilityPanel"]

log = logging.getLogger(__name__)

COLOURS = ("#42a5f5", "#f5c242", "#26a69a", "#ef5350")


class VolatilityPanel:
    """Realised/EWMA volatility (fast refresh) and a GARCH forecast (slow, off the loop).

    Parameters
    ----------
    feed
        The shared incremental view of the store.
    symbols
        Choices for the symbol picker.
    windows
        Realised-volatility windows in bars (at most four are drawn).
    model, dist
        Initial GARCH model (``garch``, ``gjr``, ``egarch``) and error distribution.
    horizon
        Forecast horizon in bars.
    fit_bars
        Returns used to fit the GARCH model.
    slow_interval
        Seconds between GARCH refits (the dashboard runs them in an executor).
    """

    title = "Volatility"

    def __init__(
        self,
        feed: BarFeed,
        *,
        symbols: Sequence[str],
        interval: Literal["1s", "1m", "5m"] = "1s",
        windows: Sequence[int] = (30, 120, 600),
        model: Literal["garch", "gjr", "egarch"] = "garch",
        dist: Literal["normal", "t"] = "normal",
        horizon: int = 60,
        fit_bars: int = 2000,
        bars: int = 900,
        slow_interval: float = 30.0,
    ) -> None:
        self.feed = feed
        self.windows = tuple(int(w) for w in windows)[: len(COLOURS) - 1]
        self.horizon, self.fit_bars, self.bars = horizon, fit_bars, bars
        self.slow_interval = slow_interval
        syms = [s.upper() for s in symbols]
        self.symbol = W.Dropdown(options=syms, value=syms[0] if syms else None)
        self.interval = W.ToggleButtons(options=["1s", "1m", "5m"], value=interval)
        self.interval.style.button_width = "48px"
        self.model = W.Dropdown(options=["garch", "gjr", "egarch"], value=model)
        self.dist = W.Dropdown(options=["normal", "t"], value=dist)
        self.info = W.HTML(note_html("waiting for bars..."))
        self.garch_info = W.HTML(note_html("GARCH: first fit pending"))
        self.fig = figure(
            rows=2,
            height=620,
            row_heights=[0.55, 0.45],
            shared_xaxes=False,
            subplot_titles=(
                "annualised volatility: realised windows, EWMA, GARCH forecast",
                "log returns per bar with the GARCH ±2σ band",
            ),
        )
        f = self.fig
        for w, colour in zip(self.windows, COLOURS, strict=False):
            f.add_trace(
                go.Scatter(
                    name=f"realised {w} bars",
                    x=[],
                    y=[],
                    mode="lines",
                    line={"color": colour, "width": 1},
                ),
                row=1,
                col=1,
            )
        f.add_trace(
            go.Scatter(
                name="EWMA", x=[], y=[], mode="lines", line={"color": "#ab47bc", "width": 2}
            ),
            row=1,
            col=1,
        )
        f.add_trace(
            go.Scatter(
                name="GARCH forecast",
                x=[],
                y=[],
                mode="lines+markers",
                line={"color": "#ffffff", "dash": "dot"},
                marker={"size": 3},
            ),
            row=1,
            col=1,
        )
        f.add_trace(
            go.Scatter(
                name="log return", x=[], y=[], mode="lines", line={"color": "#90a4ae", "width": 1}
            ),
            row=2,
            col=1,
        )
        f.add_trace(
            go.Scatter(
                name="+2σ",
                x=[],
                y=[],
                mode="lines",
                line={"color": "#ef5350", "width": 1},
                showlegend=False,
            ),
            row=2,
            col=1,
        )
        f.add_trace(
            go.Scatter(
                name="-2σ",
                x=[],
                y=[],
                mode="lines",
                line={"color": "#ef5350", "width": 1},
                fill="tonexty",
                fillcolor="rgba(239,83,80,0.15)",
                showlegend=False,
            ),
            row=2,
            col=1,
        )
        # the numbers are fractions; the axes show them as percentages and say so
        f.update_yaxes(title_text="annualised vol (%)", tickformat=".0%", row=1, col=1)
        f.update_yaxes(title_text="log return (%)", tickformat=".2%", row=2, col=1)
        self._i_ewma = len(self.windows)
        self._i_garch = self._i_ewma + 1
        self._i_ret = self._i_garch + 1
        controls = W.HBox(
            [
                labelled("symbol ", self.symbol, "140px"),
                self.interval,
                labelled("model ", self.model, "100px"),
                labelled("dist ", self.dist, "90px"),
            ],
            layout=W.Layout(flex_flow="row wrap", align_items="center"),
        )
        sync_figure_state(self.fig)
        self.widget = W.VBox([controls, self.info, self.garch_info, self.fig])
        self._drawn: tuple[object, ...] | None = None
        self._fit_key: tuple[object, ...] | None = None
        self.slow_due = True  # the dashboard checks this and calls prepare_slow()
        for w in (self.symbol, self.interval):
            w.observe(lambda _c: self._controls_changed(), names="value")
        for w in (self.model, self.dist):
            w.observe(lambda _c: self._request_fit(), names="value")

    def _controls_changed(self) -> None:
        self._request_fit()
        self.refresh()

    def _request_fit(self) -> None:
        self.slow_due = True
        self.garch_info.value = note_html("GARCH: refitting...")

    # -- fast path ------------------------------------------------------------------------
    def _returns(self) -> pd.Series:
        bars = self.feed.bars(
            self.symbol.value, self.interval.value, last=self.bars + self.fit_bars
        )
        if len(bars) < 3:
            return pd.Series(dtype="float64")
        return returns(bars["close"], kind="log").dropna()

    def refresh(self) -> None:
        key = (self.feed.version, self.symbol.value, self.interval.value)
        if key == self._drawn or not self.symbol.value:
            return
        self._drawn = key
        r = self._returns()
        if len(r) < 5:
            self.info.value = note_html(f"waiting for data: {len(r)} returns")
            return
        iv = self.interval.value
        view = slice(max(0, len(r) - self.bars), None)
        x = r.index[view].tz_convert(None)
        d = self.fig.data
        latest = []
        with self.fig.batch_update():
            for i, w in enumerate(self.windows):
                # a window longer than the history is shortened to it, and says so
                eff = min(w, max(2, len(r) - 1))
                rv = realized_vol(r, interval=iv, window=eff)
                d[i].x, d[i].y = x, np.asarray(rv, dtype=float)[view]
                short = "" if eff == w else f" (on {eff} bars so far)"
                d[i].name = f"realised {w} bars{short}"
                latest.append(f"{w} bars: {np.asarray(rv)[-1]:.1%}{short}")
            ew = np.asarray(ewma_vol(r, interval=iv), dtype=float)
            d[self._i_ewma].x, d[self._i_ewma].y = x, ew[view]
            d[self._i_ret].x, d[self._i_ret].y = x, r.to_numpy()[view]
        self.info.value = (
            f'<div class="lq-vol-stats">{html.escape(self.symbol.value)} annualised (24×365) · realised '
            f"{html.escape(', '.join(latest))} · EWMA(0.94) <b>{ew[-1]:.1%}</b></div>"
        )

    # -- slow path: GARCH refit off the event loop -----------------------------------------
    def prepare_slow(self) -> Callable[[], object]:
        """Snapshot the inputs on the loop; return the pure refit to run in an executor."""
        self.slow_due = False
        r = self._returns().iloc[-self.fit_bars :]
        model, dist, iv, h = self.model.value, self.dist.value, self.interval.value, self.horizon
        key = (self.symbol.value, iv, model, dist)

        def fit() -> object:
            if len(r) < 100:
                return ValidationError("returns", len(r), "GARCH needs at least 100 returns")
            try:
                return (
                    key,
                    r.index[-1],
                    garch_forecast(r, model=model, dist=dist, horizon=h, interval=iv),
                )
            except Exception as exc:  # a failed fit is shown, never fatal to the loop
                return exc

        return fit

    def apply_slow(self, result: object) -> None:
        """Draw a finished refit (on the loop)."""
        if isinstance(result, Exception):
            self.garch_info.value = (
                note_html(f"GARCH: {result}")
                if isinstance(result, ValidationError)
                else error_html(f"GARCH fit failed: {result}")
            )
            return
        assert isinstance(result, tuple)
        key: tuple[str, str, str, str] = result[0]
        last_time: pd.Timestamp = result[1]
        fc: GarchForecast = result[2]
        if key != (self.symbol.value, self.interval.value, self.model.value, self.dist.value):
            return  # the pickers moved while fitting; the next fit is already due
        step = pd.Timedelta(microseconds=interval_us(key[1]))
        fx = pd.date_range(last_time + step, periods=len(fc.volatility), freq=step).tz_convert(None)
        d = self.fig.data
        with self.fig.batch_update():
            if fc.annualized_volatility is not None:
                d[self._i_garch].x, d[self._i_garch].y = fx, fc.annualized_volatility
            band = 2.0 * np.asarray(fc.volatility)
            d[self._i_ret + 1].x, d[self._i_ret + 1].y = fx, band
            d[self._i_ret + 2].x, d[self._i_ret + 2].y = fx, -band
        ann = fc.annualized_volatility
        conv = "" if fc.converged else " · <b>did not converge</b>"
        self.garch_info.value = (
            f'<div class="lq-garch">GARCH {html.escape(fc.model)}/{html.escape(fc.dist)} on '
            f"{fc.nobs} returns: next-bar vol "
            f"<b>{(ann[0] if ann is not None else fc.volatility[0]):.1%}</b>"
            f"{' annualised' if ann is not None else ''}, AIC {fc.aic:.1f}{conv}</div>"
        )
