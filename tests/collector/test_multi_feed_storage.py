"""Storage failure with several feeds in one collector: the database refuses writes for a
while, then takes them again. Two local Binance-protocol exchanges under two labels trade
the same symbols with the same trade ids (each numbers from 1) but different prices, so a
row or a hole given to the wrong feed would show: a row stored under the wrong label, or a
hole backfilled from the other exchange (same id, the other exchange's price)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from lq.collector import Collector, FeedSpec
from lq.collector.health import read_status_file
from lq.exchange import LocalExchange, SimulatorSource
from lq.feeds import Backoff

SYMBOLS = ("BTCUSDT", "ETHUSDT")
LABELS = ("loc-a", "loc-b")
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


async def until(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stored(db: Path, label: str, symbol: str) -> list[tuple[int, float, float]]:
    return rows(
        db,
        "SELECT trade_id, price, qty FROM ticks WHERE exchange = ? AND symbol = ? ORDER BY 1",
        (label, symbol),
    )


def _readonly(on: bool) -> Any:
    def fn(w: Any) -> None:
        w.conn.execute(f"PRAGMA query_only = {1 if on else 0}")  # writes: "readonly database"

    return fn


def _outage(tmp_path: Path, spill_dir: Path, max_buffer: int) -> dict[str, Any]:
    db = tmp_path / "two.sqlite"

    async def go() -> dict[str, Any]:
        exs = {
            label: LocalExchange(
                source=SimulatorSource(symbols=SYMBOLS, seed=seed, rate=60.0), port=0
            )
            for label, seed in zip(LABELS, (11, 12), strict=True)
        }
        for ex in exs.values():
            await ex.start()
        col = Collector(
            db=db,
            source="live",
            feeds=[
                FeedSpec(
                    venue="binance",
                    symbols=SYMBOLS,
                    label=label,
                    ws_url=ex.ws_url,
                    rest_url=ex.rest_url,
                )
                for label, ex in exs.items()
            ],
            client_options=FAST,
            spill_dir=spill_dir,
            max_buffer=max_buffer,
            retry_interval=0.2,
        )
        col.start()
        out: dict[str, Any] = {"db": db}
        try:
            await col.wait_started(60)
            await until(lambda: col.stats.trades_new > 200, 60, "first trades")
            await col.run_in_writer(_readonly(True))
            await until(lambda: bool(col._failure), 30, "the outage to be noticed")
            out["reason"] = col._failure
            # an outage long enough that memory overflows (into the spill, or lost)
            n0 = col.stats.events_spilled + col.stats.events_lost
            await until(
                lambda: col.stats.events_spilled + col.stats.events_lost > n0 + 3 * max_buffer,
                60,
                "events to leave memory",
            )
            rows_during = rows(db, "SELECT count(*) FROM ticks")[0][0]
            out["details_during"] = col._status_details()
            await asyncio.sleep(1.5)  # a status report while not storing (1 s interval)
            out["file_during"] = read_status_file(db)
            await col.run_in_writer(_readonly(False))
            await until(lambda: col.storing, 60, "storing again")
            targets = {
                (label, s): ex.trades(s)[-1].trade_id + 50
                for label, ex in exs.items()
                for s in SYMBOLS
            }

            def caught_up() -> bool:
                if rows(db, "SELECT count(*) FROM gaps WHERE status = 'found'")[0][0]:
                    return False
                for (label, s), target in targets.items():
                    have = [r[0] for r in stored(db, label, s)]
                    if not have or have[-1] < target or have[-1] - have[0] + 1 != len(have):
                        return False
                return True

            await until(caught_up, 90, "every id of both feeds stored")
            out["rows_during"] = rows_during
            out["stats"] = col.stats
        finally:
            await col.stop()
            out["exit_code"] = col.exit_code
            out["truth"] = {
                (label, s): [(t.trade_id, t.price, t.qty) for t in ex.trades(s)]
                for label, ex in exs.items()
                for s in SYMBOLS
            }
            for ex in exs.values():
                await ex.stop()
        return out

    return asyncio.run(asyncio.wait_for(go(), 300))


def _check_every_id_once_under_its_own_label(out: dict[str, Any]) -> None:
    db = out["db"]
    assert {r[0] for r in rows(db, "SELECT DISTINCT exchange FROM ticks")} == set(LABELS)
    for (label, s), truth in out["truth"].items():
        got = stored(db, label, s)
        assert got, (label, s)
        # every id once, from the first stored on, with this exchange's own price and qty
        want = [t for t in truth if got[0][0] <= t[0] <= got[-1][0]]
        assert got == want, (label, s)
    # the two exchanges share ids but not prices: a swap would have been caught above
    a, b = out["truth"][(LABELS[0], "BTCUSDT")], out["truth"][(LABELS[1], "BTCUSDT")]
    assert {i for i, _, _ in a} & {i for i, _, _ in b}
    assert dict((i, p) for i, p, _ in a) != dict((i, p) for i, p, _ in b)
    status = {ex: json.loads(d) for ex, d in rows(db, "SELECT exchange, detail FROM feed_status")}
    assert set(status) == set(LABELS)
    for label, d in status.items():
        assert d["symbols"] == list(SYMBOLS), label
    for label, d in out["details_during"].items():  # each feed's own row said not storing
        assert d["state"] == "not storing" and d["storage"] == "not storing", label
        assert "readonly" in d["storage_reason"], label
        assert d["source_label"] == label.upper(), label
    # <db>.status (what readers see when the database cannot take feed_status) has both
    side = out["file_during"]
    assert side is not None and [r["exchange"] for r in side["rows"]] == list(LABELS)
    assert all(r["state"] == "not storing" for r in side["rows"])


def test_two_feeds_through_an_outage_with_a_spill_store_every_id_once_under_its_label(
    tmp_path: Path,
) -> None:
    out = _outage(tmp_path, tmp_path / "spill", max_buffer=100)
    assert "readonly" in out["reason"]
    s = out["stats"]
    assert s.events_spilled > 0 and s.events_reimported > 0 and s.events_lost == 0
    assert out["exit_code"] == 0
    _check_every_id_once_under_its_own_label(out)
    # nothing was lost, so no gap was opened by the outage
    assert not rows(out["db"], "SELECT * FROM gaps WHERE reason LIKE 'dropped while%'")


def test_two_feeds_losing_events_get_their_own_holes_back_under_their_own_label(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("the spill cannot go here")
    out = _outage(tmp_path, blocker / "spill", max_buffer=60)
    s = out["stats"]
    assert s.events_lost > 0
    assert out["exit_code"] == 4
    _check_every_id_once_under_its_own_label(out)
    db = out["db"]
    # the lost trades became holes of the feed they came from: a gap row per label, each
    # settled over exactly the ids it named (found, then filled from that feed's exchange)
    lost = rows(
        db,
        "SELECT exchange, symbol, first_missing, last_missing, status FROM gaps"
        " ORDER BY exchange, symbol, first_missing",
    )
    assert {r[0] for r in lost} == set(LABELS), lost
    assert all(r[4] == "filled" for r in lost), lost
    for label, sym, lo, hi, _ in lost:
        have = {i for i, _, _ in stored(db, label, sym)}
        assert all(i in have for i in range(lo, hi + 1)), (label, sym, lo, hi)
        truth = {i for i, _, _ in out["truth"][(label, sym)]}
        assert all(i in truth for i in range(lo, hi + 1)), (label, sym, lo, hi)


def test_the_status_file_of_several_feeds_gives_every_feed_its_row(tmp_path: Path) -> None:
    from lq.collector.health import StatusFile, feed_rows

    db = tmp_path / "none.sqlite"  # no database: only <db>.status tells
    f = StatusFile(db)
    now = time.time_ns() // 1000
    rows_in = [
        {
            "exchange": label,
            "source": "live",
            "updated_ts": now,
            "state": "not storing",
            "pid": 1,
            "detail": {"storage": "not storing", "symbols": list(SYMBOLS)},
        }
        for label in LABELS
    ]
    assert f.write({"rows": rows_in})
    f.close()
    got = feed_rows(db)
    assert [r["exchange"] for r in got] == list(LABELS)
    assert all(r["storage"] == "not storing" and r["state"] == "not storing" for r in got)
    f = StatusFile(db)
    assert f.write(rows_in[0])  # one feed: the row itself, as before
    f.close()
    assert [r["exchange"] for r in feed_rows(db)] == [LABELS[0]]


def test_found_gaps_of_two_feeds_are_reloaded_and_each_filled_from_its_own_exchange(
    tmp_path: Path,
) -> None:
    from lq.feeds.events import Gap
    from lq.store.writer import Batch, Writer

    db = tmp_path / "reload.sqlite"
    holes = {LABELS[0]: ("BTCUSDT", 5, 19), LABELS[1]: ("ETHUSDT", 8, 30)}

    async def go() -> dict[tuple[str, str], list[tuple[int, float, float]]]:
        exs = {
            label: LocalExchange(
                source=SimulatorSource(symbols=SYMBOLS, seed=seed, rate=60.0), port=0
            )
            for label, seed in zip(LABELS, (21, 22), strict=True)
        }
        for ex in exs.values():
            await ex.start()
        try:
            await until(
                lambda: all(len(ex.trades(s)) > 40 for ex in exs.values() for s in SYMBOLS),
                60,
                "both exchanges to trade",
            )
            now = time.time_ns() // 1000
            with Writer(db) as w:  # an earlier run's open holes, one per feed
                w.write_batch(
                    Batch(
                        gaps=[
                            Gap(
                                symbol=sym,
                                kind="trade",
                                first_missing=lo,
                                last_missing=hi,
                                status="found",
                                detected_ts=now,
                                exchange=label,
                            )
                            for label, (sym, lo, hi) in holes.items()
                        ]
                    )
                )
            col = Collector(
                db=db,
                source="live",
                feeds=[
                    FeedSpec(
                        venue="binance",
                        symbols=SYMBOLS,
                        label=label,
                        ws_url=ex.ws_url,
                        rest_url=ex.rest_url,
                    )
                    for label, ex in exs.items()
                ],
                client_options=FAST,
            )
            col.start()
            try:
                await until(
                    lambda: not rows(db, "SELECT * FROM gaps WHERE status = 'found'"),
                    60,
                    "both reloaded holes to be settled",
                )
                assert {k: [(h.symbol, h.first_id, h.last_id) for h in v]
                        for k, v in col._reloaded.items()} == {
                    label: [h] for label, h in holes.items()
                }  # fmt: skip
                await asyncio.sleep(0.5)  # the next flush stores the backfill's trades
            finally:
                await col.stop()
            return {
                (label, s): [(t.trade_id, t.price, t.qty) for t in ex.trades(s)]
                for label, ex in exs.items()
                for s in SYMBOLS
            }
        finally:
            for ex in exs.values():
                await ex.stop()

    truth = asyncio.run(asyncio.wait_for(go(), 180))
    for label, (sym, lo, hi) in holes.items():
        got = [r for r in stored(db, label, sym) if lo <= r[0] <= hi]
        assert got == [t for t in truth[(label, sym)] if lo <= t[0] <= hi], label
        assert rows(
            db,
            "SELECT exchange, status, last_missing FROM gaps WHERE first_missing = ?"
            " AND symbol = ? AND exchange = ?",
            (lo, sym, label),
        ) == [(label, "filled", hi)]
    # neither feed stored the other's hole: no rows of the other label's hole symbol ids
    # beyond what that feed itself streamed (its ids start after its connect)
    other = {LABELS[0]: ("ETHUSDT", 8, 30), LABELS[1]: ("BTCUSDT", 5, 19)}
    for label, (sym, lo, hi) in other.items():
        assert not [r for r in stored(db, label, sym) if lo <= r[0] <= hi], label
