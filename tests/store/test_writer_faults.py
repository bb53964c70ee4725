"""The writer under faults: rows SQLite refuses are isolated, the database's own failures are
raised as a state (StorageFailedError), and the file or its WAL vanishing is detected."""

from __future__ import annotations

import os
import shutil
import sqlite3

import pytest
from trade_factory import T0, make_trades

from lq.errors import StorageFailedError
from lq.feeds.events import AggTrade, BookTicker, Gap, Kline, Rejected, Trade
from lq.store import Batch, Writer
from lq.store.writer import storage_failure

BIG = 2**63  # one past int64: SQLite cannot bind it (OverflowError)


def _trade(i: int, **kw) -> Trade:
    base = dict(
        symbol="BTCUSDT",
        trade_id=i,
        price=100.0,
        qty=1.0,
        ts=T0 + 5_000_000,
        event_ts=T0 + 5_000_000,
        is_buyer_maker=False,
        recv_ts=T0 + 5_001_000,
    )
    return Trade(**{**base, **kw})  # type: ignore[arg-type]


def _poison() -> Batch:
    """One event of every kind that once made SQLite (or the bar maths) raise. The writer's
    invariants (lq.feeds.invariants) refuse the trades, aggTrade, bookTicker and kline now;
    the gap past int64 and the rejected frame with a lone surrogate are still kept out only by
    the isolation (defence in depth)."""
    return Batch(
        trades=[
            _trade(BIG),  # OverflowError when bound
            _trade(900_001, qty=1e308, ts=T0 + 9_000_000),
            _trade(900_002, qty=1e308, ts=T0 + 9_000_000),  # volume inf: vwap NaN -> NULL
            _trade(900_003, symbol="BTC\ud800"),  # a lone surrogate: not UTF-8
        ],
        agg_trades=[
            AggTrade(
                symbol="BTCUSDT",
                agg_id=BIG,
                first_id=1,
                last_id=2,
                price=1.0,
                qty=1.0,
                ts=T0,
                event_ts=T0,
                is_buyer_maker=False,
            )
        ],
        book_tickers=[
            BookTicker(
                symbol="BTCUSDT",
                update_id=2**64,
                bid=1.0,
                bid_qty=1.0,
                ask=2.0,
                ask_qty=1.0,
                ts=T0,
            )
        ],
        klines=[
            Kline(
                symbol="BTCUSDT",
                interval="1m",
                open_time=T0,
                close_time=T0 + 59_999_999,
                open=1.0,
                high=1.0,
                low=1.0,
                close=1.0,
                volume=1.0,
                quote_volume=1.0,
                trades=BIG,
                taker_buy_volume=0.0,
                taker_buy_quote_volume=0.0,
                first_id=1,
                last_id=2,
                closed=True,
                event_ts=T0,
            )
        ],
        gaps=[
            Gap(
                symbol="BTCUSDT",
                kind="trade",
                first_missing=BIG,
                last_missing=BIG + 5,
                status="found",
                detected_ts=T0,
            )
        ],
        rejected=[Rejected(raw='{"e":"trade","s":"\udcff"}', reason="bad frame", recv_ts=T0)],
    )


def _mix(good: list[Trade], poison: Batch) -> Batch:
    b = Batch(**{k: list(getattr(poison, k)) for k in Batch.__dataclass_fields__})
    half = len(good) // 2
    b.trades = good[:half] + b.trades + good[half:]  # poison in the middle of good rows
    return b


