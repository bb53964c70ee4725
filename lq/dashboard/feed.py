"""The dashboard's incremental view of the store: only new rows cross into the kernel.

:class:`BarFeed` keeps the last ``history`` seconds of 1 s bars per symbol and the newest
trade (for a symbol with imported klines only, its bars at the kline interval). Each :meth:`BarFeed.update` asks SQLite only for bars at or after the last bar it
holds (the last bar is re-read because the collector rolls it while trades arrive) and for
trades after the last trade id it saw. Coarser intervals are resampled from the cached 1 s
bars with :func:`lq.analytics.resample_bars`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from lq.analytics import align_prices, resample_bars
from lq.analytics.bars import interval_us
from lq.errors import LqError, ValidationError
from lq.store import Store

__all__ = ["BarFeed", "LastTrade"]

log = logging.getLogger(__name__)

US = 1_000_000


@dataclass(frozen=True, slots=True)
class LastTrade:
    """The newest stored trade of a symbol (``ts`` in µs UTC)."""

    symbol: str
    ts: int
    price: float
    trade_id: int


class BarFeed:
    """Cached 1 s bars and last trades for a few symbols, refreshed incrementally.

    Parameters
    ----------
    store
        An open :class:`lq.store.Store` (read-only).
    symbols
        The symbols to follow; :meth:`follow` adds more later.
    history
        Seconds of 1 s bars kept in memory per symbol.
    exchange
        Only rows of this exchange label (None: all).
    """

    def __init__(
        self,
        store: Store,
        symbols: Sequence[str],
        *,
        history: float = 6 * 3600,
        exchange: str | None = None,
    ) -> None:
        if history <= 0:
            raise ValidationError("history", history, "must be a positive number of seconds")
        self.store = store
        self.history_us = int(history * US)
        self.exchange = exchange
        self.version = 0  # bumps whenever any cached row changed
        self.rows_read = 0  # bars + trades read from the store so far (for tests and benches)
        self._bars: dict[str, pd.DataFrame] = {}
        self._base: dict[str, str] = {}  # interval of the cached bars, when not 1 s
        self._last_trade: dict[str, LastTrade] = {}
        self.symbols: list[str] = []
        for s in symbols:
            self.follow(s)

    def follow(self, symbol: str) -> None:
        sym = symbol.strip().upper()
        if sym and sym not in self.symbols:
            self.symbols.append(sym)

    # -- reading --------------------------------------------------------------------------
    def update(self) -> int:
        """Read what is new for every followed symbol; returns the number of rows read."""
        n = 0
        for sym in list(self.symbols):
            try:
                n += self._update_bars(sym) + self._update_trade(sym)
            except (sqlite3.OperationalError, LqError) as exc:
                # no database yet, or the collector has not created the tables: try later
                log.debug("feed update of %s failed: %s", sym, exc)
        if n:
            self.version += 1
            self.rows_read += n
        return n

    def _update_bars(self, sym: str) -> int:
        cached = self._bars.get(sym)
        base = self._base.get(sym, "1s")
        if base != "1s" and self._has_1s_bars(sym):  # trades arrived for an imported symbol
            cached, base = None, "1s"
            self._bars.pop(sym, None)
            self._base.pop(sym, None)
        if cached is None or cached.empty:
            row = self.store.conn.execute(
                "SELECT max(ts) FROM bars_1s WHERE symbol = ?", (sym,)
            ).fetchone()
            if row is None or row[0] is None:
                # no collected bars: an imported symbol (OHLC or klines) shows its klines
                kb = self._kline_base(sym)
                newest = self.store.newest_bar_ts(sym, exchange=self.exchange) if kb else None
                if kb is None or newest is None:
                    return 0
                base, newest_ts = kb, newest
            else:
                base, newest_ts = "1s", int(row[0])
            start = newest_ts - self.history_us + US
            new = self.store.bars(sym, base, start=start, exchange=self.exchange)
            self._bars[sym] = new
            self._base[sym] = base
            return len(new)
        last = int(cached["ts"].iloc[-1])
        new = self.store.bars(sym, base, start=last, exchange=self.exchange)
        if new.empty:
            return 0
        if len(new) == 1 and new.iloc[-1].equals(cached.iloc[-1]):
            return 0  # the newest bar did not change
        keep = cached[cached["ts"] < last]
        merged = pd.concat([keep, new]) if not keep.empty else new
        cutoff = int(merged["ts"].iloc[-1]) - self.history_us
        if int(merged["ts"].iloc[0]) <= cutoff:
            merged = merged[merged["ts"] > cutoff]
        self._bars[sym] = merged
        return len(new)

    def _has_1s_bars(self, sym: str) -> bool:
        row = self.store.conn.execute("SELECT 1 FROM bars_1s WHERE symbol = ? LIMIT 1", (sym,))
        return row.fetchone() is not None

    def _kline_base(self, sym: str) -> str | None:
        """The finest stored kline interval of ``sym`` that bars can be built at."""
        best: tuple[int, str] | None = None
        for iv in self.store.kline_intervals(sym):
            try:
                us = interval_us(iv)
            except ValidationError:
                continue
            if us % US == 0 and (best is None or us < best[0]):
                best = (us, iv)
        return None if best is None else best[1]

    def base_interval(self, symbol: str) -> str:
        """The interval of the cached bars: "1s" for collected symbols, the kline interval
        (e.g. "1m") for a symbol that only has imported klines. Finer views are empty."""
        return self._base.get(symbol.strip().upper(), "1s")

    def _update_trade(self, sym: str) -> int:
        prev = self._last_trade.get(sym)
        if prev is None:
            row = self.store.conn.execute(
                "SELECT max(trade_id) FROM ticks WHERE symbol = ?", (sym,)
            ).fetchone()
            if row is None or row[0] is None:
                return 0
            after = int(row[0]) - 1
        else:
            after = prev.trade_id
        df = self.store.ticks_since(sym, after, exchange=self.exchange)
        if df.empty:
            return 0
        last = df.iloc[-1]
        self._last_trade[sym] = LastTrade(
            symbol=sym,
            ts=int(last["ts"]),
            price=float(last["price"]),
            trade_id=int(last["trade_id"]),
        )
        return len(df)

    # -- views ----------------------------------------------------------------------------
    def bars(self, symbol: str, interval: str = "1s", *, last: int | None = None) -> pd.DataFrame:
        """Cached bars of ``symbol`` at ``interval`` (resampled from 1 s, or from the kline
        interval of an imported symbol: see :meth:`base_interval`), newest ``last`` rows."""
        sym = symbol.strip().upper()
        self.follow(sym)
        df = self._bars.get(sym)
        if df is None or df.empty:
            return _empty_bars()
        base = interval_us(self._base.get(sym, "1s"))
        want = interval_us(interval)
        if want % base:  # finer than the stored bars (imported 1 m klines viewed at 1 s)
            return _empty_bars()
        if want != base:
            df = resample_bars(df, interval)
        return df.iloc[-last:] if last else df

    def closes(
        self, symbols: Sequence[str], interval: str = "1s", *, last: int | None = None
    ) -> pd.DataFrame:
        """Close prices of ``symbols`` on common bar times (forward-filled; see align_prices)."""
        frames = {s.upper(): self.bars(s, interval) for s in symbols}
        frames = {s: f for s, f in frames.items() if not f.empty}
        if len(frames) < len(symbols):
            return pd.DataFrame(columns=[s.upper() for s in symbols], dtype="float64")
        prices = align_prices(frames).dropna()
        return prices.iloc[-last:] if last else prices

    def last_trade(self, symbol: str) -> LastTrade | None:
        return self._last_trade.get(symbol.strip().upper())

    def newest_ts(self) -> int | None:
        """The newest cached bar time over all symbols (µs), or None."""
        ts = [int(df["ts"].iloc[-1]) for df in self._bars.values() if not df.empty]
        return max(ts) if ts else None


def _empty_bars() -> pd.DataFrame:
    cols = ["ts", "open", "high", "low", "close", "volume", "quote_volume", "trades", "vwap"]
    df = pd.DataFrame(
        {c: pd.Series(dtype="int64" if c in ("ts", "trades") else "float64") for c in cols}
    )
    df.index = pd.DatetimeIndex([], tz="UTC", name="time")
    return df
