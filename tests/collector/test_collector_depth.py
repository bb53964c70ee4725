"""The live depth feed end to end: local exchange -> collector -> SQLite, over real sockets.

The two real recordings are replayed at full speed through the local exchange (which serves
their ``@depth@100ms`` diffs and a REST snapshot consistent with them) into a collector that
subscribes to ``trade,depth@100ms``. The collector keeps a book per symbol by Binance's
snapshot-and-diff procedure and stores its top 20 levels once per second of exchange time.

The reference is computed here, independently of lq's book: a dict of levels per side, from
the recorded REST snapshot plus every recorded diff, sorted after each diff; and the recorded
``@bookTicker`` frames at the same update ids.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lq.collector import Collector
from lq.feeds import Backoff
from lq.feeds.recording import read_frames
from lq.store import Store

FILES = {"BTCUSDT": "spot_btcusdt_20240808.gz", "ETHUSDT": "spot_ethusdt_20240808.gz"}
LEVELS = 20
FAST = {
    "backoff": Backoff(initial=0.05, max_delay=0.2, seed=1),
    "stale_after": 5.0,
    "backfill_delay": 0.05,
}


class Reference:
    """What one recording says the book is: the top levels after each diff's ``u``."""

    def __init__(self, path: Path) -> None:
        snap: dict = {}
        self.diffs: list[dict] = []
        self.tickers: dict[int, tuple[float, float, float, float]] = {}
        for _, raw in read_frames(path):
            d = json.loads(raw)
            stream = d.get("stream", "")
            if "lastUpdateId" in d and not snap:
                snap = d
            elif stream.endswith("@depth@100ms"):
                self.diffs.append(d["data"])
            elif stream.endswith("@bookTicker"):
                t = d["data"]
                self.tickers.setdefault(
                    t["u"], (float(t["b"]), float(t["B"]), float(t["a"]), float(t["A"]))
                )
        bids = {float(p): float(q) for p, q in snap["bids"]}
        asks = {float(p): float(q) for p, q in snap["asks"]}
        sid = snap["lastUpdateId"]
        self.tops: dict[int, tuple[list, list]] = {}
        for d in self.diffs:
            if d["u"] <= sid:
                continue
            for side, levels in ((bids, d["b"]), (asks, d["a"])):
                for p, q in levels:
                    if float(q) == 0:
                        side.pop(float(p), None)
                    else:
                        side[float(p)] = float(q)
            self.tops[d["u"]] = (
                sorted(bids.items(), key=lambda pq: -pq[0])[:LEVELS],
                sorted(asks.items(), key=lambda pq: pq[0])[:LEVELS],
            )

    def first_of_each_second(self, from_u: int) -> list[int]:
        """The ``u`` of the first diff of each second of exchange time (``E``), from
        ``from_u`` on: where the collector takes its snapshots."""
        out, seen = [], set()
        for d in self.diffs:
            sec = d["E"] // 1000
            if d["u"] >= from_u and sec not in seen:
                seen.add(sec)
                out.append(d["u"])
        return out


def _stored(db: Path, symbol: str) -> list[tuple[int, list, list]]:
    with Store(db) as s:
        h = s.book(symbol, exchange="replay")
    out = []
    for k in range(len(h)):
        bp, bq, ap, aq = h.at(k)
        out.append(
            (
                int(h.update_id[k]),
                list(zip(bp.tolist(), bq.tolist(), strict=True)),
                list(zip(ap.tolist(), aq.tolist(), strict=True)),
            )
        )
    return out


def _check_against_reference(ref: Reference, rows: list[tuple[int, list, list]]) -> int:
    """Every stored snapshot equals the reference book at its update id, exactly; returns how
    many could also be checked against a recorded @bookTicker (and were equal)."""
    ticker_checks = 0
    for u, bids, asks in rows:
        assert u in ref.tops, f"stored update id {u} is no diff's u after the snapshot"
        want_b, want_a = ref.tops[u]
        assert bids == want_b, f"bids at u={u} differ from the reference"
        assert asks == want_a, f"asks at u={u} differ from the reference"
        t = ref.tickers.get(u)
        if t is not None:
            assert (bids[0][0], bids[0][1], asks[0][0], asks[0][1]) == t, f"bookTicker u={u}"
            ticker_checks += 1
    return ticker_checks