def test_poison_rows_of_every_kind_become_dead_letters_and_the_rest_is_stored(db):
    good = make_trades(2_000, start_id=1)
    poison = _poison()
    with Writer(db) as w:
        r = w.write_batch(_mix(good, poison))
        nxt = w.write_batch(Batch(trades=make_trades(500, start_id=2_001, t0=T0 + 2_000_000)))
        ids = [x for (x,) in w.conn.execute("SELECT trade_id FROM ticks ORDER BY trade_id")]
        dead = w.conn.execute("SELECT reason, raw FROM dead_letters ORDER BY id").fetchall()
        bars_null = w.conn.execute("SELECT count(*) FROM bars_1s WHERE vwap IS NULL").fetchone()
        in_bars = w.conn.execute("SELECT sum(trades) FROM bars_1s").fetchone()
    assert ids == [*range(1, 2_501)]  # every good row, no poison
    assert r.trades.new == 2_000 and r.trades.rejected == 4
    assert (r.agg_trades.rejected, r.book_tickers.rejected, r.klines.rejected) == (1, 1, 1)
    assert nxt.trades.new == 500  # the next batch is not poisoned
    assert r.dead_letters == len(dead) == 9  # 4 trades, agg, book, kline, gap, rejected
    reasons = [d[0] for d in dead]
    # refused by the invariants, with the rule named
    assert sum("outside 0..2**63-1" in x for x in reasons) == 4  # trade, agg, book, kline ids
    assert sum(x.startswith("trade qty=1e+308: outside") for x in reasons) == 2
    assert any(x.startswith("trade symbol='BTC\\ud800'") for x in reasons)
    # refused by SQLite and isolated under savepoints
    assert any(x.startswith("gap not storable: OverflowError") for x in reasons)
    assert any(x.startswith("bad frame (escaped: UnicodeEncodeError") for x in reasons)
    assert any("\\udcff" in raw for _, raw in dead)  # the raw text kept, escaped
    assert bars_null == (0,)
    assert in_bars == (2_500,)  # the bars are made of the stored ticks, and only of them


def test_rows_that_pass_the_invariants_but_sqlite_refuses_are_isolated_per_kind(db):
    """Defence in depth behind the invariants: rows every rule accepts, which SQLite itself
    refuses (real triggers, RAISE(ABORT) = SQLITE_CONSTRAINT), one of every kind, each in the
    middle of good rows: each becomes a dead letter naming SQLite's words, the rest is stored,
    and bars are made of the stored ticks only."""
    good = make_trades(1_000, start_id=1)
    bad_trade = good[500]
    book = BookTicker(
        symbol="BTCUSDT", update_id=77, bid=1.0, bid_qty=1.0, ask=2.0, ask_qty=1.0, ts=T0
    )
    agg = AggTrade(
        symbol="BTCUSDT",
        agg_id=55,
        first_id=1,
        last_id=2,
        price=1.0,
        qty=1.0,
        ts=T0,
        event_ts=T0,
        is_buyer_maker=False,
    )
    gap = Gap(
        symbol="BTCUSDT",
        kind="trade",
        first_missing=5_000,
        last_missing=5_009,
        status="found",
        detected_ts=T0,
    )
    with Writer(db) as w:
        w.conn.executescript(
            f"""
            CREATE TRIGGER p1 BEFORE INSERT ON ticks WHEN NEW.trade_id = {bad_trade.trade_id}
            BEGIN SELECT RAISE(ABORT, 'poison tick'); END;
            CREATE TRIGGER p2 BEFORE INSERT ON book_tickers WHEN NEW.update_id = 77
            BEGIN SELECT RAISE(ABORT, 'poison book'); END;
            CREATE TRIGGER p3 BEFORE INSERT ON agg_trades WHEN NEW.agg_id = 55
            BEGIN SELECT RAISE(ABORT, 'poison agg'); END;
            CREATE TRIGGER p4 BEFORE INSERT ON gaps WHEN NEW.first_missing = 5000
            BEGIN SELECT RAISE(ABORT, 'poison gap'); END;
            """
        )
        r = w.write_batch(Batch(trades=good, book_tickers=[book], agg_trades=[agg], gaps=[gap]))
        ids = [x for (x,) in w.conn.execute("SELECT trade_id FROM ticks ORDER BY trade_id")]
        dead = [x for (x,) in w.conn.execute("SELECT reason FROM dead_letters ORDER BY id")]
        (in_bars,) = w.conn.execute("SELECT sum(trades) FROM bars_1s").fetchone()
        other = [
            w.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("book_tickers", "agg_trades", "gaps")
        ]
    assert ids == [i for i in range(1, 1_001) if i != bad_trade.trade_id]
    assert r.trades.new == 999 and r.trades.rejected == 1
    assert in_bars == 999  # the refused tick is in no bar
    assert other == [0, 0, 0]
    assert sorted(dead) == [
        "aggTrade not storable: IntegrityError: poison agg",
        "bookTicker not storable: IntegrityError: poison book",
        "gap not storable: IntegrityError: poison gap",
        "trade not storable: IntegrityError: poison tick",
    ]


