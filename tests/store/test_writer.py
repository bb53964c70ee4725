from __future__ import annotations

import math
import random
import sqlite3

import pandas as pd
import pytest
from trade_factory import T0, make_trades

from lq.feeds.events import BookTicker, Gap, Rejected, Trade
from lq.store import Batch, Writer
from lq.store.sqlite import insert_many


def test_same_batch_written_twice_stores_no_duplicates_and_counts_right(db):
    trades = make_trades(2_500)
    with Writer(db) as w:
        first = w.write_trades(trades)
        second = w.write_trades(trades)
        n = w.conn.execute("SELECT count(*) FROM ticks").fetchone()[0]
    assert (first.new, first.duplicates, first.rejected) == (2_500, 0, 0)
    assert (second.new, second.duplicates, second.rejected) == (0, 2_500, 0)
    assert n == 2_500


def test_overlapping_batches_count_only_the_new_part(db):
    with Writer(db) as w:
        w.write_trades(make_trades(150)[:100])
        r = w.write_trades(make_trades(150)[50:])  # ids 51..150: 50 old, 50 new
    assert (r.new, r.duplicates, r.rejected) == (50, 50, 0)


def test_trades_share_a_millisecond_and_are_all_kept(db):
    # real Binance: thousands of trades share a millisecond; identity is the id, never the time
    trades = make_trades(1_000, step_us=0)
    with Writer(db) as w:
        assert w.write_trades(trades).new == 1_000


def test_same_trade_id_on_two_exchanges_is_two_trades(db):
    with Writer(db) as w:
        a = w.write_trades(make_trades(10, exchange="binance"))
        b = w.write_trades(make_trades(10, exchange="local"))
    assert a.new == b.new == 10


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("price", math.nan, "price=nan"),
        ("price", math.inf, "price=inf"),
        ("price", 0.0, "price=0.0"),
        ("price", -1.0, "price=-1.0"),
        ("qty", math.nan, "qty=nan"),
        ("qty", 0.0, "qty=0.0"),
        ("qty", -0.5, "qty=-0.5"),
        ("ts", 1_723_161_255_342, "ts=1723161255342"),  # milliseconds passed as µs
        ("ts", 9_999_999_999_999_999, "ts=9999999999999999"),
        ("symbol", "", "symbol: empty"),
    ],
)
def test_bad_row_goes_to_dead_letters_and_the_rest_of_the_batch_is_stored(db, field, value, reason):
    trades = make_trades(5)
    bad = Trade(**{**{f: getattr(trades[2], f) for f in Trade.__struct_fields__}, field: value})
    trades[2] = bad
    with Writer(db) as w:
        res = w.write_batch(Batch(trades=trades))
        ids = [r[0] for r in w.conn.execute("SELECT trade_id FROM ticks ORDER BY trade_id")]
        dead = w.conn.execute("SELECT source, reason, raw FROM dead_letters").fetchall()
    assert (res.trades.new, res.trades.rejected) == (4, 1)
    assert ids == [1, 2, 4, 5]
    assert len(dead) == 1
    assert dead[0][0] == "feed"
    assert reason in dead[0][1]
    assert '"trade_id":3' in dead[0][2]


def test_rejected_frames_and_gaps_are_stored_with_the_batch(db):
    batch = Batch(
        trades=make_trades(3),
        rejected=[Rejected(raw='{"e":"trade","p":', reason="invalid JSON", recv_ts=T0)],
        gaps=[
            Gap(
                symbol="BTCUSDT",
                kind="trade",
                first_missing=10,
                last_missing=12,
                status="found",
                detected_ts=T0,
            )
        ],
    )
    with Writer(db) as w:
        res = w.write_batch(batch)
        w.write_batch(
            Batch(
                gaps=[
                    Gap(
                        symbol="BTCUSDT",
                        kind="trade",
                        first_missing=10,
                        last_missing=12,
                        status="filled",
                        detected_ts=T0,
                    )
                ]
            )
        )
        gaps = w.conn.execute("SELECT first_missing, last_missing, status FROM gaps").fetchall()
        dead = w.conn.execute("SELECT reason, raw FROM dead_letters").fetchall()
    assert res.dead_letters == 1
    assert dead == [("invalid JSON", '{"e":"trade","p":')]
    assert gaps == [(10, 12, "filled")]


