"""Import benchmarks (issue 10, item 7; issue 11).

1. ``lq import`` of a large Binance-layout trades CSV (2 GiB by default,
   ``LQ_BENCH_IMPORT_MB``) as its own process: rows/s and the process's peak RSS, against
   ``pandas.read_csv`` of the whole file in the same run (parsing only, nothing stored).
   Target: peak RSS < 300 MB, whatever the file's size.
2. The same for a zip of a smaller CSV (``LQ_BENCH_IMPORT_ZIP_MB``, 256 MiB inflated).
3. The collector's automatic purge of 100k collected ticks on the imported database (which
   it must keep whole), against the same purge on a database without imported history:
   SQLite virtual-machine steps (the work, which load cannot skew) and wall time.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from import_files import run_lq, write_trades_csv  # tests/import_files.py: the same files

from bench._util import report

CACHE = Path(os.environ.get("LQ_BENCH_CACHE", Path(tempfile.gettempdir()) / "lq-bench"))
CSV_MB = float(os.environ.get("LQ_BENCH_IMPORT_MB", 2048))
ZIP_MB = float(os.environ.get("LQ_BENCH_IMPORT_ZIP_MB", 256))
MAX_RSS_MB = 300

_PANDAS = """
import sys, time, pandas as pd
t0 = time.perf_counter()
df = pd.read_csv(sys.argv[1], header=None)
print(len(df), time.perf_counter() - t0)
"""


def _pandas(path: Path, cwd: Path) -> tuple[float, float]:
    """rows/s and peak RSS (MB) of pandas.read_csv of the whole file, in its own process."""
    import subprocess

    out = cwd / "pandas.out"
    with open(out, "w") as fo:
        p = subprocess.Popen([sys.executable, "-c", _PANDAS, str(path)], stdout=fo)
        _pid, _status, usage = os.wait4(p.pid, 0)
        p.returncode = 0
    rows, secs = out.read_text().split()
    return int(rows) / float(secs), usage.ru_maxrss / 1024


def _import(path: Path, rows: int, tmp: Path, label: str) -> Path:
    db = tmp / f"{path.stem}.sqlite"
    for f in tmp.glob(f"{path.stem}.sqlite*"):
        f.unlink()
    t0 = time.perf_counter()
    run = run_lq(["import", "--db", str(db), "--no-progress", str(path)], cwd=tmp)
    secs = time.perf_counter() - t0
    if run.returncode != 0:
        raise SystemExit(f"lq import failed: {run.stderr[-2000:]}")
    base_rate, base_rss = _pandas(path, tmp)
    size = path.stat().st_size / 2**20
    report(
        f"lq import {label} ({size:,.0f} MiB, {rows:,} rows): rows/s",
        f"{rows / secs:,.0f}",
        baseline=f"pandas.read_csv whole file {base_rate:,.0f} rows/s (parse only)",
        ratio=(rows / secs) / base_rate,
    )
    report(
        f"lq import {label}: peak RSS of the process",
        f"{run.peak_rss_mb:,.0f} MB",
        baseline=f"pandas.read_csv {base_rss:,.0f} MB",
        ratio=run.peak_rss_mb / base_rss,
        target=f"< {MAX_RSS_MB} MB",
        ok=run.peak_rss_mb < MAX_RSS_MB,
    )
    return db


def _live(w, n: int, t0: int) -> None:
    from lq.feeds.events import Trade

    rows = [
        Trade(symbol="BTCUSDT", trade_id=10**13 + i, price=61_000.0, qty=0.01,
              ts=t0 + i * 10_000, event_ts=t0 + i * 10_000, is_buyer_maker=False)
        for i in range(n)
    ]  # fmt: skip
    for k in range(0, n, 10_000):
        w.write_trades(rows[k : k + 10_000])


def _purge(db: Path, tmp: Path) -> None:
    """The same purge (100k collected ticks older than the retention) on a database without
    imported history and on the imported one: its cost must not grow with what it keeps."""
    from lq.store import Writer
    from lq.store.retention import purge

    t0 = 1_723_000_000_000_000 + 86_400_000_000 * 3  # collected, 3 days after the import
    took: dict[str, float] = {}
    steps: dict[str, int] = {}
    for label, path in (("none", tmp / "empty.sqlite"), ("imported", db)):
        with Writer(path) as w:
            kept = w.conn.execute("SELECT count(*) FROM ticks").fetchone()[0]
            _live(w, 100_000, t0)
            n = [0]

            def tick(n: list[int] = n) -> int:
                n[0] += 1
                return 0

            # SQLite VM steps (per 1,000): the work done, which machine load cannot skew
            w.conn.set_progress_handler(tick, 1_000)
            start = time.perf_counter()
            res = purge(w, t0 + 86_400_000_000, vacuum="none")
            took[label] = time.perf_counter() - start
            w.conn.set_progress_handler(None, 0)
            steps[label] = n[0] * 1_000
            assert res.deleted["ticks"] == 100_000, res.deleted
            assert w.conn.execute("SELECT count(*) FROM ticks").fetchone()[0] == kept
    report(
        f"purge of 100k collected ticks, keeping {kept:,} imported: SQLite VM steps",
        f"{steps['imported']:,}",
        baseline=f"the same purge with no imported history {steps['none']:,}",
        ratio=steps["imported"] / steps["none"],
        target="< 1.5x (no scan of what it keeps)",
        ok=steps["imported"] < 1.5 * steps["none"],
    )
    report(
        "  the same purge: wall time (page cache and disk: grows with the file)",
        f"{took['imported']:.3f} s",
        baseline=f"{took['none']:.3f} s",
        ratio=took["imported"] / took["none"],
    )


def main() -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="lq-bench-import-"))
    try:
        big = CACHE / f"BTCUSDT-trades-2024-08-08-{CSV_MB:.0f}MiB.csv"
        if big.exists():
            with open(big, "rb") as fh:
                rows = sum(1 for _ in fh)
        else:
            rows = write_trades_csv(big, CSV_MB)
        db = _import(big, rows, tmp, "CSV")
        _purge(db, tmp)
        small = tmp / "BTCUSDT-trades-2024-08-09.csv"
        zrows = write_trades_csv(small, ZIP_MB)
        z = tmp / "BTCUSDT-trades-2024-08-09.zip"
        with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            zf.write(small, small.name)
        small.unlink()
        _import(z, zrows, tmp, "zip")
    finally:
        for f in tmp.glob("*"):
            f.unlink()
        tmp.rmdir()


if __name__ == "__main__":
    main()
