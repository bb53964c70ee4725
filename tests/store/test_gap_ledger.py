"""The gap ledger is exact: every trade id has at most one row, and its status is the last one
written for it, whatever ranges the updates cover (a hole whose middle or end is backfilled while
its start stays missing, an update narrower or wider than the row it replaces).

The reference is a hand-kept model: a dict from each id to the (status, reason) last assigned to
it, replayed in the same order as the writes."""

from __future__ import annotations

import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st
from trade_factory import T0, make_trades

from lq.feeds.events import Gap
from lq.feeds.sequencer import Sequencer
from lq.store import Batch, Writer


def gap(lo: int, hi: int, status: str, ts: int = T0, reason: str = "", symbol="BTCUSDT") -> Gap:
    return Gap(
        symbol=symbol,
        kind="trade",
        first_missing=lo,
        last_missing=hi,
        status=status,  # type: ignore[arg-type]
        detected_ts=ts,
        reason=reason,
    )


def ledger(w: Writer, symbol: str = "BTCUSDT") -> list[tuple]:
    return w.conn.execute(
        "SELECT first_missing, last_missing, status, reason FROM gaps WHERE symbol = ?"
        " ORDER BY first_missing",
        (symbol,),
    ).fetchall()


def test_end_of_a_hole_filled_while_its_start_stays_missing(db):
    with Writer(db) as w:
        w.write_batch(Batch(gaps=[gap(101, 110, "found")]))
        w.write_batch(Batch(gaps=[gap(105, 110, "filled")]))
        assert ledger(w) == [(101, 104, "found", ""), (105, 110, "filled", "")]


def test_middle_of_a_hole_filled_leaves_both_ends_found(db):
    with Writer(db) as w:
        w.write_batch(Batch(gaps=[gap(101, 110, "found")]))
        w.write_batch(Batch(gaps=[gap(104, 106, "filled")]))
        assert ledger(w) == [
            (101, 103, "found", ""),
            (104, 106, "filled", ""),
            (107, 110, "found", ""),
        ]


def test_a_narrower_update_at_the_same_start_keeps_the_rest_of_the_hole(db):
    # the old upsert keyed by first_missing set last_missing=103: ids 104..110 left the ledger,
    # so a restart never reloaded them and lq status never showed them
    with Writer(db) as w:
        w.write_batch(Batch(gaps=[gap(101, 110, "found", ts=T0)]))
        w.write_batch(Batch(gaps=[gap(101, 103, "unfilled", ts=T0 + 5_000_000, reason="no key")]))
        assert ledger(w) == [(101, 103, "unfilled", "no key"), (104, 110, "found", "")]
        # the hole's age counts from when it was first seen missing
        (det,) = w.conn.execute("SELECT detected_ts FROM gaps WHERE first_missing = 101").fetchone()
        assert det == T0


def test_a_wider_update_replaces_every_row_it_covers(db):
    with Writer(db) as w:
        w.write_batch(Batch(gaps=[gap(101, 103, "found"), gap(107, 109, "unfilled", reason="x")]))
        w.write_batch(Batch(gaps=[gap(100, 108, "filled")]))
        assert ledger(w) == [(100, 108, "filled", ""), (109, 109, "unfilled", "x")]


def test_partial_backfill_through_the_real_sequencer_and_writer(db):
    """A found hole 101..110 reloaded after a restart; backfill brings 105..107 and 109..110
    (101..104 and 108 never come): the stored ledger says exactly that, and a reload at the
    next start asks only for what is still missing."""
    with Writer(db) as w:
        w.write_batch(Batch(trades=make_trades(1, start_id=100), gaps=[gap(101, 110, "found")]))
        w.write_batch(Batch(trades=make_trades(1, start_id=111)))
        seq = Sequencer(resume_ids={("BTCUSDT", "trade"): 111})
        req = seq.reopen("BTCUSDT", "trade", 101, 110)
        back = [t for t in make_trades(10, start_id=101) if t.trade_id in (105, 106, 107, 109, 110)]
        for t in back:
            assert seq.on_trade(t, now=T0).deliver
        settled = seq.settle(req, now=T0, reason="REST has no such ids")
        w.write_batch(Batch(trades=back, gaps=list(settled)))
        assert ledger(w) == [
            (101, 104, "unfilled", "REST has no such ids"),
            (105, 107, "filled", ""),
            (108, 108, "unfilled", "REST has no such ids"),
            (109, 110, "filled", ""),
        ]
        # a straggler for the start arrives later: only its own id changes status
        w.write_batch(Batch(trades=make_trades(1, start_id=102), gaps=[gap(102, 102, "filled")]))
        assert ledger(w)[:3] == [
            (101, 101, "unfilled", "REST has no such ids"),
            (102, 102, "filled", ""),
            (103, 104, "unfilled", "REST has no such ids"),
        ]


def _model(ops: list[tuple[int, int, str, str]]) -> dict[int, tuple[str, str]]:
    m: dict[int, tuple[str, str]] = {}
    for lo, hi, status, reason in ops:
        for i in range(lo, hi + 1):
            m[i] = (status, reason)
    return m


