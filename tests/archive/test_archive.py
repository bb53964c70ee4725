"""The Parquet archive (issue 16): compaction is crash-safe and idempotent, and ``Store``
reads the archive and the SQLite tail as one, against a local folder and S3 (moto on
127.0.0.1) through the same code path (fsspec/s3fs)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import DAY, make_db, today_us

from lq.errors import StoreError
from lq.store import Store
from lq.store.archive import Archive

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def lq(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "lq.cli", *args],
        capture_output=True,
        text=True,
        env=e,
        cwd=REPO,
        timeout=120,
    )


def reads(store: Store) -> dict[str, pd.DataFrame]:
    """Everything a reader sees, by the public API."""
    out: dict[str, pd.DataFrame] = {}
    for sym in SYMBOLS:
        out[f"ticks {sym}"] = store.ticks(sym)
        out[f"book {sym}"] = store.book_tickers(sym)
        for iv in ("1s", "1m", "1h"):
            out[f"bars {iv} {sym}"] = store.bars(sym, iv)
    for iv in ("1m", "1h"):  # from klines only
        out[f"bars {iv} SOLUSDT"] = store.bars("SOLUSDT", iv)
    out["klines BTCUSDT"] = store.klines("BTCUSDT", "1m")
    h = store.book("BTCUSDT")
    out["book snapshots"] = pd.DataFrame(
        {"ts": h.ts, "update_id": h.update_id, "recv_ts": h.recv_ts}
        | {
            f"{name}{i}": getattr(h, name)[:, i]
            for name in ("bid_price", "bid_qty", "ask_price", "ask_qty")
            for i in range(3)
        }
    )
    out["gaps"] = store.gaps()
    out["symbols"] = pd.DataFrame({"symbol": store.symbols()})
    return out


def assert_same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert len(a[k]) > 0, k
        pd.testing.assert_frame_equal(a[k], b[k], obj=k)


def sqlite_count(db: Path, table: str = "ticks") -> int:
    with sqlite3.connect(db) as c:
        return int(c.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def listing(arch: Archive) -> dict[str, int]:
    files = arch.fs.find(arch.root)
    return {f: int(arch.fs.size(f)) for f in files if ".tmp-" not in f}


def test_archive_moves_closed_days_and_reads_back_as_one(
    db_and_ref: tuple[Path, Path], location: str
) -> None:
    db, ref = db_and_ref
    before = reads(Store(ref, archive=False))
    r = lq("archive", "--db", str(db), "--to", location)
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip().splitlines()[-1]
    assert line.startswith("archived ") and "ticks: 2,400" in line and "bytes" in line, line
    assert location.rstrip("/").split("://")[-1] in line
    # only today's (open) rows are left in SQLite
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT min(ts) FROM ticks").fetchone()[0] >= today_us()
    assert_same(reads(Store(db, archive=location)), before)
    for sym in (*SYMBOLS, "SOLUSDT"):  # SOLUSDT: klines only, all of them archived
        got = Store(db, archive=location).newest_bar_ts(sym)
        assert got is not None and got == Store(ref, archive=False).newest_bar_ts(sym)

    arch = Archive(location)
    first = listing(arch)
    assert any(f.endswith(".manifest.json") for f in first)
    assert any("/ticks/exchange=binance/symbol=BTCUSDT/date=" in f for f in first)
    again = lq("archive", "--db", str(db), "--to", location)
    assert again.returncode == 0, again.stderr
    assert "nothing to archive" in again.stdout
    assert listing(arch) == first  # a rerun changes nothing


@pytest.mark.parametrize("point", ["before_write", "before_rename", "before_delete"])
def test_kill_9_during_compaction_loses_and_duplicates_nothing(
    db_and_ref: tuple[Path, Path], location: str, point: str
) -> None:
    db, ref = db_and_ref
    before = reads(Store(ref, archive=False))
    n = sqlite_count(ref)
    crashed = lq("archive", "--db", str(db), "--to", location, env={"LQ_ARCHIVE_CRASH_AT": point})
    assert crashed.returncode == -signal.SIGKILL, (crashed.returncode, crashed.stderr)
    # right after the crash the reader already sees every row once
    assert_same(reads(Store(db, archive=location)), before)
    done = lq("archive", "--db", str(db), "--to", location)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("archived "), done.stdout
    assert_same(reads(Store(db, archive=location)), before)
    # nothing left over: no temporary file, and archive + SQLite hold each tick exactly once
    arch = Archive(location)
    assert not [f for f in arch.fs.find(arch.root) if ".tmp-" in f]
    archived = Store(db, archive=location).sql("SELECT count(*) AS n FROM archive.ticks")["n"][0]
    assert archived + sqlite_count(db) == n


def test_late_row_for_an_archived_day_is_archived_by_the_next_run(
    db_and_ref: tuple[Path, Path], tmp_path: Path
) -> None:
    from lq.feeds.events import Trade
    from lq.store import Batch, Writer

    db, _ref = db_and_ref
    loc = str(tmp_path / "arch")
    assert lq("archive", "--db", str(db), "--to", loc).returncode == 0
    day = today_us() - 2 * DAY
    late = Trade(
        symbol="BTCUSDT",
        trade_id=10**9,
        price=1.5,
        qty=2.0,
        ts=day + 7,
        event_ts=day + 8,
        is_buyer_maker=False,
        recv_ts=day + 9,
    )
    with Writer(db) as w:
        w.write_batch(Batch(trades=[late]))
    got = Store(db, archive=loc).ticks("BTCUSDT", day, day + DAY)
    assert (got["trade_id"] == 10**9).sum() == 1
    r = lq("archive", "--db", str(db), "--to", loc)
    assert r.returncode == 0 and "(ticks: 1, " in r.stdout, r.stdout
    got2 = Store(db, archive=loc).ticks("BTCUSDT", day, day + DAY)
    pd.testing.assert_frame_equal(got, got2)
    assert (
        sqlite_count(db)
        == Store(db, archive=False).ticks("BTCUSDT").shape[0]
        + Store(db, archive=False).ticks("ETHUSDT").shape[0]
    )


def test_two_shards_archive_into_one_location_and_a_reader_sees_both(
    tmp_path: Path, location: str
) -> None:
    a = make_db(tmp_path / "shard-a.sqlite", ("BTCUSDT",), seed=2, extras=False)
    b = make_db(tmp_path / "shard-b.sqlite", ("ETHUSDT",), seed=3, extras=False)
    ref_b = tmp_path / "ref-b.sqlite"
    shutil.copy(b, ref_b)
    for db in (a, b):
        r = lq("archive", "--db", str(db), "--to", location)
        assert r.returncode == 0, r.stderr
    reader = Store(a, archive=location)
    assert reader.symbols() == ["BTCUSDT", "ETHUSDT"]
    eth = reader.ticks("ETHUSDT", end=today_us())  # shard b's archived days, read via shard a
    want = Store(ref_b, archive=False).ticks("ETHUSDT", end=today_us())
    assert len(want) > 0
    pd.testing.assert_frame_equal(eth, want)
    counts = reader.sql(
        "SELECT symbol, count(*) AS n FROM archive.ticks WHERE symbol = 'ETHUSDT' GROUP BY symbol"
    )
    assert counts["n"].tolist() == [len(want)]


def test_archive_errors_are_one_line(tmp_path: Path, moto_endpoint: str) -> None:
    r = lq("archive", "--db", str(tmp_path / "nope.sqlite"))
    assert r.returncode != 0 and "no such database" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    db = make_db(tmp_path / "lq.sqlite", ("BTCUSDT",), days=1, per_day=20)
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "very-secret-value",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_endpoint,
    }
    r = lq("archive", "--db", str(db), "--to", "s3://no-such-bucket-here/x", env=env)
    assert r.returncode != 0 and "no such bucket" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "very-secret-value" not in r.stderr + r.stdout
    assert sqlite_count(db) > 0  # nothing was deleted
    with socket.socket() as sock:  # a port nobody listens on: the endpoint is down
        sock.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{sock.getsockname()[1]}"
    r = lq("archive", "--db", str(db), "--to", "s3://lq/x", env={**env, "AWS_ENDPOINT_URL": down})
    assert r.returncode != 0 and "cannot reach the archive" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "very-secret-value" not in r.stderr + r.stdout
    assert sqlite_count(db) > 0
    r = lq("archive", "--db", str(db), "--every", "soon")
    assert r.returncode != 0 and "--every" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_running_writer_keeps_its_rows_and_readers_see_each_once(
    db_and_ref: tuple[Path, Path], tmp_path: Path
) -> None:
    from lq.store import WriterLock

    db, ref = db_and_ref
    loc = str(tmp_path / "arch")
    n = sqlite_count(db)
    with WriterLock(db, role="collector"):  # the collector: the one writer of the file
        r = lq("archive", "--db", str(db), "--to", loc)
    assert r.returncode == 0, r.stderr
    assert "archiving a copy" in r.stdout and " bytes, 0 rows deleted" in r.stdout, r.stdout
    assert sqlite_count(db) == n
    assert_same(reads(Store(db, archive=loc)), reads(Store(ref, archive=False)))
    r = lq("archive", "--db", str(db), "--to", loc)  # no writer now: the copies' rows leave
    assert r.returncode == 0 and ": 0 file(s)" in r.stdout, r.stdout
    assert sqlite_count(db) < n
    assert_same(reads(Store(db, archive=loc)), reads(Store(ref, archive=False)))


def test_every_repeats_and_hour_granularity_is_kept(
    db_and_ref: tuple[Path, Path], tmp_path: Path
) -> None:
    db, ref = db_and_ref
    loc = str(tmp_path / "arch")
    e = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lq.cli",
            "archive",
            "--db",
            str(db),
            "--to",
            loc,
            "--granularity",
            "hour",
            "--every",
            "0.2s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=e,
        cwd=REPO,
    )
    try:
        assert p.stdout is not None
        first = p.stdout.readline()
        second = p.stdout.readline()
    finally:
        p.kill()
        p.wait(timeout=30)
    assert first.startswith("archived "), first
    assert "nothing to archive" in second, second
    files = Archive(loc).files("ticks", "BTCUSDT")
    assert files and all("/part-" in f and "-day-" not in f for f in files)
    assert_same(reads(Store(db, archive=loc)), reads(Store(ref, archive=False)))
    r = lq("archive", "--db", str(db), "--to", loc)  # default --granularity day
    assert r.returncode != 0 and "holds hours" in r.stderr and "--granularity hour" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_corrupt_archive_file_is_a_one_line_error_and_nothing_is_deleted(
    db_and_ref: tuple[Path, Path], tmp_path: Path
) -> None:
    from lq.feeds.events import Trade
    from lq.store import Batch, Writer

    db, _ref = db_and_ref
    loc = str(tmp_path / "arch")
    assert lq("archive", "--db", str(db), "--to", loc).returncode == 0
    day = today_us() - 2 * DAY
    date = time.strftime("%Y-%m-%d", time.gmtime(day // 1_000_000))
    victim = next(f for f in Archive(loc).files("ticks", "BTCUSDT") if f"date={date}" in f)
    Path(victim).write_bytes(b"not parquet")
    late = Trade(
        symbol="BTCUSDT",
        trade_id=10**9,
        price=1.5,
        qty=2.0,
        ts=day + 7,
        event_ts=day + 8,
        is_buyer_maker=False,
        recv_ts=day + 9,
    )
    with Writer(db) as w:
        w.write_batch(Batch(trades=[late]))
    n = sqlite_count(db)
    r = lq("archive", "--db", str(db), "--to", loc)
    assert r.returncode != 0 and "not a readable archive file" in r.stderr, r.stderr
    assert victim in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sqlite_count(db) == n  # nothing deleted
    with pytest.raises(StoreError, match="not a readable archive file"):
        Store(db, archive=loc).ticks("BTCUSDT", day, day + DAY)


def test_export_reads_the_configured_archive(
    db_and_ref: tuple[Path, Path], location: str, tmp_path: Path
) -> None:
    db, ref = db_and_ref
    assert lq("archive", "--db", str(db), "--to", location).returncode == 0
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[store]\narchive = "{location}"\n')
    out = tmp_path / "ticks.csv"
    r = lq("export", "ticks", "BTCUSDT", str(out), "--db", str(db), env={"LQ_CONFIG": str(cfg)})
    assert r.returncode == 0, r.stderr
    want = Store(ref, archive=False).ticks("BTCUSDT")
    assert f"wrote {len(want):,} rows" in r.stdout, r.stdout
    got = pd.read_csv(out)
    assert got["trade_id"].tolist() == want["trade_id"].tolist()


def test_a_second_archive_run_of_the_same_database_is_refused(
    db_and_ref: tuple[Path, Path], tmp_path: Path
) -> None:
    from lq.store.archive import archive_lock

    db, _ref = db_and_ref
    n = sqlite_count(db)
    with archive_lock(db):  # a run in progress (this process)
        r = lq("archive", "--db", str(db), "--to", str(tmp_path / "arch"))
    assert r.returncode != 0 and f"another `lq archive` (pid {os.getpid()})" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sqlite_count(db) == n and not (tmp_path / "arch").exists()
    assert lq("archive", "--db", str(db), "--to", str(tmp_path / "arch")).returncode == 0


def test_local_archives_work_without_s3fs(db_and_ref: tuple[Path, Path], tmp_path: Path) -> None:
    """s3fs is imported only for s3:// locations: without it a local archive works, and an
    s3:// one is a one-line error naming the extra to install."""
    db, ref = db_and_ref
    script = (
        "import sys; sys.modules['s3fs'] = None; sys.modules['botocore'] = None\n"
        "from lq.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    py = [sys.executable, "-c", script]
    e = {**os.environ, "PYTHONPATH": str(REPO)}
    loc = str(tmp_path / "arch")
    r = subprocess.run(
        [*py, "archive", "--db", str(db), "--to", loc],
        capture_output=True,
        text=True,
        env=e,
        timeout=120,
    )
    assert r.returncode == 0 and r.stdout.startswith("archived "), r.stderr
    r = subprocess.run(
        [*py, "archive", "--db", str(db), "--to", "s3://b/x"],
        capture_output=True,
        text=True,
        env=e,
        timeout=120,
    )
    assert r.returncode != 0 and "pip install 'lq[s3]'" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert_same(reads(Store(db, archive=loc)), reads(Store(ref, archive=False)))
