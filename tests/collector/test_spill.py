"""The spill format: every event type round-trips exactly, a torn tail is ignored, and a
re-import stores every event exactly once, in order, even after a crash mid-import."""

from __future__ import annotations

import math
import os
import sqlite3
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from lq.collector.spill import (
    MAGIC,
    SpillFile,
    _done_path,
    import_spill,
    pending_files,
    read_spill,
)
from lq.feeds.events import AggTrade, BookTicker, Gap, Kline, Rejected, Trade
from lq.store import Batch, Writer

T0 = 1_723_161_255_342_000

ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
floats = st.floats(allow_nan=True, allow_infinity=True)
text = st.text(max_size=20)


def _trades(n: int, start: int = 1, t0: int = T0) -> list[Trade]:
    return [
        Trade(
            symbol="BTCUSDT",
            trade_id=start + i,
            price=100.0 + i * 0.01,
            qty=0.5,
            ts=t0 + i * 1000,
            event_ts=t0 + i * 1000,
            is_buyer_maker=bool(i % 2),
            recv_ts=t0 + i * 1000 + 7,
            exchange="local",
        )
        for i in range(n)
    ]


def _kline(close: float, closed: bool) -> Kline:
    return Kline(
        symbol="BTCUSDT",
        interval="1m",
        open_time=T0 // 60_000_000 * 60_000_000,
        close_time=T0 // 60_000_000 * 60_000_000 + 59_999_999,
        open=1.0,
        high=max(close, 1.0),
        low=min(close, 1.0),
        close=close,
        volume=2.0,
        quote_volume=2.0,
        trades=3,
        taker_buy_volume=1.0,
        taker_buy_quote_volume=1.0,
        first_id=1,
        last_id=3,
        closed=closed,
        event_ts=T0,
        exchange="local",
    )


@settings(max_examples=100, deadline=None)
@given(
    trade=st.builds(
        Trade,
        symbol=text,
        trade_id=ints,
        price=floats,
        qty=floats,
        ts=ints,
        event_ts=ints,
        is_buyer_maker=st.booleans(),
        recv_ts=ints,
        exchange=text,
    ),
    agg=st.builds(
        AggTrade,
        symbol=text,
        agg_id=ints,
        first_id=ints,
        last_id=ints,
        price=floats,
        qty=floats,
        ts=ints,
        event_ts=ints,
        is_buyer_maker=st.booleans(),
    ),
    book=st.builds(
        BookTicker,
        symbol=text,
        update_id=ints,
        bid=floats,
        bid_qty=floats,
        ask=floats,
        ask_qty=floats,
        ts=ints,
    ),
    gap=st.builds(
        Gap,
        symbol=text,
        kind=st.sampled_from(["trade", "aggTrade"]),
        first_missing=ints,
        last_missing=ints,
        status=st.sampled_from(["found", "filled", "unfilled"]),
        detected_ts=ints,
        reason=text,
    ),
    rej=st.builds(Rejected, raw=text, reason=text, recv_ts=ints),
    close=floats,
)
def test_every_event_type_round_trips_exactly(tmp_path_factory, trade, agg, book, gap, rej, close):
    d = tmp_path_factory.mktemp("rt")
    batch = Batch(
        trades=[trade],
        agg_trades=[agg],
        book_tickers=[book],
        klines=[_kline(close, True)],
        gaps=[gap],
        rejected=[rej],
    )
    sf = SpillFile(d)
    try:
        sf.append(batch)
    finally:
        sf.close()
    [back] = list(read_spill(sf.path))
    for name in ("trades", "agg_trades", "book_tickers", "gaps", "rejected"):
        got, want = getattr(back, name), getattr(batch, name)
        # NaN != NaN: compare the encoded bytes-level fields via repr
        assert repr(got) == repr(want), name
    assert math.isnan(back.klines[0].close) if math.isnan(close) else back.klines == batch.klines


def test_unspillable_events_become_rejected_frames_never_lost(tmp_path):
    batch = Batch(trades=[*_trades(3), _trades(1, start=2**64)[0]])
    sf = SpillFile(tmp_path)
    sf.append(batch)
    sf.close()
    [back] = list(read_spill(sf.path))
    assert [t.trade_id for t in back.trades] == [1, 2, 3]
    [r] = back.rejected
    assert "could not be spilled" in r.reason and "18446744073709551616" in r.raw


