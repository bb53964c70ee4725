"""Sequencer: gap detection, exactly-once delivery and backfill bookkeeping (hand-computed ids)."""

from __future__ import annotations

import random

import pytest

from lq.errors import ValidationError
from lq.feeds.events import AggTrade, Trade
from lq.feeds.sequencer import BackfillRequest, Sequencer, Step

NOW = 1_723_161_255_000_000


def tr(i: int, symbol: str = "BTCUSDT") -> Trade:
    return Trade(
        symbol=symbol, trade_id=i, price=1.0, qty=1.0, ts=NOW, event_ts=NOW, is_buyer_maker=True
    )


def agg(a: int, f: int, l: int) -> AggTrade:  # noqa: E741
    return AggTrade(
        symbol="BTCUSDT",
        agg_id=a,
        first_id=f,
        last_id=l,
        price=1.0,
        qty=1.0,
        ts=NOW,
        event_ts=NOW,
        is_buyer_maker=False,
    )


def test_contiguous_trades_are_delivered_without_gaps():
    s = Sequencer()
    steps = [s.on_trade(tr(i), now=NOW) for i in range(100, 110)]
    assert all(st.deliver and not st.gaps and not st.requests for st in steps)
    assert s.last_id("BTCUSDT", "trade") == 109


def test_jump_opens_a_hole_found_gap_and_backfill_request():
    s = Sequencer()
    s.on_trade(tr(100), now=NOW)
    st = s.on_trade(tr(105), now=NOW)
    assert st.deliver
    [g] = st.gaps
    assert (g.first_missing, g.last_missing, g.status, g.kind) == (101, 104, "found", "trade")
    assert st.requests == (
        BackfillRequest(symbol="BTCUSDT", kind="trade", first_id=101, last_id=104),
    )
    assert s.holes("BTCUSDT", "trade") == [(101, 104)]


def test_backfilled_ids_are_accepted_once_and_only_once():
    s = Sequencer()
    s.on_trade(tr(100), now=NOW)
    s.on_trade(tr(105), now=NOW)
    assert [
        s.on_trade(tr(i), now=NOW).deliver for i in (103, 101, 103, 104, 102, 102, 100, 105)
    ] == [True, True, False, True, True, False, False, False]
    assert s.duplicates == 4
    assert s.holes("BTCUSDT", "trade") == []


def test_settle_partitions_the_request_into_filled_and_still_missing_ranges():
    s = Sequencer()
    s.on_trade(tr(0), now=NOW)
    req = s.on_trade(tr(11), now=NOW).requests[0]  # hole 1..10
    for i in (1, 2, 5, 9, 10):
        s.on_trade(tr(i), now=NOW)
    gaps = s.settle(req, now=NOW, reason="REST said no")
    # a partition of 1..10 whose first range starts at 1: stored, it replaces the found row
    assert [(g.first_missing, g.last_missing, g.status) for g in gaps] == [
        (1, 2, "filled"),
        (3, 4, "unfilled"),
        (5, 5, "filled"),
        (6, 8, "unfilled"),
        (9, 10, "filled"),
    ]
    assert [g.reason for g in gaps if g.status == "unfilled"] == ["REST said no"] * 2
    assert [g.reason for g in gaps if g.status == "filled"] == [""] * 3
    # an unfilled id that arrives late is still delivered, once
    assert s.on_trade(tr(7), now=NOW).deliver and not s.on_trade(tr(7), now=NOW).deliver
    for i in (3, 4, 6, 8):
        s.on_trade(tr(i), now=NOW)
    [g] = s.settle(req, now=NOW)
    assert (g.first_missing, g.last_missing, g.status) == (1, 10, "filled")


def test_symbols_are_sequenced_independently():
    s = Sequencer()
    assert s.on_trade(tr(5, "BTCUSDT"), now=NOW).deliver
    assert s.on_trade(tr(5, "ETHUSDT"), now=NOW).deliver
    assert not s.on_trade(tr(5, "ETHUSDT"), now=NOW).deliver


