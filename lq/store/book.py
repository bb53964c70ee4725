"""Stored book snapshots as arrays: what :meth:`lq.store.Store.book` returns.

The collector stores the top N levels of each synced book every interval
(``book_snapshots``, blobs of :mod:`lq.store.bookcodec`). :class:`BookHistory` holds a range
of them as ``(snapshots, K)`` float64 arrays, best level first and NaN-padded where a side
held fewer than K levels: the shape :func:`lq.analytics.book_features` takes, so
``book_features(*h.arrays())`` gives the features of every stored snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lq.store.bookcodec import decode_side

__all__ = ["BookHistory", "decode_rows"]


@dataclass(frozen=True)
class BookHistory:
    """Book snapshots of one symbol, oldest first.

    ``ts`` (exchange time of the book's last update, µs), ``update_id`` and ``recv_ts`` are
    ``(n,)`` int64; the four level arrays are ``(n, K)`` float64, best first, NaN-padded.
    """

    exchange: str
    symbol: str
    ts: np.ndarray
    update_id: np.ndarray
    recv_ts: np.ndarray
    bid_price: np.ndarray
    bid_qty: np.ndarray
    ask_price: np.ndarray
    ask_qty: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.size)

    @property
    def levels(self) -> int:
        """K: the widest side stored in the range (columns of the level arrays)."""
        return int(self.bid_price.shape[1])

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(bid_price, bid_qty, ask_price, ask_qty)``: the arguments of ``book_features``."""
        return self.bid_price, self.bid_qty, self.ask_price, self.ask_qty

    def at(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Snapshot ``k``'s levels without the NaN padding: bid prices, bid sizes, ask
        prices, ask sizes."""
        bp, bq, ap, aq = (a[k] for a in self.arrays())
        nb, na = int(np.count_nonzero(~np.isnan(bp))), int(np.count_nonzero(~np.isnan(ap)))
        return bp[:nb], bq[:nb], ap[:na], aq[:na]

    def long(self) -> pd.DataFrame:
        """One row per (snapshot, side, level): ``ts, update_id, side, level, price, qty``
        (``side`` is ``"bid"``/``"ask"``, ``level`` 0 = best). For heatmaps and SQL-like work."""
        parts = []
        for side, price, qty in (
            ("bid", self.bid_price, self.bid_qty),
            ("ask", self.ask_price, self.ask_qty),
        ):
            mask = ~np.isnan(price)
            rows, cols = np.nonzero(mask)
            parts.append(
                pd.DataFrame(
                    {
                        "ts": self.ts[rows],
                        "update_id": self.update_id[rows],
                        "side": side,
                        "level": cols.astype(np.int64),
                        "price": price[mask],
                        "qty": qty[mask],
                    }
                )
            )
        out = pd.concat(parts, ignore_index=True)
        return out.sort_values(["ts", "update_id", "side", "level"], kind="stable").reset_index(
            drop=True
        )


def decode_rows(
    exchange: str,
    symbol: str,
    rows: Iterable[tuple[int, int, int, bytes, bytes]],
    levels: int | None = None,
) -> BookHistory:
    """:class:`BookHistory` from ``(ts, update_id, recv_ts, bids, asks)`` rows; ``levels``
    keeps at most that many levels per side."""
    rows = list(rows)
    sides = [(decode_side(b), decode_side(a)) for _, _, _, b, a in rows]
    width = max((max(b[0].size, a[0].size) for b, a in sides), default=0)
    if levels is not None:
        width = min(width, int(levels))
    n = len(rows)
    arrs = [np.full((n, width), np.nan) for _ in range(4)]
    for i, ((bp, bq), (ap, aq)) in enumerate(sides):
        nb, na = min(bp.size, width), min(ap.size, width)
        arrs[0][i, :nb], arrs[1][i, :nb] = bp[:nb], bq[:nb]
        arrs[2][i, :na], arrs[3][i, :na] = ap[:na], aq[:na]
    ints = np.array([r[:3] for r in rows], dtype=np.int64).reshape(n, 3)
    return BookHistory(
        exchange,
        symbol,
        ints[:, 0].copy(),
        ints[:, 1].copy(),
        ints[:, 2].copy(),
        *arrs,
    )
