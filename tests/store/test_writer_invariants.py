"""Defence in depth: the writer applies lq.feeds.invariants to rows from any source.

Rows are handed to ``Writer.write_batch`` directly (as REST backfill, imports and replays
do), bypassing the parser. One bad row per batch, among good ones: it goes to
``dead_letters`` with a reason naming the field, the good rows are stored, nothing raises
(today's main raised OverflowError on an id >= 2**63 and stored the rest as they came).
"""

from __future__ import annotations

import sqlite3

import msgspec
import pytest
from trade_factory import T0, make_trades

from lq.feeds.events import AggTrade, BookTicker, Kline
from lq.store import Batch, Writer

BIG = 2**63
MIN = 60_000_000


def _agg(i: int, **kw: object) -> AggTrade:
    base = AggTrade(symbol="BTCUSDT", agg_id=100 + i, first_id=10 * i, last_id=10 * i + 3,
                    price=61837.63, qty=0.5, ts=T0 + i, event_ts=T0 + i, is_buyer_maker=True)  # fmt: skip
    return msgspec.structs.replace(base, **kw)


def _book(i: int, **kw: object) -> BookTicker:
    base = BookTicker(symbol="BTCUSDT", update_id=400 + i, bid=61837.62, bid_qty=1.5,
                      ask=61837.63, ask_qty=0.4, ts=T0 + i)  # fmt: skip
    return msgspec.structs.replace(base, **kw)


def _kline(i: int, **kw: object) -> Kline:
    o = T0 // MIN * MIN + i * MIN
    base = Kline(symbol="BTCUSDT", interval="1m", open_time=o, close_time=o + MIN - 1000,
                 open=100.0, high=110.0, low=95.0, close=105.0, volume=2.0, quote_volume=205.0,
                 trades=3, taker_buy_volume=1.0, taker_buy_quote_volume=101.0, first_id=7,
                 last_id=9, closed=True, event_ts=o + MIN)  # fmt: skip
    return msgspec.structs.replace(base, **kw)


TRADE_CASES = [
    ("trade_id", BIG, "trade_id=9223372036854775808"),
    ("trade_id", -1, "trade_id=-1"),
    ("qty", 1e308, "qty=1e+308"),
    ("price", 1e308, "price=1e+308"),
    ("price", 1e-320, "price=1e-320"),
    ("qty", 5e-324, "qty=5e-324"),
    ("symbol", "btcusdt", "symbol='btcusdt'"),
    ("symbol", "<b>BTC</b>", "symbol='<b>BTC</b>'"),
    ("symbol", "BTC\u202eUSDT", "RIGHT-TO-LEFT OVERRIDE"),
    ("symbol", "BTC USDT", "SPACE"),
]


@pytest.mark.parametrize(("field", "value", "reason"), TRADE_CASES)
def test_a_bad_trade_is_a_dead_letter_and_the_batch_is_stored(db, field, value, reason):
    trades = make_trades(5)
    trades[2] = msgspec.structs.replace(trades[2], **{field: value})
    with Writer(db) as w:
        res = w.write_batch(Batch(trades=trades))
        ids = [r[0] for r in w.conn.execute("SELECT trade_id FROM ticks ORDER BY trade_id")]
        bars = w.conn.execute("SELECT sum(trades), min(vwap) FROM bars_1s").fetchone()
        dead = w.conn.execute("SELECT reason FROM dead_letters").fetchall()
    assert (res.trades.new, res.trades.rejected) == (4, 1)
    assert ids == [1, 2, 4, 5] and bars[0] == 4 and bars[1] > 61_000
    assert len(dead) == 1 and reason in dead[0][0], dead


AGG_CASES = [
    ({"agg_id": BIG}, "agg_id=9223372036854775808"),
    ({"first_id": BIG, "last_id": BIG}, "first_id=9223372036854775808"),
    ({"last_id": BIG}, "last_id=9223372036854775808"),
    ({"first_id": 9, "last_id": 3}, "first_id=9 > last_id=3"),
    ({"first_id": -1, "last_id": -1}, "f = -1"),
    ({"qty": 1e308}, "qty=1e+308"),
    ({"symbol": "ethusdt"}, "symbol='ethusdt'"),
]


@pytest.mark.parametrize(("change", "reason"), AGG_CASES)
def test_a_bad_agg_trade_is_a_dead_letter(db, change, reason):
    aggs = [_agg(i) for i in range(4)]
    aggs[1] = msgspec.structs.replace(aggs[1], **change)
    with Writer(db) as w:
        res = w.write_batch(Batch(agg_trades=aggs))
        n = w.conn.execute("SELECT count(*) FROM agg_trades").fetchone()[0]
        dead = w.conn.execute("SELECT reason FROM dead_letters").fetchall()
    assert (res.agg_trades.new, res.agg_trades.rejected, n) == (3, 1, 3)
    assert len(dead) == 1 and reason in dead[0][0], dead


BOOK_CASES = [
    ({"update_id": BIG}, "update_id=9223372036854775808"),
    ({"bid": 61840.0}, "crossed book"),
    ({"bid_qty": 1e-320}, "bid_qty=1e-320"),
    ({"ask": 1e308}, "ask=1e+308"),
    ({"ts": 5}, "ts=5"),
    ({"symbol": "BTC\u202eUSDT"}, "RIGHT-TO-LEFT OVERRIDE"),
]


