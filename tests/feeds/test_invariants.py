"""lq.feeds.invariants: the bounds, the symbol rule, klines, and one rule set for all.

The parser enforces the numeric bounds while decoding (msgspec types built from the
invariants' constants) and the writer through the ``*_problem`` functions; the property
tests below check that the two accept exactly the same values.
"""

from __future__ import annotations

import json
import math

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lq.errors import FrameError
from lq.feeds.events import AggTrade, BookTicker, Kline
from lq.feeds.invariants import (
    MAX_ID,
    agg_trade_problem,
    book_ticker_problem,
    interval_us,
    kline_problem,
    symbol_problem,
    trade_problem,
)
from lq.feeds.parser import Parser

NAN = float("nan")

TS = 1_723_161_255_342  # ms


@pytest.mark.parametrize(
    "symbol", ["BTCUSDT", "1000PEPEUSDT", "BTC-USD", "BTC_USDT.P", "币安人生USDT", "ÄBCUSDT"]
)
def test_exchange_symbols_are_accepted(symbol):
    assert symbol_problem(symbol) is None


@pytest.mark.parametrize(
    ("symbol", "why"),
    [
        ("", "empty"),
        ("btcusdt", "'b'"),
        ("BTCusdt", "'u'"),
        ("<SCRIPT>", "'<'"),
        ("BTC&USDT", "'&'"),
        ('BTC"USDT', "'\"'"),
        ("BTC\u202eUSDT", "RIGHT-TO-LEFT OVERRIDE"),
        ("BTC\u200bUSDT", "ZERO WIDTH SPACE"),
        ("BTC USDT", "SPACE"),
        ("BTC\x00", "U+0000"),
        ("äBCUSDT", "'ä'"),
        ("A" * 33, "longer than 32"),
        (None, "empty or not a string"),
    ],
)
def test_symbols_no_exchange_lists_are_refused_by_character(symbol, why):
    reason = symbol_problem(symbol)
    assert reason is not None and why in reason


def test_the_reference_docs_kline_example_is_refused():
    # shared/reference/binance-protocol.md §1.6 shows o=0.0010 with l=0.0015 (low above the
    # open) and q=1.0 < l*v = 1.5: a made-up example no exchange can send.
    docs = Kline(symbol="BNBBTC", interval="1m", open_time=1672515780000000,
                 close_time=1672515839999000, open=0.001, high=0.0025, low=0.0015, close=0.002,
                 volume=1000.0, quote_volume=1.0, trades=100, taker_buy_volume=500.0,
                 taker_buy_quote_volume=0.5, first_id=100, last_id=200, closed=False,
                 event_ts=1672515782136000)  # fmt: skip
    assert "not low <= open, close <= high" in (kline_problem(docs) or "")
    assert "quote_volume=1.0" in (
        kline_problem(msgspec.structs.replace(docs, open=0.0015)) or ""
    )  # with the docs' low, q must be at least 1000 * 0.0015
    assert kline_problem(msgspec.structs.replace(docs, low=0.001)) is None


def test_a_kline_may_leave_volumes_and_count_unknown_but_every_stated_value_is_checked():
    # an OHLC file says open/high/low/close/volume only: NaN is "not known" (stored as NULL)
    ok = Kline(symbol="SOLUSDT", interval="1m", open_time=1722470400000000,
               close_time=1722470459999999, open=100.0, high=101.0, low=99.0, close=100.5,
               volume=10.0, quote_volume=NAN, trades=NAN, taker_buy_volume=NAN,  # type: ignore[arg-type]
               taker_buy_quote_volume=NAN, first_id=-1, last_id=-1, closed=True,
               event_ts=1722470459999999)  # fmt: skip
    assert kline_problem(ok) is None
    stated = msgspec.structs.replace(ok, quote_volume=1005.0, trades=7)
    assert kline_problem(stated) is None
    for bad, why in [
        (msgspec.structs.replace(ok, quote_volume=5.0), "quote_volume=5.0 is not within"),
        (msgspec.structs.replace(ok, quote_volume=-1.0), "quote_volume=-1.0: outside"),
        (msgspec.structs.replace(ok, trades=-3), "trades=-3: outside"),
        (msgspec.structs.replace(ok, taker_buy_volume=11.0), "taker_buy_volume=11.0 > volume"),
        (msgspec.structs.replace(ok, taker_buy_quote_volume=1.0), "taker_buy_quote_volume=1.0"),
        (msgspec.structs.replace(ok, close=NAN), "close=nan"),  # OHLC is never optional
        (msgspec.structs.replace(ok, volume=NAN), "volume=nan"),
    ]:
        assert why in (kline_problem(bad) or ""), (bad, kline_problem(bad))