def test_a_torn_last_record_is_detected_and_ignored(tmp_path):
    sf = SpillFile(tmp_path)
    sf.append(Batch(trades=_trades(100)))
    sf.append(Batch(trades=_trades(100, start=101)))
    sf.close()
    full = sf.path.read_bytes()
    for cut in (1, 7, 9, 200):  # inside the header, the CRC, the payload
        sf.path.write_bytes(full[:-cut])
        batches = list(read_spill(sf.path))
        assert [len(b.trades) for b in batches] == [100]
    sf.path.write_bytes(full[: len(MAGIC) - 2])  # died while writing the magic
    assert list(read_spill(sf.path)) == []


def _db_rows(db: Path) -> tuple[list[int], int, int, list[tuple]]:
    conn = sqlite3.connect(db)
    try:
        ids = [i for (i,) in conn.execute("SELECT trade_id FROM ticks ORDER BY trade_id")]
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        bars = conn.execute("SELECT sum(trades) FROM bars_1s").fetchone()[0]
        rest = (
            conn.execute("SELECT close, closed FROM klines").fetchall()
            + conn.execute("SELECT first_missing, status FROM gaps").fetchall()
        )
        return ids, dead, bars, rest
    finally:
        conn.close()


def _spill_some(d: Path) -> None:
    gap = Gap(
        symbol="BTCUSDT",
        kind="trade",
        first_missing=301,
        last_missing=310,
        status="found",
        detected_ts=T0,
        exchange="local",
    )
    rej = Rejected(raw="garbage", reason="not json", recv_ts=T0, exchange="local")
    sf = SpillFile(d)
    sf.append(Batch(trades=_trades(300), klines=[_kline(5.0, False)], rejected=[rej, rej]))
    sf.append(Batch(gaps=[gap], trades=_trades(90, start=311, t0=T0 + 2_000_000)))
    sf.append(
        Batch(
            gaps=[Gap(**{**_as_dict(gap), "status": "filled"})],
            trades=_trades(10, start=301, t0=T0 + 1_000_000),
            klines=[_kline(6.0, True)],
        )
    )
    sf.close()


def _as_dict(ev: object) -> dict:
    import msgspec

    return msgspec.structs.asdict(ev)  # type: ignore[arg-type]


def test_reimport_is_in_order_and_removes_the_files(tmp_path):
    d, db = tmp_path / "spill", tmp_path / "lq.sqlite"
    _spill_some(d)
    with Writer(db) as w:
        rep, finished = import_spill(w, d)
    assert finished and rep.files == 1 and rep.records == 3 and rep.events == 406
    ids, dead, bars, rest = _db_rows(db)
    assert ids == list(range(1, 401)) and dead == 2 and bars == 400
    assert sorted(rest) == [(6.0, 1), (301, "filled")]  # the newest kline and gap status won
    assert pending_files(d) == []


def test_a_crash_after_a_commit_before_its_mark_stores_nothing_twice(tmp_path):
    d, db = tmp_path / "spill", tmp_path / "lq.sqlite"
    _spill_some(d)
    [path] = pending_files(d)
    with Writer(db) as w:
        rep, finished = import_spill(w, d, max_records=2)
    assert not finished and rep.records == 2
    # the crash: the second record was committed, but its mark never reached the disk
    _done_path(path).write_text("1\n")
    with Writer(db) as w:
        rep2, finished = import_spill(w, d)
    assert finished and rep2.records == 2  # record 2 again (deduplicated), then record 3
    with Writer(db) as w:  # and once more from scratch (the mark lost entirely): still once
        _spill_some(d)
        import_spill(w, d)
    ids, dead, bars, _ = _db_rows(db)
    assert ids == list(range(1, 401))
    assert dead == 2  # the two equal dead letters of record 1 are two, not one, not four
    assert bars == 400


def test_spill_files_sort_in_the_order_they_were_written(tmp_path):
    names = []
    for _ in range(5):
        sf = SpillFile(tmp_path)
        sf.append(Batch(trades=_trades(1)))
        sf.close()
        names.append(sf.path)
    assert pending_files(tmp_path) == names
    assert all(os.path.getsize(p) > len(MAGIC) for p in names)
