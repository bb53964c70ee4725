"""Imported history is kept: ranges recorded by imports, and a retention that skips them
(exactly, and without scanning what it keeps)."""

from __future__ import annotations

import sqlite3

import pytest
from trade_factory import T0, make_trades

from lq.feeds.events import BookTicker, Kline
from lq.store import Batch, Writer
from lq.store.provenance import imported_ranges, record_batch
from lq.store.retention import purge

DAY = 86_400_000_000


def _import(w: Writer, batch: Batch, name: str = "file.csv") -> None:
    """What lq.importer does for each block: protect first, then write."""
    record_batch(w.conn, batch, name)
    w.write_batch(batch)


def _count(w: Writer, where: str = "1") -> int:
    return w.conn.execute(f"SELECT count(*) FROM ticks WHERE {where}").fetchone()[0]


def test_imported_trades_survive_retention_and_collected_ones_older_than_it_go(db):
    with Writer(db) as w:
        _import(w, Batch(trades=make_trades(1_000, start_id=1)))  # 2024 history, imported
        w.write_trades(make_trades(500, start_id=2_000, t0=T0 + DAY))  # collected, also old
        w.write_trades(make_trades(300, start_id=9_000, t0=T0 + 30 * DAY))  # collected, recent
        res = purge(w, T0 + 10 * DAY)
        assert res.deleted["ticks"] == 500
        assert _count(w, "trade_id <= 1000") == 1_000  # every imported row
        assert _count(w, "trade_id BETWEEN 2000 AND 2499") == 0  # old collected rows: gone
        assert _count(w, "trade_id >= 9000") == 300
        # bars of the imported seconds stay under a bars purge too; the others' go
        bars = purge(w, T0 + 10 * DAY, what="bars")
        assert bars.deleted["bars_1s"] > 0
        left = w.conn.execute("SELECT min(ts), max(ts) FROM bars_1s WHERE ts < ?", (T0 + DAY,))
        assert left.fetchone() == (
            T0 // 1_000_000 * 1_000_000,
            (T0 + 999_000) // 1_000_000 * 1_000_000,
        )
        assert (
            w.conn.execute(
                "SELECT count(*) FROM bars_1s WHERE ts BETWEEN ? AND ?",
                (T0 + DAY - 1, T0 + 2 * DAY),
            ).fetchone()[0]
            == 0
        )


def test_a_hole_in_the_imported_ids_is_not_protected(db):
    """Runs are contiguous ids: a collected trade that falls in a hole of the file is purged."""
    with Writer(db) as w:
        _import(
            w,
            Batch(
                trades=make_trades(10, start_id=1) + make_trades(10, start_id=21, t0=T0 + 20_000)
            ),
        )
        w.write_trades(make_trades(10, start_id=11, t0=T0 + 10_000))  # collected, in the hole
        assert [(r.first_key, r.last_key) for r in imported_ranges(w.conn, "ticks")] == [
            (1, 10),
            (21, 30),
        ]
        purge(w, T0 + DAY)
        ids = [r[0] for r in w.conn.execute("SELECT trade_id FROM ticks ORDER BY trade_id")]
    assert ids == [*range(1, 11), *range(21, 31)]


def test_other_labels_and_symbols_are_not_protected_by_an_import(db):
    with Writer(db) as w:
        _import(w, Batch(trades=make_trades(100, start_id=1)))
        w.write_trades(make_trades(100, start_id=1, exchange="local"))  # same ids, other label
        w.write_trades(make_trades(100, start_id=1, symbol="ETHUSDT"))
        res = purge(w, T0 + DAY)
        assert res.deleted["ticks"] == 200
        assert _count(w, "exchange = 'binance' AND symbol = 'BTCUSDT'") == 100


def test_include_imported_deletes_them_and_trims_their_ranges(db):
    with Writer(db) as w:
        _import(w, Batch(trades=make_trades(100, start_id=1)))
        _import(w, Batch(trades=make_trades(100, start_id=101, t0=T0 + 5 * DAY)))  # merges
        assert len(imported_ranges(w.conn, "ticks")) == 1
        kept = purge(w, T0 + DAY, count_kept=True)
        assert (kept.deleted["ticks"], kept.kept_imported) == (0, {"ticks": 100})
        res = purge(w, T0 + DAY, include_imported=True)
        assert res.deleted["ticks"] == 100
        (r,) = imported_ranges(w.conn, "ticks")
        assert r.first_ts == T0 + DAY and r.last_ts == T0 + 5 * DAY + 99_000
        assert _count(w) == 100


def test_reimporting_the_same_rows_changes_no_range(db):
    with Writer(db) as w:
        b = Batch(trades=make_trades(1_000, start_id=1))
        _import(w, b)
        before = imported_ranges(w.conn)
        assert record_batch(w.conn, b, "again.csv") == 0
        assert imported_ranges(w.conn) == before
        assert {r.what for r in before} == {"ticks", "bars"}


