"""A local L2 order book: sorted price levels per side, pure and sans-I/O.

:class:`L2Book` holds, per side, a ``dict`` price -> quantity and a sorted list of the
prices (``sortedcontainers.SortedList``: O(log n) insert and remove, a list of short sorted
lists, so no O(n) shifting of one big array). The best bid and ask are cached and read in
O(1); only deleting the best level looks up the next one (``SortedList[-1]``/``[0]``, O(1)).
Changing the quantity of an existing level is a single dict store.

Binance's diff semantics (``shared/reference/binance-protocol.md`` §1.6): a level change is
``(price, quantity)`` and sets the level's **absolute** quantity; a quantity of 0 deletes the
level (deleting a level the book does not hold is allowed and changes nothing: the level may
lie outside the REST snapshot's 1,000/5,000 levels). Prices are the float64 of Binance's
decimal strings, parsed once; the same string always gives the same float, so levels are
keyed by exact float equality.

The book does not check the sequence of updates: that is :class:`lq.feeds.booksync.BookSync`,
which owns a book and feeds it only updates that follow the documented procedure.

Examples
--------
>>> b = L2Book("BTCUSDT")
>>> b.load(bids=[(100.0, 1.0), (99.0, 2.0)], asks=[(101.0, 3.0)], update_id=7)
>>> b.apply(bids=[(100.0, 0.0)], asks=[(100.5, 0.5)], update_id=8)
2
>>> b.best_bid, b.best_bid_qty, b.best_ask, b.best_ask_qty
(99.0, 2.0, 100.5, 0.5)
>>> b.top(2).ask_price.tolist()
[100.5, 101.0]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from sortedcontainers import SortedList

__all__ = ["L2Book", "Side", "TopOfBook"]

Side = Literal["bid", "ask"]

_NAN = math.nan
Float64Array = npt.NDArray[np.float64]


class TopOfBook(NamedTuple):
    """The top ``n`` levels of each side as float64 arrays, best first.

    A side with fewer than ``n`` levels gives shorter arrays (never padding).
    """

    bid_price: Float64Array
    bid_qty: Float64Array
    ask_price: Float64Array
    ask_qty: Float64Array


class L2Book:
    """Price levels of one symbol, sorted per side; best bid/ask in O(1).

    Parameters
    ----------
    symbol
        The exchange symbol (informational).

    Attributes
    ----------
    update_id
        The last update id applied (``lastUpdateId`` of the snapshot, then each diff's
        ``u``); ``-1`` for an empty book that was never loaded.
    changes
        Level changes applied since creation (inserts, quantity changes and deletes, also
        deletes of absent levels).
    """

    __slots__ = (
        "_ask_px",
        "_asks",
        "_ba",
        "_bb",
        "_bid_px",
        "_bids",
        "changes",
        "symbol",
        "update_id",
    )

    def __init__(self, symbol: str = "") -> None:
        self.symbol = symbol
        self._bids: dict[float, float] = {}
        self._asks: dict[float, float] = {}
        self._bid_px = SortedList()
        self._ask_px = SortedList()
        self._bb = _NAN
        self._ba = _NAN
        self.update_id = -1
        self.changes = 0

    # -- writes ---------------------------------------------------------------------------

    def clear(self) -> None:
        """Remove every level; ``update_id`` becomes -1."""
        self._bids.clear()
        self._asks.clear()
        self._bid_px.clear()
        self._ask_px.clear()
        self._bb = self._ba = _NAN
        self.update_id = -1

    def load(
        self,
        *,
        bids: Iterable[tuple[float, float]],
        asks: Iterable[tuple[float, float]],
        update_id: int,
    ) -> None:
        """Replace the whole book by a snapshot (levels with quantity 0 are skipped; a price
        given twice keeps its last quantity)."""
        self.clear()
        # a repeated price: the last one wins, as if the levels were applied in order
        self._bids = {p: q for p, q in dict(bids).items() if q > 0.0}
        self._asks = {p: q for p, q in dict(asks).items() if q > 0.0}
        self._bid_px = SortedList(self._bids)
        self._ask_px = SortedList(self._asks)
        self._bb = self._bid_px[-1] if self._bids else _NAN
        self._ba = self._ask_px[0] if self._asks else _NAN
        self.update_id = update_id

    def set(self, side: Side, price: float, qty: float) -> None:
        """Set one level's absolute quantity; ``qty == 0`` deletes it."""
        if side == "bid":
            self.apply(bids=((price, qty),), asks=())
        elif side == "ask":
            self.apply(bids=(), asks=((price, qty),))
        else:
            raise ValueError(f"side={side!r}: expected 'bid' or 'ask'")

    def apply(
        self,
        *,
        bids: Iterable[tuple[float, float]],
        asks: Iterable[tuple[float, float]],
        update_id: int | None = None,
    ) -> int:
        """Apply one diff's level changes (bids, then asks) and return how many there were.

        Each ``(price, qty)`` sets the level's absolute quantity; ``qty == 0`` deletes it.
        ``update_id`` (the diff's ``u``), when given, becomes :attr:`update_id`.
        """
        n = 0
        d = self._bids
        px = self._bid_px
        add, remove, pop = px.add, px.remove, d.pop
        best = self._bb
        for p, q in bids:
            n += 1
            if q > 0.0:
                if p not in d:
                    add(p)
                    if not p <= best:  # also when best is NaN (empty side)
                        best = p
                d[p] = q
            elif pop(p, None) is not None:
                remove(p)
                if p == best:
                    best = px[-1] if px else _NAN
        self._bb = best
        d = self._asks
        px = self._ask_px
        add, remove, pop = px.add, px.remove, d.pop
        best = self._ba
        for p, q in asks:
            n += 1
            if q > 0.0:
                if p not in d:
                    add(p)
                    if not p >= best:
                        best = p
                d[p] = q
            elif pop(p, None) is not None:
                remove(p)
                if p == best:
                    best = px[0] if px else _NAN
        self._ba = best
        self.changes += n
        if update_id is not None:
            self.update_id = update_id
        return n

    # -- reads, O(1) ----------------------------------------------------------------------

    @property
    def best_bid(self) -> float:
        """Highest bid price; NaN when the bid side is empty."""
        return self._bb

    @property
    def best_ask(self) -> float:
        """Lowest ask price; NaN when the ask side is empty."""
        return self._ba

    @property
    def best_bid_qty(self) -> float:
        """Quantity at the best bid; NaN when the bid side is empty."""
        return self._bids[self._bb] if self._bids else _NAN

    @property
    def best_ask_qty(self) -> float:
        """Quantity at the best ask; NaN when the ask side is empty."""
        return self._asks[self._ba] if self._asks else _NAN

    @property
    def crossed(self) -> bool:
        """True when the book is crossed or locked: best bid >= best ask (both sides held)."""
        return self._bb >= self._ba  # False when either is NaN

    @property
    def bid_levels(self) -> int:
        """Number of bid levels held."""
        return len(self._bids)

    @property
    def ask_levels(self) -> int:
        """Number of ask levels held."""
        return len(self._asks)

    def __len__(self) -> int:
        return len(self._bids) + len(self._asks)

    def qty(self, side: Side, price: float) -> float:
        """The quantity at ``price`` on ``side`` (0.0 when there is no such level)."""
        d = self._bids if side == "bid" else self._asks
        return d.get(price, 0.0)

    # -- reads, O(n) ----------------------------------------------------------------------

    def levels(self, side: Side, n: int | None = None) -> list[tuple[float, float]]:
        """``(price, qty)`` of ``side``, best first; the first ``n`` when given."""
        if side == "bid":
            d, it = (
                self._bids,
                self._bid_px.islice(
                    None if n is None else max(len(self._bid_px) - n, 0), None, reverse=True
                ),
            )
        elif side == "ask":
            d, it = self._asks, self._ask_px.islice(0, n)
        else:
            raise ValueError(f"side={side!r}: expected 'bid' or 'ask'")
        return [(p, d[p]) for p in it]

    def iter_levels(self, side: Side) -> Iterator[tuple[float, float]]:
        """``(price, qty)`` of ``side``, best first, lazily (stop whenever you like: taking
        the first ``k`` costs O(k + log levels)). Do not change the book while iterating."""
        if side == "bid":
            d, it = self._bids, self._bid_px.islice(reverse=True)
        elif side == "ask":
            d, it = self._asks, self._ask_px.islice()
        else:
            raise ValueError(f"side={side!r}: expected 'bid' or 'ask'")
        for p in it:
            yield p, d[p]

    def prices_between(
        self,
        side: Side,
        low: float,
        high: float,
        *,
        inclusive: tuple[bool, bool] = (True, False),
    ) -> Iterator[float]:
        """Prices of ``side`` held between ``low`` and ``high``, ascending (O(log n + k));
        ``inclusive`` says whether each bound is included (default ``low <= p < high``)."""
        if side == "bid":
            px = self._bid_px
        elif side == "ask":
            px = self._ask_px
        else:
            raise ValueError(f"side={side!r}: expected 'bid' or 'ask'")
        return iter(px.irange(low, high, inclusive=inclusive))

    def top(self, n: int) -> TopOfBook:
        """The top ``n`` levels per side as arrays, best first (O(n + log levels))."""
        if n < 0:
            raise ValueError(f"n={n}: expected a number of levels >= 0")
        b = self.levels("bid", n)
        a = self.levels("ask", n)
        bp = np.fromiter((p for p, _ in b), dtype=np.float64, count=len(b))
        bq = np.fromiter((q for _, q in b), dtype=np.float64, count=len(b))
        ap = np.fromiter((p for p, _ in a), dtype=np.float64, count=len(a))
        aq = np.fromiter((q for _, q in a), dtype=np.float64, count=len(a))
        return TopOfBook(bp, bq, ap, aq)

    def as_dict(self) -> dict[Side, dict[float, float]]:
        """A copy of both sides as ``{price: qty}`` dicts (for tests and comparisons)."""
        return {"bid": dict(self._bids), "ask": dict(self._asks)}

    def __repr__(self) -> str:
        return (
            f"L2Book({self.symbol!r}, update_id={self.update_id}, "
            f"bid={self._bb} x {len(self._bids)} levels, ask={self._ba} x {len(self._asks)} levels)"
        )
