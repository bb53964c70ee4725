"""Data panel: download the current selection as CSV or Parquet; upload a file to import."""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import ipywidgets as W

from lq.dashboard._widgets import error_html, labelled, note_html
from lq.dashboard.cli import MAX_UPLOAD_BYTES
from lq.errors import LqError, SymbolRequiredError
from lq.store import Store
from lq.store.export import exchange_labels, select, to_bytes

__all__ = ["RANGES", "DataPanel", "download_link"]

log = logging.getLogger(__name__)

RANGES: dict[str, float | None] = {
    "last 15 min": 15 * 60,
    "last 1 h": 3600,
    "last 6 h": 6 * 3600,
    "last 24 h": 86400,
    "everything": None,
}
MIME = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024  # the link travels over the kernel's websocket
#: How the error for a symbol stored under several exchange labels names this tab's control.
CHOOSE_EXCHANGE = "the 'exchange' menu beside 'symbol' above"


def download_link(data: bytes, filename: str, fmt: Literal["csv", "parquet"], rows: int) -> str:
    """An ``<a download>`` link carrying ``data`` (the browser saves it; no server route)."""
    b64 = base64.b64encode(data).decode("ascii")
    return (
        f'<a class="lq-download" download="{html.escape(filename)}" '
        f'href="data:{MIME[fmt]};base64,{b64}" '
        f'style="font-weight:bold;color:#42a5f5">Download {html.escape(filename)}</a> '
        f'<span class="lq-note" style="color:#aaa">({rows:,} rows, {len(data) / 1024:,.1f} kB)</span>'
    )