def test_resume_ids_make_the_first_live_trade_open_a_gap():
    s = Sequencer(resume_ids={("BTCUSDT", "trade"): 1000})
    st = s.on_trade(tr(1010), now=NOW)
    assert st.requests[0].first_id == 1001 and st.requests[0].last_id == 1009
    s2 = Sequencer(resume_ids={("BTCUSDT", "trade"): 1000})
    assert not s2.on_trade(tr(999), now=NOW).deliver  # already stored before the restart


def test_gap_beyond_max_backfill_is_split_into_request_and_unfilled_rest():
    s = Sequencer(resume_ids={("BTCUSDT", "trade"): 0}, max_backfill=10)
    st = s.on_trade(tr(26), now=NOW)  # missing 1..25: request 1..10, 11..25 unfilled
    assert [(r.first_id, r.last_id) for r in st.requests] == [(1, 10)]
    assert [(g.first_missing, g.last_missing, g.status) for g in st.gaps] == [
        (1, 10, "found"),
        (11, 25, "found"),
        (11, 25, "unfilled"),
    ]
    assert "max_backfill=10" in st.gaps[2].reason


def test_agg_trade_rules_a_and_f():
    s = Sequencer()
    assert s.on_trade(agg(10, 100, 102), now=NOW).deliver
    assert not s.on_trade(agg(11, 103, 103), now=NOW).gaps  # a+1 and f = l+1
    st = s.on_trade(agg(14, 110, 111), now=NOW)  # aggregates 12..13 missing
    assert [(r.kind, r.first_id, r.last_id) for r in st.requests] == [("aggTrade", 12, 13)]
    st = s.on_trade(agg(15, 115, 115), now=NOW)  # trade ids 112..114 skipped, no aggregate
    [g] = st.gaps
    assert st.deliver and (g.first_missing, g.last_missing, g.status) == (112, 114, "unfilled")
    assert not st.requests and "not aggregate ids" in g.reason


def test_random_shuffled_overlapping_streams_deliver_every_id_exactly_once():
    # Two overlapping copies of ids 0..1999 with random drops and local reordering, then a
    # backfill of every hole: the delivered multiset must be exactly 0..1999 (seeded).
    rng = random.Random(7)
    s = Sequencer()
    delivered: list[int] = []
    reqs: list[BackfillRequest] = []
    for _ in range(2):
        ids = [i for i in range(2000) if rng.random() > 0.05]
        for k in range(0, len(ids) - 3, 3):
            if rng.random() < 0.3:
                ids[k], ids[k + 2] = ids[k + 2], ids[k]
        for i in ids:
            st = s.on_trade(tr(i), now=NOW)
            reqs.extend(st.requests)
            if st.deliver:
                delivered.append(i)
    for r in reqs:
        for lo, hi in s.missing(r.symbol, r.kind, r.first_id, r.last_id):
            delivered.extend(i for i in range(lo, hi + 1) if s.on_trade(tr(i), now=NOW).deliver)
        assert s.settle(r, now=NOW)[0].status == "filled"
    first = delivered[0]
    assert sorted(delivered) == list(range(first, 2000))
    assert len(delivered) == len(set(delivered))


def test_bad_settings_name_the_field():
    with pytest.raises(ValidationError, match="max_backfill=-1"):
        Sequencer(max_backfill=-1)
    with pytest.raises(ValidationError, match="resume_ids"):
        Sequencer(resume_ids={("BTCUSDT", "kline"): 1})  # type: ignore[dict-item]


# -- ids that are not trades (USD-M markers, voided aggregates) ------------------------------


def test_a_marker_fills_its_id_slot_and_is_never_delivered():
    s = Sequencer()
    assert s.on_trade(tr(100), now=NOW).deliver
    assert s.on_marker("BTCUSDT", "trade", 101, now=NOW) == Step(False)
    st = s.on_trade(tr(102), now=NOW)
    assert st.deliver and not st.gaps  # 101 was the marker: no hole
    assert s.holes("BTCUSDT", "trade") == []


