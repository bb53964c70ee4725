"""Order-book features: a streaming class fed after every book update, and its batch twin.

Definitions (``b``/``a`` best bid/ask, ``qb``/``qa`` their quantities; NaN whenever a side
is empty or a feature is undefined):

====================  ========================================================================
feature               definition
====================  ========================================================================
``mid``               ``(b + a) / 2``
``spread_bps``        ``(a - b) / mid * 1e4``
``imbalance``         top-of-book ``(qb - qa) / (qb + qa)``, in ``[-1, 1]``
``micro_price``       the size-weighted mid ``(b * qa + a * qb) / (qb + qa)``: it leans to
                      the side with less size, where the next move is likelier. Stoikov
                      (2018, "The micro-price") calls this the *weighted mid*; his
                      micro-price adds a correction estimated from a Markov chain of
                      imbalance and spread, which this is not
``bid_depth``         sum of bid quantities priced ``>= mid * (1 - bps / 1e4)``
``ask_depth``         sum of ask quantities priced ``<= mid * (1 + bps / 1e4)``
``depth_imbalance``   ``(Qb - Qa) / (Qb + Qa)`` with ``Q`` the quantity of the top ``levels``
                      levels of each side
``bid_slope``,        the book's slope per side: the OLS slope of the cumulative quantity of
``ask_slope``         the top ``levels`` levels on their distance from the mid in bps
                      (quantity per bp; Næs and Skjeltorp 2006 use the same idea); NaN with
                      fewer than 2 levels
``ofi``               order-flow imbalance of this update (Cont, Kukanov and Stoikov 2014,
                      eq. 2): ``e = 1{b >= b'} qb - 1{b <= b'} qb' - 1{a <= a'} qa
                      + 1{a >= a'} qa'`` against the previous update's best levels ``b'``,
                      ``qb'``, ``a'``, ``qa'``; NaN at the first update
``ofi_sum``           the running sum of ``ofi`` (streaming only; ``np.nansum`` of the batch
                      column)
====================  ========================================================================

Cost per update: ``mid`` to ``micro_price`` and ``ofi`` are O(1); ``depth_imbalance`` and the
slopes read the top ``levels`` levels, O(levels); the depth within ``bps`` is kept
incrementally from the diff's level changes, O(changes + levels the moving band edge
crosses) (a real BTCUSDT band of 10 bps holds 200-250 levels per side; walking it on every
update cost 4-7x more on that replay). None depends on how many levels the book holds.

:class:`BookFeatures` reads any object with the :class:`BookLike` interface
(:class:`lq.feeds.L2Book`); :func:`book_features` takes arrays of the top levels, one row per
update (best first, NaN-padded), as stored book snapshots are. The two agree to 1e-9
(``tests/analytics/test_orderbook.py``, hypothesis).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["FEATURE_COLUMNS", "BookFeatures", "BookLike", "book_features", "order_flow_imbalance"]

FEATURE_COLUMNS: tuple[str, ...] = (
    "mid",
    "spread_bps",
    "imbalance",
    "micro_price",
    "bid_depth",
    "ask_depth",
    "depth_imbalance",
    "bid_slope",
    "ask_slope",
    "ofi",
)

_NAN = math.nan


class BookLike(Protocol):
    """What :class:`BookFeatures` reads from a book (:class:`lq.feeds.L2Book` has it)."""

    @property
    def best_bid(self) -> float: ...
    @property
    def best_ask(self) -> float: ...
    @property
    def best_bid_qty(self) -> float: ...
    @property
    def best_ask_qty(self) -> float: ...
    def iter_levels(self, side: Literal["bid", "ask"]) -> Iterator[tuple[float, float]]: ...
    def qty(self, side: Literal["bid", "ask"], price: float) -> float: ...
    def prices_between(
        self,
        side: Literal["bid", "ask"],
        low: float,
        high: float,
        *,
        inclusive: tuple[bool, bool] = ...,
    ) -> Iterator[float]: ...


Levels = Iterable[tuple[float, float]]


class _Band:
    """The quantity one side holds inside the band, kept incrementally.

    ``held`` mirrors the book's levels inside the band as it was last placed (``edge``);
    the level changes of each diff adjust it, and moving the edge adds or removes only the
    levels it crosses (``prices_between``), so an update costs O(changes + levels crossed),
    not O(levels in the band). The sum is compensated (Neumaier) and recomputed exactly
    (``math.fsum``) every 1,024 updates, so it cannot drift from the batch twin's plain sum.
    """

    __slots__ = ("_c", "_n", "_s", "edge", "held", "side")

    def __init__(self, side: Literal["bid", "ask"]) -> None:
        self.side: Literal["bid", "ask"] = side
        self.held: dict[float, float] = {}
        self.edge = _NAN
        self._s = 0.0
        self._c = 0.0
        self._n = 0

    def _add(self, x: float) -> None:
        s = self._s
        t = s + x
        if abs(s) >= abs(x):
            self._c += (s - t) + x
        else:
            self._c += (x - t) + s
        self._s = t

    def _inside(self, p: float, edge: float) -> bool:
        return p >= edge if self.side == "bid" else p <= edge

    def rebuild(self, book: BookLike, edge: float) -> float:
        held: dict[float, float] = {}
        for p, q in book.iter_levels(self.side):
            if not self._inside(p, edge):
                break
            held[p] = q
        self.held = held
        self.edge = edge
        self._s = math.fsum(held.values())
        self._c = 0.0
        self._n = 0
        return self._s

    def update(self, book: BookLike, changes: Levels, edge: float) -> float:
        old_edge = self.edge
        held = self.held
        for p, q in changes:
            if self._inside(p, old_edge):
                was = held.pop(p, 0.0)
                if q > 0.0:
                    held[p] = q
                self._add(q - was)
        side = self.side
        if edge != old_edge:
            if side == "bid":
                if edge < old_edge:  # wider: add [edge, old_edge)
                    for p in book.prices_between(side, edge, old_edge):
                        q = book.qty(side, p)
                        held[p] = q
                        self._add(q)
                else:  # narrower: drop [old_edge, edge)
                    for p in book.prices_between(side, old_edge, edge):
                        was = held.pop(p, 0.0)
                        if was:
                            self._add(-was)
            elif edge > old_edge:  # asks, wider: add (old_edge, edge]
                for p in book.prices_between(side, old_edge, edge, inclusive=(False, True)):
                    q = book.qty(side, p)
                    held[p] = q
                    self._add(q)
            else:  # asks, narrower: drop (edge, old_edge]
                for p in book.prices_between(side, edge, old_edge, inclusive=(False, True)):
                    was = held.pop(p, 0.0)
                    if was:
                        self._add(-was)
            self.edge = edge
        self._n += 1
        if self._n >= 1024:
            self._s, self._c, self._n = math.fsum(held.values()), 0.0, 0
        return self._s + self._c


def _check(levels: int, bps: float) -> None:
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ValueError(f"levels={levels!r}: expected a whole number of levels >= 1")
    if not (isinstance(bps, int | float) and math.isfinite(bps) and bps >= 0):
        raise ValueError(f"bps={bps!r}: expected a finite band width in bps >= 0")


def _slope(x: list[float], y: list[float]) -> float:
    n = len(x)
    if n < 2:
        return _NAN
    mx = sum(x) / n
    my = sum(y) / n
    sxx = sum((xi - mx) ** 2 for xi in x)
    if sxx == 0.0:
        return _NAN
    return sum((xi - mx) * (yi - my) for xi, yi in zip(x, y, strict=True)) / sxx


class BookFeatures:
    """Streaming order-book features: call :meth:`update` after each book update.

    Parameters
    ----------
    levels
        Levels per side for ``depth_imbalance`` and the slopes.
    bps
        Half-width of the band for ``bid_depth``/``ask_depth``, in bps of the mid.

    Examples
    --------
    >>> from lq.feeds import L2Book
    >>> book = L2Book()
    >>> book.load(bids=[(100.0, 2.0)], asks=[(101.0, 1.0)], update_id=1)
    >>> f = BookFeatures(levels=5, bps=100)
    >>> f.update(book)
    >>> f.mid, f.imbalance, round(f.micro_price, 6)
    (100.5, 0.3333333333333333, 100.666667)
    >>> _ = book.apply(bids=[(100.0, 3.0)], asks=[])
    >>> f.update(book)
    >>> f.ofi  # bid size +1 at an unchanged best bid
    1.0
    """

    __slots__ = (
        "_band_a",
        "_band_b",
        "_bps",
        "_levels",
        "_prev",
        "ask_depth",
        "ask_slope",
        "bid_depth",
        "bid_slope",
        "count",
        "depth_imbalance",
        "imbalance",
        "micro_price",
        "mid",
        "ofi",
        "ofi_sum",
        "spread_bps",
    )

    def __init__(self, *, levels: int = 10, bps: float = 10.0) -> None:
        _check(levels, bps)
        self._levels = levels
        self._bps = float(bps)
        self._prev: tuple[float, float, float, float] | None = None
        self._band_b = _Band("bid")
        self._band_a = _Band("ask")
        self.count = 0
        """Updates seen."""
        self.mid = self.spread_bps = self.imbalance = self.micro_price = _NAN
        self.bid_depth = self.ask_depth = self.depth_imbalance = _NAN
        self.bid_slope = self.ask_slope = self.ofi = _NAN
        self.ofi_sum = 0.0
        """Running sum of ``ofi`` over the updates where it is defined."""

    def update(
        self, book: BookLike, bids: Levels | None = None, asks: Levels | None = None
    ) -> None:
        """Read the book's state after one update.

        Parameters
        ----------
        book
            The book, after the update was applied.
        bids, asks
            The level changes that update applied (a diff's ``bids``/``asks``): the depth
            within ``bps`` is then kept incrementally. Leave both out after anything else
            (a snapshot load, a resync, changes you did not see): the band is rebuilt from
            the book, O(levels in the band). Passing changes that were not applied (or
            omitting some) makes ``bid_depth``/``ask_depth`` wrong until the next rebuild.
        """
        self.count += 1
        b, a = book.best_bid, book.best_ask
        qb, qa = book.best_bid_qty, book.best_ask_qty
        prev = self._prev
        self._prev = (b, qb, a, qa)
        ofi = _NAN
        if prev is not None:
            b0, qb0, a0, qa0 = prev
            ofi = (
                (qb if b >= b0 else 0.0)
                - (qb0 if b <= b0 else 0.0)
                - (qa if a <= a0 else 0.0)
                + (qa0 if a >= a0 else 0.0)
            )
            if math.isnan(b0) or math.isnan(a0) or math.isnan(b) or math.isnan(a):
                ofi = _NAN
        self.ofi = ofi
        if not math.isnan(ofi):
            self.ofi_sum += ofi
        bb, ba = self._band_b, self._band_a
        if math.isnan(b) or math.isnan(a):
            self.mid = self.spread_bps = self.imbalance = self.micro_price = _NAN
            self.bid_depth = self.ask_depth = self.depth_imbalance = _NAN
            self.bid_slope = self.ask_slope = _NAN
            bb.edge = ba.edge = _NAN  # rebuild the bands when both sides are back
            return
        mid = (b + a) / 2.0
        self.mid = mid
        self.spread_bps = (a - b) / mid * 1e4
        self.imbalance = (qb - qa) / (qb + qa)
        self.micro_price = (b * qa + a * qb) / (qb + qa)
        lo = mid * (1.0 - self._bps / 1e4)
        hi = mid * (1.0 + self._bps / 1e4)
        if (bids is None and asks is None) or math.isnan(bb.edge):
            self.bid_depth = bb.rebuild(book, lo)
            self.ask_depth = ba.rebuild(book, hi)
        else:
            self.bid_depth = bb.update(book, bids or (), lo)
            self.ask_depth = ba.update(book, asks or (), hi)
        k = self._levels
        tops = []
        for side in ("bid", "ask"):
            cum = 0.0
            xs: list[float] = []
            ys: list[float] = []
            for i, (p, q) in enumerate(book.iter_levels(side)):  # type: ignore[arg-type]
                if i >= k:
                    break
                cum += q
                xs.append(((mid - p) if side == "bid" else (p - mid)) / mid * 1e4)
                ys.append(cum)
            tops.append((cum, _slope(xs, ys)))
        (qk_b, self.bid_slope), (qk_a, self.ask_slope) = tops
        self.depth_imbalance = (qk_b - qk_a) / (qk_b + qk_a)

    def values(self) -> dict[str, float]:
        """The current features by :data:`FEATURE_COLUMNS` name."""
        return {c: getattr(self, c) for c in FEATURE_COLUMNS}


def order_flow_imbalance(
    bid: npt.ArrayLike, bid_qty: npt.ArrayLike, ask: npt.ArrayLike, ask_qty: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Cont-Kukanov-Stoikov order-flow imbalance per update from best-level series.

    ``e[n] = 1{b[n] >= b[n-1]} qb[n] - 1{b[n] <= b[n-1]} qb[n-1] - 1{a[n] <= a[n-1]} qa[n]
    + 1{a[n] >= a[n-1]} qa[n-1]``; ``e[0]`` and any step touching a NaN price are NaN.

    Examples
    --------
    >>> order_flow_imbalance([100, 100, 100.5], [2, 3, 1], [101, 101, 101], [1, 1, 1]).tolist()
    [nan, 1.0, 1.0]
    """
    b = np.asarray(bid, dtype=np.float64)
    qb = np.asarray(bid_qty, dtype=np.float64)
    a = np.asarray(ask, dtype=np.float64)
    qa = np.asarray(ask_qty, dtype=np.float64)
    out = np.full(b.shape, np.nan)
    if b.size < 2:
        return out
    b0, b1, a0, a1 = b[:-1], b[1:], a[:-1], a[1:]
    e = (
        np.where(b1 >= b0, qb[1:], 0.0)
        - np.where(b1 <= b0, qb[:-1], 0.0)
        - np.where(a1 <= a0, qa[1:], 0.0)
        + np.where(a1 >= a0, qa[:-1], 0.0)
    )
    bad = np.isnan(b0) | np.isnan(b1) | np.isnan(a0) | np.isnan(a1)
    out[1:] = np.where(bad, np.nan, e)
    return out


def _side_slope(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    ok = ~np.isnan(x)
    n = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.where(ok, x, 0.0).sum(axis=1) / n
        my = np.where(ok, y, 0.0).sum(axis=1) / n
        dx = np.where(ok, x - mx[:, None], 0.0)
        dy = np.where(ok, y - my[:, None], 0.0)
        sxx = (dx * dx).sum(axis=1)
        s = (dx * dy).sum(axis=1) / sxx
    return np.where((n >= 2) & (sxx > 0), s, np.nan)


def book_features(
    bid_price: npt.ArrayLike,
    bid_qty: npt.ArrayLike,
    ask_price: npt.ArrayLike,
    ask_qty: npt.ArrayLike,
    *,
    levels: int = 10,
    bps: float = 10.0,
    index: pd.Index | None = None,
) -> pd.DataFrame:
    """The batch twin of :class:`BookFeatures`: one row of features per book state.

    Parameters
    ----------
    bid_price, bid_qty, ask_price, ask_qty
        Arrays of shape ``(updates, K)``: the top ``K`` levels of each side after each
        update, best first, NaN-padded where a side holds fewer levels. ``bid_depth`` and
        ``ask_depth`` sum what the ``K`` levels hold inside the band, so give enough levels
        to reach ``bps``.
    levels, bps
        As for :class:`BookFeatures`.
    index
        Index of the result (for example the update times); a RangeIndex by default.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`FEATURE_COLUMNS`.

    Examples
    --------
    >>> df = book_features([[100.0, 99.0]], [[2.0, 1.0]], [[101.0, 102.0]], [[1.0, 4.0]],
    ...                    levels=2, bps=100)
    >>> df[["mid", "imbalance", "depth_imbalance", "bid_depth", "ask_depth"]].iloc[0].tolist()
    [100.5, 0.3333333333333333, -0.25, 2.0, 1.0]
    """
    _check(levels, bps)
    bp, bq, ap, aq = (
        np.atleast_2d(np.asarray(v, dtype=np.float64))
        for v in (bid_price, bid_qty, ask_price, ask_qty)
    )
    if not (bp.shape == bq.shape and ap.shape == aq.shape and bp.shape[0] == ap.shape[0]):
        raise ValueError(
            f"book_features: prices and quantities must have matching shapes (updates, K); "
            f"got bids {bp.shape}/{bq.shape}, asks {ap.shape}/{aq.shape}"
        )
    b, a = bp[:, 0], ap[:, 0]
    qb, qa = bq[:, 0], aq[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mid = (b + a) / 2.0
        spread = (a - b) / mid * 1e4
        imb = (qb - qa) / (qb + qa)
        micro = (b * qa + a * qb) / (qb + qa)
        lo = mid * (1.0 - bps / 1e4)
        hi = mid * (1.0 + bps / 1e4)
        bid_depth = np.where(bp >= lo[:, None], np.nan_to_num(bq), 0.0).sum(axis=1)
        ask_depth = np.where(ap <= hi[:, None], np.nan_to_num(aq), 0.0).sum(axis=1)
        kb = np.nan_to_num(bq[:, :levels]).sum(axis=1)
        ka = np.nan_to_num(aq[:, :levels]).sum(axis=1)
        depth_imb = (kb - ka) / (kb + ka)
        xb = (mid[:, None] - bp[:, :levels]) / mid[:, None] * 1e4
        xa = (ap[:, :levels] - mid[:, None]) / mid[:, None] * 1e4
        yb = np.cumsum(np.nan_to_num(bq[:, :levels]), axis=1)
        ya = np.cumsum(np.nan_to_num(aq[:, :levels]), axis=1)
        bid_slope = _side_slope(xb, yb)
        ask_slope = _side_slope(xa, ya)
    empty = np.isnan(b) | np.isnan(a)
    cols = {
        "mid": mid,
        "spread_bps": spread,
        "imbalance": imb,
        "micro_price": micro,
        "bid_depth": bid_depth,
        "ask_depth": ask_depth,
        "depth_imbalance": depth_imb,
        "bid_slope": bid_slope,
        "ask_slope": ask_slope,
    }
    out = {k: np.where(empty, np.nan, v) for k, v in cols.items()}
    out["ofi"] = order_flow_imbalance(b, qb, a, qa)
    return pd.DataFrame(out, index=index, columns=list(FEATURE_COLUMNS))
