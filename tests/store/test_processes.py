"""Real processes on a real file: one writer, readers alongside, kill -9 in the middle."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from lq.errors import WriterLockedError
from lq.store import Store, Writer, writer_pid

WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    from trade_factory import make_trades
    from lq.store import Writer
    w = Writer({db!r})
    print("ready", flush=True)
    batch, size = 0, {size}
    while batch < {batches}:
        w.write_trades(make_trades(size, start_id=batch * size + 1, t0=1_723_161_255_000_000 + batch * 1_000_000, step_us=100))
        batch += 1
        print(batch, flush=True)
        time.sleep({pause})
    w.close()
    """
)


def _start_writer(db, tests_dir, *, batches, size=1_000, pause=0.0):
    code = WRITER.format(tests=str(tests_dir), db=str(db), batches=batches, size=size, pause=pause)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.fixture
def tests_dir(request):
    return request.path.parent


def test_duckdb_reader_process_reads_while_writer_process_commits(db, tests_dir):
    reader_code = textwrap.dedent(
        f"""
        import time
        from lq.store import Store
        import duckdb  # imported before "ready" so the reader is really reading during the writes
        print("ready", flush=True)
        while True:
            try:
                s = Store({str(db)!r})
                s.sql("SELECT count(*) AS n FROM ticks")
                break
            except Exception:
                time.sleep(0.01)
        counts, errors = [], 0
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                counts.append(int(s.sql("SELECT count(*) AS n FROM ticks").n[0]))
            except Exception as e:
                errors += 1
                print("ERR", repr(e), flush=True)
            if counts and counts[-1] == 150_000:
                break
        print(len(counts), errors, counts[0], counts[-1], all(a <= b for a, b in zip(counts, counts[1:])),
              all(c % 1_000 == 0 for c in counts))
        """
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", reader_code], stdout=subprocess.PIPE, text=True
    )
    assert reader.stdout is not None
    assert reader.stdout.readline().strip() == "ready"
    writer = _start_writer(db, tests_dir, batches=150, pause=0.02)
    out, _ = reader.communicate(timeout=90)
    writer.wait(timeout=60)
    assert writer.returncode == 0
    n_reads, errors, first, last, monotonic, whole = out.split()[-6:]
    assert errors == "0", out
    assert int(n_reads) > 5  # it really read while the writer was committing
    assert int(first) < 150_000  # ...starting before the writer finished
    assert int(last) == 150_000  # and it sees every committed row
    assert monotonic == "True"
    assert whole == "True"  # every read saw whole batches only (1,000 rows per commit)
    with Store(db) as s:
        assert s.count("ticks") == 150_000


def test_kill_9_mid_stream_leaves_only_whole_batches_and_a_sound_file(db, tests_dir):
    writer = _start_writer(db, tests_dir, batches=100_000, size=2_000)
    assert writer.stdout is not None
    for _ in range(25):  # let it commit a few batches, then kill it in the middle of more
        writer.stdout.readline()
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=10)
    assert writer.returncode == -signal.SIGKILL

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    per_batch = conn.execute(
        "SELECT (trade_id - 1) / 2000 AS b, count(*) FROM ticks GROUP BY b ORDER BY b"
    ).fetchall()
    assert len(per_batch) >= 25
    assert all(n == 2_000 for _, n in per_batch), "a batch was partially committed"
    assert [b for b, _ in per_batch] == list(range(len(per_batch))), "a committed batch is missing"
    # bars are committed with their ticks: same totals
    assert conn.execute("SELECT sum(trades) FROM bars_1s").fetchone()[0] == 2_000 * len(per_batch)
    conn.close()
    # the lock died with the process: a new writer opens at once and continues
    assert writer_pid(db) is None
    with Writer(db) as w:
        assert w.last_trade_ids()[("binance", "BTCUSDT")] == 2_000 * len(per_batch)


def test_second_writer_is_refused_naming_the_running_process(db, tests_dir):
    writer = _start_writer(db, tests_dir, batches=1, pause=30)
    try:
        assert writer_pid(db) == writer.pid
        with pytest.raises(WriterLockedError) as err:
            Writer(db)
        assert err.value.pid == writer.pid
        assert f"process {writer.pid}" in str(err.value)
        assert "only one writer" in str(err.value)
        # readers are never refused
        with Store(db) as s:
            assert s.count("ticks") >= 0
    finally:
        writer.kill()
        writer.wait()


def test_second_writer_in_the_same_process_is_refused_too(db):
    with Writer(db), pytest.raises(WriterLockedError):
        Writer(db)


def test_a_symlink_or_another_spelling_of_the_path_is_the_same_writer(db, tmp_path):
    Writer(db).close()  # the file exists
    link = tmp_path / "link.sqlite"
    link.symlink_to(db)
    other = tmp_path / "sub"
    other.mkdir()
    with Writer(db):
        for alias in (link, other / ".." / link.name):
            with pytest.raises(WriterLockedError):
                Writer(alias)


def test_lock_is_released_on_close(db):
    Writer(db).close()
    Writer(db).close()
    assert writer_pid(db) is None


def test_reader_of_a_missing_database_names_it(tmp_path):
    from lq.errors import StoreError

    with pytest.raises(StoreError, match="no such database"):
        Store(tmp_path / "nope.sqlite").count("ticks")
