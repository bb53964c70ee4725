"""The dashboard's Alerts tab: create, edit, enable and delete rules with inline validation,
a live feed of new events, and a filterable history table with CSV export. "Backtest rule"
shows how often the selected rule would have fired on the stored data; a per-day rate from
under a day of data is greyed with the reason (:mod:`lq.analytics.reliability`).

It only calls :mod:`lq.alerts` and :mod:`lq.store`; the collector evaluates the rules (so
alerts fire with no browser open) and picks up changes made here within a second.
"""

from __future__ import annotations

import base64
import html
import logging
import os
from pathlib import Path
from typing import Any

import ipywidgets as w
import pandas as pd

from lq.alerts.history import HistoryResult
from lq.alerts.rules import CHANNELS, CONDITIONS, EVENT_METRICS, METRICS, Rule, rule_from_dict
from lq.alerts.store import AlertStore, StoredRule
from lq.errors import LqError, RuleError
from lq.formatting import GREY_CSS, header, table

__all__ = ["AlertsTab", "history_html"]

log = logging.getLogger(__name__)

_OK = "color:#1a7f37"
_BAD = "color:#cf222e"
_SEV_COLOR = {"info": "#0969da", "warning": "#9a6700", "critical": "#cf222e"}


def _num(text: str) -> float | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return text  # type: ignore[return-value]  # the rule's validation names the field


def history_html(res: HistoryResult, name: str) -> str:
    """A rule's history in a few lines: the firing count, and its per-day rate greyed with
    the reason when it comes from under a day of data (the raw value is ``res.per_day``)."""
    from lq.analytics.reliability import format_span

    if res.start is None:
        return f"<i>{html.escape(name)}: no stored data for {html.escape(res.rule.symbol)}</i>"
    times = "time" if res.count == 1 else "times"
    rate = f"{res.per_day:.1f} per day"
    if res.per_day_caveat:
        why = html.escape(res.per_day_caveat, quote=True)
        rate = (
            f"<span class='lq-unreliable' style='opacity:0.45;font-style:italic' "
            f"title='{why}'>{rate}</span> <small>(not meaningful: {why})</small>"
        )
    head = (
        f"<b>{html.escape(name)}</b>: would have fired {res.count} {times} in "
        f"{res.samples:,} samples over {format_span(res.span_seconds)}, {rate}"
    )
    caption = "Forward log returns of the first symbol after each firing, per horizon."
    css = tips = None
    if res.forward_caveat:  # greyed with the reason, as the per-day rate and the Sharpe are
        figures = [c for c in ("mean", "median", "hit_rate", "reverted") if c in res.summary]
        css = pd.DataFrame("", index=res.summary.index, columns=res.summary.columns)
        tips = css.copy()
        css[figures] = GREY_CSS
        tips[figures] = res.forward_caveat
        caption += f" Greyed: not meaningful, {res.forward_caveat}."
    shown = table(
        res.summary,
        kinds={
            "horizon": "text",
            "n": "int",
            "mean": "pct",
            "median": "pct",
            "hit_rate": "pct1",
            "reverted": "pct1",
        },
        headers={
            "n": "firings with data",
            "mean": header("mean fwd log return", "%"),
            "median": header("median fwd log return", "%"),
            "hit_rate": header("share > 0", "%"),
            "reverted": header("spread reverted", "%"),
        },
        css=css,
        tooltips=tips,
        caption=caption,
    ).to_html()
    return f"<div class='lq-rule-history'>{head}<br>{shown}</div>"