class DataPanel:
    """Export what you are looking at; import what you have.

    Parameters
    ----------
    store
        The database read for downloads.
    db
        Its path, handed to :func:`lq.importer.import_upload` for uploads (the importer
        writes directly when no collector runs, else queues the file for the collector).
    symbols
        Choices for the symbol picker.
    """

    title = "Data"

    def __init__(self, store: Store, *, db: str | os.PathLike[str], symbols: Sequence[str]) -> None:
        self.store = store
        self.db = Path(db)
        syms = [s.upper() for s in symbols]
        self.kind = W.Dropdown(options=["bars", "ticks", "book_tickers"], value="bars")
        self.symbol = W.Dropdown(options=syms, value=syms[0] if syms else None)
        # the exchange label of the rows: a symbol stored under several (a live venue and the
        # local exchange) is one series per label, never spliced; this menu picks it
        self.exchange = W.Dropdown(options=[("(the only one)", None)], index=0)
        self.interval = W.Dropdown(options=["1s", "1m", "5m", "1h"], value="1s")
        self.range = W.Dropdown(options=list(RANGES), value="last 1 h")
        self.format = W.ToggleButtons(options=["csv", "parquet"], value="csv")
        self.format.style.button_width = "70px"
        self.prepare = W.Button(
            description="Prepare download", icon="download", button_style="primary"
        )
        self.link = W.HTML()
        self.upload = W.FileUpload(
            accept=".csv,.zip,.gz,.txt", multiple=False, description="Upload file"
        )
        self.upload_result = W.HTML(
            note_html(
                "Binance public-data files (trades, aggTrades, klines; CSV or zip), an OHLC "
                "CSV with columns time, open, high, low, close[, volume], or an lq recording "
                "(--record). The whole file is checked before anything is imported. Imported "
                "history is kept: automatic retention never deletes it. Up to "
                f"{MAX_UPLOAD_BYTES // 2**20} MB through the browser; larger files: lq import FILE."
            )
        )
        # shown when a file does not say which symbol it holds
        self.upload_symbol = W.Text(placeholder="e.g. BTCUSDT", layout=W.Layout(width="140px"))
        self.upload_go = W.Button(description="Import", icon="upload", button_style="primary")
        self.upload_ask = W.HBox(
            [W.Label("symbol "), self.upload_symbol, self.upload_go],
            layout=W.Layout(align_items="center", display="none"),
        )
        self._pending: tuple[str, bytes] | None = None  # an upload waiting for its symbol
        self._queued: tuple[str, Path, int] | None = None  # an upload the collector will import
        self.upload_go.on_click(lambda _b: self.import_pending())
        self.prepare.on_click(lambda _b: self.make_download())
        self.upload.observe(self._on_upload, names="value")
        self.interval.layout.visibility = "visible"
        self.kind.observe(self._kind_changed, names="value")
        self.kind.observe(lambda _c: self._update_exchanges(), names="value")
        self.symbol.observe(lambda _c: self._update_exchanges(), names="value")
        self._update_exchanges()
        self.widget = W.VBox(
            [
                W.HTML("<h4>Download the current selection</h4>"),
                W.HBox(
                    [
                        labelled("what ", self.kind, "130px"),
                        labelled("symbol ", self.symbol, "130px"),
                        labelled("exchange ", self.exchange, "150px"),
                        labelled("interval ", self.interval, "80px"),
                        labelled("range ", self.range, "130px"),
                        self.format,
                    ],
                    layout=W.Layout(flex_flow="row wrap", align_items="center"),
                ),
                W.HBox([self.prepare, self.link], layout=W.Layout(align_items="center")),
                W.HTML("<h4>Import a file</h4>"),
                self.upload,
                self.upload_ask,
                self.upload_result,
            ]
        )

    def _update_exchanges(self) -> None:
        """The labels the selected symbol's rows are stored under: the menu offers them, with
        "choose" first when there are several (so a download never mixes or guesses one)."""
        sym, kind = self.symbol.value, self.kind.value
        try:
            labels = exchange_labels(self.store, kind, sym) if sym else []
        except (LqError, sqlite3.Error):
            labels = []
        if len(labels) > 1:
            options: list[tuple[str, str | None]] = [("choose one", None)]
        else:
            options = [("(the only one)", None)]
        options += [(label, label) for label in labels]
        keep = self.exchange.value if self.exchange.value in labels else None
        self.exchange.options = options
        self.exchange.value = keep
        if keep is None:  # value None alone selects no option: the menu showed blank
            self.exchange.index = 0

    def _kind_changed(self, change: dict[str, Any]) -> None:
        self.interval.layout.visibility = "visible" if change["new"] == "bars" else "hidden"

    def refresh(self) -> None:
        """Report what the running collector did with a queued upload (its answer is in
        ``<db>.inbox/results/``): imported, with its counts, or refused, with the reason."""
        if self._queued is None:
            return
        filename, path, rows = self._queued
        answer = path.parent / "results" / (path.name + ".json")
        if not answer.exists():
            if not path.exists() and not (path.parent / "results").is_dir():
                self._queued = None  # an older collector: it answers nothing
                self.upload_result.value = _ok_html(f"{filename}: taken by the running collector")
            return
        try:
            got = json.loads(answer.read_text())
        except (OSError, ValueError):
            return  # being written: next refresh
        self._queued = None
        answer.unlink(missing_ok=True)
        if got.get("status") == "imported":
            self.upload_result.value = _ok_html(
                f"{filename}: imported by the running collector ({rows:,} rows checked; "
                f"{got.get('new', 0):,} new, {got.get('duplicates', 0):,} already stored)"
            )
        else:
            self.upload_result.value = error_html(
                f"{filename}: not imported by the running collector: {got.get('message')}"
            )

    def make_download(self) -> str:
        """Build the download link for the current selection; returns the link's HTML."""
        self._update_exchanges()  # labels stored since the tab was built
        sym, kind, fmt = self.symbol.value, self.kind.value, self.format.value
        span = RANGES[self.range.value]
        start = None if span is None else int((time.time() - span) * 1e6)
        pick = {"exchange": self.exchange.value, "choose_with": CHOOSE_EXCHANGE}
        try:
            df = select(self.store, kind, sym, interval=self.interval.value, start=start, **pick)
            if span is not None and df.empty:  # old data
                df = select(self.store, kind, sym, interval=self.interval.value, **pick)
            data = to_bytes(df, fmt)
        except LqError as exc:
            self.link.value = error_html(str(exc))
            return self.link.value
        if len(data) > MAX_DOWNLOAD_BYTES:
            self.link.value = error_html(
                f"the selection is {len(data) / 2**20:.0f} MB; pick a shorter range or a coarser "
                "interval, or use `lq export` on the command line"
            )
            return self.link.value
        suffix = f"_{self.interval.value}" if kind == "bars" else ""
        name = f"{sym}_{kind}{suffix}.{fmt}"
        self.link.value = download_link(data, name, fmt, len(df))
        return self.link.value

    def _on_upload(self, change: dict[str, Any]) -> None:
        files = change["new"]
        if not files:
            return
        f = files[0]
        name = f["name"] if isinstance(f, dict) else f.name
        content = f["content"] if isinstance(f, dict) else f.content
        self.import_file(name, bytes(content))

    def import_file(self, filename: str, data: bytes, *, symbol: str | None = None) -> str:
        """Validate and import one uploaded file; the outcome (or the error) shows inline.

        A file that does not say which symbol it holds (an OHLC CSV, a Binance file renamed)
        is kept aside and the symbol is asked for (:meth:`import_pending` imports it then)."""
        try:
            from lq.importer import import_upload
        except ImportError:
            self.upload_result.value = error_html(
                "this build of lq has no importer (lq.importer.import_upload)"
            )
            return self.upload_result.value
        try:
            result = import_upload(self.db, filename, data, symbol=symbol or None)
        except SymbolRequiredError:
            self._pending = (filename, data)
            self.upload_ask.layout.display = "flex"
            self.upload_result.value = note_html(
                f"{filename} does not say which symbol it holds: type the symbol (e.g. "
                "BTCUSDT) and press Import."
            )
            return self.upload_result.value
        except LqError as exc:  # ImportFormatError names the file and line
            self.upload_result.value = error_html(f"{filename}: not imported: {exc}")
            return self.upload_result.value
        self._pending = None
        self.upload_ask.layout.display = "none"
        if result.status == "queued" and result.path is not None:
            self._queued = (filename, result.path, result.rows)
            text = f"{filename}: {result.kind} of {result.symbol}: {result.message}..."
        else:
            text = f"{filename}: imported {result.kind} of {result.symbol}: {result.message}"
        self.upload_result.value = _ok_html(text)
        return self.upload_result.value

    def import_pending(self) -> str:
        """Import the upload that waits for its symbol, with the symbol typed in."""
        if self._pending is None:
            return self.upload_result.value
        sym = self.upload_symbol.value.strip()
        if not sym:
            self.upload_result.value = error_html("type the symbol first, e.g. BTCUSDT")
            return self.upload_result.value
        filename, data = self._pending
        return self.import_file(filename, data, symbol=sym)


def _ok_html(text: str) -> str:
    return f'<div class="lq-upload-ok" style="color:#26a69a">{html.escape(text)}</div>'
