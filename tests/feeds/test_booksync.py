"""lq.feeds.booksync.BookSync: Binance's local-book procedure, on the real recordings and on
a pure exchange model with each fault of issue 15 (dropped diff, duplicated diff, snapshot
older than the buffered events, stale snapshot, crossed/locked update).

The "truth" here is an independent model: two plain dicts that a random exchange mutates,
with update ids that follow Binance's spot (``U = previous u + 1``) or USD-M (ids may skip,
``pu = previous u``) rules. Its snapshot at any moment is the exchange's own book.
"""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lq.feeds.booksync import BookSync
from lq.feeds.depth import DepthParser
from lq.feeds.events import BookTicker, DepthSnapshot, DepthUpdate
from lq.feeds.parser import Parser

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "binance"


# --- the real recordings -----------------------------------------------------------------------


def replay(name: str) -> tuple[BookSync, int, int, int]:
    """Parse a recording, run its depth frames and snapshot through BookSync in arrival order,
    and compare the book with every @bookTicker whose update id is a diff's final ``u``
    (the only ids at which the book's state is observable: a diff carries the net changes
    of ``U..u``). Returns the sync, checkpoints, matches and the crossed count."""
    sym = name.split("_")[1].upper()
    dp, tp = DepthParser(), Parser()
    seq: list[DepthUpdate | DepthSnapshot] = []
    tickers: dict[int, BookTicker] = {}
    with gzip.open(DATA / name, "rt") as f:
        for line in f:
            ts, _, raw = line.partition(" ")
            out = dp.parse(raw, int(ts) // 1000, symbol=sym)
            if out is None:
                for ev in tp.parse(raw, int(ts) // 1000):
                    if isinstance(ev, BookTicker):
                        tickers.setdefault(ev.update_id, ev)
            else:
                assert isinstance(out, DepthUpdate | DepthSnapshot), out
                seq.append(out)
    sync = BookSync(sym)
    checked = matched = crossed = 0
    for ev in seq:
        if isinstance(ev, DepthSnapshot):
            assert sync.on_snapshot(ev) == "synced"
            continue
        outcome = sync.on_update(ev)
        book = sync.book
        crossed += outcome == "resync" and sync.resyncs[-1].reason in ("crossed", "locked")
        crossed += book.crossed
        if outcome == "applied" and (t := tickers.get(ev.last_id)) is not None:
            checked += 1
            matched += (book.best_bid, book.best_bid_qty, book.best_ask, book.best_ask_qty) == (
                t.bid,
                t.bid_qty,
                t.ask,
                t.ask_qty,
            )
    return sync, checked, matched, crossed


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/binance/ is not here")
@pytest.mark.parametrize(
    ("name", "applied", "checkpoints"),
    # 3,451 / 3,434 diffs; the two buffered before the snapshot are covered by it (u <=
    # lastUpdateId 50093239218 for BTCUSDT); 564 / 577 bookTicker ids equal a diff's u
    [("spot_btcusdt_20240808.gz", 3449, 564), ("spot_ethusdt_20240808.gz", 3432, 577)],
)
def test_real_recording_book_equals_book_ticker_and_is_never_crossed(
    name: str, applied: int, checkpoints: int
) -> None:
    sync, checked, matched, crossed = replay(name)
    assert sync.synced
    assert sync.resync_counts == {}
    assert (sync.applied, sync.covered, sync.duplicates) == (applied, 2, 0)
    assert checked == checkpoints
    # issue 15 asks for >= 99 %; measured: 564/564 and 577/577 (100 %), bid, ask and both
    # quantities exactly equal
    assert matched / checked >= 0.99
    assert matched == checked
    assert crossed == 0


# --- a pure exchange model ---------------------------------------------------------------------


class Exchange:
    """A random exchange book: bids on prices 1..40, asks on 41..80 (never crossed)."""

    def __init__(self, seed: int, market: str) -> None:
        self.rng = random.Random(seed)
        self.market = market
        self.bids: dict[float, float] = {float(p): 1.0 for p in range(30, 41)}
        self.asks: dict[float, float] = {float(p): 1.0 for p in range(41, 52)}
        self.id = 1_000

    def step(self) -> DepthUpdate:
        rng = self.rng
        changes: dict[str, list[tuple[float, float]]] = {"b": [], "a": []}
        for _ in range(rng.randint(1, 6)):
            side = rng.choice("ba")
            p = float(rng.randint(1, 40) if side == "b" else rng.randint(41, 80))
            q = 0.0 if rng.random() < 0.35 else float(rng.randint(1, 9))
            if p in (x for x, _ in changes[side]):
                continue
            changes[side].append((p, q))
            book = self.bids if side == "b" else self.asks
            if q == 0.0:
                book.pop(p, None)
            else:
                book[p] = q
        prev = self.id
        # spot ids are contiguous; USD-M ids may skip (pu ties the events together)
        first = prev + 1 + (rng.randint(0, 3) if self.market == "usdm" else 0)
        self.id = first + rng.randint(0, 4)
        return DepthUpdate(
            symbol="X",
            first_id=first,
            last_id=self.id,
            prev_last_id=prev if self.market == "usdm" else None,
            bids=tuple(changes["b"]),
            asks=tuple(changes["a"]),
            ts=self.id,
            event_ts=self.id,
        )

    def snapshot(self) -> DepthSnapshot:
        return DepthSnapshot(
            symbol="X",
            last_update_id=self.id,
            bids=tuple(sorted(self.bids.items(), reverse=True)),
            asks=tuple(sorted(self.asks.items())),
            ts=self.id,
        )

    def best_ask(self) -> float:
        return min(self.asks)


def assert_is_truth(sync: BookSync, ex: Exchange) -> None:
    assert sync.synced
    assert sync.book.update_id == ex.id
    assert sync.book.as_dict() == {"bid": ex.bids, "ask": ex.asks}


def start(market: str, seed: int = 1) -> tuple[BookSync, Exchange]:
    """Connect, buffer three events, take the snapshot, receive two more."""
    sync, ex = BookSync("X", market=market), Exchange(seed, market)
    assert sync.needs_snapshot is not None and sync.needs_snapshot.reason == "start"
    for _ in range(3):
        assert sync.on_update(ex.step()) == "buffered"
    snap = ex.snapshot()
    for _ in range(2):
        sync.on_update(ex.step())
    assert sync.on_snapshot(snap) == "synced"
    assert_is_truth(sync, ex)
    return sync, ex


def run(sync: BookSync, ex: Exchange, n: int) -> None:
    for _ in range(n):
        assert sync.on_update(ex.step()) == "applied"
    assert_is_truth(sync, ex)


def resnapshot(sync: BookSync, ex: Exchange) -> None:
    """What the transport does: one more event arrives while the REST call is out."""
    req = sync.needs_snapshot
    assert req is not None
    sync.on_update(ex.step())
    snap = ex.snapshot()
    assert req.min_update_id is None or snap.last_update_id >= req.min_update_id
    sync.on_update(ex.step())
    assert sync.on_snapshot(snap) == "synced"
    assert_is_truth(sync, ex)


MARKETS = pytest.mark.parametrize("market", ["spot", "usdm"])


@MARKETS
def test_clean_stream_stays_equal_to_the_exchange(market: str) -> None:
    sync, ex = start(market)
    run(sync, ex, 200)
    assert sync.resync_total == 0
    assert sync.needs_snapshot is None


@MARKETS
def test_dropped_diff_is_a_gap_then_a_resync_restores_the_truth(market: str) -> None:
    sync, ex = start(market)
    run(sync, ex, 10)
    ex.step()  # lost on the wire
    ev = ex.step()
    assert sync.on_update(ev) == "resync"
    r = sync.resyncs[-1]
    assert (r.reason, r.first_id, r.last_id) == ("gap", ev.first_id, ev.last_id)
    assert not sync.synced and len(sync.book) == 0  # a known-wrong book is not kept
    req = sync.needs_snapshot
    assert req is not None and req.reason == "gap"
    # the event that showed the gap opened the new buffer
    assert req.min_update_id == (ev.first_id - 1 if market == "spot" else ev.first_id)
    resnapshot(sync, ex)
    run(sync, ex, 20)
    assert sync.resync_counts == {"gap": 1}


@MARKETS
def test_duplicated_diff_is_detected_and_dropped(market: str) -> None:
    # Binance: "ignore an event whose u is below the book's update id"; a duplicate carries
    # absolute quantities already applied, so dropping it keeps the book exact (no resync)
    sync, ex = start(market)
    ev = ex.step()
    assert sync.on_update(ev) == "applied"
    assert sync.on_update(ev) == "dropped"
    run(sync, ex, 5)
    old = ex.step()
    sync.on_update(old)
    run(sync, ex, 3)
    assert sync.on_update(old) == "dropped"  # replayed late
    assert sync.duplicates == 2 and sync.resync_total == 0
    assert_is_truth(sync, ex)


@MARKETS
def test_snapshot_older_than_the_buffered_events_is_fetched_again(market: str) -> None:
    sync, ex = BookSync("X", market=market), Exchange(2, market)
    old = ex.snapshot()
    ex.step()  # before the stream was connected
    for _ in range(3):
        sync.on_update(ex.step())
    assert sync.on_snapshot(old) == "waiting"
    r = sync.resyncs[-1]
    assert (r.reason, r.last_id) == ("snapshot_older_than_events", old.last_update_id)
    assert sync.buffered == 3  # the buffer is still good
    resnapshot(sync, ex)
    run(sync, ex, 20)


@MARKETS
def test_stale_snapshot_after_a_gap_is_detected_and_refetched(market: str) -> None:
    sync, ex = start(market)
    run(sync, ex, 5)
    cached = ex.snapshot()  # what a cache in front of REST keeps answering
    run(sync, ex, 5)
    ex.step()  # dropped
    assert sync.on_update(ex.step()) == "resync"
    assert sync.on_snapshot(cached) == "waiting"
    assert sync.resyncs[-1].reason == "snapshot_older_than_events"
    assert not sync.synced
    resnapshot(sync, ex)
    run(sync, ex, 10)
    assert sync.resync_counts == {"gap": 1, "snapshot_older_than_events": 1}


@MARKETS
def test_late_snapshot_while_synced_is_refused_as_stale(market: str) -> None:
    sync, ex = start(market)
    late = ex.snapshot()
    run(sync, ex, 5)
    assert sync.on_snapshot(late) == "stale"
    assert sync.stale_snapshots == 1
    assert_is_truth(sync, ex)
    run(sync, ex, 5)


@MARKETS
@pytest.mark.parametrize(("offset", "reason"), [(0.0, "locked"), (3.0, "crossed")])
def test_crossed_or_locked_update_is_detected_and_resynced(
    market: str, offset: float, reason: str
) -> None:
    sync, ex = start(market)
    run(sync, ex, 5)
    good = ex.step()
    bad = DepthUpdate(  # the same ids, a corrupted payload: a bid at or above the best ask
        symbol="X",
        first_id=good.first_id,
        last_id=good.last_id,
        prev_last_id=good.prev_last_id,
        bids=((ex.best_ask() + offset, 1.0),),
        asks=(),
        ts=good.ts,
        event_ts=good.event_ts,
    )
    assert sync.on_update(bad) == "resync"
    r = sync.resyncs[-1]
    assert r.reason == reason and r.last_id == good.last_id
    assert not sync.synced and len(sync.book) == 0
    resnapshot(sync, ex)
    run(sync, ex, 10)
    assert sync.resync_counts == {reason: 1}


def test_spot_first_event_joins_at_last_update_id_plus_one() -> None:
    # U <= lastUpdateId + 1 <= u; here U == lastUpdateId + 1 exactly (Binance step 4)
    sync, ex = BookSync("X"), Exchange(3, "spot")
    snap = ex.snapshot()
    ev = ex.step()
    assert ev.first_id == snap.last_update_id + 1
    sync.on_update(ev)
    assert sync.on_snapshot(snap) == "synced"
    assert_is_truth(sync, ex)


def test_snapshot_newer_than_every_buffered_event_waits_for_the_joining_event() -> None:
    sync, ex = BookSync("X"), Exchange(4, "spot")
    evs = [ex.step() for _ in range(4)]
    snap = ex.snapshot()
    for ev in evs[:2]:
        sync.on_update(ev)
    assert sync.on_snapshot(snap) == "synced"  # both buffered events are covered
    assert sync.covered == 2
    for ev in evs[2:]:  # a slow stream delivers events the snapshot already holds
        assert sync.on_update(ev) == "dropped"
    run(sync, ex, 5)


def test_wrong_symbol_or_market_is_a_programming_error() -> None:
    ex = Exchange(5, "spot")
    with pytest.raises(ValueError, match="was given an event of 'X'"):
        BookSync("Y").on_update(ex.step())
    with pytest.raises(ValueError, match="without pu"):
        BookSync("X", market="usdm").on_update(ex.step())
    partial = msgspec.structs.replace(ex.snapshot(), source="partial")
    with pytest.raises(ValueError, match="partial-book frame"):
        BookSync("X").on_snapshot(partial)
    with pytest.raises(ValueError, match="market='coinm'"):
        BookSync("X", market="coinm")  # type: ignore[arg-type]


ACTIONS = st.sampled_from(["ok", "ok", "ok", "ok", "drop", "dup", "cross", "snap", "stale"])


@settings(max_examples=150, deadline=None)
@given(
    market=st.sampled_from(["spot", "usdm"]),
    seed=st.integers(0, 10**6),
    plan=st.lists(ACTIONS, max_size=80),
)
def test_any_fault_schedule_never_shows_a_wrong_or_crossed_book(
    market: str, seed: int, plan: list[str]
) -> None:
    """Whatever the faults, whenever the sync says synced and its id is the exchange's, the
    book is the exchange's book; it is never crossed while synced; and a clean stretch after
    the last fault always ends synced."""
    sync, ex = BookSync("X", market=market), Exchange(seed, market)
    old = ex.snapshot()
    # the clean tail: an event (the stream is open before the snapshot is fetched, so the
    # event whose u is the snapshot's id is seen), a snapshot, two events
    for action in [*plan, "ok", "snap", "ok", "ok"]:
        if action == "snap" and sync.needs_snapshot is not None:
            sync.on_snapshot(ex.snapshot())
        elif action == "stale":
            sync.on_snapshot(old)
        else:
            ev = ex.step()
            if action == "drop":
                continue
            if action == "cross":
                ev = DepthUpdate(
                    symbol="X",
                    first_id=ev.first_id,
                    last_id=ev.last_id,
                    prev_last_id=ev.prev_last_id,
                    bids=((ex.best_ask(), 1.0),),
                    asks=(),
                    ts=0,
                    event_ts=0,
                )
            sync.on_update(ev)
            if action == "dup":
                sync.on_update(ev)
        if sync.synced:
            assert not sync.book.crossed
            if sync.book.update_id == ex.id and action != "cross":
                assert sync.book.as_dict() == {"bid": ex.bids, "ask": ex.asks}
        if action == "snap":
            old = ex.snapshot()
    assert sync.synced
    assert_is_truth(sync, ex)


def test_gap_while_waiting_restarts_the_buffer_and_a_full_buffer_drops_the_oldest() -> None:
    sync, ex = BookSync("X", max_buffer=3), Exchange(6, "spot")
    sync.on_update(ex.step())
    ex.step()  # lost while waiting
    after = ex.step()
    sync.on_update(after)
    assert sync.buffer_restarts == 1 and sync.buffered == 1
    assert sync.needs_snapshot.min_update_id == after.first_id - 1
    evs = [ex.step() for _ in range(3)]
    for ev in evs:
        sync.on_update(ev)
    assert sync.buffered == 3 and sync.buffer_dropped == 1
    # the oldest kept is now evs[0]: the snapshot must reach it
    assert sync.needs_snapshot.min_update_id == evs[0].first_id - 1
    sync.on_update(ex.step())
    assert sync.on_snapshot(ex.snapshot()) == "synced"
    run(sync, ex, 5)
    assert sync.resync_total == 0  # none of this was a resync: the book was never synced
