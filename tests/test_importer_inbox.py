"""The collector's inbox (uploads and ``lq import`` while it runs): one bad upload never kills
or stalls collection (issue 10, item 7). Real collector processes, real files."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest
from import_files import FIRST_ID, CollectorProcess, count, run_lq, trade_row, write_trades_csv

from lq.importer import inbox_dir, process_inbox
from lq.store import Writer

LIVE = "SELECT count(*) FROM ticks WHERE symbol = 'BTCUSDT' AND exchange = 'local'"


def _drop(box: Path, src: Path, name: str) -> Path:
    """Put a file in the inbox the way any writer of it must: whole, then renamed."""
    box.mkdir(parents=True, exist_ok=True)
    part = box / (name + ".part")
    shutil.copyfile(src, part)
    part.rename(box / name)
    return box / name


def _answer(box: Path, name: str) -> dict | None:
    f = box / "results" / (name + ".json")
    return json.loads(f.read_text()) if f.exists() else None


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_zip_bomb_and_a_corrupt_zip_in_the_inbox_are_refused_and_collection_goes_on(
    tmp_path, zip_bomb
):
    db = tmp_path / "lq.sqlite"
    col = CollectorProcess(db, cwd=tmp_path)
    try:
        col.wait_for("live ticks", lambda: count(db, LIVE))
        box = inbox_dir(db)
        bad = tmp_path / "corrupt.zip"  # a real zip cut in the middle of its data
        bad.write_bytes(zip_bomb.read_bytes()[: 2**20])
        _drop(box, zip_bomb, "1-aaaaaaaa-BTCUSDT-trades-2024-08-08.zip")
        _drop(box, bad, "2-bbbbbbbb-ETHUSDT-trades-2024-08-08.zip")
        bomb = col.wait_for(
            "the bomb's answer", lambda: _answer(box, "1-aaaaaaaa-BTCUSDT-trades-2024-08-08.zip")
        )
        cut = col.wait_for(
            "the corrupt zip's answer",
            lambda: _answer(box, "2-bbbbbbbb-ETHUSDT-trades-2024-08-08.zip"),
        )
        live_then = count(db, LIVE)
        # the collector keeps storing: its live ticks grow after both refusals
        col.wait_for("more live ticks", lambda: count(db, LIVE) > live_then + 20, timeout=90)
        dead = count(db, "SELECT count(*) FROM dead_letters WHERE reason LIKE 'import refused:%'")
        waiting = [p.name for p in box.iterdir() if p.is_file()]
    finally:
        rc = col.stop()
    assert bomb["status"] == "refused" and "likely zip bomb" in bomb["message"], bomb
    assert "--max-ratio" in bomb["message"]
    assert cut["status"] == "refused" and "zip" in cut["message"], cut
    assert dead == 2 and waiting == []
    assert (
        count(
            db, "SELECT count(*) FROM ticks WHERE symbol = 'ETHUSDT' OR trade_id >= ?", (FIRST_ID,)
        )
        == 0
    )
    assert rc == 0, col.log()[-2000:]
    assert "Traceback" not in col.log()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_large_upload_never_stalls_collection(tmp_path):
    """A 40 MB file through the inbox is imported a block at a time between the collector's
    own batches: live ticks keep being committed while it runs."""
    db = tmp_path / "lq.sqlite"
    f = tmp_path / "BTCUSDT-trades-2024-08-08.csv"
    rows = write_trades_csv(f, 40)
    col = CollectorProcess(db, cwd=tmp_path, rate=50)
    samples: list[tuple[bool, int]] = []
    stop = threading.Event()

    def watch() -> None:  # live commits seen while the import is in progress
        progress = inbox_dir(db) / "results"
        while not stop.is_set():
            busy = any(p.name.endswith(".progress") for p in progress.glob("*"))
            samples.append(
                (busy, count(db, "SELECT max(trade_id) FROM ticks WHERE trade_id < ?", (FIRST_ID,)))
            )
            time.sleep(0.1)

    try:
        col.wait_for("live ticks", lambda: count(db, LIVE))
        t = threading.Thread(target=watch, daemon=True)
        t.start()
        run = run_lq(["import", "--db", str(db), "--no-progress", f.name], cwd=tmp_path)
        stop.set()
        t.join(10)
    finally:
        rc = col.stop()
    assert run.returncode == 0, run.stderr
    assert f"{rows:,} rows, {rows:,} new, 0 already stored" in run.stdout
    during = [live for busy, live in samples if busy]
    assert len(set(during)) >= 5, samples  # live ticks advanced many times meanwhile
    assert rc == 0
    assert count(db, "SELECT count(*) FROM ticks WHERE trade_id >= ?", (FIRST_ID,)) == rows


def test_the_inbox_imports_one_block_per_step_and_finishes_on_later_calls(tmp_path):
    db = tmp_path / "lq.sqlite"
    src = tmp_path / "src.csv"
    src.write_bytes(b"".join(trade_row(i) for i in range(60_000)))  # ~4.8 MB: 3 inbox blocks
    with Writer(db) as w:
        _drop(inbox_dir(db), src, "5-cccccccc-BTCUSDT-trades-2024-08-08.csv")
        assert process_inbox(w, budget=0) == []  # one block, then back to the collector
        first = w.conn.execute("SELECT count(*) FROM ticks").fetchone()[0]
        progress = json.loads(
            (
                inbox_dir(db) / "results" / "5-cccccccc-BTCUSDT-trades-2024-08-08.csv.progress"
            ).read_text()
        )
        reports = []
        for _ in range(10):
            reports += process_inbox(w, budget=0)
            if reports:
                break
        total = w.conn.execute("SELECT count(*) FROM ticks").fetchone()[0]
    assert 0 < first < 60_000 and progress["rows"] == first
    assert [(r.path, r.rows, r.new) for r in reports] == [
        ("BTCUSDT-trades-2024-08-08.csv", 60_000, 60_000)
    ]
    assert total == 60_000
    answer = _answer(inbox_dir(db), "5-cccccccc-BTCUSDT-trades-2024-08-08.csv")
    assert answer["status"] == "imported" and answer["rows"] == 60_000


def test_a_file_the_collector_died_on_three_times_is_refused_not_retried_forever(tmp_path):
    db = tmp_path / "lq.sqlite"
    src = tmp_path / "src.csv"
    src.write_bytes(trade_row(0))
    name = "7-dddddddd-BTCUSDT-trades-2024-08-08.csv"
    with Writer(db) as w:
        f = _drop(inbox_dir(db), src, name)
        f.with_name(name + ".attempts").write_text("3")  # started 3 times, never finished
        process_inbox(w)
        assert w.conn.execute("SELECT count(*) FROM ticks").fetchone()[0] == 0
    answer = _answer(inbox_dir(db), name)
    assert (
        answer["status"] == "refused" and "stopped 3 times while importing it" in answer["message"]
    )
    assert not f.exists()
