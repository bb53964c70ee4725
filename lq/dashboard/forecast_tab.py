"""The dashboard's Forecast tab: a deployed model's live forecasts against what happened,
its running out-of-sample score against its baseline, and a warning when it falls below.

It draws what the collector stored (``forecasts`` rows, :mod:`lq.forecast.hook`); it
computes nothing but running means of the stored losses.
"""

from __future__ import annotations

import html
import logging
import math
import os
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lq.dashboard._widgets import figure, labelled, note_html, sync_figure_state

__all__ = ["ForecastTab", "live_score"]

log = logging.getLogger(__name__)

_LOSS = {"sign": "log-loss", "return": "squared error", "volatility": "QLIKE"}


def live_score(rows: pd.DataFrame, window: int) -> dict[str, float]:
    """Mean model and baseline loss over the last ``window`` resolved forecasts, and the
    edge (baseline minus model: > 0 while the model is better)."""
    res = rows.dropna(subset=["loss", "baseline_loss"]).tail(window)
    n = len(res)
    if not n:
        return {"n": 0.0, "loss": math.nan, "baseline_loss": math.nan, "edge": math.nan}
    lm = float(res["loss"].mean())
    lb = float(res["baseline_loss"].mean())
    return {"n": float(n), "loss": lm, "baseline_loss": lb, "edge": lb - lm}


