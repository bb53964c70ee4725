"""Forward-only migrations: from an empty file and from every earlier version."""

from __future__ import annotations

import sqlite3

import pytest

from lq.errors import SchemaError
from lq.store import LATEST_VERSION, Writer
from lq.store.schema import MIGRATIONS, current_version, migrate

SAMPLE_ROWS = {
    1: "INSERT INTO ticks VALUES ('binance', 'BTCUSDT', 7, 1723161255342000, 61837.63, 0.02, 1, 0);"
    "INSERT INTO bars_1s (exchange, symbol, ts, open, high, low, close, volume, quote_volume, trades, vwap)"
    " VALUES ('binance', 'BTCUSDT', 1723161255000000, 61837.63, 61837.63, 61837.63, 61837.63, 0.02,"
    " 1236.7526, 1, 61837.63)",
    2: "INSERT INTO alert_rules (name, spec, created_ts, updated_ts) VALUES ('r', '{}', 1, 1)",
    3: "INSERT INTO backtest_runs (run_id, created_ts, strategy, params, metrics) VALUES ('x', 1, 's', '{}', '{}')",
    4: "INSERT INTO gaps VALUES ('binance', 'BTCUSDT', 'trade', 5, 6, 'found', 1, 1, '')",
    5: "INSERT INTO bars_1m VALUES ('local', 'ETHUSDT', 1723161240000000, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3)",
    6: "INSERT INTO imported_ranges (what, exchange, symbol, first_key, last_key, first_ts,"
    " last_ts, source, updated_ts) VALUES ('ticks', 'binance', 'BTCUSDT', 1, 2, 1, 2, 'f.csv', 1)",
    7: "INSERT INTO forecasts (model, ts, symbol, value, created_ts) VALUES ('m', 1, 'BTCUSDT', 0.5, 1)",
    8: "INSERT INTO book_snapshots VALUES ('binance', 'BTCUSDT', 1, 2, 3, 20, x'', x'');"
    "INSERT INTO book_resyncs VALUES ('binance', 'BTCUSDT', 1, 1, 'gap', '', 5, 7, 8, NULL)",
}


def _schema(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return sorted(
        (name, sql)
        for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        )
    )


def test_latest_version_counts_the_migrations():
    assert LATEST_VERSION == len(MIGRATIONS) == 8


def test_empty_file_is_migrated_to_the_latest_version(tmp_path):
    with Writer(tmp_path / "a.sqlite") as w:
        assert current_version(w.conn) == LATEST_VERSION
        versions = [
            r[0] for r in w.conn.execute("SELECT version FROM schema_version ORDER BY version")
        ]
    assert versions == list(range(1, LATEST_VERSION + 1))


@pytest.mark.parametrize("start", range(0, LATEST_VERSION + 1))
def test_file_at_every_earlier_version_migrates_to_the_same_schema_with_data_kept(tmp_path, start):
    old = sqlite3.connect(tmp_path / "old.sqlite", isolation_level=None)
    migrate(old, start)
    for v in range(1, start + 1):
        old.executescript(SAMPLE_ROWS[v])
    old.close()

    with Writer(tmp_path / "old.sqlite") as w:
        assert current_version(w.conn) == LATEST_VERSION
        migrated = _schema(w.conn)
        kept = {
            1: w.conn.execute("SELECT count(*) FROM ticks").fetchone()[0],
            2: w.conn.execute("SELECT count(*) FROM alert_rules").fetchone()[0],
            3: w.conn.execute("SELECT count(*) FROM backtest_runs").fetchone()[0],
            4: w.conn.execute("SELECT count(*) FROM gaps").fetchone()[0],
            5: w.conn.execute("SELECT count(*) FROM bars_1m WHERE exchange = 'local'").fetchone()[
                0
            ],
            6: w.conn.execute("SELECT count(*) FROM imported_ranges").fetchone()[0],
            7: w.conn.execute("SELECT count(*) FROM forecasts").fetchone()[0],
            8: w.conn.execute(
                "SELECT (SELECT count(*) FROM book_snapshots) * (SELECT count(*) FROM book_resyncs)"
            ).fetchone()[0],
        }
        if 1 <= start < 5:  # v5 gave the old bar its trade-id range and built the 1 m rollup
            assert w.conn.execute("SELECT first_id, last_id FROM bars_1s").fetchall() == [(7, 7)]
            assert w.conn.execute("SELECT ts, open, trades, first_id FROM bars_1m").fetchall() == [
                (1723161240000000, 61837.63, 1, 7)
            ]
    with Writer(tmp_path / "fresh.sqlite") as w:
        fresh = _schema(w.conn)
    assert migrated == fresh
    assert kept == {v: (1 if v <= start else 0) for v in kept}


def test_a_newer_database_is_refused_with_a_message(tmp_path):
    conn = sqlite3.connect(tmp_path / "new.sqlite", isolation_level=None)
    migrate(conn)
    conn.execute("INSERT INTO schema_version VALUES (?, 0)", (LATEST_VERSION + 1,))
    conn.close()
    with pytest.raises(SchemaError, match="newer than this lq"):
        Writer(tmp_path / "new.sqlite")


def test_a_failing_migration_leaves_the_previous_version(tmp_path, monkeypatch):
    conn = sqlite3.connect(tmp_path / "f.sqlite", isolation_level=None)
    migrate(conn, 1)
    broken = [*MIGRATIONS[:1], MIGRATIONS[1] + ";\nCREATE TABLE ticks (x)"]  # clashes: ticks exists
    monkeypatch.setattr("lq.store.schema.MIGRATIONS", broken)
    with pytest.raises(SchemaError, match="migration to version 2 failed"):
        migrate(conn, 2)
    assert current_version(conn) == 1
    assert (
        conn.execute("SELECT count(*) FROM sqlite_master WHERE name='alert_rules'").fetchone()[0]
        == 0
    )


def test_v6_keeps_every_kline_and_lets_unknown_volumes_be_null(tmp_path):
    conn = sqlite3.connect(tmp_path / "v5.sqlite", isolation_level=None)
    migrate(conn, 5)
    row = (
        "binance",
        "BTCUSDT",
        "1m",
        60_000_000,
        119_999_999,
        1.0,
        2.0,
        0.5,
        1.5,
        10.0,
        15.0,
        7,
        4.0,
        6.0,
        1,
    )
    conn.execute(f"INSERT INTO klines VALUES ({','.join('?' * len(row))})", row)
    conn.close()
    with Writer(tmp_path / "v5.sqlite") as w:
        assert w.conn.execute("SELECT * FROM klines").fetchall() == [row]
        w.conn.execute(
            "INSERT INTO klines VALUES ('binance', 'X', '1m', 0, 59999999, 1, 1, 1, 1, 0,"
            " NULL, NULL, NULL, NULL, 1)"
        )  # an OHLC file that does not say: NULL, not an invented 0
