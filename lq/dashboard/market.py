"""Market panel: candlesticks with volume, SMA/EMA and Bollinger overlays, RSI below."""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from typing import Literal

import ipywidgets as W
import pandas as pd
import plotly.graph_objects as go

from lq.analytics import bollinger, ema, rsi, sma
from lq.dashboard._widgets import figure, labelled, note_html, sync_figure_state
from lq.dashboard.feed import BarFeed
from lq.formatting import fmt

__all__ = ["MarketPanel"]

log = logging.getLogger(__name__)

Interval = Literal["1s", "1m", "5m"]
INTERVALS: tuple[Interval, ...] = ("1s", "1m", "5m")


class MarketPanel:
    """One symbol: candles + volume + overlays + RSI, redrawn only when new bars arrive.

    Parameters
    ----------
    feed
        The shared incremental view of the store.
    symbols
        Choices for the symbol picker.
    interval
        Initial bar interval.
    bars
        Bars shown.
    window, ema_span, rsi_window
        Indicator parameters (bars).
    """

    title = "Market"

    def __init__(
        self,
        feed: BarFeed,
        *,
        symbols: Sequence[str],
        interval: Interval = "1s",
        bars: int = 300,
        window: int = 20,
        ema_span: int = 50,
        rsi_window: int = 14,
    ) -> None:
        self.feed = feed
        self.window, self.ema_span, self.rsi_window = window, ema_span, rsi_window
        syms = [s.upper() for s in symbols]
        self.symbol = W.Dropdown(options=syms, value=syms[0] if syms else None)
        self.interval = W.ToggleButtons(options=list(INTERVALS), value=interval)
        self.interval.style.button_width = "48px"
        self.bars = W.BoundedIntText(value=bars, min=20, max=5000, step=50)
        self.show_sma = W.Checkbox(value=True, description=f"SMA {window}", indent=False)
        self.show_ema = W.Checkbox(value=True, description=f"EMA {ema_span}", indent=False)
        self.show_bb = W.Checkbox(value=True, description="Bollinger", indent=False)
        for box in (self.show_sma, self.show_ema, self.show_bb):
            box.layout.width = "auto"  # side by side, not spread over the row
            box.layout.margin = "0 12px 0 4px"
        self.header = W.HTML(note_html("waiting for bars..."))
        self.fig = figure(rows=3, height=560, row_heights=[0.6, 0.18, 0.22])
        f = self.fig
        f.add_trace(
            go.Candlestick(
                name="price",
                x=[],
                open=[],
                high=[],
                low=[],
                close=[],
                increasing_line_color="#26a69a",
                decreasing_line_color="#ef5350",
            ),
            row=1,
            col=1,
        )
        for name, colour, dash in (
            ("SMA", "#f5c242", None),
            ("EMA", "#42a5f5", None),
            ("BB upper", "#9e9e9e", "dot"),
            ("BB lower", "#9e9e9e", "dot"),
        ):
            f.add_trace(
                go.Scatter(
                    name=name,
                    x=[],
                    y=[],
                    mode="lines",
                    line={"color": colour, "width": 1, "dash": dash},
                ),
                row=1,
                col=1,
            )
        f.add_trace(go.Bar(name="volume", x=[], y=[], marker_color="#5c6bc0"), row=2, col=1)
        f.add_trace(
            go.Scatter(name="RSI", x=[], y=[], mode="lines", line={"color": "#ab47bc", "width": 1}),
            row=3,
            col=1,
        )
        for level in (30, 70):
            f.add_hline(y=level, line={"color": "#777", "dash": "dash", "width": 1}, row=3, col=1)
        f.update_layout(xaxis_rangeslider_visible=False, showlegend=True)
        f.update_yaxes(title_text="RSI", range=[0, 100], row=3, col=1)
        f.update_yaxes(title_text="volume", row=2, col=1)
        f.update_yaxes(title_text="price", row=1, col=1)
        self._units: tuple[str, str] | None = None
        controls = W.HBox(
            [
                labelled("symbol ", self.symbol, "140px"),
                self.interval,
                labelled("bars ", self.bars, "90px"),
                self.show_sma,
                self.show_ema,
                self.show_bb,
            ],
            layout=W.Layout(flex_flow="row wrap", align_items="center"),
        )
        sync_figure_state(self.fig)
        self.widget = W.VBox([controls, self.header, self.fig])
        self._drawn: tuple[object, ...] | None = None
        for w in (
            self.symbol,
            self.interval,
            self.bars,
            self.show_sma,
            self.show_ema,
            self.show_bb,
        ):
            w.observe(lambda _change: self.refresh(), names="value")

    def refresh(self) -> None:
        """Redraw if new bars arrived or a control changed (one ``batch_update``)."""
        sym = self.symbol.value
        if not sym:
            return
        key = (
            self.feed.version,
            sym,
            self.interval.value,
            self.bars.value,
            self.show_sma.value,
            self.show_ema.value,
            self.show_bb.value,
        )
        if key == self._drawn:
            return
        n = int(self.bars.value)
        warm = max(self.window, self.ema_span, self.rsi_window) * 3
        df = self.feed.bars(sym, self.interval.value, last=n + warm)
        if df.empty:
            self._draw_header(sym, df)
            self._drawn = key
            return
        close = df["close"]
        view = df.iloc[-n:]
        x = view.index.tz_convert(None)
        tail = slice(len(df) - len(view), None)
        s_sma = sma(close, self.window).iloc[tail] if self.show_sma.value else None
        s_ema = ema(close, self.ema_span).iloc[tail] if self.show_ema.value else None
        bb = bollinger(close, self.window).iloc[tail] if self.show_bb.value else None
        s_rsi = rsi(close, self.rsi_window).iloc[tail]
        # a ticked overlay with no value to draw says why, instead of silently missing
        hints = []
        for ticked, series, what, need in (
            (self.show_sma.value, s_sma, f"SMA {self.window}", self.window),
            (self.show_ema.value, s_ema, f"EMA {self.ema_span}", self.ema_span),
            (self.show_bb.value, bb, f"Bollinger {self.window}", self.window),
            (True, s_rsi, f"RSI {self.rsi_window}", self.rsi_window + 1),
        ):
            if ticked and series is not None and not series.notna().to_numpy().any():
                hints.append(
                    f"{what} not drawn: needs {need} bars of {self.interval.value}, "
                    f"{len(df)} so far"
                )
        self._draw_header(sym, df, hints)
        d = self.fig.data
        with self.fig.batch_update():
            d[0].x, d[0].open, d[0].high, d[0].low, d[0].close = (
                x,
                view["open"].to_numpy(),
                view["high"].to_numpy(),
                view["low"].to_numpy(),
                view["close"].to_numpy(),
            )
            _line(d[1], x, s_sma)
            _line(d[2], x, s_ema)
            _line(d[3], x, None if bb is None else bb.iloc[:, _col(bb, "upper")])
            _line(d[4], x, None if bb is None else bb.iloc[:, _col(bb, "lower")])
            d[5].x, d[5].y = x, view["volume"].to_numpy()
            _line(d[6], x, s_rsi)
        self._drawn = key

    def _draw_header(self, sym: str, df: pd.DataFrame, hints: Sequence[str] = ()) -> None:
        lt = self.feed.last_trade(sym)
        base = self.feed.base_interval(sym)
        if lt is None and base != "1s":  # imported klines only (an OHLC or klines file)
            if df.empty:
                self.header.value = note_html(
                    f"{sym} has {base} bars only (imported klines, no trades): choose {base} "
                    "or a coarser interval"
                )
                return
            t = df.index[-1] + pd.Timedelta(self.interval.value)
            self.header.value = (
                f'<div class="lq-market-head" style="font-size:115%">'
                f"<b>{html.escape(sym)}</b> close <b class='lq-last-price'>"
                f"{float(df['close'].iloc[-1]):,.2f}</b> at {t:%Y-%m-%d %H:%M} UTC"
                f" · {len(df)} bars ({html.escape(self.interval.value)}, from imported"
                f" {html.escape(base)} klines)</div>"
            )
            return
        if lt is None:
            self.header.value = note_html(f"{sym}: waiting for trades...")
            return
        t = pd.Timestamp(lt.ts, unit="us", tz="UTC")
        base, quote = split_symbol(sym)
        hint = (
            f"<span class='lq-overlay-hint' style='color:#ffb74d;font-size:85%'> · "
            f"{html.escape('; '.join(hints))}</span>"
            if hints
            else ""
        )
        self.header.value = (
            f'<div class="lq-market-head" style="font-size:115%">'
            f"<b>{html.escape(sym)}</b> last <b class='lq-last-price'>{fmt(lt.price, 'price')}"
            f"</b> {html.escape(quote)} at "
            f'<span class="lq-last-tick" data-ts="{lt.ts}">{t:%H:%M:%S.%f}</span> UTC'
            f" · {len(df):,} bars of {html.escape(self.interval.value)}{hint}</div>"
        )
        f = self.fig
        if self._units != (base, quote):
            self._units = (base, quote)
            f.layout.yaxis.title.text = f"price ({quote})" if quote else "price"
            f.layout.yaxis2.title.text = f"volume ({base})" if base else "volume"


_QUOTES = ("FDUSD", "USDT", "USDC", "TUSD", "BUSD", "USD", "EUR", "BTC", "ETH", "BNB")


def split_symbol(symbol: str) -> tuple[str, str]:
    """``"BTCUSDT"`` -> ``("BTC", "USDT")`` for the axis units (``("", "")`` if unknown)."""
    for q in _QUOTES:
        if symbol.endswith(q) and len(symbol) > len(q):
            return symbol[: -len(q)], q
    return "", ""


def _col(frame: pd.DataFrame, word: str) -> int:
    for i, c in enumerate(frame.columns):
        if word in str(c).lower():
            return i
    raise KeyError(word)


def _line(trace: go.Scatter, x: pd.DatetimeIndex, y: pd.Series | None) -> None:
    if y is None:
        trace.x, trace.y = [], []
    else:
        trace.x, trace.y = x, y.to_numpy()
