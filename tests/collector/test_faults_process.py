"""`lq collect` as real processes under faults: kill -9 while a hole waits for its backfill,
ten kill -9s in a row, a full disk on a small real filesystem, SIGTERM during an outage, the
WAL or the database file deleted or replaced, two local runs on one database. After each,
every trade id the exchange published is in the database exactly once."""

from __future__ import annotations

import errno
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import (
    SYMBOLS,
    ExchangeThread,
    assert_exactly_the_exchanges,
    collect,
    count,
    ids,
    query,
    wait_for,
)

from lq.collector.health import read_status_file

pytestmark = pytest.mark.slow


def top(db: Path, symbol: str) -> int:
    rows = query(db, "SELECT max(trade_id) FROM ticks WHERE symbol = ?", (symbol,))
    return (rows[0][0] or 0) if rows else 0


def found(db: Path) -> list[tuple]:
    return query(db, "SELECT symbol, first_missing, last_missing FROM gaps WHERE status = 'found'")


def caught_up(db: Path, ex: ExchangeThread, margin: int = 20) -> bool:
    """No hole is open, and every symbol's stored ids are contiguous from the first one up to
    at least what the exchange had made when the wait began (``margin`` ids later, so that
    the collector is seen storing live trades again)."""
    target = _targets.setdefault(
        (db, id(ex)), {s: ex.trades(s)[-1].trade_id + margin for s in SYMBOLS}
    )
    if found(db):
        return False
    for s in SYMBOLS:
        have = ids(db, s)
        if not have or have[-1] < target[s] or have[-1] - have[0] + 1 != len(have):
            return False
    del _targets[(db, id(ex))]
    return True


_targets: dict[tuple[Path, int], dict[str, int]] = {}


def status_of(db: Path) -> dict:
    return read_status_file(db) or {}