def _books(n: int, t0: int, first_id: int = 100) -> list[BookTicker]:
    return [
        BookTicker(
            symbol="BTCUSDT",
            update_id=first_id + 7 * i,  # update ids are not contiguous per symbol
            bid=100.0,
            bid_qty=1.0,
            ask=100.5,
            ask_qty=2.0,
            ts=t0 + i * 1_000_000,
            exchange="binance",
        )
        for i in range(n)
    ]


def _klines(n: int, t0: int, symbol: str = "BTCUSDT") -> list[Kline]:
    t0 = t0 // 60_000_000 * 60_000_000
    return [
        Kline(
            symbol=symbol,
            interval="1m",
            open_time=t0 + i * 60_000_000,
            close_time=t0 + (i + 1) * 60_000_000 - 1,
            open=1.0,
            high=2.0,
            low=0.5,
            close=1.5,
            volume=1.0,
            quote_volume=1.5,
            trades=3,
            taker_buy_volume=0.5,
            taker_buy_quote_volume=0.7,
            first_id=-1,
            last_id=-1,
            closed=True,
            event_ts=t0 + (i + 1) * 60_000_000 - 1,
        )
        for i in range(n)
    ]


def test_book_tickers_and_klines_are_kept_by_time_span(db):
    with Writer(db) as w:
        _import(w, Batch(book_tickers=_books(50, T0), klines=_klines(30, T0)))
        w.write_batch(
            Batch(book_tickers=_books(20, T0 + 2 * DAY, 10_000), klines=_klines(10, T0 + 2 * DAY))
        )
        # a collected update 2 minutes after the import's last one: past the 60 s pause
        w.write_batch(Batch(book_tickers=_books(1, T0 + 49_000_000 + 120_000_000, 5_000)))
        ticks = purge(w, T0 + 10 * DAY)
        bars = purge(w, T0 + 10 * DAY, what="bars")
        assert ticks.deleted["book_tickers"] == 21
        assert bars.deleted["klines"] == 10
        assert w.conn.execute("SELECT count(*) FROM book_tickers").fetchone()[0] == 50
        assert w.conn.execute("SELECT count(*) FROM klines").fetchone()[0] == 30


def test_dead_letters_of_an_import_are_kept_the_feeds_go(db):
    with Writer(db, source="import") as w:
        w.dead_letter("bad row", "import: price=0", recv_ts=T0)
    with Writer(db) as w:
        w.dead_letter("bad frame", "feed: junk", recv_ts=T0)
        res = purge(w, T0 + DAY)
        left = w.conn.execute("SELECT source FROM dead_letters").fetchall()
    assert res.deleted["dead_letters"] == 1 and left == [("import",)]


def _steps(conn: sqlite3.Connection, fn) -> int:
    """SQLite virtual-machine steps ``fn`` takes: a measure of work that load cannot skew."""
    n = [0]

    def tick() -> int:
        n[0] += 1
        return 0

    conn.set_progress_handler(tick, 1_000)
    try:
        fn()
    finally:
        conn.set_progress_handler(None, 0)
    return n[0]


@pytest.mark.slow
def test_a_purge_does_not_scan_the_imported_rows_it_keeps(tmp_path):
    """The collector purges every few minutes: with 20x more imported history, a purge of
    the same collected rows does about the same work."""
    work = {}
    for imported in (10_000, 200_000):
        db = tmp_path / f"{imported}.sqlite"
        with Writer(db) as w:
            for k in range(0, imported, 50_000):
                _import(
                    w,
                    Batch(
                        trades=make_trades(
                            min(50_000, imported - k), start_id=1 + k, t0=T0 + k * 1000
                        )
                    ),
                )
            w.write_trades(make_trades(5_000, start_id=10**6, t0=T0 + DAY))
            w.write_trades(make_trades(5_000, start_id=2 * 10**6, t0=T0 + 20 * DAY))
            work[imported] = _steps(w.conn, lambda w=w: purge(w, T0 + 10 * DAY, vacuum="none"))
            assert _count(w) == imported + 5_000
    # the bars_1m scan grows with the minutes of history (x20 rows here spans only ~3 min)
    assert work[200_000] < 1.5 * work[10_000], work


def test_the_resume_point_of_a_live_feed_ignores_imported_history(db):
    """Imported trades are not the feed's: a restart resumes after what was collected."""
    from lq.store.provenance import last_collected_ids

    with Writer(db) as w:
        w.write_trades(make_trades(100, start_id=1))  # collected
        _import(w, Batch(trades=make_trades(100, start_id=5_000)))  # old history, higher ids
        _import(w, Batch(trades=make_trades(10, start_id=1, symbol="ETHUSDT")))  # only imported
        assert w.last_trade_ids()[("binance", "BTCUSDT")] == 5_099
        assert last_collected_ids(w.conn) == {("binance", "BTCUSDT"): 100}
