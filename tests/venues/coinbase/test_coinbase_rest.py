"""Coinbase REST: the real pages decoded, rejected rows, error classes, instruments, and paging
through the imitation's ``/products/{id}/trades`` over a synthetic history (every id once)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lq.errors import FrameError
from lq.feeds.events import Trade
from lq.feeds.recording import read_frames
from lq.venues.coinbase import imitation
from lq.venues.coinbase.instruments import INSTRUMENTS_PATH, decode_instruments
from lq.venues.coinbase.rest import (
    HISTORY_PATH,
    MAX_LIMIT,
    RATE_LIMIT_PER_S,
    classify_error,
    decode_history,
    first_cursor,
    history_request,
)
from lq.venues.instrument import Instrument

from .test_coinbase_parser import ref_us


def _body(path):
    [(_, raw)] = list(read_frames(path))
    return raw


def test_exchange_docs_page(cb_data):
    raw = _body(cb_data("exchange_rest_trades_DOCS_EXAMPLE.txt"))
    page = decode_history(raw, "BTC-USD")
    [t] = page.trades
    # docs row: {"time":"2020-03-20T00:36:59.860Z","trade_id":86327327,"price":"6225.32000000",
    # "size":"0.06469797","side":"sell"}: maker sold, so the taker bought -> not buyer-maker
    assert t == Trade(
        symbol="BTC-USD",
        trade_id=86327327,
        price=6225.32,
        qty=0.06469797,
        ts=ref_us("2020-03-20T00:36:59.860Z"),
        event_ts=ref_us("2020-03-20T00:36:59.860Z"),
        is_buyer_maker=False,
        exchange="coinbase",
    )
    assert page.rejected == [] and page.next_cursor == 86327327


def test_advanced_ticker_page_is_ascending_with_taker_side(cb_data):
    raw = _body(cb_data("advanced_rest_ticker_20260407.txt"))
    want = json.loads(raw)["trades"]
    page = decode_history(raw, "BTC-USD", recv_ts=7)
    assert [t.trade_id for t in page.trades] == [995098661, 995098662, 995098663]
    for t, w in zip(page.trades, reversed(want), strict=True):
        assert t.price == float(w["price"]) and t.qty == float(w["size"])
        assert t.ts == ref_us(w["time"]) and t.recv_ts == 7
        assert t.is_buyer_maker is (w["side"] == "SELL")  # Advanced Trade: taker side
    assert page.next_cursor is None  # a time-window endpoint: no id cursor


def test_bad_rows_are_set_aside_and_the_rest_kept():
    rows = [
        {
            "time": "2020-03-20T00:36:59.860Z",
            "trade_id": 10,
            "price": "1.5",
            "size": "2",
            "side": "buy",
        },
        {
            "time": "2020-03-20T00:36:59.861Z",
            "trade_id": 11,
            "price": "nan",
            "size": "2",
            "side": "buy",
        },
        {
            "time": "2020-03-20T00:36:59.862Z",
            "trade_id": 2**63,
            "price": "1.5",
            "size": "2",
            "side": "buy",
        },
        {"time": "never", "trade_id": 13, "price": "1.5", "size": "2", "side": "sell"},
        {
            "time": "2020-03-20T00:36:59.864Z",
            "trade_id": 14,
            "price": "1e308",
            "size": "2",
            "side": "sell",
        },
        {
            "time": "2020-03-20T00:36:59.865Z",
            "trade_id": 15,
            "price": "1.5",
            "size": "2",
            "side": "up",
        },
        {
            "time": "2020-03-20T00:36:59.866Z",
            "trade_id": 9,
            "price": "1.5",
            "size": "2",
            "side": "sell",
        },
    ]
    page = decode_history(json.dumps(rows[::-1]).encode(), "BTC-USD")
    assert [t.trade_id for t in page.trades] == [9, 10]
    reasons = [r for _, r in page.rejected]
    assert len(reasons) == 5
    assert any("price=nan" in r for r in reasons)
    assert any("ISO-8601" in r for r in reasons)
    assert any("price=1e+308" in r for r in reasons)
    assert any("side" in r for r in reasons)
    assert page.next_cursor == 15  # the newest sane id, refused or not, moves the cursor


@pytest.mark.parametrize("body", [b"", b"{", b'{"message":"NotFound"}', b"[1,2]x", b'"x"'])
def test_a_body_that_is_no_trade_list_is_a_frame_error(body):
    with pytest.raises(FrameError, match="coinbase trades page"):
        decode_history(body, "BTC-USD")


def test_history_request_shapes():
    assert HISTORY_PATH == "/products/{symbol}/trades"
    assert history_request("BTC-USD", after_id=None, cursor=None, limit=50) == (
        "/products/BTC-USD/trades", {"limit": "50"})  # fmt: skip
    assert history_request("BTC-USD", after_id=10, cursor=None, limit=5000)[1] == {
        "limit": "1000", "after": "1011"}  # fmt: skip
    assert history_request("BTC-USD", after_id=10, cursor=500, limit=100)[1] == {
        "limit": "100", "after": "601"}  # fmt: skip
    assert first_cursor(10, 123) is None
    with pytest.raises(ValueError, match="cursor"):
        history_request("BTC-USD", after_id=None, cursor="x", limit=10)


def test_classify_error():
    assert classify_error(200, {}, b"[]") == ("ok", None)
    assert classify_error(429, {}, b'{"message":"Public rate limit exceeded"}') == (
        "rate_limited",
        1.0,
    )
    assert classify_error(429, {"Retry-After": "3"}, b"") == ("rate_limited", 3.0)
    assert classify_error(503, {}, b"") == ("retry", 1.0)
    assert classify_error(404, {}, b'{"message":"NotFound"}') == ("fatal", None)
    assert classify_error(400, {}, b'{"message":"Invalid"}') == ("fatal", None)
    st_, h, b = imitation.rest_rate_limited()
    assert classify_error(st_, h, b)[0] == "rate_limited"
    assert RATE_LIMIT_PER_S == 10.0


def test_instruments_from_the_real_list(cb_data):
    raw = _body(cb_data("exchange_rest_products_20210417.txt"))
    want = json.loads(raw)
    got = decode_instruments(raw)
    assert INSTRUMENTS_PATH == "/products"
    assert len(got) == len(want) == 162
    for i, w in zip(got, want, strict=True):
        assert (i.symbol, i.base, i.quote) == (w["id"], w["base_currency"], w["quote_currency"])
        assert i.tick_size == float(w["quote_increment"]) and i.lot_size == float(
            w["base_increment"]
        )
    btc = {i.symbol: i for i in got}["BTC-USD"]
    assert btc.key == "BTC-USD@coinbase" and btc.tick_size == 0.01 and btc.lot_size == 1e-8
    again = decode_instruments(imitation.rest_instruments(got))
    assert again == got
    with pytest.raises(FrameError, match="/products"):
        decode_instruments(b'{"message":"x"}')


# -- paging through the imitation ---------------------------------------------------------------

BASE_US = 1_767_160_812_000_000


def history(first: int, n: int, symbol: str = "BTC-USD") -> list[Trade]:
    return [
        Trade(
            symbol=symbol,
            trade_id=first + k,
            price=100.0 + k % 7 * 0.01,
            qty=0.001 * (1 + k % 5),
            ts=BASE_US + k * 137,
            event_ts=BASE_US + k * 137,
            is_buyer_maker=k % 3 == 0,
            exchange="coinbase",
        )
        for k in range(n)
    ]


def page_through(truth, symbol, after_id, limit, *, pass_request=True, max_calls=10_000):
    got: list[Trade] = []
    cursor = None
    held = after_id
    for _ in range(max_calls):
        path, params = history_request(symbol, after_id=after_id, cursor=cursor, limit=limit)
        assert path == f"/products/{symbol}/trades"
        status, headers, body = imitation.rest_history(truth, params, symbol)
        assert classify_error(status, headers, body) == ("ok", None)
        page = decode_history(body, symbol, request=params if pass_request else None)
        assert page.rejected == []
        ids = [t.trade_id for t in page.trades]
        assert ids == sorted(ids)
        new = [t for t in page.trades if held is None or t.trade_id > held]
        got.extend(new)
        if new:
            held = new[-1].trade_id
        if page.next_cursor is None or (not pass_request and not new):
            return got
        cursor = page.next_cursor
    raise AssertionError("paging did not end")


@settings(max_examples=60, deadline=None)
@given(
    first=st.integers(1, 10**12),
    n=st.integers(0, 2500),
    back=st.integers(0, 2600),
    limit=st.integers(1, 1200),
    pass_request=st.booleans(),
)
def test_paging_returns_every_id_exactly_once(first, n, back, limit, pass_request):
    truth = history(first, n) + history(first + 5, 30, symbol="ETH-USD")
    after_id = max(first - 1, first + n - 1 - back)
    got = page_through(truth, "BTC-USD", after_id, limit, pass_request=pass_request)
    assert [t.trade_id for t in got] == list(range(after_id + 1, first + n))
    mine = {t.trade_id: t for t in truth if t.symbol == "BTC-USD"}
    assert all(t == mine[t.trade_id] for t in got)  # every field, maker side converted back


def test_rest_history_semantics():
    truth = history(100, 50)
    st_, h, b = imitation.rest_history(truth, {"after": "120", "limit": "5"}, "BTC-USD")
    rows = json.loads(b)
    assert st_ == 200 and [r["trade_id"] for r in rows] == [119, 118, 117, 116, 115]
    assert h["CB-BEFORE"] == "119" and h["CB-AFTER"] == "115"
    _, _, b = imitation.rest_history(truth, {"before": "140", "limit": "3"}, "BTC-USD")
    assert [r["trade_id"] for r in json.loads(b)] == [143, 142, 141]
    _, _, b = imitation.rest_history(truth, {}, "BTC-USD")
    assert len(json.loads(b)) == 50 and json.loads(b)[0]["trade_id"] == 149
    _, _, b = imitation.rest_history(truth, {"limit": "5000"}, "BTC-USD")
    assert len(json.loads(b)) == 50
    assert imitation.rest_history(truth, {"limit": "x"}, "BTC-USD")[0] == 400
    assert imitation.rest_history(truth, {"limit": "0"}, "BTC-USD")[0] == 400
    assert MAX_LIMIT == 1000


def test_instrument_list_round_trip():
    ins = [
        Instrument(
            venue="coinbase",
            symbol="BTC-USD",
            base="BTC",
            quote="USD",
            tick_size=0.01,
            lot_size=1e-8,
        )
    ]
    assert decode_instruments(imitation.rest_instruments(ins)) == ins
