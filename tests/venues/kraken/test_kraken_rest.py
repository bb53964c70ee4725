"""Kraken REST: the real 1,000-trade page decoded field by field, errors in HTTP 200 bodies, the
instrument list, and paging through the imitation's ns ``since`` cursor (every id once)."""

from __future__ import annotations

import itertools
import json
from decimal import ROUND_FLOOR, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lq.errors import FrameError
from lq.feeds.events import Trade
from lq.feeds.recording import read_frames
from lq.venues.kraken import imitation
from lq.venues.kraken.instruments import INSTRUMENTS_PATH, decode_instruments
from lq.venues.kraken.rest import (
    HISTORY_PATH,
    RATE_LIMIT_PER_S,
    classify_error,
    cursor_at,
    decode_history,
    first_cursor,
    history_request,
    rest_pair,
)


def _body(path):
    [(_, raw)] = list(read_frames(path))
    return raw


def test_the_real_page_field_by_field(kr_data):
    raw = _body(kr_data("rest_trades_xbtusdt_20251110.txt"))
    ref = json.loads(raw, parse_float=Decimal)["result"]  # Decimal: the exact wire digits
    rows = ref["XBTUSDT"]
    page = decode_history(raw, "BTC/USDT", recv_ts=5, request={"count": "1000"})
    assert page.rejected == [] and len(page.trades) == len(rows) == 1000
    for t, r in zip(page.trades, rows, strict=True):
        assert t.symbol == "BTC/USDT" and t.exchange == "kraken" and t.recv_ts == 5
        assert t.trade_id == r[6]
        assert t.price == float(r[0]) and t.qty == float(r[1])
        us = int((r[2] * 1_000_000).to_integral_value(rounding=ROUND_FLOOR))
        assert t.ts == t.event_ts == us
        assert t.is_buyer_maker is (r[3] == "s")
    ids = [t.trade_id for t in page.trades]
    assert ids == list(range(10218208, 10219208))  # README: strictly +1, no gap
    wire_same = sum(a[2] == b[2] for a, b in itertools.pairwise(rows))
    assert wire_same == 414  # README: 414 of 1,000 share the previous trade's timestamp
    # at µs resolution 16 more pairs fall on the same µs (Kraken's times have ~100 ns digits)
    same = sum(a.ts == b.ts for a, b in zip(page.trades, page.trades[1:], strict=False))
    assert same == 430
    # hand-read: 1762795433.9717445 s -> 1762795433971744 µs (floor of .5)
    assert page.trades[0].ts == 1_762_795_433_971_744
    assert page.next_cursor == 1762820035982277754  # a full page: go on from "last"
    assert decode_history(raw, "BTC/USDT").next_cursor == 1762820035982277754
    assert decode_history(raw, "BTC/USDT", request={"count": "1001"}).next_cursor is None


def test_errors_in_200_bodies():
    limited = b'{"error":["EGeneral:Too many requests"]}'
    assert classify_error(200, {}, limited) == ("rate_limited", 5.0)
    with pytest.raises(FrameError, match="rate limited: EGeneral:Too many requests"):
        decode_history(limited, "BTC/USD")  # a 200 that is no page: the caller classifies it
    assert classify_error(200, {}, b'{"error":["EAPI:Rate limit exceeded"]}')[0] == "rate_limited"
    assert classify_error(200, {}, b'{"error":["EService:Unavailable"]}') == ("retry", 2.0)
    assert classify_error(200, {}, b'{"error":["EQuery:Unknown asset pair"]}') == ("fatal", None)
    with pytest.raises(FrameError, match="refused: EQuery:Unknown asset pair"):
        decode_history(b'{"error":["EQuery:Unknown asset pair"]}', "BTC/USD")
    assert classify_error(429, {"Retry-After": "2"}, b"") == ("rate_limited", 2.0)
    assert classify_error(502, {}, b"<html>") == ("retry", 2.0)
    assert classify_error(403, {}, b"") == ("fatal", None)
    assert classify_error(200, {}, b'{"error":[],"result":{"XBTUSD":[],"last":"1"}}') == (
        "ok",
        None,
    )
    assert classify_error(*imitation.rest_rate_limited()) == ("rate_limited", 5.0)
    assert RATE_LIMIT_PER_S == 1.0


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'{"result":{}}',
        b'{"error":[],"result":{"last":"1"}}',
        b'{"error":[],"result":{"A":[],"B":[],"last":"1"}}',
        b'{"error":[],"result":{"A":[],"last":"x"}}',
        b'{"error":[],"result":{"A":{},"last":"1"}}',
    ],
)
def test_no_trade_page_is_a_frame_error(body):
    with pytest.raises(FrameError, match="kraken Trades page"):
        decode_history(body, "BTC/USD")