def test_the_next_batch_is_never_poisoned_by_a_failed_one(db):
    with Writer(db) as w:
        for k in range(5):
            batch = Batch(trades=make_trades(100, start_id=1 + 100 * k, t0=T0 + k * 1_000_000))
            batch.trades.insert(50, _trade(BIG + k))
            r = w.write_batch(batch)
            assert (r.trades.new, r.trades.rejected, r.dead_letters) == (100, 1, 1)
        n = w.conn.execute("SELECT count(*), max(trade_id) FROM ticks").fetchone()
    assert n == (500, 500)


def test_a_batch_of_nothing_but_poison_is_all_dead_letters(db):
    with Writer(db) as w:
        r = w.write_batch(Batch(trades=[_trade(BIG + i) for i in range(300)]))
        assert (r.trades.rejected, r.dead_letters) == (300, 300)
        assert w.conn.execute("SELECT count(*) FROM ticks").fetchone() == (0,)


def test_storage_failures_are_told_apart_from_bad_rows(db):
    # what is a failure of the database itself (state: retry) and what is about a row
    assert storage_failure(OverflowError("Python int too large")) is None
    assert storage_failure(ValueError("x")) is None
    with Writer(db) as w:
        with pytest.raises(sqlite3.IntegrityError) as bad_row:
            w.conn.execute("INSERT INTO ticks VALUES ('b', 'S', 1, 1, NULL, 1, 0, 0)")
        assert storage_failure(bad_row.value) is None
        w.conn.execute("PRAGMA query_only = 1")
        with pytest.raises(sqlite3.OperationalError) as ro:
            w.conn.execute("INSERT INTO ticks VALUES ('b', 'S', 1, 1, 1, 1, 0, 0)")
        assert storage_failure(ro.value) == "attempt to write a readonly database"
        w.conn.execute("PRAGMA query_only = 0")
        other = sqlite3.connect(db, timeout=0)
        other.execute("BEGIN IMMEDIATE")
        w.conn.execute("PRAGMA busy_timeout = 50")
        with pytest.raises(StorageFailedError, match="database is locked"):
            w.write_trades(make_trades(3))
        other.rollback()
        other.close()
        assert w.write_trades(make_trades(3)).new == 3  # the state clears with its cause
    closed = sqlite3.connect(":memory:")
    closed.close()
    with pytest.raises(sqlite3.ProgrammingError) as exc:
        closed.execute("SELECT 1")
    assert storage_failure(exc.value) is not None


def _count(path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM ticks").fetchone()[0]
    finally:
        conn.close()


def test_a_deleted_wal_is_detected_and_its_data_checkpointed_before_reopening(db):
    with Writer(db) as w:
        w.write_trades(make_trades(1_000))
        os.unlink(str(db) + "-wal")  # the committed frames now live only in our open handle
        assert w.check_files() == "WAL file deleted"
        with pytest.raises(StorageFailedError, match="WAL file deleted"):
            w.write_trades(make_trades(10, start_id=5_000))  # never into the unlinked file
        done = w.recover("WAL file deleted")
        assert "checkpointed" in done and "reopened" in done
        assert w.check_files() is None
        assert _count(db) == 1_000  # a new reader sees everything (no "disk I/O error")
        assert w.write_trades(make_trades(10, start_id=5_000)).new == 10
    assert _count(db) == 1_010


def test_a_deleted_database_file_is_written_back_from_the_open_handle(db):
    with Writer(db) as w:
        w.write_trades(make_trades(700))
        os.unlink(db)
        assert w.check_files() == "database file deleted"
        assert "written back" in w.recover("database file deleted")
        assert w.write_trades(make_trades(10, start_id=5_000)).new == 10
    assert _count(db) == 710


def test_a_replaced_database_file_keeps_the_old_data_in_an_orphan_file(db, tmp_path):
    other = tmp_path / "other.sqlite"
    with Writer(other, lock=False) as o:
        o.write_trades(make_trades(5, start_id=1, symbol="ETHUSDT"))
    with Writer(db) as w:
        w.write_trades(make_trades(300))
        shutil.copy(other, tmp_path / "new.sqlite")
        os.replace(tmp_path / "new.sqlite", db)  # someone restores another file over ours
        assert w.check_files() == "database file replaced"
        done = w.recover("database file replaced")
        [orphan] = tmp_path.glob("lq.sqlite.orphan-*.sqlite")
        assert str(orphan) in done
        assert w.write_trades(make_trades(10, start_id=5_000)).new == 10
    assert _count(orphan) == 300  # nothing lost: the old file's data is kept
    assert _count(db) == 5 + 10  # the new file at the path got the new rows
