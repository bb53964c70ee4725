"""Store benchmarks (issue: foundation).

1. Batched ingest through ``Writer.write_batch`` (validation + idempotent inserts + 1 s bars)
   against the naive approach: one INSERT + commit per trade, same schema and pragmas.
2. The last 5 minutes of one symbol from a 10M-tick database through ``Store.ticks`` (SQLite's
   index), against the same query through DuckDB's sqlite scanner (which scans the table).
3. 1-minute bars from 86,400 one-second bars through ``Store.bars``, against pandas
   ``resample().agg()`` on the same rows already in memory.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._util import best_of, report
from lq.feeds.events import Trade
from lq.store import Batch, Store, Writer
from lq.store.schema import MIGRATIONS

T0 = 1_723_161_240_000_000  # 2024-08-08 23:54:00 UTC
CACHE = Path(os.environ.get("LQ_BENCH_CACHE", Path(tempfile.gettempdir()) / "lq-bench"))


def trades(n: int, start_id: int = 1, symbol: str = "BTCUSDT", step_us: int = 3_000) -> list[Trade]:
    rng = np.random.default_rng(1)
    px = 61_000 + np.cumsum(rng.normal(0, 0.5, n))
    return [
        Trade(
            symbol=symbol,
            trade_id=start_id + i,
            price=float(px[i]),
            qty=0.001 + (i % 5) * 0.01,
            ts=T0 + i * step_us,
            event_ts=T0 + i * step_us + 900,
            is_buyer_maker=bool(i & 1),
        )
        for i in range(n)
    ]


def bench_ingest(tmp: Path) -> None:
    n, batch = 300_000, 5_000
    data = trades(n)
    db = tmp / "ingest.sqlite"
    with Writer(db) as w:
        t0 = time.perf_counter()
        for k in range(0, n, batch):
            w.write_batch(Batch(trades=data[k : k + batch]))
        batched = n / (time.perf_counter() - t0)

    # the naive approach as people write it: sqlite3.connect() defaults (rollback journal,
    # synchronous=FULL), one INSERT + commit per trade; and the same loop on our WAL settings
    naive_n = 2_000
    rows = [
        (t.exchange, t.symbol, t.trade_id, t.ts, t.price, t.qty, t.is_buyer_maker, t.recv_ts)
        for t in data[:naive_n]
    ]
    naive_rates = {}
    for label, wal in (("defaults", False), ("WAL+NORMAL", True)):
        conn = sqlite3.connect(tmp / f"naive-{wal}.sqlite")
        if wal:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(MIGRATIONS[0])
        t0 = time.perf_counter()
        for r in rows:
            conn.execute("INSERT OR IGNORE INTO ticks VALUES (?, ?, ?, ?, ?, ?, ?, ?)", r)
            conn.commit()
        naive_rates[label] = naive_n / (time.perf_counter() - t0)
        conn.close()
    naive = naive_rates["defaults"]
    report(
        "ingest: batched write_batch (with 1 s bars)",
        f"{batched:,.0f} ticks/s",
        baseline=f"{naive:,.0f} ticks/s (INSERT+commit each, sqlite3 defaults)",
        ratio=batched / naive,
        target=">= 300k/s and >= 40x",
        ok=batched >= 300_000 and batched / naive >= 40,
    )
    report(
        "  (same naive loop on WAL + synchronous=NORMAL)",
        f"{naive_rates['WAL+NORMAL']:,.0f} ticks/s",
        ratio=batched / naive_rates["WAL+NORMAL"],
    )


def big_db(n: int = 10_000_000) -> Path:
    """A 10M-tick file (two symbols, ~27 trades/s each), built once and cached."""
    from lq.store.schema import LATEST_VERSION

    CACHE.mkdir(parents=True, exist_ok=True)
    db = CACHE / f"ticks10m-v{LATEST_VERSION}.sqlite"
    if db.exists():
        return db
    print(f"  (building {n:,}-tick database at {db} through the writer, once)", flush=True)
    part = db.with_suffix(".part")
    for f in (part, Path(str(part) + "-wal"), Path(str(part) + "-shm")):
        f.unlink(missing_ok=True)
    rng = np.random.default_rng(2)
    chunk = 20_000
    with Writer(part) as w:
        for k in range(0, n, chunk):
            i = np.arange(k, min(n, k + chunk))
            ts = T0 + (i // 2) * 36_000  # 27.8 trades/s per symbol -> 5M trades over ~50 h
            px = 61_000 + rng.normal(0, 5, i.size)
            w.write_batch(
                Batch(
                    trades=[
                        Trade(
                            symbol="BTCUSDT" if j % 2 == 0 else "ETHUSDT",
                            trade_id=int(j // 2),
                            price=float(p),
                            qty=0.01,
                            ts=int(t),
                            event_ts=int(t),
                            is_buyer_maker=False,
                        )
                        for j, t, p in zip(i.tolist(), ts.tolist(), px.tolist(), strict=True)
                    ]
                )
            )
        w.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.with_suffix(".part").rename(db)
    return db


def bench_last_5_minutes() -> None:
    db = big_db()
    with Store(db) as s:
        end = int(s.conn.execute("SELECT max(ts) FROM ticks WHERE symbol='BTCUSDT'").fetchone()[0])
        start = end - 300_000_000
        n = len(s.ticks("BTCUSDT", start=start))
        fast = best_of(lambda: s.ticks("BTCUSDT", start=start), repeat=7)
        duck = best_of(
            lambda: s.sql(
                "SELECT ts, trade_id, price, qty, is_buyer_maker FROM ticks "
                "WHERE symbol = 'BTCUSDT' AND ts >= ? ORDER BY ts",
                [start],
            ),
            repeat=2,
        )
    report(
        f"last 5 min of one symbol ({n:,} rows) from 10M ticks",
        f"{fast * 1e3:.1f} ms",
        baseline=f"{duck * 1e3:.0f} ms (DuckDB scan)",
        ratio=duck / fast,
        target="<= 20 ms",
        ok=fast <= 0.020,
    )


def bench_bars(tmp: Path) -> None:
    db = tmp / "bars.sqlite"
    n = 86_400  # one day of 1 s bars, built by the writer (1 s bars and their 1 m rollup)
    data = trades(n, step_us=1_000_000)
    with Writer(db) as w:
        for k in range(0, n, 10_000):
            w.write_batch(Batch(trades=data[k : k + 10_000]))
    with Store(db) as s:
        out = s.bars("BTCUSDT", "1m")
        fast = best_of(lambda: s.bars("BTCUSDT", "1m"), repeat=7)
    agg = {
        "open": "first",
        "high": "max",
        "low": "min",
        "close": "last",
        "volume": "sum",
        "quote_volume": "sum",
        "trades": "sum",
    }

    def naive() -> object:  # what one writes without lq: read every 1 s bar, resample in pandas
        conn = sqlite3.connect(db)
        df = pd.read_sql("SELECT * FROM bars_1s WHERE symbol = 'BTCUSDT' ORDER BY ts", conn)
        conn.close()
        df.index = pd.to_datetime(df.ts, unit="us", utc=True)
        return df.resample("1min").agg(agg).dropna()

    base = best_of(naive, repeat=3)
    assert len(out) == 1_440
    report(
        "1m bars from 86,400 1 s bars (read + resample)",
        f"{fast * 1e3:.1f} ms",
        baseline=f"{base * 1e3:.0f} ms (read_sql + pandas resample)",
        ratio=base / fast,
        target="<= 50 ms",
        ok=fast <= 0.050,
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bench_ingest(tmp)
        bench_bars(tmp)
    bench_last_5_minutes()


if __name__ == "__main__":
    main()