def test_bad_rows_are_set_aside():
    rows = [
        '["100.1","0.5",1762795433.9717445,"b","l","",10]',
        '["nan","0.5",1762795433.9717445,"b","l","",11]',
        '["100.1","1e400",1762795433.9717445,"b","l","",12]',
        '["100.1","0.5",1e30,"b","l","",13]',
        '["100.1","0.5",1762795433.9,"x","l","",14]',
        '["100.1","0.5",1762795433.9,"s","l","",9223372036854775808]',
        '["100.1","0.5",1762795433.9,"s","l",""]',
        '["100.1","0.5",1762795434,"s","m","",15]',
    ]
    body = (
        '{"error":[],"result":{"XBTUSD":[' + ",".join(rows) + '],"last":"1762795434000000000"}}'
    ).encode()
    page = decode_history(body, "BTC/USD")
    assert [t.trade_id for t in page.trades] == [10, 15]
    assert page.trades[1].ts == 1_762_795_434_000_000 and page.trades[1].is_buyer_maker
    assert len(page.rejected) == 6
    assert [r for r, _ in page.rejected] == rows[1:7]


def test_history_request_shapes():
    assert HISTORY_PATH == "/0/public/Trades"
    assert rest_pair("BTC/USDT") == "XBTUSDT" and rest_pair("DOGE/USD") == "XDGUSD"
    assert rest_pair("ETH/EUR") == "ETHEUR"
    assert history_request("BTC/USD", after_id=5, cursor=None, limit=5000) == (
        "/0/public/Trades", {"pair": "XBTUSD", "count": "1000"})  # fmt: skip
    assert history_request("BTC/USD", after_id=5, cursor=cursor_at(1_762_795_433_971_744), limit=10)[1] == {
        "pair": "XBTUSD", "count": "10", "since": "1762795433971743999"}  # fmt: skip
    assert first_cursor(5, None) is None and first_cursor(5, 7) == 6999
    with pytest.raises(ValueError, match="ns time"):
        history_request("BTC/USD", after_id=None, cursor=-1, limit=10)


def test_instruments_from_the_real_list(kr_data):
    raw = _body(kr_data("rest_assetpairs_20210417.txt.gz"))
    want = json.loads(raw)["result"]
    got = decode_instruments(raw)
    assert INSTRUMENTS_PATH == "/0/public/AssetPairs"
    assert len(want) == 304 and len(got) == 293  # the 11 dark-pool ".d" pairs have no wsname
    by = {i.symbol: i for i in got}
    btc = by["BTC/USD"]
    assert btc.key == "BTC-USD@kraken" and (btc.base, btc.quote) == ("BTC", "USD")
    assert btc.tick_size == 0.1 and btc.lot_size == 1e-8  # pair_decimals 1, lot_decimals 8
    assert by["BTC/USDT"].pair == "BTC-USDT"
    assert by["DOGE/USD"].base == "DOGE"  # wsname XDG/USD
    assert by["XTZ/USD"].base == "XTZ"  # Tezos: no prefix stripping
    for i in got:  # the REST name lq derives is the list's altname
        alt = [
            v["altname"]
            for v in want.values()
            if v.get("wsname", "").replace("XBT", "BTC").replace("XDG", "DOGE") == i.symbol
        ]
        assert rest_pair(i.symbol) in alt, i
    assert decode_instruments(imitation.rest_instruments(got)) == got
    with pytest.raises(FrameError, match="AssetPairs"):
        decode_instruments(b'{"error":["EGeneral:Internal error"]}')


