"""What the exchange needs from a data source (replay or simulator)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from lq.exchange.market import DepthIn, DepthSnapIn, QuoteIn, SymbolSpec, TradeIn

__all__ = ["Source", "SourceItem", "format_e8", "real_time_anchor", "split_symbol"]

SourceItem = tuple[int, TradeIn | QuoteIn | DepthIn | DepthSnapIn]
"""``(pacing clock in µs, item)``: the exchange releases the item when the clock is due.
Depth items (:class:`DepthIn` diffs, :class:`DepthSnapIn` snapshots) come only from a replay
of recordings that hold depth; a consumer that does not serve books skips them."""

_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY")


@runtime_checkable
class Source(Protocol):
    """A deterministic stream of trades and quotes.

    ``speed``: 1.0 keeps the source's timing, 10.0 is ten times faster, ``None`` as fast as
    the connected clients take the frames.
    """

    speed: float | None

    def specs(self) -> list[SymbolSpec]:
        """The symbols this source lists (``exchangeInfo``)."""
        ...

    def items(self) -> Iterator[SourceItem]:
        """A fresh iterator over the items, in pacing-clock order."""
        ...


def real_time_anchor(at0: int, speed: float, now: float) -> float:
    """The loop time at which the first item (pacing clock ``at0``, µs) is due.

    A source on the real clock at real speed (the simulator, a retimed replay) is paced by the
    clock itself: no frame leaves before the event time it carries (a negative lag on one
    machine), and a source whose clock started before the server (the venues of a multi-venue
    run share one start time) catches up at once instead of staying late by the start-up time.
    Any other source (a replay of old times, another speed) starts at once.
    """
    ahead = at0 / 1e6 - time.time()
    return now + ahead if speed == 1.0 and -60 < ahead < 60 else now


def split_symbol(symbol: str) -> tuple[str, str]:
    """``"BTCUSDT"`` -> ``("BTC", "USDT")`` (a best guess from common quote assets)."""
    for q in _QUOTES:
        if symbol.endswith(q) and len(symbol) > len(q):
            return symbol[: -len(q)], q
    return symbol, "USDT"


def format_e8(units: int) -> str:
    """Format an integer count of 1e-8 as Binance's 8-decimal string."""
    sign = "-" if units < 0 else ""
    units = abs(units)
    return f"{sign}{units // 100_000_000}.{units % 100_000_000:08d}"
