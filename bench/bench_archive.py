"""Archive benchmarks (issue 16, deliverables 1-2).

A generated database of 2M ticks (2 symbols, 5 closed UTC days, with their 1 s and 1 m
bars) is compacted into a local Parquet archive (lq.store.archive), then:

1. compaction throughput (rows/s) and archive size vs SQLite size;
2. one symbol, one day of ticks through ``Store.ticks``: archive + (empty) tail vs the SQLite
   file alone;
3. a full-scan aggregate in DuckDB: ``archive.ticks`` (Parquet, hive partitions) vs the
   SQLite file through DuckDB's sqlite scanner (no filter pushdown, one thread);
4. the same aggregate for one symbol and one day (partition pruning) vs the scanner.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._util import best_of, report
from lq.feeds.events import Trade
from lq.store import Batch, Store, Writer
from lq.store.archive import DAY_US, archive_db

SYMBOLS = ("BTCUSDT", "ETHUSDT")
DAYS = 5
PER_DAY = 200_000  # ticks per symbol and day: 2M in all
AGG = "SELECT symbol, count(*) AS n, sum(price * qty) AS notional, max(price) AS hi FROM {t}"


def generate(db: Path) -> int:
    rng = np.random.default_rng(16)
    day0 = (time.time_ns() // 1000 // DAY_US - DAYS - 1) * DAY_US
    n = 0
    with Writer(db, source="bench") as w:
        for k, sym in enumerate(SYMBOLS):
            tid = 1 + k * 10**9
            for d in range(DAYS):
                offs = np.sort(rng.integers(0, DAY_US, PER_DAY))
                px = 100 * (k + 1) + np.cumsum(rng.normal(0, 0.01, PER_DAY))
                qty = rng.random(PER_DAY) + 0.001
                side = rng.integers(0, 2, PER_DAY).astype(bool)
                base = day0 + d * DAY_US
                batch = [
                    Trade(
                        symbol=sym,
                        trade_id=tid + i,
                        price=float(px[i]),
                        qty=float(qty[i]),
                        ts=int(base + offs[i]),
                        event_ts=int(base + offs[i]),
                        is_buyer_maker=bool(side[i]),
                    )
                    for i in range(PER_DAY)
                ]
                tid += PER_DAY
                for j in range(0, PER_DAY, 40_000):
                    w.write_batch(Batch(trades=batch[j : j + 40_000]))
                n += PER_DAY
    return n


def size(path: Path) -> int:
    return (
        sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        if path.is_dir()
        else path.stat().st_size
    )


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lq-bench-archive-"))
    try:
        db, ref, arch = tmp / "lq.sqlite", tmp / "ref.sqlite", tmp / "archive"
        t0 = time.perf_counter()
        n = generate(db)
        print(f"generated {n:,} ticks in {time.perf_counter() - t0:.1f} s", flush=True)
        shutil.copy(db, ref)
        t0 = time.perf_counter()
        res = archive_db(db, arch)
        secs = time.perf_counter() - t0
        report(
            "compaction (all tables, verified, rows deleted)",
            f"{res.total_rows / secs:,.0f} rows/s",
            target="> 50,000 rows/s",
            ok=res.total_rows / secs > 50_000,
        )
        ratio = size(ref) / size(arch)
        report(
            "archive size vs SQLite size",
            f"{size(arch) / 2**20:,.1f} MiB",
            baseline=f"{size(ref) / 2**20:,.1f} MiB",
            ratio=ratio,
            target=">= 2x smaller",
            ok=ratio >= 2,
        )

        day = (time.time_ns() // 1000 // DAY_US - 3) * DAY_US
        union, alone = Store(db, archive=str(arch)), Store(ref, archive=False)
        assert union.ticks("ETHUSDT", day, day + DAY_US).equals(
            alone.ticks("ETHUSDT", day, day + DAY_US)
        )
        a = best_of(lambda: union.ticks("ETHUSDT", day, day + DAY_US), repeat=3)
        b = best_of(lambda: alone.ticks("ETHUSDT", day, day + DAY_US), repeat=3)
        report(
            "Store.ticks, one symbol one day (200k rows)",
            f"{a * 1e3:,.0f} ms",
            baseline=f"{b * 1e3:,.0f} ms (SQLite)",
            ratio=b / a,
            target=">= 1x",
            ok=b / a >= 1,
        )

        union.sql("SELECT 1")  # registers the archive's views
        q_arch = AGG.format(t="archive.ticks") + " GROUP BY symbol ORDER BY symbol"
        q_sql = AGG.format(t="lq.ticks") + " GROUP BY symbol ORDER BY symbol"
        x, y = union.duck.execute(q_arch).df(), alone.duck.execute(q_sql).df()
        assert x["n"].tolist() == y["n"].tolist()
        a = best_of(lambda: union.duck.execute(q_arch).fetchall(), repeat=3)
        b = best_of(lambda: alone.duck.execute(q_sql).fetchall(), repeat=3)
        report(
            "DuckDB full-scan aggregate (2M ticks)",
            f"{a * 1e3:,.0f} ms",
            baseline=f"{b * 1e3:,.0f} ms (sqlite scanner)",
            ratio=b / a,
            target=">= 10x",
            ok=b / a >= 10,
        )

        d = time.strftime("%Y-%m-%d", time.gmtime(day // 1_000_000))
        q_arch = (
            AGG.format(t="archive.ticks")
            + f" WHERE symbol = 'ETHUSDT' AND date = DATE '{d}' GROUP BY symbol"
        )
        q_sql = (
            AGG.format(t="lq.ticks")
            + f" WHERE symbol = 'ETHUSDT' AND ts >= {day} AND ts < {day + DAY_US} GROUP BY symbol"
        )
        assert (
            union.duck.execute(q_arch).fetchall()[0][1]
            == alone.duck.execute(q_sql).fetchall()[0][1]
        )
        a = best_of(lambda: union.duck.execute(q_arch).fetchall(), repeat=3)
        b = best_of(lambda: alone.duck.execute(q_sql).fetchall(), repeat=3)
        report(
            "DuckDB one symbol one day (partition pruning)",
            f"{a * 1e3:,.0f} ms",
            baseline=f"{b * 1e3:,.0f} ms (sqlite scanner)",
            ratio=b / a,
            target=">= 10x",
            ok=b / a >= 10,
        )
        union.close()
        alone.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