# -- paging through the imitation ----------------------------------------------------------------

BASE_US = 1_762_795_433_000_000


def history(first: int, gaps: list[int], symbol: str = "BTC/USD") -> list[Trade]:
    """Trades first.. with times advancing by gaps[k] µs (0 = same time: split fills)."""
    out, ts = [], BASE_US
    for k, g in enumerate(gaps):
        ts += g
        out.append(Trade(symbol=symbol, trade_id=first + k, price=100.0 + k % 9 * 0.1, qty=0.5,
                         ts=ts, event_ts=ts, is_buyer_maker=k % 2 == 0, exchange="kraken"))  # fmt: skip
    return out


@settings(max_examples=60, deadline=None)
@given(
    first=st.integers(1, 10**9),
    gaps=st.lists(st.sampled_from([0, 0, 0, 1, 7, 1000]), max_size=2300),
    back=st.integers(0, 2400),
    limit=st.integers(1, 1100),
    pass_request=st.booleans(),
)
def test_paging_returns_every_id_exactly_once(first, gaps, back, limit, pass_request):
    truth = history(first, gaps) + history(first, [5] * 20, symbol="ETH/USD")
    own = [t for t in truth if t.symbol == "BTC/USD"]
    n = len(own)
    after_id = max(first - 1, first + n - 1 - back)
    held = {t.trade_id: t for t in own}
    cursor = first_cursor(after_id, held[after_id].ts) if after_id in held else 0
    got: list[Trade] = []
    for _ in range(10_000):
        path, params = history_request("BTC/USD", after_id=after_id, cursor=cursor, limit=limit)
        status, headers, body = imitation.rest_history(truth, params, "BTC/USD")
        assert path == HISTORY_PATH and classify_error(status, headers, body) == ("ok", None)
        page = decode_history(body, "BTC/USD", request=params if pass_request else None)
        got += [
            t
            for t in page.trades
            if t.trade_id > after_id and (not got or t.trade_id > got[-1].trade_id)
        ]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    else:
        raise AssertionError("paging did not end")
    assert [t.trade_id for t in got] == list(range(after_id + 1, first + n))
    assert all(t == held[t.trade_id] for t in got)


def test_rest_history_semantics():
    truth = history(100, [0, 0, 5, 0, 5])
    _, _, b = imitation.rest_history(truth, {"pair": "XBTUSD"}, "BTC/USD")
    d = json.loads(b, parse_float=Decimal)
    rows = d["result"]["XBTUSD"]
    assert [r[6] for r in rows] == [100, 101, 102, 103, 104]
    assert rows[1][2] == Decimal("1762795433.000000001")  # same µs, next ns
    assert d["result"]["last"] == "1762795433000010000"  # 10 µs after the first, k = 0
    _, _, b = imitation.rest_history(
        truth, {"pair": "XBTUSD", "since": "1762795433000000000", "count": "2"}, "BTC/USD"
    )
    assert [r[6] for r in json.loads(b)["result"]["XBTUSD"]] == [101, 102]  # since is exclusive
    _, _, b = imitation.rest_history(truth, {"pair": "ETHUSD"}, "BTC/USD")
    assert json.loads(b) == {"error": ["EQuery:Unknown asset pair"]}
    _, _, b = imitation.rest_history(truth, {"pair": "XBTUSD", "since": "soon"}, "BTC/USD")
    assert json.loads(b)["error"]
