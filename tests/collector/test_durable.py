"""Holes, poison and silence, in process (real exchange, real loopback WebSocket, real SQLite):
a found gap outlives the collector that found it; a gap nobody can fill ends unfilled and fires
the unfilled_gap alert; a poisoned batch never blocks the next; a feed that stores nothing new
is reported."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path

from lq.alerts.engine import AlertEngine
from lq.alerts.rules import Rule
from lq.alerts.store import AlertStore
from lq.collector import Collector
from lq.exchange import LocalExchange, SimulatorSource
from lq.feeds import Backoff
from lq.feeds.events import Gap, Trade

SYMBOLS = ("BTCUSDT", "ETHUSDT")
FAST = {
    "backoff": Backoff(initial=0.05, max_delay=0.2, seed=1),
    "stale_after": 5.0,
    "backfill_delay": 0.05,
    "compression": None,
}


def rows(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def collector(db: Path, ex: LocalExchange, **kw) -> Collector:
    return Collector(
        db=db,
        source="live",
        symbols=SYMBOLS,
        ws_url=ex.ws_url,
        rest_url=ex.rest_url,
        exchange_label="local",
        client_options=FAST,
        **kw,
    )


async def until(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def found_gaps(db: Path) -> list[tuple]:
    return rows(db, "SELECT symbol, first_missing, last_missing FROM gaps WHERE status = 'found'")


async def _leave_a_found_gap(db: Path, ex: LocalExchange) -> tuple[int, int]:
    """Run a collector until it has stored a found gap (its backfill stuck behind a 429 with
    a long Retry-After) and trades after it, then stop it: the gap is still open."""
    col = collector(db, ex)
    col.start()
    await col.wait_started(20)
    await until(lambda: col.stats.trades_new > 50, 20, "first trades")
    ex.inject("rest_429", count=1, retry_after=120)
    ex.inject("skip_ids", symbol="BTCUSDT", count=7)
    await until(lambda: bool(found_gaps(db)), 20, "a found gap")
    [(_, lo, hi)] = found_gaps(db)
    await until(
        lambda: rows(db, "SELECT max(trade_id) FROM ticks WHERE symbol='BTCUSDT'")[0][0] > hi,
        20,
        "trades after the gap",
    )
    await until(lambda: ex.rest.calls.get("/api/v3/historicalTrades", 0) >= 1, 20, "the 429")
    await col.stop()
    assert found_gaps(db) == [("BTCUSDT", lo, hi)]  # never fetched: still found
    assert not rows(
        db,
        "SELECT trade_id FROM ticks WHERE symbol='BTCUSDT' AND trade_id BETWEEN ? AND ?",
        (lo, hi),
    )
    return lo, hi


def test_a_found_gap_is_reloaded_at_start_and_backfilled_alongside_the_live_feed(tmp_path):
    db = tmp_path / "holes.sqlite"

    async def go() -> tuple[LocalExchange, tuple[int, int]]:
        ex = LocalExchange(
            source=SimulatorSource(symbols=SYMBOLS, seed=3, rate=80.0, duration=8.0), port=0
        )
        await ex.start()
        try:
            hole = await _leave_a_found_gap(db, ex)
            col = collector(db, ex)
            col.start()
            await until(ex.source_done.is_set, 30, "the simulator to finish")
            last = ex.trades("BTCUSDT")[-1].trade_id
            await until(
                lambda: (
                    rows(db, "SELECT count(*) FROM gaps WHERE status = 'found'") == [(0,)]
                    and rows(db, "SELECT max(trade_id) FROM ticks WHERE symbol='BTCUSDT'")[0][0]
                    == last
                ),
                30,
                "the reloaded hole to be filled",
            )
            await col.stop()
            return ex, hole
        finally:
            await ex.stop()

    ex, (lo, hi) = asyncio.run(go())
    stored = [
        i for (i,) in rows(db, "SELECT trade_id FROM ticks WHERE symbol='BTCUSDT' ORDER BY 1")
    ]
    truth = [t.trade_id for t in ex.trades("BTCUSDT") if t.trade_id >= stored[0]]
    assert stored == truth  # every id once, the hole included
    assert rows(db, "SELECT status, last_missing FROM gaps WHERE first_missing = ?", (lo,)) == [
        ("filled", hi)
    ]


def test_a_reloaded_gap_that_cannot_be_filled_ends_unfilled_and_fires_the_alert(tmp_path):
    db = tmp_path / "unfillable.sqlite"
    with AlertStore(db) as s:
        s.add(Rule(name="hole", metric="unfilled_gap", symbol="BTCUSDT", threshold=0.5))

    async def go() -> tuple[int, int]:
        ex = LocalExchange(
            source=SimulatorSource(symbols=SYMBOLS, seed=4, rate=60.0, duration=30.0), port=0
        )
        await ex.start()
        try:
            hole = await _leave_a_found_gap(db, ex)
            ex.inject("rest_418", count=50, retry_after=3_600)  # banned for an hour
            col = collector(db, ex)
            eng = AlertEngine.attach(col, channels={}, poll_interval=0.1)
            eng.start()
            col.start()
            await until(
                lambda: rows(db, "SELECT count(*) FROM alert_events") != [(0,)],
                30,
                "the unfilled_gap alert",
            )
            await eng.stop()
            await col.stop()
            return hole
        finally:
            await ex.stop()

    lo, hi = asyncio.run(go())
    [(status, reason)] = rows(db, "SELECT status, reason FROM gaps WHERE first_missing = ?", (lo,))
    assert status == "unfilled" and "418" in reason
    [(value,)] = rows(db, "SELECT value FROM alert_events")
    assert value == hi - lo + 1


def test_a_hole_given_up_behind_a_ban_is_fetched_again_at_the_next_start(tmp_path):
    # an unfilled hole was final: a ban (418) or a long 429 in one run left its ids missing for
    # good, though the next run could fetch them
    db = tmp_path / "retry.sqlite"

    def unfilled() -> list[tuple]:
        return rows(db, "SELECT first_missing, last_missing, reason FROM gaps"
                        " WHERE status = 'unfilled'")  # fmt: skip

    async def go() -> tuple[LocalExchange, int, int]:
        ex = LocalExchange(
            source=SimulatorSource(symbols=SYMBOLS, seed=5, rate=80.0, duration=10.0), port=0
        )
        await ex.start()
        try:
            col = collector(db, ex)
            col.start()
            await col.wait_started(20)
            await until(lambda: col.stats.trades_new > 50, 20, "first trades")
            ex.inject("rest_418", count=1, retry_after=3_600)
            ex.inject("skip_ids", symbol="BTCUSDT", count=6)
            await until(lambda: bool(unfilled()), 20, "the hole given up")
            await col.stop()
            [(lo, hi, why)] = unfilled()
            assert "418" in why
            col = collector(db, ex)
            col.start()
            await until(ex.source_done.is_set, 30, "the simulator to finish")
            last = ex.trades("BTCUSDT")[-1].trade_id
            await until(
                lambda: (
                    rows(db, "SELECT count(*) FROM gaps WHERE status != 'filled'") == [(0,)]
                    and rows(db, "SELECT max(trade_id) FROM ticks WHERE symbol='BTCUSDT'")[0][0]
                    == last
                ),
                30,
                "the hole to be fetched again",
            )
            await col.stop()
            return ex, lo, hi
        finally:
            await ex.stop()

    ex, lo, hi = asyncio.run(go())
    stored = [
        i for (i,) in rows(db, "SELECT trade_id FROM ticks WHERE symbol='BTCUSDT' ORDER BY 1")
    ]
    assert stored == [t.trade_id for t in ex.trades("BTCUSDT") if t.trade_id >= stored[0]]
    assert set(range(lo, hi + 1)) <= set(stored)
    cover = rows(
        db,
        "SELECT first_missing, last_missing, status FROM gaps"
        " WHERE first_missing <= ? AND last_missing >= ? ORDER BY 1",
        (hi, lo),
    )
    assert {s for *_, s in cover} == {"filled"}
    covered = {i for a, b, _ in cover for i in range(max(a, lo), min(b, hi) + 1)}
    assert covered == set(range(lo, hi + 1))  # (a filled row may reach past: a later hole)


def _poison(i: int) -> Trade:
    return Trade(
        symbol="BTCUSDT",
        trade_id=2**63 + i,
        price=1.0,
        qty=1.0,
        ts=time.time_ns() // 1000,
        event_ts=time.time_ns() // 1000,
        is_buyer_maker=False,
        recv_ts=time.time_ns() // 1000,
        exchange="local",
    )


def _poison_gap(i: int) -> Gap:
    return Gap(
        symbol="BTCUSDT",
        kind="trade",
        first_missing=2**63 + i,
        last_missing=2**63 + i,
        status="found",
        detected_ts=time.time_ns() // 1000,
        exchange="local",
    )


def test_poison_events_in_the_live_path_never_stop_storage(tmp_path):
    # the parser refuses such frames (feed checks); the writer must survive them anyway
    db = tmp_path / "poison.sqlite"

    async def go() -> tuple[LocalExchange, Collector]:
        ex = LocalExchange(
            source=SimulatorSource(symbols=SYMBOLS, seed=6, rate=150.0, duration=4.0), port=0
        )
        await ex.start()
        col = collector(db, ex)
        col.start()
        try:
            await col.wait_started(20)
            for i in range(20):  # straight into the batch, as the feed would
                # a trade id past int64 (the writer's invariants refuse it), and a gap row
                # past int64 (no rule covers it: SQLite refuses it, the isolation keeps it out)
                col._sink(_poison(i) if i % 2 == 0 else _poison_gap(i))
                await asyncio.sleep(0.05)
            await until(ex.source_done.is_set, 30, "the simulator to finish")
            await until(
                lambda: all(
                    rows(db, "SELECT max(trade_id) FROM ticks WHERE symbol=?", (s,))[0][0]
                    == ex.trades(s)[-1].trade_id
                    for s in SYMBOLS
                ),
                30,
                "every trade stored",
            )
            assert col.storing and col._status_detail()["storage"] == "storing"
        finally:
            await col.stop()
            await ex.stop()
        return ex, col

    ex, col = asyncio.run(go())
    for s in SYMBOLS:
        stored = [
            i for (i,) in rows(db, "SELECT trade_id FROM ticks WHERE symbol=? ORDER BY 1", (s,))
        ]
        assert stored == [t.trade_id for t in ex.trades(s) if t.trade_id >= stored[0]]
    dead = [r for (r,) in rows(db, "SELECT reason FROM dead_letters")]
    assert len(dead) == 20, dead
    assert sum("trade_id=9223372036854775" in r and "outside 0..2**63-1" in r for r in dead) == 10
    assert sum(r.startswith("gap not storable: OverflowError") for r in dead) == 10
    assert col.exit_code == 0 and col.stats.write_errors == 0


def test_a_connected_feed_that_stores_nothing_new_is_reported(tmp_path, caplog):
    # the same simulated market twice into one database: the second run's trades are all
    # duplicates (its ids start again at 1); after idle_after it says so, in the log and status
    db = tmp_path / "idle.sqlite"

    async def run_once(idle_after: float) -> tuple[dict, int]:
        ex = LocalExchange(
            source=SimulatorSource(symbols=SYMBOLS, seed=9, rate=40.0, duration=6.0), port=0
        )
        await ex.start()
        col = collector(db, ex, idle_after=idle_after)
        col.start()
        try:
            await col.wait_started(20)
            await until(ex.source_done.is_set, 30, "the simulator to finish")
            if idle_after < 5:
                await until(lambda: bool(col._idle), 20, "the no-new-rows detector")
            return col._status_detail(), col.stats.trades_new
        finally:
            await col.stop()
            await ex.stop()

    first, n1 = asyncio.run(run_once(60.0))
    assert first["storage"] == "storing" and n1 > 200
    with caplog.at_level(logging.ERROR, logger="lq.collector.core"):
        second, n2 = asyncio.run(run_once(1.5))
    assert n2 == 0
    assert second["state"] == "not storing" and second["storage"] == "not storing"
    assert "nothing new stored" in second["storage_reason"]
    assert any("nothing new stored" in r.getMessage() for r in caplog.records)
    [(state, detail)] = rows(db, "SELECT state, detail FROM feed_status")
    assert state == "stopped" and '"storage": "not storing"' in detail
