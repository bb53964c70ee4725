"""Streaming import with limits (issue 10, item 7): memory stays bounded whatever a file's
size, what a file may inflate to is capped with a one-line error naming the way out, and a
file that fails part-way says exactly what it stored (a re-run converges)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from import_files import (
    FIRST_ID,
    run_lq,
    trade_row,
    write_gzip_bomb,
    write_trades_csv,
)

from lq.errors import ImportFormatError
from lq.importer import Limits, import_file, parse_size
from lq.store import Writer

#: the issue's bound for a 2 GB CSV
MAX_RSS_MB = 300


def _ticks(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT count(*) FROM ticks").fetchone()[0]
    finally:
        conn.close()


def _one_line_error(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert "Traceback" not in stderr, stderr
    errors = [ln for ln in lines if ln.startswith("lq import: error:")]
    assert len(errors) == 1, stderr
    return errors[0]


# -- real processes, real sizes ------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(1800)  # gigabytes through a real process: minutes on a loaded machine
def test_a_2gb_sparse_csv_is_refused_at_its_first_nul_byte_in_bounded_memory(tmp_path):
    f = tmp_path / "BTCUSDT-trades-2024-08-08.csv"
    with open(f, "wb") as fh:
        for i in range(1_000):
            fh.write(trade_row(i))
    good = f.stat().st_size
    os.truncate(f, 2 * 2**30)  # the rest is a hole: NUL bytes, no disk used
    run = run_lq(["import", "--db", "a.sqlite", f.name], cwd=tmp_path)
    assert run.returncode == 2
    err = _one_line_error(run.stderr)
    assert f"{f.name}:1001: a NUL byte at byte {good:,}" in err
    assert run.peak_rss_mb < MAX_RSS_MB, run
    assert _ticks(tmp_path / "a.sqlite") == 0  # its block held the NUL: nothing stored


@pytest.mark.slow
@pytest.mark.timeout(1800)  # gigabytes through a real process: minutes on a loaded machine
def test_a_zip_bomb_is_refused_from_its_header_before_a_byte_is_inflated(tmp_path, zip_bomb):
    run = run_lq(["import", "--db", "a.sqlite", str(zip_bomb)], cwd=tmp_path)
    assert run.returncode == 2
    err = _one_line_error(run.stderr)
    assert " MiB inflates to 1.1 GiB (" in err and "likely zip bomb" in err
    assert "--max-ratio" in err and "store.import_max_ratio" in err
    assert run.peak_rss_mb < MAX_RSS_MB, run
    # the size cap too, once the ratio is allowed: the flag and the setting both work
    run = run_lq(
        [
            "import",
            "--db",
            "a.sqlite",
            "--max-ratio",
            "100000",
            "--max-size",
            "512MiB",
            str(zip_bomb),
        ],
        cwd=tmp_path,
    )
    err = _one_line_error(run.stderr)
    assert "inflates to more than 512.0 MiB, the import limit" in err and "--max-size" in err
    run = run_lq(
        ["import", "--db", "a.sqlite", "--max-ratio", "100000", str(zip_bomb)],
        cwd=tmp_path,
        env={"LQ_STORE_IMPORT_MAX_SIZE": "1GB"},
    )
    assert "inflates to more than 953.7 MiB" in _one_line_error(run.stderr)
    assert _ticks(tmp_path / "a.sqlite") == 0


@pytest.mark.slow
@pytest.mark.timeout(1800)  # gigabytes through a real process: minutes on a loaded machine
def test_a_gzip_bomb_is_measured_and_refused_before_it_is_parsed(tmp_path):
    f = tmp_path / "session.txt.gz"
    write_gzip_bomb(f, 300)
    run = run_lq(["import", "--db", "a.sqlite", f.name], cwd=tmp_path)
    err = _one_line_error(run.stderr)
    assert "inflates to 300.0 MiB" in err and "--max-ratio" in err
    assert run.peak_rss_mb < MAX_RSS_MB, run


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_large_valid_csv_is_imported_whole_in_bounded_memory(tmp_path):
    """400 MiB of real-looking trades (5M rows) against a 300 MB bound: a file larger than
    the bound cannot have been read whole, and the peak is compared with the same import of
    a file 20x smaller (memory must not grow with the file). 400 MiB keeps the test to a few
    minutes on a loaded 2-core machine; `python -m bench import` runs 2 GiB."""
    small, large = (
        tmp_path / "BTCUSDT-trades-2024-08-07.csv",
        tmp_path / "BTCUSDT-trades-2024-08-08.csv",
    )
    n_small = write_trades_csv(small, 20)
    n_large = write_trades_csv(large, 400)
    assert large.stat().st_size > MAX_RSS_MB * 2**20
    a = run_lq(["import", "--db", "small.sqlite", "--no-progress", small.name], cwd=tmp_path)
    b = run_lq(["import", "--db", "large.sqlite", "--no-progress", large.name], cwd=tmp_path)
    assert (a.returncode, b.returncode) == (0, 0), b.stderr
    assert f"{n_large:,} rows, {n_large:,} new, 0 already stored" in b.stdout
    assert "imported rows are kept" in b.stdout
    conn = sqlite3.connect(tmp_path / "large.sqlite")
    count, lo, hi = conn.execute(
        "SELECT count(*), min(trade_id), max(trade_id) FROM ticks"
    ).fetchone()
    bars = conn.execute("SELECT sum(trades) FROM bars_1m").fetchone()[0]
    conn.close()
    assert (count, lo, bars) == (n_large, FIRST_ID, n_large)
    assert hi == FIRST_ID + (n_large // 100_000 - 1) * 100_000 + 99_999
    assert b.peak_rss_mb < MAX_RSS_MB, (a.peak_rss_mb, b.peak_rss_mb)
    assert b.peak_rss_mb < a.peak_rss_mb + 40, (a.peak_rss_mb, b.peak_rss_mb)
    assert _ticks(tmp_path / "small.sqlite") == n_small


# -- what is stored when a file fails part-way -----------------------------------------------------
def test_a_file_failing_part_way_keeps_whole_checked_blocks_and_says_which_lines(tmp_path):
    f = tmp_path / "BTCUSDT-trades-2024-08-08.csv"
    rows = [trade_row(i) for i in range(3_000)]
    bad = 2_500  # line 2,501 has a price that is not a number
    broken = [*rows[:bad], rows[bad].replace(b",61", b",x61", 1), *rows[bad + 1 :]]
    f.write_bytes(b"".join(broken))
    block = 64 * 1024  # ~800 lines a block in this test
    with Writer(tmp_path / "a.sqlite") as w:
        with pytest.raises(ImportFormatError) as err:
            import_file(w, f, block_bytes=block, progress=False)
        stored = w.conn.execute("SELECT count(*), max(trade_id) FROM ticks").fetchone()
    msg = str(err.value)
    assert f"{f.name}:{bad + 1}: column 2 (price) = 'x61" in msg
    # the blocks before the bad one are stored, and the message says exactly which lines
    n = stored[0]
    assert 0 < n < bad and stored[1] == FIRST_ID + n - 1
    assert f"lines 1-{n:,} before it are stored ({n:,} rows: {n:,} new, 0 already stored)" in msg
    f.write_bytes(b"".join(rows))  # fixed: the re-run converges
    with Writer(tmp_path / "a.sqlite") as w:
        rep = import_file(w, f, block_bytes=block, progress=False)
        total = w.conn.execute("SELECT count(*) FROM ticks").fetchone()[0]
    assert (rep.rows, rep.new, rep.duplicates, total) == (3_000, 3_000 - n, n, 3_000)


def test_the_cli_error_for_a_bad_row_is_one_line_naming_the_place(tmp_path, capsys):
    from lq.cli import main

    f = tmp_path / "BTCUSDT-trades-2024-08-08.csv"
    f.write_bytes(
        trade_row(0) + trade_row(1).replace(b",true", b",perhaps").replace(b",false", b",perhaps")
    )
    assert main(["import", "--db", str(tmp_path / "a.sqlite"), str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert f"{f.name}:2: column 6 (is_buyer_maker) = 'perhaps' is not true/false" in err
    assert "nothing" not in err  # one block: nothing was stored, so nothing is claimed


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("18446744073709551615", "column 1 (id) = 18446744073709551615 is larger than int64"),
        ("9223372036854775808", "column 1 (id) = 9223372036854775808 is larger than int64"),
        ("12.5", "column 1 (id) = 12.5 is not a whole number in int64"),
    ],
)
def test_ids_beyond_int64_or_not_whole_are_refused_never_wrapped(tmp_path, cell, message):
    f = tmp_path / "BTCUSDT-trades-2024-08-08.csv"
    f.write_bytes(trade_row(0) + cell.encode() + trade_row(1)[12:])
    with Writer(tmp_path / "a.sqlite") as w, pytest.raises(ImportFormatError) as err:
        import_file(w, f, progress=False)
    assert f"{f.name}:2: {message}" in str(err.value)


def test_prices_and_quantities_are_parsed_exactly_once(tmp_path):
    """Every stored float equals Python's own ``float(text)`` of the file's decimal string
    (the reference: correctly rounded IEEE 754)."""
    rng = np.random.default_rng(7)
    prices = [f"{x:.8f}" for x in rng.uniform(0.00001, 99999, 5_000)]
    qtys = [f"{x:.8f}" for x in rng.uniform(0.00000001, 50, 5_000)]
    f = tmp_path / "ETHUSDT-trades-2024-08-08.csv"
    f.write_text(
        "".join(
            f"{i + 1},{p},{q},1.0,{1723161256322 + i},true,True\n"
            for i, (p, q) in enumerate(zip(prices, qtys, strict=True))
        )
    )
    with Writer(tmp_path / "a.sqlite") as w:
        import_file(w, f, progress=False)
        got = w.conn.execute("SELECT price, qty FROM ticks ORDER BY trade_id").fetchall()
    assert got == [(float(p), float(q)) for p, q in zip(prices, qtys, strict=True)]


def test_a_line_longer_than_a_megabyte_is_refused_naming_it(tmp_path):
    f = tmp_path / "BTCUSDT-trades-2024-08-08.csv"
    f.write_bytes(trade_row(0) + trade_row(1) + b"9" * (3 * 2**20) + b"\n")
    with Writer(tmp_path / "a.sqlite") as w:
        with pytest.raises(ImportFormatError, match=f"{f.name}:3: a line longer than 1 MB"):
            import_file(w, f, progress=False)
        assert w.conn.execute("SELECT count(*) FROM ticks").fetchone()[0] == 0


def test_limits_refuse_before_parsing_and_name_the_flag_and_the_setting(tmp_path):
    import gzip
    import zipfile

    body = b"".join(trade_row(i) for i in range(2_000))
    z = tmp_path / "BTCUSDT-trades-2024-08-08.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("BTCUSDT-trades-2024-08-08.csv", body)
    g = tmp_path / "BTCUSDT-trades-2024-08-09.csv.gz"
    g.write_bytes(gzip.compress(body))
    p = tmp_path / "BTCUSDT-trades-2024-08-10.csv"
    p.write_bytes(body)
    small = Limits(max_size=100_000)
    with Writer(tmp_path / "a.sqlite") as w:
        for f in (z, g, p):
            with pytest.raises(
                ImportFormatError, match=r"inflates to more than 97\.7 KiB, the import limit"
            ) as e:
                import_file(w, f, limits=small, progress=False)
            assert "--max-size (or store.import_max_size)" in str(e.value)
        assert w.conn.execute("SELECT count(*) FROM ticks").fetchone()[0] == 0
        # the ratio applies past 64 MiB only: a small file that compresses well is fine
        rep = import_file(w, z, limits=Limits(max_ratio=1.0), progress=False)
        assert rep.new == 2_000


@pytest.mark.parametrize(
    ("text", "size"),
    [("4GB", 4 * 10**9), ("4GiB", 4 * 2**30), ("512MiB", 512 * 2**20), ("1.5g", 1_500_000_000),
     ("100000", 100_000), ("10 kB", 10_000), (2048, 2048)],
)  # fmt: skip
def test_sizes_read_like_people_write_them(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "4 parsecs", "-1", "0", "GB"])
def test_a_size_that_is_not_one_is_refused(text):
    with pytest.raises(ImportFormatError, match="size"):
        parse_size(text)