_op = st.tuples(
    st.integers(0, 60),
    st.integers(0, 12),
    st.sampled_from(["found", "filled", "unfilled"]),
    st.sampled_from(["", "a", "b"]),
).map(lambda t: (t[0], t[0] + t[1], t[2], t[3]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_op, min_size=1, max_size=4), min_size=1, max_size=8))
def test_the_ledger_equals_last_write_wins_per_id(tmp_path_factory, batches):
    db = tmp_path_factory.mktemp("gaps") / "lq.sqlite"
    with Writer(db) as w:
        for ops in batches:
            w.write_batch(Batch(gaps=[gap(lo, hi, s, reason=r) for lo, hi, s, r in ops]))
        rows = ledger(w)
    got: dict[int, tuple[str, str]] = {}
    for lo, hi, status, reason in rows:
        assert lo <= hi
        for i in range(lo, hi + 1):
            assert i not in got, f"id {i} in two gap rows: {rows}"
            got[i] = (status, reason)
    assert got == _model([op for ops in batches for op in ops])


def test_rows_of_other_streams_and_symbols_are_untouched(db):
    with Writer(db) as w:
        w.write_batch(Batch(gaps=[gap(1, 9, "found"), gap(1, 9, "found", symbol="ETHUSDT")]))
        w.write_batch(Batch(gaps=[gap(3, 4, "filled")]))
        assert ledger(w, "ETHUSDT") == [(1, 9, "found", "")]
        assert len(ledger(w)) == 3
    assert sqlite3.connect(db).execute("SELECT count(*) FROM gaps").fetchone() == (4,)


# -- stored ids are never listed as missing ---------------------------------------------------


def _pick(ids: list[int], start: int) -> list:
    return [t for t in make_trades(200, start_id=start) if t.trade_id in ids]


def test_trades_stored_inside_an_unfilled_hole_are_cut_out_of_it_as_filled(db):
    # a hole given up (a long 429) whose trades then arrive late, live, or after a restart: the
    # ledger said "unfilled" for ids the database held
    with Writer(db) as w:
        w.write_batch(Batch(gaps=[gap(110, 120, "unfilled", reason="HTTP 429")]))
        w.write_batch(Batch(trades=_pick([112, 113, 115, 130], 100)))
        assert ledger(w) == [
            (110, 111, "unfilled", "HTTP 429"),
            (112, 113, "filled", ""),
            (114, 114, "unfilled", "HTTP 429"),
            (115, 115, "filled", ""),
            (116, 120, "unfilled", "HTTP 429"),
        ]
        w.write_batch(Batch(trades=_pick(list(range(100, 125)), 100)))  # all, some twice
        assert {s for *_, s, _ in ledger(w)} == {"filled"}
        assert sum(b - a + 1 for a, b, *_ in ledger(w)) == 11


def test_a_found_row_and_the_trade_filling_it_in_one_batch_leave_no_open_id(db):
    with Writer(db) as w:
        w.write_batch(Batch(gaps=[gap(150, 152, "found")], trades=_pick([151], 100)))
        assert ledger(w) == [
            (150, 150, "found", ""),
            (151, 151, "filled", ""),
            (152, 152, "found", ""),
        ]


def test_open_rows_of_other_streams_and_agg_trade_id_skips_are_left_alone(db):
    from lq.feeds.events import AggTrade
    from lq.feeds.sequencer import TRADE_IDS_NOT_AGGREGATES

    skip = Gap(
        symbol="BTCUSDT", kind="aggTrade", first_missing=10, last_missing=20, status="unfilled",
        detected_ts=T0, reason=f"{TRADE_IDS_NOT_AGGREGATES}10..20 (not aggregate ids) are skipped",
    )  # fmt: skip
    agg = AggTrade(
        symbol="BTCUSDT", agg_id=15, price=1.0, qty=1.0, first_id=30, last_id=30, ts=T0,
        event_ts=T0, is_buyer_maker=False,
    )  # fmt: skip
    with Writer(db) as w:
        w.write_batch(Batch(gaps=[skip, gap(110, 120, "found", symbol="ETHUSDT")]))
        w.write_batch(Batch(trades=_pick([112], 100), agg_trades=[agg]))
        assert ledger(w, "ETHUSDT") == [(110, 120, "found", "")]  # another symbol's trade
        [(a, b, status)] = w.conn.execute(
            "SELECT first_missing, last_missing, status FROM gaps WHERE kind = 'aggTrade'"
        ).fetchall()
        assert (a, b, status) == (10, 20, "unfilled")


def test_a_gap_found_over_ids_the_database_holds_lists_only_the_missing_ones(db):
    # an import filled 6001..6010 without the live feed knowing: the next run's restart gap
    # 6001..6012 was stored as one open hole, then "unfilled" behind a ban, over stored ids
    with Writer(db) as w:
        w.write_batch(Batch(trades=_pick([103, 104, 105, 108], 100)))
        w.write_batch(Batch(gaps=[gap(101, 110, "found")]))
        assert ledger(w) == [
            (101, 102, "found", ""),
            (103, 105, "filled", ""),
            (106, 107, "found", ""),
            (108, 108, "filled", ""),
            (109, 110, "found", ""),
        ]
        w.write_batch(Batch(gaps=[gap(101, 110, "unfilled", reason="HTTP 418")]))
        assert [r for r in ledger(w) if r[2] != "filled"] == [
            (101, 102, "unfilled", "HTTP 418"),
            (106, 107, "unfilled", "HTTP 418"),
            (109, 110, "unfilled", "HTTP 418"),
        ]