def test_one_second_bars_match_pandas_resample_of_the_ticks(db):
    # reference: pandas groupby on the raw ticks (independent of the SQL that builds bars)
    trades = make_trades(5_000, step_us=3_217)
    with Writer(db) as w:
        for k in range(0, len(trades), 700):  # batches that cut seconds in half
            w.write_trades(trades[k : k + 700])
        bars = pd.read_sql("SELECT * FROM bars_1s ORDER BY ts", w.conn)
    ticks = pd.DataFrame(
        [(t.ts, t.trade_id, t.price, t.qty) for t in trades], columns=["ts", "id", "price", "qty"]
    )
    g = ticks.groupby(ticks.ts // 1_000_000 * 1_000_000)
    ref = pd.DataFrame(
        {
            "open": g.price.first(),
            "high": g.price.max(),
            "low": g.price.min(),
            "close": g.price.last(),
            "volume": g.qty.sum(),
            "trades": g.size(),
            "vwap": (ticks.price * ticks.qty).groupby(ticks.ts // 1_000_000 * 1_000_000).sum()
            / g.qty.sum(),
        }
    )
    assert list(bars.ts) == list(ref.index)
    for col in ("open", "high", "low", "close", "trades"):
        assert list(bars[col]) == list(ref[col]), col
    pd.testing.assert_series_equal(
        bars.volume, ref.volume.reset_index(drop=True), check_names=False, rtol=1e-12
    )
    pd.testing.assert_series_equal(
        bars.vwap, ref.vwap.reset_index(drop=True), check_names=False, rtol=1e-12
    )


def test_a_late_backfilled_trade_updates_its_old_bar(db):
    trades = make_trades(
        10, step_us=100_000, t0=1_723_161_255_000_000
    )  # one whole second of trades
    with Writer(db) as w:
        w.write_trades(trades[:4] + trades[6:])
        before = w.conn.execute("SELECT trades, volume FROM bars_1s").fetchall()
        w.write_trades(trades[4:6])  # the gap, backfilled later
        after = w.conn.execute("SELECT trades, close FROM bars_1s").fetchall()
    assert before[0][0] == 8
    assert after == [(10, trades[9].price)]


def test_book_tickers_are_idempotent_on_update_id(db):
    bt = [
        BookTicker(
            symbol="BTCUSDT",
            update_id=100 + i,
            bid=61_000.0,
            bid_qty=1.0,
            ask=61_000.01,
            ask_qty=2.0,
            ts=T0 + i,
        )
        for i in range(10)
    ]
    with Writer(db) as w:
        assert w.write_book_tickers(bt).new == 10
        assert w.write_book_tickers(bt).duplicates == 10


def test_a_batch_the_database_refuses_leaves_nothing_behind(db):
    # a failure of the database itself (here: read-only) stores nothing of the batch; rows
    # SQLite refuses one by one are isolated instead (tests/store/test_writer_faults.py)
    from lq.errors import StorageFailedError

    with Writer(db) as w:
        w.write_trades(make_trades(3))
        w.conn.execute("PRAGMA query_only = 1")
        batch = Batch(
            trades=make_trades(3, start_id=100),
            book_tickers=[
                BookTicker(
                    symbol="BTCUSDT", update_id=1, bid=1.0, bid_qty=1.0, ask=2.0, ask_qty=1.0, ts=T0
                )
            ],
        )
        with pytest.raises(StorageFailedError, match="attempt to write a readonly database"):
            w.write_batch(batch)
        w.conn.execute("PRAGMA query_only = 0")
        n = w.conn.execute("SELECT count(*) FROM ticks").fetchone()[0]
    assert n == 3  # the trades of the failed batch were rolled back with it


def test_database_is_in_wal_mode_with_normal_sync(db):
    with Writer(db) as w:
        assert w.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert w.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert w.conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL
        assert w.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5_000


def test_last_trade_ids_are_where_a_restart_resumes(db):
    with Writer(db) as w:
        w.write_trades(make_trades(10, start_id=500))
        w.write_trades(make_trades(5, start_id=7, symbol="ETHUSDT"))
        assert w.last_trade_ids() == {("binance", "BTCUSDT"): 509, ("binance", "ETHUSDT"): 11}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bars_merged_from_new_batches_equal_bars_recomputed_from_the_ticks(db, seed):
    # two ways to make a bar (merge when every row is new, recompute otherwise) must agree
    import random

    rng = random.Random(seed)
    trades = []
    for sym in ("BTCUSDT", "ETHUSDT"):
        ts = T0
        for i in range(3_000):
            ts += rng.choice([0, 0, 1_000, 37_000, 400_000])  # bursts sharing a timestamp
            trades.append(
                Trade(
                    symbol=sym,
                    trade_id=10_000 + i,
                    price=100 + rng.random(),
                    qty=rng.random() + 0.01,
                    ts=ts,
                    event_ts=ts,
                    is_buyer_maker=bool(i % 2),
                )
            )
    rng.shuffle(trades)
    trades.sort(key=lambda t: (t.ts, t.trade_id))
    cuts = sorted(rng.sample(range(1, len(trades)), 40))
    with Writer(db) as w:
        for a, b in zip([0, *cuts], [*cuts, len(trades)], strict=True):
            w.write_trades(trades[a:b])  # seconds split across batches: the merge path
        merged = w.conn.execute("SELECT * FROM bars_1s ORDER BY symbol, ts").fetchall()
        merged_1m = w.conn.execute("SELECT * FROM bars_1m ORDER BY symbol, ts").fetchall()
        rows = [
            (t.exchange, t.symbol, t.trade_id, t.ts, t.price, t.qty, t.is_buyer_maker, 0)
            for t in trades
        ]
        w.conn.execute("BEGIN")
        w._refresh_bars(rows)  # the recompute path, from the stored ticks
        w.conn.execute("COMMIT")
        recomputed = w.conn.execute("SELECT * FROM bars_1s ORDER BY symbol, ts").fetchall()
        recomputed_1m = w.conn.execute("SELECT * FROM bars_1m ORDER BY symbol, ts").fetchall()
    assert len(merged) == len(recomputed) > 100
    for got, want in ((merged, recomputed), (merged_1m, recomputed_1m)):
        for g, r in zip(got, want, strict=True):
            assert (
                g[:3] == r[:3] and g[3:7] == r[3:7] and g[9] == r[9] and g[11:] == r[11:]
            )  # exact
            assert g[7:9] == pytest.approx(r[7:9], rel=1e-12) and g[10] == pytest.approx(
                r[10], rel=1e-12
            )


@pytest.mark.parametrize("n", [0, 1, 3, 4, 17, 1001, 9_999])
@pytest.mark.parametrize("conflict", ["IGNORE", "REPLACE"])
def test_insert_many_equals_executemany_row_for_row(tmp_path, n, conflict):
    """Multi-row statements: same rows, same order, same conflict outcome (a key repeated in
    one statement: IGNORE keeps the first, REPLACE the last), same change count."""
    rng = random.Random(n)
    rows = [(rng.randrange(n // 2 + 1), rng.random(), f"s{i}", None) for i in range(n)]
    got = []
    for use_many in (False, True):
        conn = sqlite3.connect(tmp_path / f"{use_many}.sqlite", isolation_level=None)
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, x REAL, s TEXT, z)")
        before = conn.total_changes
        head = f"INSERT OR {conflict} INTO t"
        if use_many:
            insert_many(conn, head, rows, 4)
        else:
            conn.executemany(head + " VALUES (?, ?, ?, ?)", rows)
        got.append((conn.total_changes - before, conn.execute("SELECT * FROM t").fetchall()))
        conn.close()
    assert got[0] == got[1]
    assert len(got[1][1]) == len({r[0] for r in rows})


def test_insert_many_stays_under_the_parameter_limit(tmp_path):
    conn = sqlite3.connect(tmp_path / "lim.sqlite", isolation_level=None)
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 100)  # 33 rows of 3 per statement
    conn.execute("CREATE TABLE t (a, b, c)")
    insert_many(conn, "INSERT INTO t", [(i, i, i) for i in range(500)], 3)
    assert conn.execute("SELECT count(*), sum(a) FROM t").fetchone() == (500, sum(range(500)))


def test_new_rows_are_counted_per_exchange_label_in_a_batch_of_several(tmp_path):
    # a collector of several venues judges each feed by its own new rows: the writer counts
    # them per label, exactly (hand-counted: a's 1..10 are stored already, b's are all new)
    with Writer(tmp_path / "x.sqlite") as w:
        first = w.write_batch(Batch(trades=make_trades(10, exchange="a")))
        assert first.new_by_exchange == {"a": 10}
        mixed = [
            *make_trades(15, exchange="a"),  # ids 1..15: 5 new
            *make_trades(7, exchange="b", symbol="BTC-USD"),  # 7 new
            *make_trades(3, start_id=100, exchange="a"),  # 3 new
        ]
        random.Random(4).shuffle(mixed)
        res = w.write_batch(Batch(trades=mixed))
        assert res.new_by_exchange == {"a": 8, "b": 7}
        assert res.trades.new == 15 and res.trades.duplicates == 10
        again = w.write_batch(Batch(trades=mixed))
        assert again.new_by_exchange == {} and again.trades.duplicates == 25
        ids = [
            (e, i)
            for e, i in w.execute("SELECT exchange, trade_id FROM ticks ORDER BY 1, 2").fetchall()
        ]
    assert ids == [("a", i) for i in [*range(1, 16), 100, 101, 102]] + [
        ("b", i) for i in range(1, 8)
    ]


def test_a_stored_id_written_again_with_another_price_is_a_dead_letter_not_a_duplicate(db):
    # INSERT OR IGNORE kept the stored trade and counted the other one as a duplicate
    import msgspec

    first = make_trades(5)
    again = [msgspec.structs.replace(first[2], price=first[2].price + 1.0), first[3]]
    with Writer(db) as w:
        w.write_batch(Batch(trades=first))
        res = w.write_batch(Batch(trades=again))
        assert (res.trades.new, res.trades.duplicates, res.trades.rejected) == (0, 1, 1)
        [(reason,)] = w.conn.execute("SELECT reason FROM dead_letters").fetchall()
        assert reason.startswith("trade 3 conflicts with the stored trade of that id"), reason
        assert w.conn.execute("SELECT price FROM ticks WHERE trade_id = 3").fetchone()[0] == (
            first[2].price
        )
