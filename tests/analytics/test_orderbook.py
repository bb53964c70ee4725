"""lq.analytics.orderbook: hand-computed features on a 5-update book, streaming == batch
(hypothesis), and the slope against numpy.polyfit."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lq.analytics.orderbook import (
    FEATURE_COLUMNS,
    BookFeatures,
    book_features,
    order_flow_imbalance,
)
from lq.feeds.book import L2Book
from lq.feeds.depth import DepthParser
from lq.feeds.events import DepthSnapshot, DepthUpdate

# The 5-update example, worked by hand (b/qb best bid and size, a/qa best ask and size).
#
#  n  diff applied                         b     qb  a     qa
#  0  snapshot bids 100x2, asks 101x1      100   2   101   1
#  1  bid 100 -> 3                         100   3   101   1
#  2  new bid 100.5x1                      100.5 1   101   1
#  3  new ask 100.8x4                      100.5 1   100.8 4
#  4  bid 100.5 deleted, bid 100 -> 5,     100   5   100.8 2
#     ask 100.8 -> 2
#
# micro-price (b*qa + a*qb)/(qb+qa):
#  0: (100*1 + 101*2)/3 = 302/3 = 100.6666...   1: (100*1 + 101*3)/4 = 403/4 = 100.75
#  2: (100.5*1 + 101*1)/2 = 100.75              3: (100.5*4 + 100.8*1)/5 = 502.8/5 = 100.56
#  4: (100*2 + 100.8*5)/7 = 704/7 = 100.571428...
# imbalance (qb-qa)/(qb+qa): 1/3, 2/4 = 0.5, 0/2 = 0, (1-4)/5 = -0.6, (5-2)/7 = 3/7
# OFI (Cont, Kukanov, Stoikov 2014, eq. 2),
#   e = 1{b>=b'}qb - 1{b<=b'}qb' - 1{a<=a'}qa + 1{a>=a'}qa':
#  1: b same  -> +3 - 2; a same -> -1 + 1            = +1
#  2: b up    -> +1;     a same -> -1 + 1            = +1
#  3: b same  -> +1 - 1; a down -> -4                = -4
#  4: b down  -> -1;     a same -> -2 + 4            = +1      (sum: -1)
MICRO = [302 / 3, 100.75, 100.75, 100.56, 704 / 7]
IMBALANCE = [1 / 3, 0.5, 0.0, -0.6, 3 / 7]
OFI = [math.nan, 1.0, 1.0, -4.0, 1.0]


def five_updates() -> tuple[list[dict[str, float]], L2Book, list[tuple[list, list]]]:
    book = L2Book()
    book.load(bids=[(100.0, 2.0)], asks=[(101.0, 1.0)], update_id=0)
    diffs = [
        ([(100.0, 3.0)], []),
        ([(100.5, 1.0)], []),
        ([], [(100.8, 4.0)]),
        ([(100.5, 0.0), (100.0, 5.0)], [(100.8, 2.0)]),
    ]
    f = BookFeatures(levels=3, bps=50)
    rows = []
    f.update(book)
    rows.append(f.values())
    for b, a in diffs:
        book.apply(bids=b, asks=a)
        f.update(book)
        rows.append(f.values())
    assert f.ofi_sum == pytest.approx(-1.0, abs=1e-12)
    return rows, book, diffs


def test_hand_computed_micro_price_imbalance_and_ofi() -> None:
    rows, _, _ = five_updates()
    assert [r["micro_price"] for r in rows] == pytest.approx(MICRO, rel=1e-12)
    assert [r["imbalance"] for r in rows] == pytest.approx(IMBALANCE, rel=1e-12, abs=1e-15)
    assert math.isnan(rows[0]["ofi"])
    assert [r["ofi"] for r in rows[1:]] == OFI[1:]
    # the batch twins give the same numbers
    b = [100, 100, 100.5, 100.5, 100]
    qb = [2, 3, 1, 1, 5]
    a = [101, 101, 101, 100.8, 100.8]
    qa = [1, 1, 1, 4, 2]
    np.testing.assert_array_equal(order_flow_imbalance(b, qb, a, qa), OFI)
    df = book_features(
        np.array(b, float)[:, None],
        np.array(qb, float)[:, None],
        np.array(a, float)[:, None],
        np.array(qa, float)[:, None],
        levels=3,
        bps=50,
    )
    np.testing.assert_allclose(df["micro_price"], MICRO, rtol=1e-12)
    np.testing.assert_allclose(df["imbalance"], IMBALANCE, rtol=1e-12, atol=1e-15)


def test_empty_side_gives_nan_not_a_number_that_lies() -> None:
    book = L2Book()
    book.load(bids=[(100.0, 1.0)], asks=[], update_id=1)
    f = BookFeatures()
    f.update(book)
    assert all(math.isnan(v) for v in f.values().values())
    book.apply(bids=[], asks=[(101.0, 1.0)])
    f.update(book)
    assert f.mid == 100.5 and math.isnan(f.ofi)  # no OFI across an empty side
    assert f.ofi_sum == 0.0


def test_slope_equals_numpy_polyfit_and_depth_a_plain_sum() -> None:
    book = L2Book()
    bids = [(100.0, 1.0), (99.9, 2.0), (99.7, 0.5), (99.0, 4.0)]
    asks = [(100.1, 3.0), (100.2, 1.0), (100.6, 2.0)]
    book.load(bids=bids, asks=asks, update_id=1)
    f = BookFeatures(levels=3, bps=30)
    f.update(book)
    mid = 100.05
    # reference: numpy.polyfit of cumulative size on distance from the mid in bps
    xb = [(mid - p) / mid * 1e4 for p, _ in bids[:3]]
    yb = np.cumsum([q for _, q in bids[:3]])
    xa = [(p - mid) / mid * 1e4 for p, _ in asks[:3]]
    ya = np.cumsum([q for _, q in asks[:3]])
    assert f.bid_slope == pytest.approx(np.polyfit(xb, yb, 1)[0], rel=1e-12)
    assert f.ask_slope == pytest.approx(np.polyfit(xa, ya, 1)[0], rel=1e-12)
    # band: 100.05 * (1 -+ 0.003) = 99.74985 .. 100.35015
    assert f.bid_depth == 3.0 and f.ask_depth == 4.0
    assert f.depth_imbalance == pytest.approx((3.5 - 6.0) / 9.5, rel=1e-12)
    assert f.spread_bps == pytest.approx(0.1 / mid * 1e4, rel=1e-12)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="levels=0"):
        BookFeatures(levels=0)
    with pytest.raises(ValueError, match="bps=nan"):
        book_features([[1.0]], [[1.0]], [[2.0]], [[1.0]], bps=math.nan)
    with pytest.raises(ValueError, match="matching shapes"):
        book_features([[1.0, 2.0]], [[1.0]], [[2.0]], [[1.0]])


prices_b = st.integers(1, 30).map(lambda i: 100.0 - i * 0.05)
prices_a = st.integers(0, 29).map(lambda i: 100.05 + i * 0.05)
qtys = st.one_of(st.just(0.0), st.integers(1, 400).map(lambda i: i / 8))
side_changes = st.lists(st.tuples(prices_b, qtys), max_size=6)
ask_changes = st.lists(st.tuples(prices_a, qtys), max_size=6)


@settings(max_examples=200, deadline=None)
@given(
    updates=st.lists(st.tuples(side_changes, ask_changes, st.booleans()), min_size=1, max_size=40),
    levels=st.integers(1, 6),
    bps=st.sampled_from([0.0, 3.0, 10.0, 50.0, 1000.0]),
)
def test_streaming_equals_batch_after_every_update(updates, levels, bps) -> None:
    """The band depth is kept from the diffs (``update(book, bids, asks)``) and sometimes
    rebuilt from the book (``update(book)``); both must equal the batch twin."""
    book = L2Book()
    book.load(bids=[(99.95, 1.0), (99.9, 2.0)], asks=[(100.05, 1.0)], update_id=0)
    f = BookFeatures(levels=levels, bps=bps)
    stream, tops = [], []
    for b, a, rebuild in [([], [], True), *updates]:
        book.apply(bids=b, asks=a)
        if rebuild:
            f.update(book)
        else:
            f.update(book, b, a)
        stream.append([f.values()[c] for c in FEATURE_COLUMNS])
        tops.append(book.top(1000))
    k = max(1, *(max(len(t.bid_price), len(t.ask_price)) for t in tops))

    def pad(rows: list[np.ndarray]) -> np.ndarray:
        out = np.full((len(rows), k), np.nan)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out

    df = book_features(
        pad([t.bid_price for t in tops]),
        pad([t.bid_qty for t in tops]),
        pad([t.ask_price for t in tops]),
        pad([t.ask_qty for t in tops]),
        levels=levels,
        bps=bps,
    )
    assert list(df.columns) == list(FEATURE_COLUMNS)
    np.testing.assert_allclose(np.array(stream), df.to_numpy(), rtol=1e-9, atol=1e-9)
    ofi = df["ofi"].to_numpy()
    assert f.ofi_sum == pytest.approx(np.nansum(ofi), rel=1e-9, abs=1e-9)


DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "binance"


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/binance/ is not here")
def test_band_depth_kept_from_real_diffs_equals_a_rebuild_at_every_update() -> None:
    """BTCUSDT's real diffs (hundreds of levels inside 10 bps): the incremental band depth
    equals the depth summed afresh from the book after each of the 3,449 diffs."""
    p = DepthParser()
    snap, diffs = None, []
    with gzip.open(DATA / "spot_btcusdt_20240808.gz", "rt") as fh:
        for line in fh:
            out = p.parse(line.partition(" ")[2], 0, symbol="BTCUSDT")
            if isinstance(out, DepthSnapshot):
                snap = out
            elif isinstance(out, DepthUpdate):
                diffs.append(out)
    assert snap is not None
    book = L2Book()
    book.load(bids=snap.bids, asks=snap.asks, update_id=snap.last_update_id)
    kept, fresh = BookFeatures(bps=10), BookFeatures(bps=10)
    kept.update(book)
    n = 0
    for d in diffs:
        if d.last_id <= snap.last_update_id:
            continue
        book.apply(bids=d.bids, asks=d.asks, update_id=d.last_id)
        kept.update(book, d.bids, d.asks)
        fresh.update(book)
        assert kept.bid_depth == pytest.approx(fresh.bid_depth, rel=1e-12, abs=1e-12)
        assert kept.ask_depth == pytest.approx(fresh.ask_depth, rel=1e-12, abs=1e-12)
        n += 1
    assert n == 3449
    assert len(kept._band_b.held) > 100  # the band really holds hundreds of levels