def lq_status(db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lq.cli", "status", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def exchange():
    ex = ExchangeThread(rate=80.0, duration=600.0)
    yield ex
    ex.stop()


# -- holes are durable -------------------------------------------------------------------
def test_kill_9_while_a_hole_waits_behind_a_429_then_restart_stores_every_id_once(
    tmp_path, exchange
):
    db = tmp_path / "k.sqlite"
    p = collect(db, exchange)
    wait_for(lambda: count(db) > 100, 90, "first trades", p)
    calls = exchange.rest_calls()
    exchange.inject("rest_429", count=1, retry_after=120)  # the backfill will wait 2 min
    exchange.inject("skip_ids", symbol="BTCUSDT", count=9)
    wait_for(lambda: bool(found(db)), 60, "the hole to be stored as found", p)
    [(_, lo, hi)] = found(db)
    wait_for(lambda: top(db, "BTCUSDT") > hi + 20, 60, "trades after the hole", p)
    wait_for(lambda: exchange.rest_calls() > calls, 60, "the backfill to hit the 429", p)
    p.kill9()  # the hole is pending; nothing of it is stored
    assert found(db) == [("BTCUSDT", lo, hi)]
    p = collect(db, exchange)
    wait_for(lambda: caught_up(db, exchange), 120, "the restarted collector to fill it", p)
    assert p.stop() == 0, p.stderr()
    assert "backfilling them alongside the live feed" in p.stderr()
    for s in SYMBOLS:
        assert_exactly_the_exchanges(db, exchange, s, top(db, s))
    assert query(db, "SELECT status FROM gaps WHERE first_missing = ?", (lo,)) == [("filled",)]


@pytest.mark.timeout(1200)  # eleven process starts; each takes seconds on a loaded machine
def test_ten_kill_9s_in_a_row_against_a_trading_exchange(tmp_path, exchange):
    db = tmp_path / "ten.sqlite"
    for k in range(10):
        before = count(db)
        p = collect(db, exchange)
        wait_for(lambda: count(db) > before + 20, 120, f"run {k} to store trades", p)  # noqa: B023
        if k % 2 == 0:  # every other run dies with a hole pending behind a 429
            sym, t0 = SYMBOLS[k % 4 // 2], time.time_ns() // 1000
            exchange.inject("rest_429", count=1, retry_after=60)
            exchange.inject("skip_ids", symbol=sym, count=5 + k)
            wait_for(
                lambda sym=sym, t0=t0: query(
                    db, "SELECT 1 FROM gaps WHERE symbol = ? AND detected_ts > ?", (sym, t0)
                ),
                60,
                f"run {k}'s hole",
                p,
            )
        p.kill9()
        time.sleep(0.3 * (k % 3))  # the market goes on while nobody listens
    p = collect(db, exchange)
    wait_for(lambda: caught_up(db, exchange, margin=50), 180, "the last run to catch up", p)
    assert p.stop() == 0, p.stderr()
    total = sum(assert_exactly_the_exchanges(db, exchange, s, top(db, s)) for s in SYMBOLS)
    assert total > 1_000
    assert not found(db)
    assert query(db, "SELECT count(*) FROM gaps WHERE status = 'unfilled'") == [(0,)]
    assert query(db, "PRAGMA integrity_check") == [("ok",)]


# -- restarts always continue ------------------------------------------------------------
def test_two_local_runs_on_one_database_both_store_new_contiguous_trades(tmp_path):
    db = tmp_path / "demo.sqlite"
    outs, first_run = [], {}
    for run in range(2):
        p = collect(
            db, None, "--source", "local", "--rate", "40", "--duration", "6",
            "--channels", "trade,aggTrade,bookTicker",
        )  # fmt: skip
        assert p.wait(180) == 0, p.stderr()
        outs.append((p.out, p.stderr()))
        if run == 0:
            first_run = {
                s: query(db, "SELECT max(update_id) FROM book_tickers WHERE symbol=?", (s,))[0][0]
                for s in SYMBOLS
            }
    for out, _ in outs:
        n = int(out.split("stored ")[1].split(" new trades")[0].replace(",", ""))
        assert n > 50, out  # the second run stores new trades too
    assert "the simulator continues the stored series" in outs[1][1]
    for s in SYMBOLS:
        got = ids(db, s)
        assert got == list(range(got[0], got[0] + len(got)))  # contiguous across the two runs
        aggs = [
            a for (a,) in query(db, "SELECT agg_id FROM agg_trades WHERE symbol=? ORDER BY 1", (s,))
        ]
        assert aggs == list(range(aggs[0], aggs[0] + len(aggs)))  # aggregate ids too
        [(new_books,)] = query(
            db, "SELECT count(*) FROM book_tickers WHERE symbol=? AND update_id > ?",
            (s, first_run[s]),
        )  # fmt: skip
        assert new_books > 20  # the second run's book tickers are new rows, not ignored
    assert query(db, "SELECT count(*) FROM gaps WHERE status != 'filled'") == [(0,)]
    # prices go on from the last stored one (no jump back to the simulator's start price)
    rows = query(db, "SELECT trade_id, price, ts FROM ticks WHERE symbol='BTCUSDT' ORDER BY 1")
    jumps = [abs(b[1] / a[1] - 1) for a, b in itertools.pairwise(rows)]
    assert max(jumps) < 0.01
    assert all(b[2] >= a[2] for a, b in itertools.pairwise(rows))  # time goes on


# -- storage failures: a small real filesystem -------------------------------------------
@pytest.fixture
def small_fs(tmp_path):
    """A 24 MB tmpfs mounted for the test (root only)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (mount -t tmpfs)")
    d = tmp_path / "small"
    d.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(d)], capture_output=True, text=True
    )
    if r.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not allowed here: {r.stderr.strip()}")
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)


def fill(d: Path) -> Path:
    """Take every free byte of the filesystem; returns the ballast file."""
    ballast = d / "ballast"
    chunk = b"\0" * 65536
    with open(ballast, "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        for size in (4096, 512, 1):  # the last partial blocks too
            while True:
                try:
                    f.write(chunk[:size])
                except OSError:
                    break
    return ballast


def not_storing(db: Path, word: str = "database or disk is full") -> bool:
    st = status_of(db)
    return st.get("state") == "not storing" and word in str(
        st.get("detail", {}).get("storage_reason", "")
    )


def storing(db: Path) -> bool:
    st = status_of(db)
    d = st.get("detail", {})
    return st.get("state") == "live" and d.get("storage") == "storing"


def _start_full(tmp_path: Path, db: Path, exchange: ExchangeThread, *extra: str, **env: str):
    from procs import Proc

    args = ["collect", "--db", str(db), "--symbols", ",".join(SYMBOLS), "--no-alerts",
            "--ws-url", exchange.ex.ws_url, "--rest-url", exchange.ex.rest_url,
            "--exchange-label", "local", *extra]  # fmt: skip
    n = len(list(tmp_path.glob("run*.log")))
    return Proc(args, tmp_path / f"run{n}.log", env=env)


def test_disk_full_then_freed_recovers_every_id_and_reimports_the_spill(
    tmp_path, small_fs, exchange
):
    db, spill = small_fs / "lq.sqlite", tmp_path / "spill"
    # a small memory buffer, so that the outage goes to the spill within seconds
    p = _start_full(
        tmp_path, db, exchange, "--spill-dir", str(spill), LQ_COLLECTOR_MAX_BUFFER="300"
    )
    wait_for(lambda: count(db) > 300 and storing(db), 90, "trades stored", p)
    ballast = fill(small_fs)
    wait_for(lambda: not_storing(db), 60, "status to say not storing", p)
    wait_for(lambda: list(spill.glob("*.lqspill")), 60, "events to spill", p)
    r = lq_status(db)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "NOT STORING" in r.stdout and "database or disk is full" in r.stdout
    time.sleep(2)  # an outage of a few seconds
    ballast.unlink()  # space again
    wait_for(
        lambda: storing(db) and not list(spill.glob("*.lqspill")), 60, "the spill re-imported", p
    )
    wait_for(lambda: caught_up(db, exchange, margin=100), 60, "every id stored", p)
    assert lq_status(db).returncode == 0
    assert p.stop() == 0, p.stderr()
    log = p.stderr()
    assert "not storing: database or disk is full" in log
    assert "cannot rollback" not in log
    assert "re-imported" in log
    for s in SYMBOLS:
        assert_exactly_the_exchanges(db, exchange, s, top(db, s))
    detail = status_of(db)["detail"]
    assert detail["reimported_events"] > 0 and detail["lost_events"] == 0


def test_sigterm_during_an_outage_spills_everything_and_the_next_start_reimports_it(
    tmp_path, small_fs, exchange
):
    db, spill = small_fs / "lq.sqlite", tmp_path / "spill"
    p = _start_full(tmp_path, db, exchange, "--spill-dir", str(spill))
    wait_for(lambda: count(db) > 300 and storing(db), 90, "trades stored", p)
    ballast = fill(small_fs)
    wait_for(lambda: not_storing(db), 60, "status to say not storing", p)
    time.sleep(1.5)
    code = p.stop(signal.SIGTERM)
    last = p.last_log_line()
    assert code == 3, p.stderr()[-3000:]
    assert "events spilled to" in last and "0 lost" in last, last
    spilled = int(last.split("): ")[1].split(" events")[0].replace(",", ""))
    assert spilled > 0 and list(spill.glob("*.lqspill"))
    assert "NOT STORED" in p.out
    ballast.unlink()
    p = _start_full(tmp_path, db, exchange, "--spill-dir", str(spill))
    wait_for(lambda: caught_up(db, exchange, margin=100), 120, "the next start to catch up", p)
    assert p.stop() == 0, p.stderr()
    assert "spill file(s) from an earlier run" in p.stderr()
    assert f"{spilled:,} events from" in p.stderr()  # exactly what was spilled came back
    assert not list(spill.glob("*.lqspill"))
    for s in SYMBOLS:
        assert_exactly_the_exchanges(db, exchange, s, top(db, s))


def test_a_spill_on_the_same_full_disk_says_exactly_how_many_events_were_lost(
    tmp_path, small_fs, exchange
):
    db = small_fs / "lq.sqlite"  # the spill goes to <db>.spill/ on the same full disk
    p = _start_full(tmp_path, db, exchange, LQ_COLLECTOR_MAX_BUFFER="200")
    wait_for(lambda: count(db) > 300 and storing(db), 90, "trades stored", p)
    ballast = fill(small_fs)
    wait_for(
        lambda: status_of(db).get("detail", {}).get("lost_events", 0) > 0,
        60,
        "events to be lost",
        p,
    )
    ballast.unlink()
    # the lost trades were recorded as found gaps and are backfilled: every id comes back
    wait_for(lambda: storing(db) and caught_up(db, exchange, margin=100), 90, "recovery", p)
    lost = status_of(db)["detail"]["lost_events"]
    code = p.stop(signal.SIGTERM)
    assert code == 4, p.stderr()[-3000:]
    last = p.last_log_line()
    assert f"{lost:,} events LOST" in last or f"{lost:,} events were dropped" in last, last
    for s in SYMBOLS:
        assert_exactly_the_exchanges(db, exchange, s, top(db, s))
    # they came back through the gap ledger: stored as found with the next batch, then filled
    assert "dropped while the database failed (database or disk is full)" in p.stderr()
    assert query(db, "SELECT count(*) FROM gaps WHERE status = 'filled'")[0][0] >= 1


# -- the file under the collector ----------------------------------------------------------
def test_a_deleted_wal_is_detected_within_seconds_and_nothing_is_lost(tmp_path, exchange):
    db = tmp_path / "wal.sqlite"
    p = collect(db, exchange)
    wait_for(lambda: count(db) > 200, 90, "trades stored", p)
    os.unlink(str(db) + "-wal")
    t0 = time.monotonic()
    # "deleted", or "replaced" when a reader (the forecast hook polls) made a fresh WAL at
    # the path before the writer looked: the writer's WAL is gone from the path either way
    wait_for(
        lambda: "WAL file deleted" in p.stderr() or "WAL file replaced" in p.stderr(),
        30,
        "the deletion to be reported",
        p,
    )
    assert time.monotonic() - t0 < 15
    n = count(db)
    wait_for(lambda: count(db) > n + 50, 60, "new readers to see new trades", p)
    wait_for(lambda: caught_up(db, exchange, margin=50), 60, "every id", p)
    assert p.stop() == 0, p.stderr()
    assert "checkpointed" in p.stderr() and "reopened" in p.stderr()
    for s in SYMBOLS:
        assert_exactly_the_exchanges(db, exchange, s, top(db, s))


def test_a_replaced_database_file_is_detected_and_its_data_kept_in_an_orphan(tmp_path, exchange):
    db = tmp_path / "rep.sqlite"
    p = collect(db, exchange)
    wait_for(lambda: count(db) > 200, 90, "trades stored", p)
    fresh = tmp_path / "fresh.sqlite"
    from lq.store import Writer

    Writer(fresh, lock=False).close()
    shutil.copy(fresh, tmp_path / "new.sqlite")
    os.replace(tmp_path / "new.sqlite", db)  # a different file at the path
    t0 = time.monotonic()
    wait_for(lambda: "the data it held is saved in" in p.stderr(), 30, "the replacement", p)
    assert time.monotonic() - t0 < 15 and "database file replaced" in p.stderr()
    wait_for(lambda: count(db) > 100, 60, "the new file to get trades", p)
    [orphan] = tmp_path.glob("rep.sqlite.orphan-*.sqlite")
    assert str(orphan) in p.stderr()
    time.sleep(1)
    assert p.stop() == 0, p.stderr()
    for s in SYMBOLS:  # the old file's ids and the new file's ids: every id, exactly once
        old, new = ids(orphan, s), ids(db, s)
        assert old and new and not set(old) & set(new)
        both = sorted(old + new)
        assert both == list(range(both[0], both[-1] + 1))
        truth = [t.trade_id for t in exchange.trades(s) if both[0] <= t.trade_id <= both[-1]]
        assert both == truth
