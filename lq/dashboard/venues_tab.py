"""Venues tab: one asset on every venue in the store, side by side.

Pick an asset (``BTC``); the tab lists the venues that trade it (``BTCUSDT@binance``,
``BTC-USD@coinbase``, ``BTC-USDT@okx``...) and draws, over the chosen window: the price on each
venue (each in its own quote currency), the dislocation in bps of each venue against the chosen
reference venue (raw, and the quotes compared stated: USD vs USDT is never hidden), the share of
the asset's traded volume per venue, the Hayashi-Yoshida lead-lag of each venue against the
reference (who leads, by how much, on how many trades), and each venue's data quality from the
gap ledger (holes found / filled / unfillable, dead letters, "not checkable" for a venue without
exact trade ids).

Widgets only: the numbers come from :mod:`lq.analytics` via :mod:`lq.dashboard.venue_data`.
"""

from __future__ import annotations

import html
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lq.analytics import dislocation, volume_share
from lq.dashboard._widgets import error_html, figure, labelled, note_html, sync_figure_state
from lq.dashboard.venue_data import (
    LeadLagReading,
    VenueTicks,
    asset_instruments,
    label,
    lead_lag_readings,
    store_instruments,
    venue_quality,
)
from lq.errors import LqError, ValidationError
from lq.store import Store
from lq.venues.instrument import Instrument

__all__ = ["WINDOWS", "VenuesPanel"]

log = logging.getLogger(__name__)

#: Window choices: seconds of trades shown, and the volume-share bucket for each.
WINDOWS: dict[str, tuple[float, str]] = {
    "1 min": (60.0, "5s"),
    "5 min": (300.0, "10s"),
    "15 min": (900.0, "30s"),
    "1 h": (3600.0, "1m"),
}
#: A venue's last price counts in the dislocation only while at most this old.
MAX_AGE = "2s"
MAX_VENUES = 6  # trace slots per chart (a FigureWidget keeps the traces it was shown with)
COLOURS = ("#42a5f5", "#f5c242", "#26a69a", "#ef5350", "#ab47bc", "#90a4ae")


def _ms(index: pd.DatetimeIndex) -> np.ndarray:
    """UTC times as float ms since the epoch, for a date axis: a float array travels as one
    binary buffer (datetimes would go as a list of ISO strings, several times the bytes)."""
    return index.as_unit("us").asi8 / 1000.0


def _fmt(v: Any, spec: str = ".2f") -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "–"
    return "–" if not math.isfinite(f) else f"{f:{spec}}"