class ForecastTab:
    """One panel: ``.title``, ``.widget`` and ``refresh()``.

    Parameters
    ----------
    store, db
        The dashboard's store and its database path.
    window
        Resolved forecasts in the running score.
    min_resolved
        Resolved forecasts needed before the tab judges the model (no warning before);
        default :data:`lq.forecast.live.MIN_RESOLVED` (30), as for alert rules on the edge.
    rows
        Forecasts drawn.
    """

    title = "Forecast"

    def __init__(
        self,
        *,
        store: Any,
        db: str | os.PathLike[str],
        window: int = 500,
        min_resolved: int | None = None,
        rows: int = 600,
    ) -> None:
        self.store = store
        self.db = db
        self.window = int(window)
        from lq.forecast.live import MIN_RESOLVED  # the alert engine's edge waits as long

        self.min_resolved = MIN_RESOLVED if min_resolved is None else int(min_resolved)
        self.rows = int(rows)
        self.models: pd.DataFrame = pd.DataFrame()
        self.model = W.Dropdown(options=[], value=None)
        self.model.observe(lambda _c: self.refresh(), names="value")
        self.warning = W.HTML("")
        self.warning.add_class("lq-forecast-warning")
        self.info = W.HTML(note_html("looking for deployed models..."))
        self.info.add_class("lq-forecast-info")
        self.score: dict[str, float] = {}
        self.fig = figure(
            rows=2,
            height=560,
            row_heights=[0.6, 0.4],
            shared_xaxes=True,
            subplot_titles=(
                "forecast vs what happened",
                "running out-of-sample loss (lower is better)",
            ),
        )
        f = self.fig
        f.add_trace(
            go.Scatter(name="forecast", x=[], y=[], mode="lines", line={"color": "#42a5f5"}),
            row=1,
            col=1,
        )
        f.add_trace(
            go.Scatter(
                name="baseline", x=[], y=[], mode="lines", line={"color": "#9e9e9e", "dash": "dot"}
            ),
            row=1,
            col=1,
        )
        f.add_trace(
            go.Scatter(
                name="what happened",
                x=[],
                y=[],
                mode="markers",
                marker={"size": 4, "color": "#f5c242"},
            ),
            row=1,
            col=1,
        )
        f.add_trace(
            go.Scatter(name="model loss", x=[], y=[], mode="lines", line={"color": "#42a5f5"}),
            row=2,
            col=1,
        )
        f.add_trace(
            go.Scatter(
                name="baseline loss",
                x=[],
                y=[],
                mode="lines",
                line={"color": "#9e9e9e", "dash": "dot"},
            ),
            row=2,
            col=1,
        )
        sync_figure_state(f)
        self.widget = W.VBox(
            [labelled("model", self.model, "320px"), self.warning, self.info, self.fig]
        )
        self.widget.add_class("lq-forecast-tab")

    # -- reading --------------------------------------------------------------------------
    def _deployed(self) -> pd.DataFrame:
        from lq.forecast.store import deployed_models

        try:
            return deployed_models(self.db, conn=self.store.conn)
        except Exception as exc:  # no database yet, or an old schema
            log.debug("no forecast models: %s", exc)
            return pd.DataFrame(columns=["name", "manifest", "symbol"])

    def refresh(self) -> None:
        """Re-read the deployments and the selected model's forecasts; redraw."""
        self.models = self._deployed()
        names = list(self.models["name"]) if not self.models.empty else []
        if list(self.model.options) != names:
            keep = self.model.value if self.model.value in names else (names[0] if names else None)
            self.model.options = names
            self.model.value = keep
        if not names:
            self.warning.value = ""
            self.info.value = note_html(
                "No forecast model is deployed on this database. Train one and deploy it: "
                "`lq forecast train -p deploy NAME`, or lq.forecast.store.deploy(model, db) "
                "from a notebook; the collector scores it from the next closed bar."
            )
            self._draw(
                pd.DataFrame(columns=["value", "baseline", "realised", "loss", "baseline_loss"]),
                "sign",
            )
            return
        name = self.model.value
        man = self.models.set_index("name").loc[name, "manifest"]
        from lq.forecast.store import read_forecasts

        rows = read_forecasts(self.store.conn, name, limit=max(self.rows, self.window) + 50)
        kind = str(man.get("target", {}).get("kind", "sign"))
        self.score = live_score(rows, self.window)
        self._describe(name, man, rows, kind)
        self._draw(rows.tail(self.rows), kind)

    def _describe(self, name: str, man: dict[str, Any], rows: pd.DataFrame, kind: str) -> None:
        s = self.score
        base = man.get("baseline", "baseline")
        loss = _LOSS.get(kind, "loss")
        ev = man.get("evaluation") or {}
        tgt = man.get("target", {})
        head = (
            f"{name}: {man.get('model')} forecasting the {kind} of {man.get('symbol')} over "
            f"{tgt.get('horizon')} {'bars' if isinstance(tgt.get('horizon'), int) else ''}; "
            f"{len(rows):,} forecasts stored"
        )
        if s["n"]:
            live = (
                f"live, last {int(s['n'])} resolved: {loss} {s['loss']:.5g} vs {base} "
                f"{s['baseline_loss']:.5g} (edge {s['edge']:+.3g})"
            )
        else:
            live = "live: no forecast resolved yet (the horizon has not passed)"
        trained = f"when trained: {ev['verdict']}" if ev.get("verdict") else ""
        parts = [html.escape(p) for p in (head, live, trained) if p]
        self.info.value = (
            '<div class="lq-forecast-info" style="font-size:90%">' + "<br>".join(parts) + "</div>"
        )
        if s["n"] >= self.min_resolved and s["edge"] < 0:
            self.warning.value = (
                '<div class="lq-forecast-warning" style="color:#ff6b6b;font-weight:bold">'
                + html.escape(
                    f"Live score below the baseline: over the last {int(s['n'])} resolved forecasts "
                    f"{name}'s {loss} is {s['loss']:.5g}, worse than {base}'s {s['baseline_loss']:.5g}. "
                    "It no longer beats doing nothing: retrain it (lq forecast train) or undeploy "
                    f"it (lq forecast undeploy {name})."
                )
                + "</div>"
            )
        elif s["n"] < self.min_resolved:
            self.warning.value = note_html(
                f"{int(s['n'])} of {self.min_resolved} resolved forecasts needed before the live "
                "score is judged"
            )
        else:
            self.warning.value = ""

    def _draw(self, rows: pd.DataFrame, kind: str) -> None:
        # plain JSON (ISO time strings, floats and None): the figure's first state is sent
        # with the tab, and the widget serialiser takes no pandas objects there
        x = _times(rows.index)
        res = rows.dropna(subset=["loss", "baseline_loss"])
        rx = _times(res.index)
        rm = res["loss"].rolling(self.window, min_periods=1).mean()
        rb = res["baseline_loss"].rolling(self.window, min_periods=1).mean()
        d = self.fig.data
        with self.fig.batch_update():
            d[0].x, d[0].y = x, _arr(rows["value"])
            d[1].x, d[1].y = x, _arr(rows["baseline"])
            d[2].x, d[2].y = x, _arr(rows["realised"])
            d[3].x, d[3].y = rx, _arr(rm)
            d[4].x, d[4].y = rx, _arr(rb)
            self.fig.layout.yaxis.title = {
                "sign": "P(up) / up=1",
                "return": "log return",
                "volatility": "volatility",
            }.get(kind, "")


def _arr(s: pd.Series) -> list[float | None]:
    v = s.to_numpy(dtype=float)
    return [float(t) if np.isfinite(t) else None for t in v]


def _times(index: pd.Index) -> list[str]:
    if not len(index):
        return []
    return list(pd.DatetimeIndex(index).tz_convert(None).strftime("%Y-%m-%d %H:%M:%S.%f"))
