"""The SQLite schema, as a list of forward-only migrations.

``MIGRATIONS[k]`` takes a database from version ``k`` to ``k + 1``. A fresh file runs them
all; an older file runs the ones it lacks, each in its own transaction, and records the new
version in ``schema_version``. Never edit a migration that has shipped: append a new one.

Conventions: times are int64 µs since the epoch (UTC); prices and quantities float64;
symbols uppercase. A trade's identity is (exchange, symbol, trade_id).
"""

from __future__ import annotations

import sqlite3
import time

from lq.errors import SchemaError

__all__ = ["LATEST_VERSION", "MIGRATIONS", "current_version", "migrate"]

MIGRATIONS: list[str] = [
    # v1: market data, feed health, dead letters
    """
    CREATE TABLE ticks (
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        trade_id INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        price REAL NOT NULL,
        qty REAL NOT NULL,
        is_buyer_maker INTEGER NOT NULL,
        recv_ts INTEGER,
        PRIMARY KEY (symbol, trade_id, exchange)
    );
    CREATE INDEX ticks_by_time ON ticks (symbol, ts, trade_id);

    CREATE TABLE bars_1s (
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        ts INTEGER NOT NULL,            -- bar open time, µs, multiple of 1_000_000
        open REAL NOT NULL,
        high REAL NOT NULL,
        low REAL NOT NULL,
        close REAL NOT NULL,
        volume REAL NOT NULL,
        quote_volume REAL NOT NULL,
        trades INTEGER NOT NULL,
        vwap REAL NOT NULL,
        PRIMARY KEY (symbol, ts, exchange)
    );

    CREATE TABLE book_tickers (
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        update_id INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        bid REAL NOT NULL,
        bid_qty REAL NOT NULL,
        ask REAL NOT NULL,
        ask_qty REAL NOT NULL,
        recv_ts INTEGER,
        PRIMARY KEY (symbol, update_id, exchange)
    );
    CREATE INDEX book_tickers_by_time ON book_tickers (symbol, ts);

    CREATE TABLE feed_status (
        exchange TEXT NOT NULL,
        source TEXT NOT NULL,           -- live / local / replay:FILE
        updated_ts INTEGER NOT NULL,
        state TEXT NOT NULL,
        pid INTEGER,
        detail TEXT NOT NULL,           -- JSON: msgs/s, lag, gaps, reconnects, ...
        PRIMARY KEY (exchange)
    );

    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        recv_ts INTEGER NOT NULL,
        exchange TEXT NOT NULL,
        source TEXT NOT NULL,           -- feed / writer / import
        reason TEXT NOT NULL,
        raw TEXT NOT NULL
    );
    """,
    # v2: alert rules and their history
    """
    CREATE TABLE alert_rules (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        spec TEXT NOT NULL,             -- JSON of the validated rule
        enabled INTEGER NOT NULL DEFAULT 1,
        created_ts INTEGER NOT NULL,
        updated_ts INTEGER NOT NULL
    );
    CREATE TABLE alert_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        rule_id INTEGER NOT NULL,
        rule_spec TEXT NOT NULL,        -- the rule as it was when it fired
        fired_key TEXT NOT NULL UNIQUE, -- rule + exchange time: a restart never fires twice
        value REAL,
        ts INTEGER NOT NULL,            -- exchange time
        local_ts INTEGER NOT NULL,
        severity TEXT NOT NULL,
        message TEXT NOT NULL,
        delivery TEXT NOT NULL DEFAULT '{}'  -- JSON: channel -> status
    );
    CREATE INDEX alert_events_by_time ON alert_events (ts);
    """,
    # v3: backtest runs
    """
    CREATE TABLE backtest_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL UNIQUE,
        created_ts INTEGER NOT NULL,
        strategy TEXT NOT NULL,
        params TEXT NOT NULL,           -- JSON
        metrics TEXT NOT NULL,          -- JSON
        notebook_path TEXT,
        scheduled INTEGER NOT NULL DEFAULT 0
    );
    """,
    # v4: aggregated trades, klines and the gap ledger
    """
    CREATE TABLE agg_trades (
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        agg_id INTEGER NOT NULL,
        first_id INTEGER NOT NULL,
        last_id INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        price REAL NOT NULL,
        qty REAL NOT NULL,
        is_buyer_maker INTEGER NOT NULL,
        recv_ts INTEGER,
        PRIMARY KEY (symbol, agg_id, exchange)
    );
    CREATE INDEX agg_trades_by_time ON agg_trades (symbol, ts);

    CREATE TABLE klines (
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        interval TEXT NOT NULL,
        open_time INTEGER NOT NULL,
        close_time INTEGER NOT NULL,
        open REAL NOT NULL,
        high REAL NOT NULL,
        low REAL NOT NULL,
        close REAL NOT NULL,
        volume REAL NOT NULL,
        quote_volume REAL NOT NULL,
        trades INTEGER NOT NULL,
        taker_buy_volume REAL NOT NULL,
        taker_buy_quote_volume REAL NOT NULL,
        closed INTEGER NOT NULL,
        PRIMARY KEY (symbol, interval, open_time, exchange)
    );

    CREATE TABLE gaps (
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        kind TEXT NOT NULL,             -- trade / aggTrade
        first_missing INTEGER NOT NULL,
        last_missing INTEGER NOT NULL,
        status TEXT NOT NULL,           -- found / filled / unfilled
        detected_ts INTEGER NOT NULL,
        updated_ts INTEGER NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (exchange, symbol, kind, first_missing)
    );
    """,
    # v5: bars carry the trade-id range of their ticks, which replaces the ticks time index
    # (time-range reads go bars -> ids -> primary key; ingest writes one B-tree fewer), and a
    # 1-minute rollup of the 1 s bars for fast coarse intervals
    """
    ALTER TABLE bars_1s ADD COLUMN first_id INTEGER;
    ALTER TABLE bars_1s ADD COLUMN last_id INTEGER;
    UPDATE bars_1s SET
        first_id = (SELECT min(t.trade_id) FROM ticks AS t WHERE t.symbol = bars_1s.symbol
                    AND t.exchange = bars_1s.exchange AND t.ts >= bars_1s.ts AND t.ts < bars_1s.ts + 1000000),
        last_id = (SELECT max(t.trade_id) FROM ticks AS t WHERE t.symbol = bars_1s.symbol
                   AND t.exchange = bars_1s.exchange AND t.ts >= bars_1s.ts AND t.ts < bars_1s.ts + 1000000);
    DROP INDEX ticks_by_time;

    CREATE TABLE bars_1m (
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        ts INTEGER NOT NULL,            -- bar open time, µs, multiple of 60_000_000
        open REAL NOT NULL,
        high REAL NOT NULL,
        low REAL NOT NULL,
        close REAL NOT NULL,
        volume REAL NOT NULL,
        quote_volume REAL NOT NULL,
        trades INTEGER NOT NULL,
        vwap REAL NOT NULL,
        first_id INTEGER,
        last_id INTEGER,
        PRIMARY KEY (symbol, ts, exchange)
    );
    INSERT INTO bars_1m
    SELECT g.exchange, g.symbol, g.m, o.open, g.h, g.l, c.close, g.v, g.qv, g.n, g.qv / g.v, g.fid, g.lid
    FROM (SELECT exchange, symbol, ts / 60000000 * 60000000 AS m, min(ts) AS fts, max(ts) AS lts,
                 max(high) AS h, min(low) AS l, sum(volume) AS v, sum(quote_volume) AS qv,
                 sum(trades) AS n, min(first_id) AS fid, max(last_id) AS lid
          FROM bars_1s GROUP BY exchange, symbol, m) AS g
    JOIN bars_1s AS o ON o.symbol = g.symbol AND o.ts = g.fts AND o.exchange = g.exchange
    JOIN bars_1s AS c ON c.symbol = g.symbol AND c.ts = g.lts AND c.exchange = g.exchange;
    """,
    # v6: imported history is kept. Every run of rows `lq import` (or an upload) stored is
    # recorded here first, and retention never deletes what a range covers unless asked
    # (`lq purge --include-imported`). See lq.store.provenance. Klines rebuilt so that what
    # an OHLC file does not say (quote volume, trade count, taker volumes) is NULL, not 0.
    """
    CREATE TABLE imported_ranges (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        what TEXT NOT NULL,             -- ticks / agg_trades / book_tickers / bars / klines
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        interval TEXT NOT NULL DEFAULT '',  -- klines only
        first_key INTEGER NOT NULL,     -- trade id, agg id, update id or open time
        last_key INTEGER NOT NULL,
        first_ts INTEGER NOT NULL,      -- exchange time of the run, µs, inclusive
        last_ts INTEGER NOT NULL,
        source TEXT NOT NULL,           -- the file that last extended the range
        updated_ts INTEGER NOT NULL
    );
    CREATE INDEX imported_ranges_by_symbol ON imported_ranges (what, symbol, exchange, first_ts);

    CREATE TABLE klines_v6 (
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        interval TEXT NOT NULL,
        open_time INTEGER NOT NULL,
        close_time INTEGER NOT NULL,
        open REAL NOT NULL,
        high REAL NOT NULL,
        low REAL NOT NULL,
        close REAL NOT NULL,
        volume REAL NOT NULL,
        quote_volume REAL,              -- NULL: not known (an OHLC file without it)
        trades INTEGER,
        taker_buy_volume REAL,
        taker_buy_quote_volume REAL,
        closed INTEGER NOT NULL,
        PRIMARY KEY (symbol, interval, open_time, exchange)
    );
    INSERT INTO klines_v6 SELECT exchange, symbol, interval, open_time, close_time, open, high,
        low, close, volume, quote_volume, trades, taker_buy_volume, taker_buy_quote_volume, closed
        FROM klines;
    DROP TABLE klines;
    ALTER TABLE klines_v6 RENAME TO klines;
    """,
    # v7: forecasting: deployed models and the forecasts the collector scores live
    """
    CREATE TABLE forecast_models (
        name TEXT NOT NULL PRIMARY KEY,
        path TEXT NOT NULL,             -- the deployed model file (.lqm)
        symbol TEXT NOT NULL,
        manifest TEXT NOT NULL,         -- JSON: the file's manifest (spec, target, evaluation)
        sha256 TEXT NOT NULL,           -- of the file: a redeploy is noticed by the collector
        enabled INTEGER NOT NULL DEFAULT 1,
        deployed_ts INTEGER NOT NULL
    );
    CREATE TABLE forecasts (
        model TEXT NOT NULL,
        ts INTEGER NOT NULL,            -- open time of the scored bar, µs
        symbol TEXT NOT NULL,
        value REAL,                     -- the model's forecast (P(up), return or volatility)
        baseline REAL,                  -- its baseline's forecast
        realised REAL,                  -- what happened (NULL until the horizon has passed)
        loss REAL,
        baseline_loss REAL,
        edge REAL,                      -- running baseline loss - model loss when scored
        created_ts INTEGER NOT NULL,
        PRIMARY KEY (model, ts)
    );
    """,
    # v8: order books: the top N levels of each synced local book every interval, and the
    # resync ledger (every time a book was found wrong and rebuilt, with the reason)
    """
    CREATE TABLE book_snapshots (
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        ts INTEGER NOT NULL,            -- exchange time of the book's last applied update, µs
        update_id INTEGER NOT NULL,     -- the book's last applied update id (Binance u)
        recv_ts INTEGER NOT NULL,       -- local time the snapshot was taken, µs
        levels INTEGER NOT NULL,        -- levels asked for per side (a side may hold fewer)
        bids BLOB NOT NULL,             -- lq.store.bookcodec: exact, best first
        asks BLOB NOT NULL,
        PRIMARY KEY (exchange, symbol, ts, update_id)
    ) WITHOUT ROWID;
    CREATE TABLE book_resyncs (
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        recv_ts INTEGER NOT NULL,       -- local time of the resync, µs
        ts INTEGER NOT NULL,            -- exchange time of the event that showed it, µs
        reason TEXT NOT NULL,           -- start, gap, crossed, locked, snapshot_older_than_events
        detail TEXT NOT NULL,
        book_update_id INTEGER NOT NULL, -- the book's id before the event (-1: not synced)
        first_id INTEGER,               -- the offending event's U
        last_id INTEGER,                -- its u (or the snapshot's lastUpdateId)
        prev_last_id INTEGER,           -- its pu (USD-M)
        PRIMARY KEY (exchange, symbol, recv_ts, reason, book_update_id)
    );
    """,
]

