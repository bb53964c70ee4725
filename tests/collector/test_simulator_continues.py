"""A second local run on a database continues the stored series even when the simulator was
given a fixed start time: new ids never land at times that are already stored."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from pathlib import Path

from lq.collector import Collector

T0 = 1_723_161_600_000_000  # a fixed exchange start time, as tests and notebooks use


async def _run(db: Path, duration: float) -> None:
    col = Collector(db=db, source="local", symbols=("BTCUSDT",),
                    simulator={"seed": 5, "rate": 10.0, "speed": None, "start_time_us": T0,
                               "duration": duration})  # fmt: skip
    col.start()
    await col.wait_started(30)
    deadline, last = time.monotonic() + 90, -1
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        n = _rows(db)
        if n == last and col.exchange is not None and col.exchange.source_done.is_set():
            break
        last = n
    await col.stop()


def _rows(db: Path) -> int:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT count(*) FROM ticks").fetchone()[0]


def test_a_second_run_with_a_fixed_start_time_goes_on_after_the_stored_series(tmp_path):
    db = tmp_path / "sim.sqlite"
    asyncio.run(_run(db, 60.0))
    with sqlite3.connect(db) as c:
        (first_max_id, first_max_ts) = c.execute(
            "SELECT max(trade_id), max(ts) FROM ticks"
        ).fetchone()
    asyncio.run(_run(db, 60.0))
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT trade_id, ts FROM ticks ORDER BY trade_id").fetchall()
        (later,) = c.execute(
            "SELECT count(*) FROM ticks WHERE trade_id > ? AND ts <= ?",
            (first_max_id, first_max_ts),
        ).fetchone()
    assert rows[-1][0] > first_max_id + 50  # the second run stored new trades
    assert later == 0, f"{later} new trades were placed at times the first run had stored"
    assert all(b[1] >= a[1] for a, b in itertools.pairwise(rows))  # time goes on with the ids