class VenuesPanel:
    """Cross-venue view of one asset.

    Parameters
    ----------
    store
        The database (read-only).
    asset
        The asset shown first (default: the one on most venues).
    window
        One of :data:`WINDOWS`.
    id_rules
        Exchange label -> ``"contiguous"``/``"none"``, overriding what the venue adapters
        declare (see :func:`lq.dashboard.venue_data.id_rule`).
    """

    title = "Venues"
    slow_interval = 10.0  # seconds between lead-lag re-estimates (done off the loop)

    def __init__(
        self,
        store: Store,
        *,
        asset: str | None = None,
        window: str = "5 min",
        id_rules: dict[str, str] | None = None,
        redraw_s: float = 1.0,
    ) -> None:
        if window not in WINDOWS:
            raise ValidationError("window", window, f"expected one of {list(WINDOWS)}")
        self.store = store
        self.id_rules = id_rules
        self.redraw_s = redraw_s
        self.instruments: list[Instrument] = []
        self.asset = W.Dropdown(options=[], layout=W.Layout(width="110px"))
        self.reference = W.Dropdown(options=[], layout=W.Layout(width="200px"))
        self.window = W.ToggleButtons(options=list(WINDOWS), value=window)
        self.window.style.button_width = "60px"
        self.venues = W.HTML(note_html("looking for venues..."))
        self.dislocation_html = W.HTML()
        self.leadlag_html = W.HTML(note_html("lead-lag: estimating..."))
        self.volume_html = W.HTML()
        self.quality_html = W.HTML()
        self.fig = figure(
            rows=3,
            height=720,
            row_heights=[0.4, 0.33, 0.27],
            subplot_titles=(
                "price per venue (each in its own quote currency)",
                "dislocation vs the reference venue (bps)",
                "share of traded volume (base quantity)",
            ),
        )
        for row, kind in ((1, "price"), (2, "raw"), (2, "adjusted"), (3, "share")):
            for k in range(MAX_VENUES):
                c = COLOURS[k]
                if kind == "share":
                    tr: Any = go.Bar(name=f"share {k}", x=[], y=[], marker={"color": c},
                                     showlegend=False, visible=False)  # fmt: skip
                else:
                    tr = go.Scatter(
                        name=f"{kind} {k}", x=[], y=[], mode="lines", visible=False,
                        line={"color": c, "width": 1.5, **({"dash": "dot"} if kind == "adjusted" else {})},
                        showlegend=kind == "price", line_shape="hv" if kind == "price" else "linear",
                    )  # fmt: skip
                self.fig.add_trace(tr, row=row, col=1)
        self.fig.update_layout(barmode="stack")
        self.fig.update_yaxes(title_text="price (quote / 1 unit)", row=1, col=1)
        self.fig.update_yaxes(title_text="bps", row=2, col=1)
        self.fig.update_yaxes(title_text="share", range=[0, 1], row=3, col=1)
        self.fig.update_xaxes(type="date")
        self.fig.update_xaxes(title_text="time (UTC)", row=3, col=1)
        self.ll_fig = figure(
            height=300, subplot_titles=("lead-lag: Hayashi-Yoshida correlation by lag",)
        )
        for k in range(MAX_VENUES):
            self.ll_fig.add_trace(
                go.Scatter(
                    name=f"ll {k}",
                    x=[],
                    y=[],
                    mode="lines",
                    visible=False,
                    line={"color": COLOURS[k]},
                )
            )
        self.ll_fig.update_xaxes(title_text="lag (ms); positive: the reference venue leads")
        self.ll_fig.update_yaxes(title_text="correlation")
        sync_figure_state(self.fig)
        sync_figure_state(self.ll_fig)
        controls = W.HBox(
            [
                labelled("asset ", self.asset, "110px"),
                labelled("reference ", self.reference, "220px"),
                self.window,
            ],
            layout=W.Layout(flex_flow="row wrap", align_items="center"),
        )
        self.widget = W.VBox(
            [
                controls,
                self.venues,
                self.dislocation_html,
                self.fig,
                W.HTML("<h4>Lead-lag</h4>"),
                self.leadlag_html,
                self.ll_fig,
                W.HTML("<h4>Volume share</h4>"),
                self.volume_html,
                W.HTML("<h4>Data quality per venue</h4>"),
                self.quality_html,
            ]
        )
        self.widget.add_class("lq-venues")
        self.ticks: VenueTicks | None = None
        self.compared: list[Instrument] = []
        self.others: list[Instrument] = []
        self.slow_due = True
        self.readings: list[LeadLagReading] = []
        self._drawn: tuple[object, ...] | None = None
        self._last_draw = -math.inf
        self._scanned = -math.inf
        self._want_asset = asset.upper() if asset else None
        self._quiet = False
        self._scan()
        self.asset.observe(self._on_asset, names="value")
        self.reference.observe(self._on_reference, names="value")
        self.window.observe(lambda _c: self._select(), names="value")
        if self.ticks is None:
            self._select()

    def _on_asset(self, _change: dict[str, Any]) -> None:
        if not self._quiet:
            self._select()

    def _on_reference(self, _change: dict[str, Any]) -> None:
        if not self._quiet:
            self._changed()

    # -- venues in the store ---------------------------------------------------------------
    def _scan(self) -> None:
        """Re-list the instruments in the store (new venues appear within seconds)."""
        self._scanned = time.monotonic()
        insts = store_instruments(self.store)
        if [label(i) for i in insts] == [label(i) for i in self.instruments]:
            return
        self.instruments = insts
        counts: dict[str, int] = {}
        for i in insts:
            counts[i.base] = counts.get(i.base, 0) + 1
        assets = sorted(counts, key=lambda a: (-counts[a], a))
        current = self.asset.value or self._want_asset
        self._quiet = True  # setting options moves the value: one _select, below
        try:
            self.asset.options = assets
            if assets:
                self.asset.value = current if current in assets else assets[0]
        finally:
            self._quiet = False
        if current != self.asset.value:
            self._select()
        elif self.asset.value and self.ticks is not None:
            compared, _ = asset_instruments(insts, self.asset.value)
            if [label(i) for i in compared] != [label(i) for i in self.compared]:
                self._select()

    def _select(self) -> None:
        a = self.asset.value
        if not a:
            return
        self.compared, self.others = asset_instruments(self.instruments, a)
        labels = [label(i) for i in self.compared]
        ref = self.reference.value
        self._quiet = True
        try:
            self.reference.options = labels
            if labels:
                self.reference.value = ref if ref in labels else labels[0]
        finally:
            self._quiet = False
        seconds, _bucket = WINDOWS[self.window.value]
        self.ticks = VenueTicks(self.store, self.compared, window=seconds)
        self._changed()

    def _changed(self) -> None:
        self._drawn = None
        self._last_draw = -math.inf
        self.slow_due = True
        self.refresh()

    # -- drawing ---------------------------------------------------------------------------
    def refresh(self) -> None:
        if time.monotonic() - self._scanned > 5.0:
            self._scan()
        if self.ticks is None or not self.compared:
            self.venues.value = note_html(
                "no venue has trades of a USD- or stablecoin-quoted instrument yet"
            )
            return
        self.ticks.update()
        key = (self.ticks.version, self.asset.value, self.reference.value, self.window.value)
        if key == self._drawn or time.monotonic() - self._last_draw < self.redraw_s:
            return
        self._drawn = key
        self._last_draw = time.monotonic()
        try:
            self._draw()
        except LqError as exc:
            self.dislocation_html.value = error_html(str(exc))

    def _quotes(self) -> dict[str, str]:
        return {label(i): i.quote for i in self.compared}

    def _draw(self) -> None:
        assert self.ticks is not None
        frames = self.ticks.frames()
        quotes = self._quotes()
        ref = self.reference.value
        self.venues.value = self._venues_html(frames)
        seconds, bucket = WINDOWS[self.window.value]
        names = list(frames)
        nonempty = {n: f for n, f in frames.items() if len(f)}
        d = self.fig.data
        k_price, k_raw, k_adj, k_share = 0, MAX_VENUES, 2 * MAX_VENUES, 3 * MAX_VENUES
        disl = None
        if ref in nonempty and len(nonempty) >= 2:
            disl = dislocation(
                {n: nonempty[n][["ts", "price"]] for n in nonempty},
                quotes={n: quotes[n] for n in nonempty},
                reference=ref,
                interval="1s",
                max_age=MAX_AGE,
            )
        vs = volume_share(nonempty, by="base", interval=bucket) if nonempty else None
        newest = self.ticks.newest_ts()
        # every trace's new state first, then one assignment per property: inside
        # batch_update, plotly drops an edit back to the committed value (False then True on
        # a visible trace would leave it hidden)
        upd: dict[int, dict[str, Any]] = {i: {"visible": False} for i in range(4 * MAX_VENUES)}
        start = None if newest is None else newest - int(seconds * 1e6)
        for k, n in enumerate(names[:MAX_VENUES]):
            inst = self.compared[k]
            bars = self.store.bars(inst.symbol, "1s", start, exchange=inst.venue)
            upd[k_price + k] = {"x": _ms(bars.index), "y": bars["close"].to_numpy(),
                                "name": f"{n} ({inst.quote})", "visible": True}  # fmt: skip
            if disl is not None and n in disl.bps.columns:
                x = _ms(disl.bps.index)
                upd[k_raw + k] = {"x": x, "y": disl.bps[n].to_numpy(), "visible": True,
                                  "name": f"{n} vs {ref}: {disl.quotes[n]} vs {disl.quotes[ref]}"}  # fmt: skip
                if disl.quotes[n] != disl.quotes[ref] and np.isfinite(disl.adjusted[n]).any():
                    upd[k_adj + k] = {"x": x, "y": disl.adjusted[n].to_numpy(), "visible": True,
                                      "name": f"{n} adjusted ({disl.conversion[n]})"}  # fmt: skip
            if vs is not None and n in vs.share.columns:
                upd[k_share + k] = {"x": _ms(vs.share.index), "y": vs.share[n].to_numpy(),
                                    "name": n, "visible": True}  # fmt: skip
        with self.fig.batch_update():
            for i, props in upd.items():
                for prop, value in props.items():
                    setattr(d[i], prop, value)
            self.fig.layout.yaxis2.title.text = f"bps vs {ref}"
            # the lines carry no legend entries: the title says what each one compares
            converted = any(upd[k_adj + k].get("visible") for k in range(MAX_VENUES))
            self.fig.layout.annotations[1].text = self._dislocation_title(disl, ref, converted)
        self.dislocation_html.value = self._dislocation_html(disl, ref)
        self.volume_html.value = self._volume_html(vs)
        self.quality_html.value = self._quality_html()

    # -- text ------------------------------------------------------------------------------
    def _dislocation_title(self, disl: Any, ref: str, converted: bool) -> str:
        if disl is None:
            return f"dislocation vs {ref} (bps): waiting for trades"
        pairs = sorted({f"{disl.quotes[n]} vs {disl.quotes[ref]}" for n in disl.bps.columns
                        if n != ref})  # fmt: skip
        dotted = f", dotted: converted into {disl.quotes[ref]}" if converted else ""
        return (
            f"dislocation vs {ref} (bps; {', '.join(pairs)}; each line coloured as its "
            f"venue above{dotted})"
        )

    def _venues_html(self, frames: dict[str, pd.DataFrame]) -> str:
        items = []
        for inst in self.compared:
            n = label(inst)
            items.append(
                f'<span class="lq-venue" data-venue="{html.escape(inst.venue)}" '
                f'data-symbol="{html.escape(inst.symbol)}" data-quote="{html.escape(inst.quote)}">'
                f"<b>{html.escape(n)}</b> ({html.escape(inst.quote)}, "
                f"{len(frames.get(n, [])):,} trades in window)</span>"
            )
        quotes = sorted({i.quote for i in self.compared})
        note = (
            f" · quotes differ ({', '.join(quotes)}): a raw dislocation includes the "
            f"{'/'.join(quotes)} exchange rate"
            if len(quotes) > 1
            else ""
        )
        other = (
            " · not compared (other quote): "
            + ", ".join(html.escape(f"{label(i)} ({i.quote})") for i in self.others)
            if self.others
            else ""
        )
        return (
            f'<div class="lq-venues-list">{len(self.compared)} venues for '
            f"<b>{html.escape(str(self.asset.value))}</b>: {' · '.join(items)}"
            f'<span style="color:#f5c242">{html.escape(note)}</span>{other}</div>'
        )

    def _dislocation_html(self, disl: Any, ref: str) -> str:
        if disl is None:
            return note_html(
                f"dislocation: waiting for trades of {ref} and at least one other venue"
            )
        missing = sorted({c.split(": ", 1)[1] for c in disl.conversion.values()
                          if c.startswith("not converted")})  # fmt: skip
        unconverted = (
            f"; not converted into {disl.quotes[ref]} ({', '.join(missing)}"
            " stored), so the raw figures include that exchange rate"
            if missing
            else ""
        )
        rows = []
        for (venue, basis), r in disl.summary.iterrows():
            if basis == "adjusted" and not disl.conversion[venue].startswith(("USD", "USDT")):
                continue  # same quote (= raw), or no rate to convert with (said below)
            rows.append(
                f'<tr class="lq-disl-row" data-venue="{html.escape(venue)}" data-basis="{basis}">'
                f"<td>{html.escape(venue)}</td><td>{basis}</td>"
                f"<td>{html.escape(str(r['compared']))}</td><td>{int(r['n']):,}</td>"
                f"<td>{_fmt(r['coverage'], '.0%')}</td><td>{_fmt(r['mean_bps'])}</td>"
                f"<td>{_fmt(r['median_bps'])}</td><td>{_fmt(r['p95_abs_bps'])}</td>"
                f"<td>{_fmt(r['max_abs_bps'])}</td></tr>"
            )
        head = ("<tr><th>venue</th><th>basis</th><th>compared</th><th>n s</th><th>coverage</th>"
                "<th>mean bps</th><th>median bps</th><th>p95 |bps|</th><th>max |bps|</th></tr>")  # fmt: skip
        return (
            f'<table class="lq-dislocation" style="font-size:90%">{head}{"".join(rows)}</table>'
            + note_html(
                f"bps = (price / price of {ref} - 1) · 10⁴ on a 1 s grid, each venue's last "
                f"trade at most {MAX_AGE} old; raw compares each venue in its own quote"
                + unconverted
            )
        )

    def _volume_html(self, vs: Any) -> str:
        if vs is None:
            return note_html("no trades in the window")
        parts = [
            f'<span class="lq-share" data-venue="{html.escape(n)}" data-share="{s:.6f}">'
            f"{html.escape(n)} <b>{_fmt(s, '.1%')}</b> ({vs.total[n]:,.4f})</span>"
            for n, s in vs.total_share.items()
        ]
        return f'<div class="lq-volume">{" · ".join(parts)}</div>' + note_html(
            f"share of {self.asset.value} traded (base quantity) over the window"
        )

    def _quality_html(self) -> str:
        try:
            q = venue_quality(self.store, self.compared, id_rules=self.id_rules)
        except LqError as exc:
            return error_html(f"data quality: {exc}")

        def cell(v: Any) -> str:
            return "–" if v is pd.NA or v is None else f"{int(v):,}"

        rows = []
        for (venue, symbol, kind), r in q.iterrows():
            missing = ", ".join(f"{a}–{b}" for a, b in r["missing"][:5])
            if len(r["missing"]) > 5:
                missing += f" (+{len(r['missing']) - 5} more)"
            why = f" ({html.escape(r['reasons'])})" if r["reasons"] else ""
            rows.append(
                f'<tr class="lq-quality-row" data-venue="{html.escape(venue)}" '
                f'data-state="{html.escape(r["state"])}">'
                f"<td>{html.escape(f'{symbol}@{venue}')}</td><td>{html.escape(kind)}</td>"
                f"<td><b>{html.escape(r['state'])}</b></td><td>{cell(r['received'])}</td>"
                f"<td>{cell(r['holes'])}</td><td>{cell(r['ids_found'])}</td>"
                f"<td>{cell(r['ids_filled'])}</td><td>{cell(r['ids_pending'])}</td>"
                f"<td>{cell(r['ids_missing'])}</td><td>{html.escape(missing)}{why}</td>"
                f"<td>{cell(r['dead_letters'])}</td></tr>"
            )
        head = ("<tr><th>instrument</th><th>kind</th><th>state</th><th>trades stored</th>"
                "<th>holes</th><th>ids missed</th><th>filled</th><th>pending</th>"
                "<th>unfillable</th><th>still missing</th><th>dead letters (venue)</th></tr>")  # fmt: skip
        return (
            f'<table class="lq-quality" style="font-size:90%">{head}{"".join(rows)}</table>'
            + note_html(
                "from the gap ledger: ids the feed saw missing, filled by REST backfill or "
                "declared unfillable; 'not checkable': the venue has no contiguous trade ids"
            )
        )

    # -- lead-lag, off the loop ------------------------------------------------------------
    def prepare_slow(self) -> Callable[[], object]:
        """Snapshot the trades on the loop; return the estimate to run in an executor."""
        self.slow_due = False
        ref = self.reference.value
        frames = self.ticks.frames() if self.ticks is not None else {}
        key = (self.asset.value, ref, self.window.value)

        def job() -> object:
            if ref not in frames or len(frames) < 2:
                return key, []
            try:
                return key, lead_lag_readings(frames, ref)
            except Exception as exc:  # shown, never fatal to the loop
                return exc

        return job

    def apply_slow(self, result: object) -> None:
        if isinstance(result, Exception):
            self.leadlag_html.value = error_html(f"lead-lag failed: {result}")
            return
        assert isinstance(result, tuple)
        key, readings = result
        if key != (self.asset.value, self.reference.value, self.window.value):
            return  # the pickers moved while estimating; the next estimate is due
        self.readings = readings
        d = self.ll_fig.data
        upd: dict[int, dict[str, Any]] = {k: {"visible": False} for k in range(MAX_VENUES)}
        for k, r in enumerate(readings[:MAX_VENUES]):
            if r.result is not None:
                c = r.result.correlation
                upd[k] = {"x": c.index.to_numpy() / 1000.0, "y": c.to_numpy(), "visible": True,
                          "name": f"{r.reference} → {r.venue}"}  # fmt: skip
        with self.ll_fig.batch_update():
            for k, props in upd.items():
                for prop, value in props.items():
                    setattr(d[k], prop, value)
        if not readings:
            self.leadlag_html.value = note_html("lead-lag: needs the reference and one more venue")
            return
        lines = [
            f'<li class="lq-leadlag" data-venue="{html.escape(r.venue)}" '
            f'data-short="{int("too short" in r.note)}">{html.escape(r.text)}</li>'
            for r in readings
        ]
        self.leadlag_html.value = f"<ul style='margin:2px 0'>{''.join(lines)}</ul>" + note_html(
            "Hayashi-Yoshida on each venue's raw trades (log prices), lags ±2 s in "
            "10 ms steps; positive lag: the reference leads. Its correlation is normalised by "
            "each venue's own realised variance, so it can exceed 1 in a finite sample"
        )

    def estimate_lead_lag(self) -> list[LeadLagReading]:
        """Run the lead-lag estimate now, on this thread (notebooks and tests)."""
        self.apply_slow(self.prepare_slow()())
        return self.readings