class AlertsTab:
    """One panel: ``.title``, ``.widget`` and ``refresh()`` (called by the dashboard's poll).

    Parameters
    ----------
    db
        The database (default: ``store.db`` from the settings).
    known_symbols
        Symbols a rule may use (default: the collector's configured symbols plus those
        stored).
    feed_size
        Events kept in the live feed.
    """

    title = "Alerts"

    def __init__(
        self,
        db: str | os.PathLike[str] | None = None,
        *,
        known_symbols: list[str] | None = None,
        feed_size: int = 50,
    ) -> None:
        if db is None or known_symbols is None:
            from lq.config import load_settings

            settings = load_settings()
            db = db if db is not None else settings.db
            known_symbols = (
                known_symbols if known_symbols is not None else list(settings.collector.symbols)
            )
        self.db = Path(db)
        self.store = AlertStore(self.db, known_symbols=known_symbols)
        self.feed_size = feed_size
        self._editing: int | None = None
        self._version: tuple[int, int, int] | None = None
        self._last_event_id = self._max_event_id()
        self._feed: list[str] = []
        self._history = pd.DataFrame()
        self._build()
        self.refresh()

    # -- widgets --------------------------------------------------------------------------
    def _build(self) -> None:
        def lay() -> w.Layout:  # one Layout per input: a border marks the one at fault
            return w.Layout(width="260px")

        self.name = w.Text(description="name", layout=lay())
        self.metric = w.Dropdown(options=METRICS, value="spread_zscore", description="metric",
                                 layout=lay())  # fmt: skip
        self.symbol = w.Text(value="ETHUSDT/BTCUSDT", description="symbol", layout=lay(),
                             placeholder="BTCUSDT or ETHUSDT/BTCUSDT")  # fmt: skip
        self.condition = w.Dropdown(options=CONDITIONS, value="crosses_above",
                                    description="condition", layout=lay())  # fmt: skip
        self.threshold = w.Text(value="2", description="threshold", layout=lay())
        self.band = w.Text(description="band", placeholder="low,high (outside)", layout=lay())
        self.rearm = w.Text(description="re-arm", placeholder="level (optional)", layout=lay())
        self.window = w.IntText(value=300, description="window", layout=lay())
        self.sample = w.Text(value="1", description="sample s", layout=lay(),
                             placeholder="seconds; 0 = every trade")  # fmt: skip
        self.hedge_method = w.Dropdown(options=("ols", "kalman"), description="hedge",
                                       layout=lay())  # fmt: skip
        self.cooldown = w.Text(value="0", description="cooldown s", layout=lay())
        self.severity = w.Dropdown(options=("info", "warning", "critical"), value="warning",
                                   description="severity", layout=lay())  # fmt: skip
        self.channels = w.SelectMultiple(options=CHANNELS, value=("dashboard",),
                                         description="channels", rows=4, layout=lay())  # fmt: skip
        self.enabled = w.Checkbox(value=True, description="enabled")
        self.save_button = w.Button(description="Save rule", button_style="primary")
        self.new_button = w.Button(description="New")
        self.message = w.HTML()
        self.save_button.on_click(lambda _b: self.save())
        self.new_button.on_click(lambda _b: self.clear_form())
        self._fields: dict[str, w.Widget] = {
            "name": self.name, "metric": self.metric, "symbol": self.symbol,
            "condition": self.condition, "threshold": self.threshold, "band": self.band,
            "rearm": self.rearm, "window": self.window, "sample": self.sample,
            "hedge_method": self.hedge_method, "cooldown": self.cooldown,
            "severity": self.severity, "channels": self.channels,
        }  # fmt: skip
        for widget in self._fields.values():
            widget.observe(lambda _c: self.validate(), names="value")
        form = w.VBox([*self._fields.values(), self.enabled,
                       w.HBox([self.save_button, self.new_button]), self.message])  # fmt: skip

        self.rule_list = w.Select(options=[], rows=8, layout=w.Layout(width="620px"))
        self.edit_button = w.Button(description="Edit")
        self.toggle_button = w.Button(description="Enable/disable")
        self.delete_button = w.Button(description="Delete", button_style="danger")
        self.history_button = w.Button(description="Backtest rule",
                                       tooltip="how often it would have fired on stored data")  # fmt: skip
        self.rule_history = w.HTML()
        self.history_button.on_click(lambda _b: self._selected(self.show_history))
        self.edit_button.on_click(lambda _b: self._selected(self.edit))
        self.toggle_button.on_click(lambda _b: self._selected(self.toggle))
        self.delete_button.on_click(lambda _b: self._selected(self.delete))
        rules = w.VBox([w.HTML("<b>Rules</b>"), self.rule_list,
                        w.HBox([self.edit_button, self.toggle_button, self.delete_button,
                                self.history_button]),
                        self.rule_history])  # fmt: skip

        self.feed = w.HTML()
        self.feed.add_class("lq-alert-feed")
        self.filter_text = w.Text(description="filter", placeholder="rule, symbol or text")
        self.filter_severity = w.Dropdown(options=("all", "info", "warning", "critical"),
                                          description="severity")  # fmt: skip
        self.filter_text.observe(lambda _c: self._render_history(), names="value")
        self.filter_severity.observe(lambda _c: self._render_history(), names="value")
        self.export_button = w.Button(description="Export CSV")
        self.export_link = w.HTML()
        self.export_button.on_click(lambda _b: self._export_link())
        self.history_table = w.HTML()
        history = w.VBox([
            w.HTML("<b>History</b>"),
            w.HBox([self.filter_text, self.filter_severity, self.export_button]),
            self.export_link, self.history_table,
        ])  # fmt: skip
        self.widget = w.VBox([
            w.HBox([form, rules]),
            w.HTML("<b>Live feed</b> (newest first)"), self.feed,
            history,
        ])  # fmt: skip

    # -- the form -------------------------------------------------------------------------
    def form_values(self) -> dict[str, Any]:
        """The form as rule fields (what :func:`rule_from_dict` receives)."""
        cond = self.condition.value
        spec: dict[str, Any] = {
            "name": self.name.value.strip(),
            "metric": self.metric.value,
            "symbol": self.symbol.value,
            "condition": cond,
            "window": self.window.value,
            "sample": _num(self.sample.value) if self.sample.value.strip() else 1.0,
            "hedge_method": self.hedge_method.value,
            "cooldown": _num(self.cooldown.value) or 0.0,
            "severity": self.severity.value,
            "channels": list(self.channels.value),
        }
        if cond == "outside":
            parts = [p for p in self.band.value.split(",") if p.strip()]
            spec["band"] = [_num(p) for p in parts] if parts else None
            if len(parts) not in (0, 2):
                spec["band"] = self.band.value  # refused with the field named
        else:
            spec["threshold"] = _num(self.threshold.value)
            if self.rearm.value.strip():
                spec["rearm"] = _num(self.rearm.value)
        return spec

    def _mark(self, field: str | None) -> None:
        for name, widget in self._fields.items():
            widget.layout.border = "2px solid #cf222e" if name == field else ""

    def validate(self) -> Rule | None:
        """Check the form without saving; shows the message next to the form."""
        try:
            rule = rule_from_dict(self.form_values())
        except RuleError as exc:
            self._mark(exc.field)
            self.message.value = (
                f"<span style='{_BAD}'><b>{html.escape(exc.field)}</b>: "
                f"{html.escape(exc.reason)}</span>"
            )
            return None
        self._mark(None)
        self.message.value = f"<span style='{_OK}'>{html.escape(rule.describe())}</span>"
        return rule

    def save(self) -> StoredRule | None:
        """Create (or update the rule being edited); a refused rule changes nothing.

        A channel without its settings (a Telegram token...) is refused, naming them."""
        rule = self.validate()
        if rule is None:
            return None
        try:
            from lq.alerts.channel_setup import check_channels_configured
            from lq.config import load_settings

            check_channels_configured(rule.channels, load_settings())
            if self._editing is None:
                sr = self.store.add(rule, enabled=self.enabled.value)
            else:
                sr = self.store.update(self._editing, rule)
                if sr.enabled != self.enabled.value:
                    sr = self.store.set_enabled(sr.id, self.enabled.value)
        except RuleError as exc:
            self._mark(exc.field)
            self.message.value = (
                f"<span style='{_BAD}'><b>{html.escape(exc.field)}</b>: "
                f"{html.escape(exc.reason)}</span>"
            )
            return None
        except LqError as exc:
            self.message.value = f"<span style='{_BAD}'>{html.escape(str(exc))}</span>"
            return None
        self.message.value = (
            f"<span style='{_OK}'>saved rule {sr.id}: {html.escape(sr.name)}</span>"
        )
        self._editing = None
        self.save_button.description = "Save rule"
        self.refresh()
        return sr

    def clear_form(self) -> None:
        self._editing = None
        self.save_button.description = "Save rule"
        self.name.value = ""
        self.message.value = ""
        self._mark(None)

    def edit(self, ref: int | str) -> None:
        """Load a stored rule into the form; Save then updates it."""
        sr = self.store.get(ref)
        r = sr.rule
        self.name.value = r.name
        self.metric.value = r.metric
        self.symbol.value = r.symbol
        self.condition.value = r.condition
        self.threshold.value = "" if r.threshold is None else f"{r.threshold:g}"
        self.band.value = "" if r.band is None else f"{r.band[0]:g},{r.band[1]:g}"
        self.rearm.value = "" if r.rearm is None else f"{r.rearm:g}"
        self.window.value = r.window
        self.sample.value = f"{r.sample:g}"
        self.hedge_method.value = r.hedge_method
        self.cooldown.value = f"{r.cooldown:g}"
        self.severity.value = r.severity
        self.channels.value = tuple(r.channels)
        self.enabled.value = sr.enabled
        self._editing = sr.id
        self.save_button.description = f"Update rule {sr.id}"

    def show_history(self, ref: int | str) -> HistoryResult | None:
        """How often the stored rule ``ref`` would have fired over the stored data."""
        from lq.alerts.history import rule_history
        from lq.store import Store

        sr = self.store.get(ref)
        if sr.rule.metric in EVENT_METRICS:
            self.rule_history.value = "<i>staleness and gap rules have no price history</i>"
            return None
        with Store(self.db) as st:
            res = rule_history(st, sr.rule, horizons=("1m", "5m"))
        self.rule_history.value = history_html(res, sr.name)
        return res

    def toggle(self, ref: int | str) -> StoredRule:
        sr = self.store.get(ref)
        out = self.store.set_enabled(sr.id, not sr.enabled)
        self.refresh()
        return out

    def delete(self, ref: int | str) -> StoredRule:
        out = self.store.remove(ref)
        if self._editing == out.id:
            self.clear_form()
        self.refresh()
        return out

    def _selected(self, fn: Any) -> None:
        if self.rule_list.value is None:
            self.message.value = f"<span style='{_BAD}'>select a rule first</span>"
            return
        try:
            fn(self.rule_list.value)
        except LqError as exc:
            self.message.value = f"<span style='{_BAD}'>{html.escape(str(exc))}</span>"

    # -- polling ----------------------------------------------------------------------------
    def _max_event_id(self) -> int:
        row = self.store.conn.execute("SELECT coalesce(max(id), 0) FROM alert_events").fetchone()
        return int(row[0])

    def refresh(self) -> None:
        """Re-read rules (when changed), new events for the feed, and the history table."""
        v = self.store.version()
        if v != self._version:
            self._version = v
            self.rule_list.options = [
                (
                    f"{sr.id:>3} {'on ' if sr.enabled else 'off'} {sr.name}: "
                    f"{sr.rule.describe()} [{sr.rule.severity}]",
                    sr.id,
                )
                for sr in self.store.rules()
            ]
        new = self.store.events(after_id=self._last_event_id, limit=self.feed_size)
        if not new.empty:
            self._last_event_id = int(new["id"].max())
            lines = [self._feed_line(r) for r in new.itertuples()]
            self._feed = (lines + self._feed)[: self.feed_size]
            self.feed.value = "<br>".join(self._feed)
        self._history = self.store.events(limit=5000)
        self._render_history()

    @property
    def feed_events(self) -> list[str]:
        """The live feed's lines, newest first (HTML)."""
        return list(self._feed)

    @staticmethod
    def _feed_line(r: Any) -> str:
        color = _SEV_COLOR.get(r.severity, "#57606a")
        return (
            f"<span style='color:{color}'><b>{html.escape(r.severity.upper())}</b></span> "
            f"{r.time:%Y-%m-%d %H:%M:%S} {html.escape(r.message)}"
        )

    def history(self) -> pd.DataFrame:
        """The history table as filtered in the tab (rule/symbol/text, severity)."""
        df = self._history
        if df.empty:
            return df
        text = self.filter_text.value.strip().lower()
        if text:
            mask = (
                df["rule"].str.lower().str.contains(text, regex=False)
                | df["symbol"].str.lower().str.contains(text, regex=False)
                | df["message"].str.lower().str.contains(text, regex=False)
            )
            df = df[mask]
        if self.filter_severity.value != "all":
            df = df[df["severity"] == self.filter_severity.value]
        return df

    def _render_history(self) -> None:
        df = self.history()
        if df.empty:
            self.history_table.value = "<i>no alert events</i>"
            return
        show = df[["id", "time", "rule", "symbol", "value", "severity", "message"]].copy()
        show["delivery"] = [
            ", ".join(f"{k}: {v.get('status')}" for k, v in d.items()) for d in df["delivery"]
        ]
        self.history_table.value = table(
            show.head(500),
            kinds={"id": "int", "value": "num", "time": "text"},
            headers={"time": "time (UTC)"},
            caption=f"{min(len(show), 500):,} of {len(show):,} events",
        ).to_html()

    def export_csv(self) -> str:
        """The filtered history as CSV text (delivery status as JSON)."""
        import json

        df = self.history().copy()
        if not df.empty:
            df["delivery"] = [json.dumps(d) for d in df["delivery"]]
        return df.to_csv(index=False)

    def _export_link(self) -> None:
        data = base64.b64encode(self.export_csv().encode()).decode()
        self.export_link.value = (
            f"<a download='lq_alert_events.csv' href='data:text/csv;base64,{data}'>"
            "download lq_alert_events.csv</a>"
        )

    def close(self) -> None:
        self.store.close()
        self.widget.close()