def _count(db: Path, sql: str) -> int:
    try:
        conn = sqlite3.connect(db, timeout=5)
        try:
            return int(conn.execute(sql).fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_lq_collect_depth_replay_stores_books_equal_to_the_reference(
    tmp_path: Path, shared_data: Path
) -> None:
    refs = {s: Reference(shared_data / f) for s, f in FILES.items()}
    assert len(refs["BTCUSDT"].diffs) == 3451 and len(refs["ETHUSDT"].diffs) == 3434
    db = tmp_path / "depth.sqlite"
    files = ",".join(str(shared_data / f) for f in FILES.values())
    proc = subprocess.Popen(
        [sys.executable, "-m", "lq.cli", "collect", "--db", str(db), "--source", f"replay:{files}",
         "--speed", "max", "--symbols", "BTCUSDT,ETHUSDT", "--channels", "trade,depth@100ms",
         "--no-alerts"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240  # minutes under load; ends as soon as all is stored
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists() and _count(db, "SELECT count(*) FROM ticks") >= 9757 + 6106:
                tops = [
                    _count(
                        db,
                        "SELECT count(*) FROM book_snapshots WHERE symbol = "
                        f"'{s}' AND update_id >= {u}",
                    )
                    for s, u in ((s, refs[s].first_of_each_second(0)[-1]) for s in refs)
                ]
                if all(tops):
                    break
            time.sleep(0.25)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM book_resyncs").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0
    detail = json.loads(
        conn.execute("SELECT detail FROM feed_status ORDER BY updated_ts DESC LIMIT 1").fetchone()[
            0
        ]
    )
    conn.close()
    status = subprocess.run(
        [sys.executable, "-m", "lq.cli", "status", "--db", str(db)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "books:    BTCUSDT synced, 0 resyncs; ETHUSDT synced, 0 resyncs" in status.stdout
    books = detail["books"]  # the book health the dashboard reads
    assert {s: (b["synced"], b["resyncs"], b["crossed"]) for s, b in books.items()} == {
        "BTCUSDT": (True, 0, 0),
        "ETHUSDT": (True, 0, 0),
    }
    for sym, ref in refs.items():
        rows = _stored(db, sym)
        ids = [u for u, _, _ in rows]
        # one snapshot per second of exchange time, from the first synced diff to the end
        assert ids == ref.first_of_each_second(ids[0]), sym
        assert len(rows) >= 250, f"{sym}: only {len(rows)} snapshots (recording: 346 s)"
        checks = _check_against_reference(ref, rows)
        assert checks >= 10, f"{sym}: only {checks} snapshots at a recorded bookTicker id"
        assert all(len(b) == LEVELS and len(a) == LEVELS for _, b, a in rows)
        assert all(b[0][0] < a[0][0] for _, b, a in rows)  # never crossed


# (fault, resyncs expected: reason, the book's id at the resync, the offending diff's index)
FAULTS = [
    ("drop_depth", ("gap", "before", 1501)),  # found at the diff after the dropped one
    ("cross_depth", ("crossed", "hit", 1500)),  # found once the diff is applied
    ("duplicate_depth", None),  # dropped as already in the book: no resync
    # a dropped diff, then the REST snapshot that should mend it is an old cached one (the
    # recorded one, older than the snapshot already used): refused as stale, never loaded
    # (it would rewind the book), and fetched again
    ("old_depth_snapshot", ("gap", "before", 1501)),
]


@pytest.mark.parametrize(("fault", "expected"), FAULTS, ids=[f for f, _ in FAULTS])
def test_a_depth_fault_is_detected_resynced_once_and_the_book_is_right_after(
    tmp_path: Path, shared_data: Path, fault: str, expected: tuple[str, str, int] | None
) -> None:
    refs = {s: Reference(shared_data / f) for s, f in FILES.items()}
    btc = refs["BTCUSDT"]
    hit = btc.diffs[1500]
    db = tmp_path / "fault.sqlite"

    async def go() -> tuple[dict, dict[str, dict], dict[str, int]]:
        col = Collector(
            db=db,
            source="replay:" + ",".join(str(shared_data / f) for f in FILES.values()),
            symbols=tuple(FILES),
            channels=("trade", "depth@100ms"),
            replay={"speed": None},
            client_options=FAST,
        )
        col.start()
        deadline = time.monotonic() + 240
        while col.exchange is None and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        ex = col.exchange
        assert ex is not None
        old = fault == "old_depth_snapshot"
        ex.inject("drop_depth" if old else fault, symbol="BTCUSDT", update_id=hit["u"])
        while old and time.monotonic() < deadline:  # once the first snapshot is in
            client = col.client
            if client is not None and client.book_syncs["BTCUSDT"].synced:
                ex.inject("old_depth_snapshot", symbol="BTCUSDT")
                break
            await asyncio.sleep(0.001)
        done = False
        while not done and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            client = col.client
            done = bool(
                ex.source_done.is_set()
                and client is not None
                and all(
                    client.book_syncs[s].synced
                    and client.book_syncs[s].book.update_id == r.diffs[-1]["u"]
                    for s, r in refs.items()
                )
            )
        client = col.client
        exchange_book = ex.market.depth("BTCUSDT", 100)
        assert exchange_book is not None
        top = client.book_syncs["BTCUSDT"].book.top(100)
        client_book = {
            "lastUpdateId": client.book_syncs["BTCUSDT"].book.update_id,
            "bids": list(zip(top.bid_price.tolist(), top.bid_qty.tolist(), strict=True)),
            "asks": list(zip(top.ask_price.tolist(), top.ask_qty.tolist(), strict=True)),
        }
        health = client.books
        await asyncio.sleep(0.5)
        await col.stop()
        assert done, f"the books did not reach the end of the recording: {health}"
        return {"exchange": exchange_book, "client": client_book}, health, dict(ex.depth_faults)

    books, health, hits = asyncio.run(asyncio.wait_for(go(), 300))
    assert hits == {("drop_depth" if fault == "old_depth_snapshot" else fault): 1}
    conn = sqlite3.connect(db)
    resyncs = conn.execute(
        "SELECT symbol, reason, detail, book_update_id, first_id, last_id FROM book_resyncs"
    ).fetchall()
    conn.close()
    h = health["BTCUSDT"]
    assert health["ETHUSDT"]["resyncs"] == 0 and h["synced"]
    if expected is None:
        assert resyncs == [] and h["resyncs"] == 0 and h["snapshots"] == 1
        assert h["duplicates"] == 1
    else:
        reason, at, k = expected
        found = btc.diffs[k]
        # exactly one resync, on BTCUSDT, with its reason and the ids of the diff that showed it
        assert len(resyncs) == 1, resyncs
        sym, got_reason, detail, book_id, first_id, last_id = resyncs[0]
        assert (sym, got_reason) == ("BTCUSDT", reason)
        # the book's id: the diff before the dropped one (its U - 1), or the crossing diff's u
        book_at = hit["U"] - 1 if at == "before" else found["u"]
        assert (book_id, first_id, last_id) == (book_at, found["U"], found["u"])
        assert f"u={found['u']}" in detail or f"U={found['U']}" in detail
        assert h["resyncs"] == 1 and h["resync_reasons"] == {reason: 1}
        assert h["snapshots"] == 2 and h["last_break_reason"] == reason
        assert h["stale_snapshots"] == (1 if fault == "old_depth_snapshot" else 0)
        assert h["crossed"] == (1 if reason == "crossed" else 0)
    # afterwards the book is the exchange's own, level for level
    ex_b = [(float(p), float(q)) for p, q in books["exchange"]["bids"]]
    ex_a = [(float(p), float(q)) for p, q in books["exchange"]["asks"]]
    assert books["client"]["lastUpdateId"] == books["exchange"]["lastUpdateId"]
    assert books["client"]["bids"] == ex_b and books["client"]["asks"] == ex_a
    # every stored snapshot, before and after the fault, equals the reference (the exchange's
    # truth: with the dropped diff, without the crossing bid); snapshots went on after it
    for s, ref in refs.items():
        _check_against_reference(ref, _stored(db, s))
    ids = np.array([u for u, _, _ in _stored(db, "BTCUSDT")])
    assert (ids < hit["u"]).any(), "no snapshot before the fault: the test proves nothing"
    assert (ids > btc.diffs[1501]["u"]).sum() >= 10, "the book did not come back after the fault"