def test_a_marker_after_a_hole_opens_it_and_a_marker_inside_a_hole_closes_its_id():
    s = Sequencer()
    s.on_trade(tr(100), now=NOW)
    st = s.on_marker("BTCUSDT", "trade", 105, now=NOW)
    assert not st.deliver and [(g.first_missing, g.last_missing) for g in st.gaps] == [(101, 104)]
    assert [(r.first_id, r.last_id) for r in st.requests] == [(101, 104)]
    s.on_marker("BTCUSDT", "aggTrade", 7, now=NOW)  # other streams are untouched
    s.on_marker("BTCUSDT", "trade", 103, now=NOW)  # voided id inside the hole
    assert s.holes("BTCUSDT", "trade") == [(101, 102), (104, 104)]
    assert s.duplicates == 0


def test_usdm_aggregates_that_skip_trade_ids_are_not_holes():
    spot, usdm = Sequencer(), Sequencer(agg_trade_ids_contiguous=False)
    for seq in (spot, usdm):
        seq.on_trade(agg(1, 10, 12), now=NOW)
    assert spot.on_trade(agg(2, 14, 15), now=NOW).gaps  # spot: trade id 13 is missing
    assert usdm.on_trade(agg(2, 14, 15), now=NOW) == Step(True)  # USD-M: an ADL trade


def test_reopened_hole_is_delivered_once_and_settled_over_the_whole_request():
    # a found gap 101..110 reloaded after a restart; 104..105 were stored before the crash
    s = Sequencer(resume_ids={("BTCUSDT", "trade"): 500})
    req = s.reopen("BTCUSDT", "trade", 101, 110, missing=((101, 103), (106, 110)))
    assert (req.first_id, req.last_id) == (101, 110)
    assert s.holes("BTCUSDT", "trade") == [(101, 103), (106, 110)]
    assert not s.on_trade(tr(104), now=NOW).deliver  # stored already
    assert s.on_trade(tr(102), now=NOW).deliver and not s.on_trade(tr(102), now=NOW).deliver
    assert s.on_trade(tr(501), now=NOW).deliver  # the live feed goes on, no new gap
    assert not s.on_trade(tr(502), now=NOW).gaps
    for i in (101, 103, 106, 107, 108, 109):
        s.on_trade(tr(i), now=NOW)
    gaps = s.settle(req, now=NOW, reason="no trades")
    assert [(g.first_missing, g.last_missing, g.status) for g in gaps] == [
        (101, 109, "filled"),
        (110, 110, "unfilled"),
    ]


def test_reopen_merges_with_open_holes_and_raises_last_for_ids_above_it():
    s = Sequencer()
    s.on_trade(tr(0), now=NOW)
    s.on_trade(tr(10), now=NOW)  # hole 1..9
    s.reopen("BTCUSDT", "trade", 8, 12)
    assert s.holes("BTCUSDT", "trade") == [(1, 12)]
    assert s.last_id("BTCUSDT", "trade") == 12
    s2 = Sequencer()
    s2.reopen("ETHUSDT", "trade", 5, 7)  # nothing known of the stream: as if 7 was seen
    assert s2.last_id("ETHUSDT", "trade") == 7
    assert s2.on_trade(tr(8, "ETHUSDT"), now=NOW).deliver
    with pytest.raises(ValidationError, match="first_id=9"):
        s2.reopen("ETHUSDT", "trade", 9, 3)


def test_a_hole_forgotten_beyond_max_holes_is_unfilled_never_filled():
    s = Sequencer(max_holes=2)
    s.on_trade(tr(0), now=NOW)
    reqs = []
    gaps = []
    for i in (2, 4, 6):  # holes 1, 3, 5: the third pushes hole 1 out
        st = s.on_trade(tr(i), now=NOW)
        reqs.extend(st.requests)
        gaps.extend(st.gaps)
    forgotten = [g for g in gaps if g.status == "unfilled"]
    assert [(g.first_missing, g.last_missing) for g in forgotten] == [(1, 1)]
    assert "max_holes=2" in forgotten[0].reason
    [g] = s.settle(reqs[0], now=NOW)  # its backfill request ends later: still unfilled
    assert (g.first_missing, g.status) == (1, "unfilled")
