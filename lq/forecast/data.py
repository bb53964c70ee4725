"""Bars for forecasting from the store (I/O): OHLCV plus taker flow and the best quotes.

:func:`load_bars` reads the bars of one symbol (as :func:`lq.backtest.runs.load_bars`
does, with the same ``start``/``end``/``last`` range and the same clear error when a
symbol has no data) and adds what the features need:

* ``buy_volume`` / ``sell_volume`` (``flow=True``): taker-buy and taker-sell volume of
  each bar, summed from the stored ticks (``is_buyer_maker`` true means the buyer was the
  maker, so the seller took: a sell). Bars whose ticks were purged by retention get NaN;
  the flow features skip them.
* ``bid``, ``ask``, ``bid_qty``, ``ask_qty`` (``book=True``): the book ticker standing at
  each bar's close (the last update before the bar's end; NaN before the first one).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import pandas as pd

from lq.store.reader import Store

__all__ = ["add_book", "add_flow", "load_bars"]

log = logging.getLogger(__name__)


def add_flow(
    store: Store, bars: pd.DataFrame, symbol: str, step_us: int, *, exchange: str | None = None
) -> pd.DataFrame:
    """``bars`` with ``buy_volume`` and ``sell_volume`` summed from the stored ticks."""
    out = bars.copy()
    n = len(out)
    buy = np.full(n, np.nan)
    sell = np.full(n, np.nan)
    if n:
        ts = out["ts"].to_numpy(dtype=np.int64)
        ticks = store.ticks(symbol, int(ts[0]), int(ts[-1] + step_us), exchange=exchange)
        if ticks.empty:
            log.warning("no ticks stored for %s in the bars' range: flow features are NaN", symbol)
        else:
            tts = ticks["ts"].to_numpy(dtype=np.int64)
            pos = np.searchsorted(ts, tts // step_us * step_us, side="left")
            ok = (pos < n) & (ts[np.minimum(pos, n - 1)] == tts // step_us * step_us)
            qty = ticks["qty"].to_numpy(dtype=np.float64)
            seller_took = ticks["is_buyer_maker"].to_numpy().astype(bool)
            b = np.bincount(pos[ok], weights=np.where(seller_took[ok], 0.0, qty[ok]), minlength=n)
            s = np.bincount(pos[ok], weights=np.where(seller_took[ok], qty[ok], 0.0), minlength=n)
            seen = np.bincount(pos[ok], minlength=n) > 0
            buy[seen] = b[seen]
            sell[seen] = s[seen]
    out["buy_volume"] = buy
    out["sell_volume"] = sell
    return out


def add_book(store: Store, bars: pd.DataFrame, symbol: str, step_us: int) -> pd.DataFrame:
    """``bars`` with the best bid/ask (and sizes) standing at each bar's close."""
    out = bars.copy()
    n = len(out)
    cols = {c: np.full(n, np.nan) for c in ("bid", "ask", "bid_qty", "ask_qty")}
    if n:
        ts = out["ts"].to_numpy(dtype=np.int64)
        book = store.book_tickers(symbol, None, int(ts[-1] + step_us))
        if book.empty:
            log.warning("no book tickers stored for %s: book features are NaN", symbol)
        else:
            bts = book["ts"].to_numpy(dtype=np.int64)
            pos = np.searchsorted(bts, ts + step_us, side="left") - 1
            ok = pos >= 0
            for c in cols:
                cols[c][ok] = book[c].to_numpy(dtype=np.float64)[pos[ok]]
    for c, v in cols.items():
        out[c] = v
    return out


def load_bars(
    db: str | os.PathLike[str],
    symbol: str,
    *,
    interval: str = "1s",
    start: Any = None,
    end: Any = None,
    last: str | float | None = None,
    flow: bool = True,
    book: bool = False,
    exchange: str | None = None,
) -> pd.DataFrame:
    """Bars of ``symbol`` ready for :func:`lq.forecast.build_features`.

    Raises :class:`~lq.errors.BacktestError` naming the symbol and what is stored when
    there are no bars in the range (the same message as the backtests').
    """
    from lq.analytics.bars import interval_us
    from lq.backtest.runs import load_bars as _bars

    step = interval_us(interval)
    bars = _bars(db, symbol, interval=interval, start=start, end=end, last=last)
    assert isinstance(bars, pd.DataFrame)
    if flow or book:
        with Store(db) as store:
            if flow:
                bars = add_flow(store, bars, symbol.upper(), step, exchange=exchange)
            if book:
                bars = add_book(store, bars, symbol.upper(), step)
    bars.attrs["symbol"] = symbol.upper()
    bars.attrs["interval_us"] = step
    return bars
