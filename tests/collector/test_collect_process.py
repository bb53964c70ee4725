"""`lq collect` as a real process: clean exit on SIGINT/SIGTERM, and kill -9 then restart."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lq.exchange import LocalExchange, SimulatorSource

SYMBOLS = ("BTCUSDT", "ETHUSDT")


class ExchangeThread:
    """A LocalExchange on its own loop in a thread, so this test can run processes."""

    def __init__(self, **source_kw) -> None:
        self.loop = asyncio.new_event_loop()
        self.ex = LocalExchange(
            source=SimulatorSource(symbols=SYMBOLS, seed=5, **source_kw), host="127.0.0.1", port=0
        )
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.ex.start(), self.loop).result(10)

    def trades(self, symbol: str):
        return asyncio.run_coroutine_threadsafe(_get(self.ex, symbol), self.loop).result(10)

    def source_done(self) -> bool:
        """True once the simulator has produced its last trade (its ``duration`` ran out)."""
        return self.ex.source_done.is_set()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.ex.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


async def _get(ex, symbol):
    return list(ex.trades(symbol))


def collect(db: Path, ex: LocalExchange) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lq.cli",
            "collect",
            "--db",
            str(db),
            "--ws-url",
            ex.ws_url,
            "--rest-url",
            ex.rest_url,
            "--exchange-label",
            "local",
            "--symbols",
            ",".join(SYMBOLS),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def count(db: Path, symbol: str | None = None) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db, timeout=10)
    try:
        q, p = (
            ("SELECT count(*) FROM ticks WHERE symbol = ?", (symbol,))
            if symbol
            else ("SELECT count(*) FROM ticks", ())
        )
        return conn.execute(q, p).fetchone()[0]
    except sqlite3.Error:  # the collector is still creating it
        return 0
    finally:
        conn.close()


def wait_for(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def exchange():
    # trading for as long as a test needs: under load a process takes many seconds to start,
    # and these tests need live trades after it (none of them waits for the end)
    ex = ExchangeThread(rate=100.0, duration=600.0)
    yield ex
    ex.stop()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_flushes_and_exits_cleanly(tmp_path, exchange, sig):
    db = tmp_path / "s.sqlite"
    proc = collect(db, exchange.ex)
    wait_for(lambda: count(db) > 100, 180, "trades")  # a process start: minutes under load
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stored" in out
    n = count(db)
    assert f"stored {n:,} new trades" in out  # everything it received was flushed before exit
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT state FROM feed_status").fetchone()[0] == "stopped"


@pytest.mark.slow
def test_kill_9_then_restart_backfills_what_was_lost(tmp_path):
    """kill -9, the market goes on, restart: every id is stored once and the downtime is a
    filled gap. Load-proof: it waits for outcomes (trades published past what is stored, the
    stored ids contiguous past a target, the gap row filled) with generous deadlines, never
    for a fixed time; a slow machine only makes it take longer."""
    from procs import ExchangeThread as Ex
    from procs import collect as collect_proc
    from procs import query
    from procs import wait_for as wait

    def top(s: str) -> int:
        rows = query(db, "SELECT max(trade_id) FROM ticks WHERE symbol = ?", (s,))
        return rows[0][0] if rows and rows[0][0] is not None else -1

    ex = Ex(rate=100.0, duration=3600.0)  # trades for as long as the test needs
    try:
        db = tmp_path / "k.sqlite"
        proc = collect_proc(db, ex)
        wait(lambda: all(count(db, s) > 150 for s in SYMBOLS), 300, "first trades", proc)
        proc.kill9()  # the batch in flight is lost with the process
        stored = {s: top(s) for s in SYMBOLS}
        before = {s: count(db, s) for s in SYMBOLS}
        # the market goes on while nobody listens: a hole of at least 100 ids per symbol
        wait(
            lambda: all(ex.trades(s)[-1].trade_id > stored[s] + 100 for s in SYMBOLS),
            300,
            "trades published while the collector was down",
        )
        target = {s: ex.trades(s)[-1].trade_id + 50 for s in SYMBOLS}
        proc = collect_proc(db, ex)

        def caught_up() -> bool:
            for s in SYMBOLS:
                rows = query(
                    db,
                    "SELECT count(*), min(trade_id), max(trade_id) FROM ticks WHERE symbol = ?",
                    (s,),
                )
                if not rows:
                    return False
                n, lo, hi = rows[0]
                if hi is None or hi < target[s] or hi - lo + 1 != n:
                    return False
            return True

        def hole_filled() -> bool:  # the row of the downtime's gap says filled, for each symbol
            return all(
                query(
                    db,
                    "SELECT 1 FROM gaps WHERE symbol = ? AND status = 'filled'"
                    " AND first_missing <= ? AND last_missing >= ?",
                    (s, stored[s] + 1, stored[s] + 1),
                )
                for s in SYMBOLS
            )

        wait(caught_up, 600, "the restarted collector to catch up", proc)
        wait(hole_filled, 300, "the downtime's gap to be recorded as filled", proc)
        assert proc.stop() == 0, proc.stderr()
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for s in SYMBOLS:
            rows = conn.execute(
                "SELECT trade_id, price FROM ticks WHERE symbol = ? ORDER BY trade_id", (s,)
            ).fetchall()
            truth = [
                (t.trade_id, t.price)
                for t in ex.trades(s)
                if rows[0][0] <= t.trade_id <= rows[-1][0]
            ]
            assert rows == truth, f"{s}: stored ids differ from the exchange's"
            assert len(rows) > before[s] + 100
        open_holes = conn.execute(
            "SELECT symbol, first_missing, last_missing, status FROM gaps WHERE status != 'filled'"
        ).fetchall()
        assert open_holes == []  # every id is stored: the ledger holds no open hole
        conn.close()
    finally:
        ex.stop()


@pytest.mark.slow
def test_lq_purge_while_collecting_is_run_by_the_collector(tmp_path, exchange):
    """The collector is the one writer: `lq purge` hands it the purge and prints its answer;
    old rows go, live collection goes on."""
    from lq.feeds.events import Trade
    from lq.store import Batch, Writer

    db = tmp_path / "p.sqlite"
    old = 1_723_161_600_000_000  # 2024-08-09: older than any --older-than below
    with Writer(db) as w:
        w.write_batch(
            Batch(
                trades=[
                    Trade(
                        symbol="OLDUSDT",
                        trade_id=i,
                        price=10.0 + i / 100,
                        qty=1.0,
                        ts=old + i * 1_000_000,
                        event_ts=old + i * 1_000_000,
                        is_buyer_maker=False,
                        exchange="binance",
                    )
                    for i in range(1, 1_001)
                ]
            )
        )
    proc = collect(db, exchange.ex)
    try:
        wait_for(lambda: count(db, "BTCUSDT") > 50, 180, "live trades")
        r = subprocess.run(
            [sys.executable, "-m", "lq.cli", "purge", "--db", str(db), "--older-than", "1d"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        assert f"by the running collector (pid {proc.pid})" in r.stdout
        assert "ticks: 1,000" in r.stdout
        assert count(db, "OLDUSDT") == 0
        n = count(db, "BTCUSDT")
        wait_for(lambda: count(db, "BTCUSDT") > n, 60, "collection to go on after the purge")
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert not list((Path(str(db) + ".inbox")).glob("*.purge.json"))  # answered and removed
