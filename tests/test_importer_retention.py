"""Imported history is kept (issue 10, item 5): a Binance public-data file is always older
than the tick retention, and the collector's retention deleted it 28 s after ``lq import``
succeeded. A real collector process with a 3 s retention purging every second, a 2024 file
imported directly and one through the running collector's inbox."""

from __future__ import annotations

import time

import pytest
from import_files import FIRST_ID, CollectorProcess, count, run_lq, trade_row

N = 5_000
RETENTION_S = 3


def _purges(col: CollectorProcess) -> int:
    return col.log().count("retention: removed")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_imported_history_outlives_every_purge_and_collected_ticks_still_leave(tmp_path):
    db = tmp_path / "lq.sqlite"
    env = {"LQ_STORE_PURGE_EVERY": "1s"}
    body = b"".join(trade_row(i) for i in range(N))  # ids FIRST_ID.., 2024-08-07 (ms)
    (tmp_path / "ETHUSDT-trades-2024-08-08.csv").write_bytes(body)
    (tmp_path / "BTCUSDT-trades-2024-08-08.csv").write_bytes(body)

    # 1. directly: no collector runs, lq import writes; its output says the rows are kept
    direct = run_lq(
        ["import", "--db", str(db), "--exchange-label", "local", "ETHUSDT-trades-2024-08-08.csv"],
        cwd=tmp_path,
        env=env,
    )
    assert direct.returncode == 0, direct.stderr
    assert f"{N:,} rows, {N:,} new" in direct.stdout
    assert "imported rows are kept: automatic retention" in direct.stdout

    col = CollectorProcess(db, "--retention", f"{RETENTION_S}s", cwd=tmp_path, env=env)
    try:
        started = time.monotonic()
        col.wait_for(
            "live ticks", lambda: count(db, "SELECT count(*) FROM ticks WHERE symbol = 'BTCUSDT'")
        )
        # 2. through the inbox: the running collector imports the file (same label and
        # symbol as its live ticks) and lq import prints its answer
        queued = run_lq(
            [
                "import",
                "--db",
                str(db),
                "--exchange-label",
                "local",
                "BTCUSDT-trades-2024-08-08.csv",
            ],
            cwd=tmp_path,
            env=env,
        )
        assert queued.returncode == 0, queued.stderr
        assert "queued for the running collector" in queued.stdout
        assert f"{N:,} rows, {N:,} new, 0 already stored" in queued.stdout
        assert (
            "imported by the collector" in queued.stdout
            and "imported rows are kept" in queued.stdout
        )
        # several purge cycles after the import, and long enough for live ticks to age out
        after = _purges(col)
        col.wait_for("5 purges after the import", lambda: _purges(col) >= after + 5, timeout=120)
        col.wait_for(
            "ticks older than the retention",
            lambda: time.monotonic() - started > RETENTION_S + 5,
            timeout=60,
        )
        imported_btc = count(
            db, "SELECT count(*) FROM ticks WHERE symbol = 'BTCUSDT' AND trade_id >= ?", (FIRST_ID,)
        )
        imported_eth = count(db, "SELECT count(*) FROM ticks WHERE symbol = 'ETHUSDT'")
        now_us = time.time_ns() // 1000
        oldest_live = count(
            db, "SELECT min(ts) FROM ticks WHERE symbol = 'BTCUSDT' AND trade_id < ?", (FIRST_ID,)
        )
        live_left = count(
            db, "SELECT count(*) FROM ticks WHERE symbol = 'BTCUSDT' AND trade_id < ?", (FIRST_ID,)
        )
        # and an explicit purge that includes imported rows, run by the collector for us
        purged = run_lq(
            ["purge", "--db", str(db), "--older-than", "1d", "--include-imported"],
            cwd=tmp_path,
            env=env,
        )
        assert purged.returncode == 0, purged.stderr
        gone = count(db, "SELECT count(*) FROM ticks WHERE trade_id >= ?", (FIRST_ID,))
    finally:
        rc = col.stop()
    assert rc == 0, col.log()[-2000:]
    assert (imported_btc, imported_eth) == (N, N)  # every imported row, after every purge
    # collected ticks older than the retention still leave: what is left is young
    stored = int(col.out.read_text().split("stored ")[1].split(" new")[0].replace(",", ""))
    assert 0 < live_left < stored
    assert (now_us - oldest_live) / 1e6 < RETENTION_S + 15
    assert "imported rows too" in purged.stdout and f"ticks: {2 * N:,}" in purged.stdout
    assert gone == 0


def test_lq_purge_keeps_imported_rows_and_says_how_many(tmp_path):
    from lq.cli import main

    db = tmp_path / "lq.sqlite"
    f = tmp_path / "BTCUSDT-trades-2024-08-08.csv"
    f.write_bytes(b"".join(trade_row(i) for i in range(100)))
    assert main(["import", "--db", str(db), "--no-progress", str(f)]) == 0
    assert main(["purge", "--db", str(db), "--older-than", "1d"]) == 0
    assert count(db, "SELECT count(*) FROM ticks") == 100
    assert main(["purge", "--db", str(db), "--older-than", "1d", "--include-imported"]) == 0
    assert count(db, "SELECT count(*) FROM ticks") == 0


def test_lq_purge_output_names_the_kept_imported_rows(tmp_path, capsys):
    from lq.cli import main

    db = tmp_path / "lq.sqlite"
    f = tmp_path / "BTCUSDT-trades-2024-08-08.csv"
    f.write_bytes(b"".join(trade_row(i) for i in range(100)))
    main(["import", "--db", str(db), "--no-progress", str(f)])
    capsys.readouterr()
    main(["purge", "--db", str(db), "--older-than", "1d"])
    out = capsys.readouterr().out
    assert "kept 100 imported rows older than 1d (ticks: 100)" in out
    assert "`lq purge --include-imported` deletes them too" in out


@pytest.mark.parametrize("tid", [2**63 - 1, 0])
def test_the_largest_and_smallest_valid_ids_import(tmp_path, tid):
    """Ids span 0..2**63-1 (SQLite's INTEGER): the provenance ledger's join bounds stay in it
    (QA: the largest id ended in an OverflowError traceback, exit 1)."""
    f = tmp_path / "BTCUSDT-trades-2024-08-09.csv"
    f.write_text(f"{tid},60000.5,0.1,6000,1722470400005,True,True\n")
    db = tmp_path / "i.sqlite"
    for _ in range(2):  # and again: nothing new, the same one range
        r = run_lq(["import", "--db", str(db), "--no-progress", str(f)], cwd=tmp_path)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert count(db, "SELECT trade_id FROM ticks") == tid
    assert count(db, "SELECT count(*) FROM imported_ranges WHERE what = 'ticks'") == 1
