"""QA, issue 12: ``lq import`` of other venues' recordings is refused (never "0 rows, exit 0"),
any import that stores nothing from a non-empty file says why and exits non-zero, and holes
inside an imported file are recorded in ``gaps`` and counted (real files, real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lq.errors import ImportFormatError
from lq.importer import import_file
from lq.store import Writer

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
OTHER_VENUES = sorted(
    p for v in ("coinbase", "okx", "kraken") for p in (SHARED / v).glob("*.txt*")
) if SHARED.exists() else []  # fmt: skip


def _lq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lq.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tempfile.gettempdir(),
        env={**os.environ, "LQ_CONFIG": os.devnull},
    )


def _one_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("lq import: error: "), lines[0]
    return lines[0]


@pytest.mark.skipif(not OTHER_VENUES, reason=f"shared recordings not found at {SHARED}")
@pytest.mark.parametrize("path", OTHER_VENUES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_another_venues_recording_is_refused_in_one_line_and_stores_nothing(
    path: Path, tmp_path: Path
) -> None:
    db = tmp_path / "x.sqlite"
    line = _one_line(_lq("import", "--db", str(db), "--no-progress", str(path)))
    venue = path.parent.name
    assert {"coinbase": "Coinbase", "okx": "OKX", "kraken": "Kraken"}[venue] in line, line
    assert f"--venue {venue}" in line, line
    if db.exists():
        import sqlite3

        with sqlite3.connect(db) as c:
            assert c.execute("SELECT count(*) FROM ticks").fetchone()[0] == 0


def test_a_file_that_stores_nothing_exits_non_zero_saying_why(tmp_path: Path) -> None:
    """Binance-shaped frames that are all refused: never '0 rows' and exit 0."""
    f = tmp_path / "frames.txt"
    f.write_text(
        '1723161255343000000 {"e":"trade","E":"soon","s":"BTCUSDT","t":"x"}\n'
        '1723161255343000001 {"e":"trade","E":1,"s":"BTCUSDT","t":-5}\n'
    )
    line = _one_line(_lq("import", "--db", str(tmp_path / "x.sqlite"), str(f)))
    assert "nothing stored" in line and "refused" in line and "first:" in line, line


def test_a_reimport_that_stores_no_new_row_still_succeeds(tmp_path: Path) -> None:
    from import_files import FIRST_ID, trade_row

    f = tmp_path / "BTCUSDT-trades-2024-08-08.csv"
    f.write_bytes(b"".join(trade_row(i) for i in range(5)))
    db = tmp_path / "x.sqlite"
    assert _lq("import", "--db", str(db), str(f)).returncode == 0
    r = _lq("import", "--db", str(db), str(f))
    assert r.returncode == 0, r.stderr
    assert "0 new, 5 already stored" in r.stdout and FIRST_ID > 0


def test_holes_inside_a_file_are_recorded_as_gaps_and_counted(tmp_path: Path) -> None:
    from import_files import FIRST_ID, trade_row

    keep = [i for i in range(40) if not (5 <= i <= 7 or i == 20 or 30 <= i <= 34)]
    f = tmp_path / "BTCUSDT-trades-2024-08-08.csv"
    f.write_bytes(b"".join(trade_row(i) for i in keep))
    db = tmp_path / "x.sqlite"
    r = _lq("import", "--db", str(db), "--no-progress", str(f))
    assert r.returncode == 0, r.stderr
    assert "3 holes (9 ids missing inside the file, recorded in gaps)" in r.stdout, r.stdout
    import sqlite3

    with sqlite3.connect(db) as c:
        rows = c.execute(
            "SELECT exchange, symbol, kind, first_missing, last_missing, status, reason"
            " FROM gaps ORDER BY first_missing"
        ).fetchall()
    assert [(a, b, k, lo - FIRST_ID, hi - FIRST_ID, st) for a, b, k, lo, hi, st, _ in rows] == [
        ("binance", "BTCUSDT", "trade", 5, 7, "unfilled"),
        ("binance", "BTCUSDT", "trade", 20, 20, "unfilled"),
        ("binance", "BTCUSDT", "trade", 30, 34, "unfilled"),
    ]
    assert all(f.name in reason for *_, reason in rows)
    # importing it again changes nothing; ids stored meanwhile are not holes
    r = _lq("import", "--db", str(db), "--no-progress", str(f))
    assert "3 holes" in r.stdout
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT count(*) FROM gaps").fetchone()[0] == 3


def test_a_hole_that_the_database_already_holds_is_no_hole(tmp_path: Path) -> None:
    from import_files import FIRST_ID, trade_row

    db = tmp_path / "x.sqlite"
    middle = tmp_path / "BTCUSDT-trades-2024-08-07.csv"
    middle.write_bytes(b"".join(trade_row(i) for i in range(10, 13)))
    f = tmp_path / "BTCUSDT-trades-2024-08-08.csv"
    f.write_bytes(b"".join(trade_row(i) for i in [*range(10), *range(13, 20), 25]))
    with Writer(db) as w:
        import_file(w, middle, progress=False)
        rep = import_file(w, f, progress=False)
        gaps = w.conn.execute("SELECT first_missing, last_missing FROM gaps").fetchall()
    assert rep.holes == 1 and rep.missing_ids == 5
    assert [(a - FIRST_ID, b - FIRST_ID) for a, b in gaps] == [(20, 24)]


def test_a_file_without_holes_says_so(tmp_path: Path) -> None:
    from import_files import trade_row

    f = tmp_path / "BTCUSDT-trades-2024-08-08.csv"
    f.write_bytes(b"".join(trade_row(i) for i in range(30)))
    with Writer(tmp_path / "x.sqlite") as w:
        rep = import_file(w, f, progress=False)
        assert w.conn.execute("SELECT count(*) FROM gaps").fetchone()[0] == 0
    assert rep.holes == 0 and "no holes" in rep.summary()


def test_library_import_of_nothing_raises(tmp_path: Path) -> None:
    f = tmp_path / "frames.txt"
    f.write_text('1723161255343000000 {"e":"trade","E":"soon"}\n')
    with Writer(tmp_path / "x.sqlite") as w, pytest.raises(ImportFormatError, match="nothing"):
        import_file(w, f, progress=False)
