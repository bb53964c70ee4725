"""lq.feeds.book.L2Book against a naive dict-of-levels model (hypothesis).

The model is the obvious one: a dict per side, sorted in full on every read. Every operation
sequence hypothesis finds must leave the book and the model with the same levels, the same
best bid/ask (and their quantities) and the same top-N arrays.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lq.feeds.book import L2Book


class NaiveBook:
    def __init__(self) -> None:
        self.side: dict[str, dict[float, float]] = {"bid": {}, "ask": {}}

    def set(self, side: str, p: float, q: float) -> None:
        if q == 0.0:
            self.side[side].pop(p, None)
        else:
            self.side[side][p] = q

    def sorted(self, side: str) -> list[tuple[float, float]]:
        return sorted(self.side[side].items(), reverse=side == "bid")


# a small price grid so that levels are hit again, deleted and re-inserted often
prices = st.integers(1, 60).map(lambda i: 100.0 + i * 0.01)
qtys = st.one_of(st.just(0.0), st.floats(1e-8, 1e6, allow_nan=False, allow_infinity=False))
changes = st.lists(st.tuples(prices, qtys), max_size=12)
diffs = st.lists(st.tuples(changes, changes), max_size=40)


def check(book: L2Book, model: NaiveBook) -> None:
    for side in ("bid", "ask"):
        want = model.sorted(side)
        assert book.levels(side) == want  # type: ignore[arg-type]
        assert book.as_dict()[side] == dict(want)  # type: ignore[index]
    bids, asks = model.sorted("bid"), model.sorted("ask")
    if bids:
        assert (book.best_bid, book.best_bid_qty) == bids[0]
    else:
        assert math.isnan(book.best_bid) and math.isnan(book.best_bid_qty)
    if asks:
        assert (book.best_ask, book.best_ask_qty) == asks[0]
    else:
        assert math.isnan(book.best_ask) and math.isnan(book.best_ask_qty)
    assert book.crossed == bool(bids and asks and bids[0][0] >= asks[0][0])
    assert len(book) == len(bids) + len(asks)
    for n in (0, 1, 5, 100):
        top = book.top(n)
        np.testing.assert_array_equal(top.bid_price, [p for p, _ in bids[:n]])
        np.testing.assert_array_equal(top.bid_qty, [q for _, q in bids[:n]])
        np.testing.assert_array_equal(top.ask_price, [p for p, _ in asks[:n]])
        np.testing.assert_array_equal(top.ask_qty, [q for _, q in asks[:n]])
        assert top.bid_price.dtype == np.float64


@settings(max_examples=300, deadline=None)
@given(snapshot=st.tuples(changes, changes), updates=diffs)
def test_book_equals_naive_dict_model_after_every_diff(snapshot, updates) -> None:
    book, model = L2Book("X"), NaiveBook()
    bids, asks = snapshot
    book.load(bids=bids, asks=asks, update_id=10)
    for side, levels in (("bid", bids), ("ask", asks)):
        for p, q in levels:
            model.set(side, p, q)
    assert book.update_id == 10
    check(book, model)
    for i, (b, a) in enumerate(updates):
        n = book.apply(bids=b, asks=a, update_id=11 + i)
        assert n == len(b) + len(a)
        for p, q in b:
            model.set("bid", p, q)
        for p, q in a:
            model.set("ask", p, q)
        assert book.update_id == 11 + i
        check(book, model)


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["bid", "ask"]), prices, qtys), max_size=80))
def test_single_level_sets_equal_naive_model(ops) -> None:
    book, model = L2Book(), NaiveBook()
    for side, p, q in ops:
        book.set(side, p, q)
        model.set(side, p, q)
        check(book, model)


def test_zero_quantity_deletes_and_deleting_an_absent_level_changes_nothing() -> None:
    book = L2Book()
    book.load(bids=[(100.0, 1.0), (99.0, 2.0)], asks=[(101.0, 1.0)], update_id=1)
    book.apply(bids=[(100.0, 0.0), (50.0, 0.0)], asks=[(200.0, 0.0)])
    assert book.levels("bid") == [(99.0, 2.0)]
    assert book.levels("ask") == [(101.0, 1.0)]
    assert book.best_bid == 99.0
    assert book.changes == 3
    book.apply(bids=[(99.0, 0.0)], asks=[(101.0, 0.0)])
    assert math.isnan(book.best_bid) and math.isnan(book.best_ask)
    assert not book.crossed


def test_locked_and_crossed_are_detected() -> None:
    book = L2Book()
    book.load(bids=[(100.0, 1.0)], asks=[(101.0, 1.0)], update_id=1)
    assert not book.crossed
    book.apply(bids=[(101.0, 1.0)], asks=[])
    assert book.crossed  # locked: bid == ask
    book.apply(bids=[(101.0, 0.0), (102.0, 1.0)], asks=[])
    assert book.crossed


def test_bad_side_and_negative_n_are_refused() -> None:
    book = L2Book()
    with pytest.raises(ValueError, match="side='buy'"):
        book.set("buy", 1.0, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n=-1"):
        book.top(-1)