@pytest.mark.parametrize(
    ("interval", "us"),
    [
        ("1s", 1_000_000),
        ("1m", 60_000_000),
        ("3d", 259_200_000_000),
        ("1w", 604_800_000_000),
        ("120s", 120_000_000),
        ("0s", None),
        ("1x", None),
        ("\U0001f680", None),
        ("٣s", None),
        ("", None),
    ],
)
def test_interval_lengths(interval, us):
    assert interval_us(interval) == us
    assert interval_us("1M") == frozenset(d * 86_400_000_000 for d in (28, 29, 30, 31))


def _trade_frame(tid: object, price: object, qty: object) -> bytes:
    d = {"e": "trade", "E": TS + 1, "s": "BTCUSDT", "t": tid, "p": price, "q": qty, "T": TS,
         "m": True, "M": True}  # fmt: skip
    return json.dumps({"stream": "btcusdt@trade", "data": d}).encode()


FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 5e-324, 1e-320, 1e-10, 9.99e-11, 1e12, 1.0000001e12, 1e15, 1e308]),
)
IDS = st.one_of(
    st.integers(min_value=-(2**65), max_value=2**65),
    st.sampled_from([-1, 0, MAX_ID, MAX_ID + 1, 2**64]),
)


@settings(max_examples=400, deadline=None)
@given(tid=IDS, price=FLOATS, qty=FLOATS)
def test_parser_and_writer_rules_accept_exactly_the_same_trades(tid, price, qty):
    frame = _trade_frame(tid, repr(price), repr(qty))  # decimal strings, as Binance sends
    want_ok = trade_problem("BTCUSDT", tid, TS * 1000, price, qty) is None
    try:
        [t] = Parser().parse(frame, 0)
    except FrameError:
        assert not want_ok, (tid, price, qty)
    else:
        assert want_ok, (tid, price, qty)
        assert (t.trade_id, t.price, t.qty) == (tid, price, qty) or math.isnan(price)


@settings(max_examples=300, deadline=None)
@given(bid=FLOATS, ask=FLOATS, bq=FLOATS, aq=FLOATS)
def test_parser_and_writer_rules_accept_exactly_the_same_book_tickers(bid, ask, bq, aq):
    d = {"u": 1, "s": "BTCUSDT", "b": repr(bid), "B": repr(bq), "a": repr(ask), "A": repr(aq)}
    frame = json.dumps({"stream": "btcusdt@bookTicker", "data": d}).encode()
    book = BookTicker(symbol="BTCUSDT", update_id=1, bid=bid, bid_qty=bq, ask=ask, ask_qty=aq,
                      ts=TS * 1000)  # fmt: skip
    want_ok = book_ticker_problem(book) is None
    try:
        Parser().parse(frame, TS * 1000)
    except FrameError:
        assert not want_ok, d
    else:
        assert want_ok, d


def test_a_valid_aggtrade_of_a_symbol_not_yet_seen_is_accepted():
    # the fast path misses a symbol the cache has not seen; the slow path must then accept a
    # valid row (it used to end in "first_id=0 > last_id=0" for the first aggTrade of a file)
    a = AggTrade(symbol="AGGFIRSTUSDT", agg_id=0, first_id=0, last_id=0, price=0.2, qty=50.0,
                 ts=1735689600010866, event_ts=1735689600010866, is_buyer_maker=False)  # fmt: skip
    assert agg_trade_problem(a) is None
    bad = msgspec.structs.replace(a, symbol="AGGSECONDUSDT", first_id=5, last_id=4)
    assert agg_trade_problem(bad) == "first_id=5 > last_id=4"