LATEST_VERSION = len(MIGRATIONS)


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the file (0 for an empty file)."""
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'"
    ).fetchone()
    if row is None:
        return 0
    v = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    return int(v or 0)


def migrate(conn: sqlite3.Connection, target: int = LATEST_VERSION) -> int:
    """Bring the database to ``target`` (default: latest); returns the version reached.

    Each step runs in one transaction: a failed step leaves the file at the previous version.
    """
    if not 0 <= target <= LATEST_VERSION:
        raise SchemaError(f"target={target}: must be between 0 and {LATEST_VERSION}")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, applied_ts INTEGER NOT NULL)"
    )
    have = current_version(conn)
    if have > LATEST_VERSION:
        raise SchemaError(
            f"schema version {have} is newer than this lq understands ({LATEST_VERSION}); "
            "upgrade lq"
        )
    for version in range(have, target):
        script = MIGRATIONS[version]
        try:
            conn.execute("BEGIN IMMEDIATE")
            for stmt in _statements(script):
                conn.execute(stmt)
            conn.execute(
                "INSERT INTO schema_version (version, applied_ts) VALUES (?, ?)",
                (version + 1, time.time_ns() // 1000),
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise SchemaError(f"migration to version {version + 1} failed: {exc}") from exc
    return max(have, target)


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (no semicolons inside our literals)."""
    out = []
    for part in script.split(";"):
        lines = [ln for ln in part.splitlines() if ln.strip() and not ln.strip().startswith("--")]
        if lines:
            out.append("\n".join(lines))
    return out