@pytest.mark.parametrize(("change", "reason"), BOOK_CASES)
def test_a_bad_book_ticker_is_a_dead_letter(db, change, reason):
    books = [_book(i) for i in range(4)]
    books[2] = msgspec.structs.replace(books[2], **change)
    with Writer(db) as w:
        res = w.write_batch(Batch(book_tickers=books))
        dead = w.conn.execute("SELECT reason FROM dead_letters").fetchall()
    assert (res.book_tickers.new, res.book_tickers.rejected) == (3, 1)
    assert len(dead) == 1 and reason in dead[0][0], dead


KLINE_CASES = [
    ({"open": 0.0, "low": 0.0}, "open=0.0"),
    ({"high": 90.0}, "not low <= open, close <= high"),
    ({"low": 101.0}, "not low <= open, close <= high"),
    ({"open_time": 1, "close_time": MIN - 1000}, "open_time=1"),
    ({"interval": "\U0001f680"}, "interval='\U0001f680'"),
    ({"interval": "1x"}, "interval='1x'"),
    ({"close_time_shift": 4 * MIN}, "does not match interval '1m'"),
    ({"quote_volume": 9.0}, "quote_volume=9.0"),
    ({"taker_buy_volume": 3.0}, "taker_buy_volume=3.0 > volume=2.0"),
    ({"trades": BIG}, "trades=9223372036854775808"),
    ({"first_id": BIG}, "first_id=9223372036854775808"),
    ({"first_id": -1}, "only one of them is -1"),
    ({"first_id": 9, "last_id": 7}, "cannot hold trades=3"),
    ({"volume": -1.0}, "volume=-1.0"),
    ({"high": 1e308}, "high=1e+308"),
]


@pytest.mark.parametrize(("change", "reason"), KLINE_CASES)
def test_a_bad_kline_is_a_dead_letter(db, change, reason):
    change = dict(change)
    klines = [_kline(i) for i in range(3)]
    shift = change.pop("close_time_shift", None)
    if shift is not None:
        change["close_time"] = klines[1].close_time + shift
    klines[1] = msgspec.structs.replace(klines[1], **change)
    with Writer(db) as w:
        res = w.write_batch(Batch(klines=klines))
        opens = [r[0] for r in w.conn.execute("SELECT open_time FROM klines ORDER BY 1")]
        dead = w.conn.execute("SELECT reason FROM dead_letters").fetchall()
    assert (res.klines.new, res.klines.rejected) == (2, 1)
    assert opens == [klines[0].open_time, klines[2].open_time]
    assert len(dead) == 1 and reason in dead[0][0], dead


@pytest.mark.parametrize(
    "change",
    [
        {},
        {
            "interval": "1M",
            "open_time": 1_722_470_400_000_000,  # 2024-08-01, 31 days
            "close_time": 1_722_470_400_000_000 + 31 * 86_400_000_000 - 1,
        },
        {"interval": "120s", "close_time_span": 120_000_000 - 1},  # lq's own <N>s bars
        {
            "trades": 0,
            "volume": 0.0,
            "quote_volume": 0.0,
            "taker_buy_volume": 0.0,
            "taker_buy_quote_volume": 0.0,
            "first_id": -1,
            "last_id": -1,
            "open": 105.0,
            "high": 105.0,
            "low": 105.0,
            "close": 105.0,
        },
        {"first_id": -1, "last_id": -1},  # REST klines and imports: ids unknown
    ],
    ids=["1m-ms", "1M-us", "120s", "no-trades", "ids-unknown"],
)
def test_real_kline_shapes_are_stored(db, change):
    change = dict(change)
    k = _kline(0)
    span = change.pop("close_time_span", None)
    if span is not None:
        change["close_time"] = k.open_time + span
    k = msgspec.structs.replace(k, **change)
    with Writer(db) as w:
        res = w.write_batch(Batch(klines=[k]))
    assert (res.klines.new, res.klines.rejected) == (1, 0)


def test_rows_from_any_source_obey_the_invariants_in_sql(db):
    """The stored file, read with plain SQL (an independent check of the same rules)."""
    trades = make_trades(20)
    trades[3] = msgspec.structs.replace(trades[3], trade_id=BIG)
    trades[7] = msgspec.structs.replace(trades[7], qty=1e308)
    books = [_book(i) for i in range(5)]
    books[1] = msgspec.structs.replace(books[1], bid=62000.0)
    with Writer(db, source="import") as w:
        w.write_batch(Batch(trades=trades, book_tickers=books, klines=[_kline(0, high=1.0)]))
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM ticks").fetchone()[0] == 18
    assert conn.execute(
        "SELECT count(*) FROM ticks WHERE trade_id < 0 OR price < 1e-10 OR price > 1e12"
        " OR qty < 1e-10 OR qty > 1e15"
    ).fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM book_tickers WHERE bid > ask").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM klines").fetchone() == (0,)
    assert conn.execute("SELECT source, count(*) FROM dead_letters GROUP BY 1").fetchall() == [
        ("import", 4)
    ]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("trade_id", "7", "trade_id='7': not an int (str)"),
        ("trade_id", True, "not an int (bool)"),
        ("price", "61837.63", "not a number (str)"),
        ("symbol", ["BTCUSDT"], "empty or not a string"),
        ("ts", 1.7e15, "ts=1700000000000000.0: not an int (float)"),
    ],
)
def test_a_hand_built_trade_of_the_wrong_type_is_a_dead_letter_not_an_exception(
    db, field, value, reason
):
    trades = make_trades(3)
    trades[1] = msgspec.structs.replace(trades[1], **{field: value})  # Structs don't check
    with Writer(db) as w:
        res = w.write_batch(Batch(trades=trades))
        dead = w.conn.execute("SELECT reason FROM dead_letters").fetchall()
    assert (res.trades.new, res.trades.rejected) == (2, 1)
    assert reason in dead[0][0], dead
