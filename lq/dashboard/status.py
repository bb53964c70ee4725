"""The status bar: where the data comes from and whether it is healthy, impossible to miss."""

from __future__ import annotations

import html
import logging
import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as W

from lq.errors import LqError
from lq.store import Store

__all__ = ["STALE_AFTER_S", "StatusBar", "status_html"]

log = logging.getLogger(__name__)

STALE_AFTER_S = 5.0  # the collector publishes every second; silence beyond this is news

_COLOURS = {"LIVE BINANCE": "#1f8b4c", "LOCAL EXCHANGE": "#b8860b", "REPLAY": "#3c6fd1"}


def _fmt(v: Any, spec: str, unit: str = "") -> str:
    if v is None:
        return "–"
    try:
        return f"{float(v):{spec}}{unit}"
    except (TypeError, ValueError):
        return html.escape(str(v))


_LAG_TIP = (
    "lag = exchange event time to receipt here = transit + clock offset (our clock minus "
    "the exchange's). Latency is shown above the fastest of the last 2048 trades, which "
    "takes the offset out; the offset itself is at most that fastest lag."
)


def _lag_html(r: Mapping[str, Any]) -> str:
    """Latency and clock offset apart (a raw lag of "-1 ms" is a clock offset, not speed)."""
    p50, p99, low = r.get("lag_p50_ms"), r.get("lag_p99_ms"), r.get("lag_min_ms")
    if p50 is None or p99 is None or low is None:  # no lags yet, or an older collector
        raw = f"lag p50 {_fmt(p50, '.0f', ' ms')} · p99 {_fmt(p99, '.0f', ' ms')}" + (
            " (negative: the clocks differ)" if p50 is not None and float(p50) < 0 else ""
        )
        return f'<span title="{html.escape(_LAG_TIP, quote=True)}">{raw}</span>'
    lat50, lat99 = float(p50) - float(low), float(p99) - float(low)
    return (
        f'<span class="lq-latency" title="{html.escape(_LAG_TIP, quote=True)}">latency p50 '
        f"<b>{lat50:.0f} ms</b> · p99 <b>{lat99:.0f} ms</b> above the fastest</span>"
        f'<span class="lq-clock-offset">clock offset ≤ {float(low):+.0f} ms</span>'
    )


def _gaps_html(r: Mapping[str, Any]) -> str:
    if r.get("gap_check") == "not checkable":  # a venue without exact trade ids
        return '<span class="lq-gaps">gaps not checkable (no exact trade ids)</span>'
    return (
        f'<span class="lq-gaps">gaps {int(r.get("gaps_found") or 0)} found · '
        f"{int(r.get('gaps_filled') or 0)} filled"
        + (
            f" · <b>{int(r['gaps_unfilled'])} unfilled</b>"
            if int(r.get("gaps_unfilled") or 0)
            else ""
        )
        + "</span>"
    )


def status_html(rows: Sequence[Mapping[str, Any]], *, now_us: int) -> str:
    """The status bar's HTML for the collectors' published ``feed_status`` rows.

    Each row shows its source label (LIVE BINANCE / LOCAL EXCHANGE / REPLAY) in a coloured
    banner, the connection state, whether rows are being stored (``storing``, or ``RECEIVING
    BUT NOT STORING: <reason>`` in red, with what waits in memory and in the spill), messages
    and messages/s, latency (p50/p99, above the fastest message) apart from the clock offset
    (:func:`_lag_html`), last-tick age, gaps found/filled and reconnects. "live" means
    connected *and* committing. A row not refreshed for
    :data:`STALE_AFTER_S` is shown as ``STALE``; no rows at all says no collector ever wrote.
    """
    if not rows:
        return (
            '<div class="lq-status" style="background:#7a1f1f;color:white;padding:6px 10px;'
            'font-size:120%;font-weight:bold">NO FEED: no collector has written to this '
            "database yet</div>"
        )
    parts = []
    for r in rows:
        label = str(r.get("source_label") or r.get("source") or "?").upper()
        label = "REPLAY" if label.startswith("REPLAY") else label
        age_status = (now_us - int(r.get("updated_ts") or 0)) / 1e6
        state = str(r.get("state", "?"))
        stopped = state == "stopped"  # its last report, written as it stopped: not a silence
        stale = age_status > STALE_AFTER_S and not stopped
        shown_state = f"STALE ({age_status:.0f} s without an update)" if stale else state
        if stopped:
            shown_state = f"STOPPED {_ago(age_status)} ago"
        storage = str(r.get("storage") or ("storing" if state == "live" else "not storing"))
        ok = state in ("live", "connected") and not stale and storage == "storing"
        colour = _COLOURS.get(label, "#555") if ok else "#7a1f1f"
        if stopped and storage == "storing":
            storage_text = "not collecting (everything it received was stored)"
        elif storage == "storing":
            storage_text = "storing"
        else:
            lead = "RECEIVING BUT NOT STORING" if r.get("receiving") else "NOT STORING"
            why = r.get("storage_reason") or state
            waiting = [
                f"{int(r.get(k) or 0):,} {what}"
                for k, what in (
                    ("buffered_events", "in memory"),
                    ("spilled_events", "spilled"),
                    ("lost_events", "LOST"),
                )
                if int(r.get(k) or 0)
            ]
            storage_text = f"{lead}: {why}" + (f" ({', '.join(waiting)})" if waiting else "")
        tick_age = r.get("last_message_age_s")
        if tick_age is not None and not stale:
            tick_age = float(tick_age) + max(age_status, 0.0)
        messages = int(r.get("messages") or 0)
        parts.append(
            f'<div class="lq-status" data-source="{html.escape(label)}" '
            f'data-state="{html.escape(state)}" data-messages="{messages}" '
            f'data-storage="{html.escape(storage)}" '
            f'style="background:{colour};color:white;padding:6px 10px;margin:2px 0;'
            f'display:flex;gap:18px;flex-wrap:wrap;align-items:baseline">'
            f'<span class="lq-source" style="font-size:130%;font-weight:bold">'
            f"{html.escape(label)}</span>"
            f'<span class="lq-state">{html.escape(shown_state)}</span>'
            f'<b class="lq-storage">{html.escape(storage_text)}</b>'
            f'<span>messages <b class="lq-messages">{messages:,}</b></span>'
            f'<span><b class="lq-rate">{_fmt(r.get("messages_per_s"), ".1f")}</b>/s</span>'
            f"{_lag_html(r)}"
            f'<span>last tick <b class="lq-tick-age">{_fmt(tick_age, ".1f", " s")}</b> ago</span>'
            + _gaps_html(r)
            + f"<span>reconnects {int(r.get('reconnects') or 0)}</span>"
            f'<span style="opacity:0.8">{html.escape(str(r.get("exchange", "")))}</span>'
            "</div>"
        )
    return "".join(parts)


class StatusBar:
    """The feed-health banner (reads :meth:`lq.store.Store.feed_status`)."""

    title = "Status"

    def __init__(self, store: Store) -> None:
        self.store = store
        self.widget = W.HTML(status_html([], now_us=0), layout=W.Layout(width="100%"))

    def refresh(self) -> None:
        from lq.collector.health import feed_rows

        try:  # feed_status rows and <db>.status, which still speaks when the database cannot
            rows = feed_rows(self.store.path, self.store)
        except (LqError, OSError, sqlite3.Error) as exc:  # no file or table yet: keep polling
            log.debug("feed_status unavailable: %s", exc)
            rows = []
        value = status_html(rows, now_us=int(time.time() * 1e6))
        if value != self.widget.value:
            self.widget.value = value


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{max(seconds, 0.0):.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
