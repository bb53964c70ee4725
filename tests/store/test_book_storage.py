"""Book snapshots and the resync ledger in the SQLite file: exact round trip through the
writer, the codec and ``Store.book``; bad snapshots are dead letters that block nothing; the
spill carries them; the real recordings' snapshots fit the 50 MB/symbol/day budget."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lq.collector.spill import SpillFile, _Record, read_spill
from lq.feeds import BookSync, DepthParser
from lq.feeds.events import BookResync, BookTop, DepthSnapshot, DepthUpdate
from lq.store import Batch, Store, Writer
from lq.store.bookcodec import decode_side, encode_side

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "binance"
T0 = 1_723_161_255_342_000


def _top(k: int, *, bid: float = 100.0, step: float = 0.01, n: int = 5, **kw) -> BookTop:
    bids = tuple((round(bid - i * step, 2), 0.5 + i) for i in range(n))
    asks = tuple((round(bid + step + i * step, 2), 1.25 + i) for i in range(n))
    fields = dict(
        symbol="BTCUSDT",
        update_id=1_000 + k,
        ts=T0 + k * 1_000_000,
        recv_ts=T0 + k * 1_000_000 + 900,
        levels=20,
        bids=bids,
        asks=asks,
    )
    fields.update(kw)
    return BookTop(**fields)


# -- codec ----------------------------------------------------------------------------------
decimals = st.integers(min_value=0, max_value=8)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=10**11), min_size=1, max_size=40, unique=True),
    st.lists(st.integers(min_value=1, max_value=10**13), min_size=40, max_size=40),
    decimals,
    decimals,
)
def test_decimal_levels_round_trip_bit_for_bit(ticks, sizes, pk, qk):
    prices = np.array(sorted(ticks, reverse=True), dtype=np.float64) / 10.0**pk
    qtys = np.array(sizes[: len(ticks)], dtype=np.float64) / 10.0**qk
    blob = encode_side(prices, qtys)
    assert blob[0] == 1  # scaled integers
    p, q = decode_side(blob)
    assert p.tobytes() == prices.tobytes() and q.tobytes() == qtys.tobytes()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=1e-10, max_value=1e12, allow_nan=False),
            st.floats(min_value=1e-10, max_value=1e15, allow_nan=False),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_any_finite_floats_round_trip_bit_for_bit(levels):
    arr = np.array(levels, dtype=np.float64)
    p, q = decode_side(encode_side(arr[:, 0], arr[:, 1]))
    assert p.tobytes() == arr[:, 0].tobytes() and q.tobytes() == arr[:, 1].tobytes()


def test_codec_refuses_nan_and_mismatched_sides_and_unknown_blobs():
    with pytest.raises(ValueError, match="not finite"):
        encode_side(np.array([1.0, np.nan]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="one length"):
        encode_side(np.array([1.0]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="upgrade lq"):
        decode_side(b"\x09abc")
    assert encode_side(np.empty(0), np.empty(0)) == b""
    assert decode_side(b"")[0].size == 0


# -- writer and reader ----------------------------------------------------------------------
def test_snapshots_round_trip_exactly_and_a_rewrite_stores_nothing(db):
    tops = [_top(k) for k in range(10)]
    with Writer(db) as w:
        first = w.write_batch(Batch(book_tops=tops))
        again = w.write_batch(Batch(book_tops=tops))
    assert (first.book_tops.new, first.book_tops.duplicates, first.book_tops.rejected) == (10, 0, 0)
    assert (again.book_tops.new, again.book_tops.duplicates) == (0, 10)
    with Store(db) as s:
        h = s.book("btcusdt")
        assert len(h) == 10 and h.levels == 5
        assert h.update_id.tolist() == [t.update_id for t in tops]
        assert h.ts.tolist() == [t.ts for t in tops]
        for k, t in enumerate(tops):
            bp, bq, ap, aq = h.at(k)
            assert list(zip(bp.tolist(), bq.tolist(), strict=True)) == list(t.bids)
            assert list(zip(ap.tolist(), aq.tolist(), strict=True)) == list(t.asks)
        part = s.book("BTCUSDT", start=tops[3].ts, end=tops[6].ts)
        assert part.update_id.tolist() == [1003, 1004, 1005]
        assert s.book("BTCUSDT", limit=2).update_id.tolist() == [1008, 1009]
        assert s.book("BTCUSDT", levels=2).levels == 2
        assert len(s.book("BTCUSDT", exchange="coinbase")) == 0
        long = s.book("BTCUSDT", limit=1).long()
        assert len(long) == 10 and set(long["side"]) == {"bid", "ask"}


def test_thin_sides_are_nan_padded(db):
    thin = _top(0, n=2)
    wide = _top(1, n=6)
    empty_ask = _top(2, n=3, asks=())
    with Writer(db) as w:
        w.write_batch(Batch(book_tops=[thin, wide, empty_ask]))
    with Store(db) as s:
        h = s.book("BTCUSDT")
    assert h.bid_price.shape == (3, 6)
    assert np.isnan(h.bid_price[0, 2:]).all() and not np.isnan(h.bid_price[1]).any()
    assert np.isnan(h.ask_price[2]).all()
    assert h.at(2)[2].size == 0


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"asks": ((99.99, 1.0),)}, "crossed book"),
        ({"asks": ((100.0, 1.0),)}, "locked book"),
        ({"bids": ((99.0, 1.0), (99.5, 1.0))}, "strictly descending"),
        ({"bids": ((99.0, 0.0),)}, "qty"),
        ({"bids": ((float("nan"), 1.0),)}, "price"),
        ({"update_id": 2**63}, "update_id"),
        ({"ts": 5}, "ts="),
        ({"levels": 0}, "levels=0"),
        ({"levels": 1}, "more than levels=1"),
    ],
)
def test_a_bad_snapshot_is_a_dead_letter_and_blocks_nothing(db, change, why):
    good = [_top(0), _top(2)]
    bad = _top(1, **change)
    with Writer(db) as w:
        res = w.write_batch(Batch(book_tops=[good[0], bad, good[1]]))
        reasons = [r[0] for r in w.conn.execute("SELECT reason FROM dead_letters")]
    assert (res.book_tops.new, res.book_tops.rejected) == (2, 1)
    assert len(reasons) == 1 and why in reasons[0] and reasons[0].startswith("book snapshot")
    with Store(db) as s:
        assert s.book("BTCUSDT").update_id.tolist() == [1000, 1002]


def test_the_resync_ledger_is_stored_once_and_read_back(db):
    recs = [
        BookResync(
            symbol="ETHUSDT",
            reason="gap",
            detail="U=12 after u=10",
            ts=T0,
            recv_ts=T0 + 5,
            book_update_id=10,
            first_id=12,
            last_id=15,
        ),
        BookResync(
            symbol="ETHUSDT",
            reason="start",
            detail="",
            ts=T0 - 9,
            recv_ts=T0 - 9,
            book_update_id=-1,
            exchange="binance",
        ),
    ]
    bogus = BookResync(
        symbol="ETHUSDT",
        reason="oops",
        detail="",
        ts=T0,
        recv_ts=T0,
        book_update_id=1,  # type: ignore[arg-type]
    )
    with Writer(db) as w:
        w.write_batch(Batch(book_resyncs=[*recs, bogus]))
        w.write_batch(Batch(book_resyncs=recs))
        dead = [r[0] for r in w.conn.execute("SELECT reason FROM dead_letters")]
    assert len(dead) == 1 and "book resync reason='oops'" in dead[0]
    with Store(db) as s:
        df = s.book_resyncs("ethusdt")
        assert df["reason"].tolist() == ["start", "gap"]
        assert df["first_id"].tolist()[1] == 12 and df["book_update_id"].tolist() == [-1, 10]
        assert len(s.book_resyncs(exchange="okx")) == 0


# -- spill ----------------------------------------------------------------------------------
def test_book_events_spill_and_old_spill_records_still_decode(tmp_path):
    import msgspec

    batch = Batch(
        book_tops=[_top(0), _top(1)],
        book_resyncs=[
            BookResync(
                symbol="BTCUSDT",
                reason="crossed",
                detail="x",
                ts=T0,
                recv_ts=T0,
                book_update_id=7,
                first_id=8,
                last_id=9,
                prev_last_id=7,
            )
        ],
    )
    sf = SpillFile(tmp_path)
    sf.append(batch)
    sf.close()
    [back] = list(read_spill(sf.path))
    assert back.book_tops == batch.book_tops and back.book_resyncs == batch.book_resyncs
    # a record written before the order books: six lists only
    old = msgspec.msgpack.encode([[], [], [], [], [], []])
    rec = msgspec.msgpack.decode(old, type=_Record)
    assert rec.book_tops == [] and rec.book_resyncs == []


# -- the budget on the real recordings --------------------------------------------------------
@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/binance is not beside the repo")
@pytest.mark.parametrize("symbol", ["btcusdt", "ethusdt"])
def test_real_books_at_the_defaults_fit_50_mb_per_symbol_per_day(tmp_path, symbol):
    """Top 20 levels every second of exchange time, as the collector stores them by default,
    measured as bytes the SQLite file grows by, projected to a day."""
    parser, sync = DepthParser(), BookSync(symbol.upper())
    tops, last_second = [], None
    with gzip.open(DATA / f"spot_{symbol}_20240808.gz", "rt") as f:
        for line in f:
            recv_ns, _, raw = line.partition(" ")
            ev = parser.parse(raw, int(recv_ns) // 1000, symbol=symbol.upper())
            if isinstance(ev, DepthSnapshot):
                sync.on_snapshot(ev)
            elif isinstance(ev, DepthUpdate):
                sync.on_update(ev)
            else:
                continue
            if not sync.synced or ev.ts // 1_000_000 == last_second:
                continue
            last_second = ev.ts // 1_000_000
            top = sync.book.top(20)
            nb = int(np.count_nonzero(~np.isnan(top.bid_price)))
            na = int(np.count_nonzero(~np.isnan(top.ask_price)))
            tops.append(
                BookTop(
                    symbol=symbol.upper(),
                    update_id=sync.book.update_id,
                    ts=ev.ts,
                    recv_ts=ev.recv_ts,
                    levels=20,
                    bids=tuple(
                        zip(top.bid_price[:nb].tolist(), top.bid_qty[:nb].tolist(), strict=True)
                    ),
                    asks=tuple(
                        zip(top.ask_price[:na].tolist(), top.ask_qty[:na].tolist(), strict=True)
                    ),
                )
            )
    assert len(tops) > 300  # about 345 s of recording
    db = tmp_path / "b.sqlite"
    with Writer(db) as w:
        w.write_batch(Batch())
        w.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        w.conn.execute("VACUUM")
        before = os.path.getsize(db)
        res = w.write_batch(Batch(book_tops=tops))
        w.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        w.conn.execute("VACUUM")
        after = os.path.getsize(db)
    assert res.book_tops.new == len(tops)
    per_day = (after - before) / len(tops) * 86_400
    print(f"{symbol}: {per_day / 1e6:.1f} MB per symbol per day")
    assert per_day < 50e6, f"{per_day / 1e6:.1f} MB per symbol per day"
    with Store(db) as s:
        h = s.book(symbol)
    assert h.update_id.tolist() == [t.update_id for t in tops]
    k = len(tops) // 2
    bp, bq, _, _ = h.at(k)
    assert list(zip(bp.tolist(), bq.tolist(), strict=True)) == list(tops[k].bids)
