"""`lq status`: storing or not (with the reason), open holes with their age, counts of klines
and 1 m bars, and an exit code a healthcheck can use (0 only while a collector is storing)."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from lq.collector.health import StatusFile
from lq.feeds.events import Gap, Trade
from lq.store import Batch, Writer

T0 = 1_723_161_255_342_000


def lq_status(db: Path, *, live_age_s: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run `lq status`; with ``live_age_s``, a stand-in collector keeps the feed_status row
    that old while it runs (however long the process takes to start on a loaded machine)."""
    stop = threading.Event()

    def publish() -> None:
        conn = sqlite3.connect(db, timeout=10)
        while not stop.is_set():
            now = time.time_ns() // 1000
            conn.execute("UPDATE feed_status SET updated_ts = ?", (now - int(live_age_s * 1e6),))
            conn.commit()
            stop.wait(0.1)
        conn.close()

    t = threading.Thread(target=publish, daemon=True)
    if live_age_s is not None:
        t.start()
    try:
        return subprocess.run(
            [sys.executable, "-m", "lq.cli", "status", "--db", str(db)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        stop.set()
        if live_age_s is not None:
            t.join(10)


def _db(tmp_path: Path, *, state: str, storage: str, age_s: float, reason: str = "") -> Path:
    db = tmp_path / "s.sqlite"
    now = time.time_ns() // 1000
    with Writer(db) as w:
        w.write_batch(
            Batch(
                trades=[
                    Trade(
                        symbol="BTCUSDT",
                        trade_id=i,
                        price=100.0,
                        qty=1.0,
                        ts=T0 + i * 1_000_000,
                        event_ts=T0,
                        is_buyer_maker=False,
                    )
                    for i in range(1, 121)
                ],
                gaps=[
                    Gap(
                        symbol="BTCUSDT",
                        kind="trade",
                        first_missing=200,
                        last_missing=209,
                        status="found",
                        detected_ts=now - 90_000_000,
                    ),
                    Gap(
                        symbol="ETHUSDT",
                        kind="trade",
                        first_missing=5,
                        last_missing=9,
                        status="unfilled",
                        detected_ts=now - 7_200_000_000,
                        reason="REST trade history has no ids from 5",
                    ),
                ],
            )
        )
        w.set_feed_status(
            exchange="binance",
            source="live",
            state=state,
            detail={"storage": storage, "storage_reason": reason, "receiving": True},
        )
        w.execute("UPDATE feed_status SET updated_ts = ?", (now - int(age_s * 1e6),))
    return db


def test_a_fresh_storing_feed_exits_0_and_holes_and_counts_are_listed(tmp_path):
    r = lq_status(_db(tmp_path, state="live", storage="storing", age_s=0.5), live_age_s=0.5)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "feed binance (live): live · storing" in out
    assert re.search(r"bars_1s:\s+120\n", out) and re.search(
        r"bars_1m:\s+3\n", out
    )  # 23:54, 23:55, 23:56
    assert re.search(r"klines:\s+0\n", out)
    assert "holes:    2 open (1 found, 1 unfilled)" in out
    # ages: 90 s and 2 h before the rows were written (plus however long this took)
    assert re.search(
        r"found    binance BTCUSDT trade 200..209 \(10 ids\), \d+\.\d (s|min) old", out
    )
    assert re.search(
        r"unfilled binance ETHUSDT trade 5..9 \(5 ids\), 2\.\d h old: REST trade history", out
    )
    assert "health:   storing (exit 0)" in out


def test_not_storing_exits_1_with_the_reason(tmp_path):
    db = _db(
        tmp_path,
        state="not storing",
        storage="not storing",
        age_s=0.5,
        reason="database or disk is full",
    )
    r = lq_status(db, live_age_s=0.5)
    assert r.returncode == 1
    assert "receiving but NOT STORING: database or disk is full" in r.stdout
    assert "health:   NOT STORING (exit 1)" in r.stdout


def test_a_stale_report_exits_1_even_if_it_said_storing(tmp_path):
    r = lq_status(_db(tmp_path, state="live", storage="storing", age_s=30))
    assert r.returncode == 1
    assert "(STALE)" in r.stdout


def test_the_status_file_speaks_when_the_database_row_is_old(tmp_path):
    # the database could not take the row (disk full): <db>.status, overwritten in place, can
    db = _db(tmp_path, state="live", storage="storing", age_s=30)
    f = StatusFile(db)
    f.write(
        {
            "exchange": "binance",
            "source": "live",
            "updated_ts": time.time_ns() // 1000,
            "state": "not storing",
            "pid": 1,
            "detail": {
                "storage": "not storing",
                "storage_reason": "database or disk is full",
                "receiving": True,
                "buffered_events": 1840,
                "spilled_events": 20300,
                "spill_dir": "/data/lq.sqlite.spill",
            },
        }
    )
    f.close()
    r = lq_status(db)
    assert r.returncode == 1
    assert "1,840 events in memory, 20,300 in /data/lq.sqlite.spill, 0 lost" in r.stdout, r.stdout


def test_no_collector_ever_is_exit_1(tmp_path):
    db = tmp_path / "empty.sqlite"
    Writer(db).close()
    r = lq_status(db)
    assert r.returncode == 1 and "holes:    none open" in r.stdout


def test_a_cleanly_stopped_feed_says_stopped_not_stale(tmp_path):
    # a collector that stopped cleanly minutes ago was shown as "STALE (is its collector
    # running?)", and "storing"
    db = _db(tmp_path, state="stopped", storage="storing", age_s=300.0)
    r = lq_status(db)
    assert r.returncode == 1
    [line] = [x for x in r.stdout.splitlines() if x.startswith("feed binance")]
    assert re.search(r"stopped 5\.\d min ago", line) and "STALE" not in line
    assert "· storing" not in line and "everything it received was stored" in line
    assert re.search(r"health:   NOT STORING \(exit 1\): binance stopped 5\.\d min ago", r.stdout)


def test_a_symbol_that_went_quiet_while_its_feed_stores_the_others_fails_health(tmp_path):
    db = _db(tmp_path, state="live", storage="storing", age_s=0.5)
    last_btc = T0 + 120 * 1_000_000
    with Writer(db) as w:  # ETHUSDT's newest trade is 10 min older than BTCUSDT's
        w.write_batch(Batch(trades=[
            Trade(symbol="ETHUSDT", trade_id=1, price=10.0, qty=1.0, ts=last_btc - 600_000_000,
                  event_ts=T0, is_buyer_maker=True),
            Trade(symbol="SOLUSDT", trade_id=1, price=1.0, qty=1.0, ts=last_btc - 60_000_000,
                  event_ts=T0, is_buyer_maker=True),
        ]))  # fmt: skip
        w.execute(
            "UPDATE feed_status SET detail = json_set(detail, '$.symbols', json(?))",
            ('["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"]',),
        )
    r = lq_status(db, live_age_s=0.5)
    assert r.returncode == 1, r.stdout
    [line] = [x for x in r.stdout.splitlines() if x.startswith("  last trade:")]
    assert "ETHUSDT" in line and "(QUIET)" in line and "BNBUSDT none yet" in line
    assert line.count("(QUIET)") == 1  # SOLUSDT, a minute behind, is only a slow symbol
    # a symbol that never stored a trade in the 10 min since its feed started is quiet too
    with Writer(db) as w:
        started = time.time_ns() // 1000 - 600_000_000
        w.execute("UPDATE feed_status SET detail = json_set(detail, '$.started_ts', ?)", (started,))
    r = lq_status(db, live_age_s=0.5)
    [line] = [x for x in r.stdout.splitlines() if x.startswith("  last trade:")]
    assert "BNBUSDT none yet (QUIET)" in line
    assert re.search(
        r"binance BNBUSDT: no trade stored in the 10\.\d min since the feed started", r.stdout
    )
    assert (
        "health:   NOT STORING (exit 1): binance ETHUSDT: no trade stored for 10.0 min while "
        "the feed stores its other symbols" in r.stdout
    )
