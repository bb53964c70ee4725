"""OKX REST: the real pages decoded, error codes, instruments, and paging through the imitation's
history-trades (``type=1``, ``after`` cursor, 100 per page): every id exactly once."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lq.errors import FrameError
from lq.feeds.events import Trade
from lq.feeds.recording import read_frames
from lq.venues.instrument import Instrument
from lq.venues.okx import imitation
from lq.venues.okx.instruments import INSTRUMENTS_PARAMS, INSTRUMENTS_PATH, decode_instruments
from lq.venues.okx.rest import (
    HISTORY_PATH,
    MAX_LIMIT,
    RATE_LIMIT_PER_S,
    classify_error,
    decode_history,
    first_cursor,
    history_request,
)


def _lines(path):
    return [raw for _, raw in read_frames(path)]


@pytest.mark.parametrize(
    ("name", "line", "ids"),
    [
        ("rest_trades_btcusdt_20250512.txt", 0, [734864332, 734864333]),
        ("DOCS_EXAMPLES.txt", 0, [242720719, 242720720]),
    ],
)
def test_real_pages_field_by_field(okx_data, name, line, ids):
    raw = _lines(okx_data(name))[line]
    want = json.loads(raw)["data"]
    page = decode_history(raw, "BTC-USDT", recv_ts=3)
    assert [t.trade_id for t in page.trades] == ids  # newest first on the wire, ascending here
    for t, w in zip(page.trades, reversed(want), strict=True):
        assert t.trade_id == int(w["tradeId"]) and t.symbol == w["instId"] == "BTC-USDT"
        assert t.price == float(w["px"]) and t.qty == float(w["sz"])
        assert t.ts == t.event_ts == int(w["ts"]) * 1000 and t.recv_ts == 3
        assert t.is_buyer_maker is (w["side"] == "sell")
    assert page.rejected == [] and page.next_cursor == ids[-1]
    # as an answer to after=ids[-1]+101 it would be the head: paging ends
    req = {"after": str(ids[-1] + MAX_LIMIT + 1)}
    assert decode_history(raw, "BTC-USDT", request=req).next_cursor is None


def test_error_codes():
    limited = b'{"code":"50011","msg":"Rate limit reached.","data":[]}'
    assert classify_error(200, {}, limited) == ("rate_limited", 2.0)
    assert classify_error(*imitation.rest_rate_limited()) == ("rate_limited", 2.0)
    assert imitation.rest_rate_limited()[0] == 429
    assert classify_error(429, {"Retry-After": "1"}, b"") == ("rate_limited", 1.0)
    with pytest.raises(FrameError, match="rate limited: code 50011"):
        decode_history(limited, "BTC-USDT")  # a 200 that is no page: the caller classifies it
    busy = b'{"code":"50013","msg":"Systems are busy. Please try again later.","data":[]}'
    assert classify_error(200, {}, busy) == ("retry", 1.0)
    assert classify_error(503, {}, b"") == ("retry", 1.0)
    nope = b'{"code":"51001","msg":"Instrument ID does not exist","data":[]}'
    assert classify_error(200, {}, nope) == ("fatal", None)
    with pytest.raises(FrameError, match="refused: code 51001"):
        decode_history(nope, "BTC-USDT")
    assert classify_error(200, {}, b'{"code":"0","msg":"","data":[]}') == ("ok", None)
    assert classify_error(404, {}, b"Not Found") == ("fatal", None)
    assert RATE_LIMIT_PER_S == 10.0


@pytest.mark.parametrize("body", [b"", b"[]", b'{"msg":""}', b'{"code":"0","data":{}}', b"null"])
def test_no_trade_page_is_a_frame_error(body):
    with pytest.raises(FrameError, match="okx trades page"):
        decode_history(body, "BTC-USDT")


def test_bad_rows_are_set_aside():
    def row(i, **kw):
        return {"instId": "BTC-USDT", "tradeId": str(i), "px": "1.5", "sz": "2", "side": "buy",
                "ts": "1747087163557"} | kw  # fmt: skip

    rows = [row(20), row(19, px="nan"), row(18, sz="1e400"), row(17, ts="17"), row(16, side="up"),
            row(15, instId="ETH-USDT"), row(14, tradeId="9223372036854775808"), row(13)]  # fmt: skip
    page = decode_history(json.dumps({"code": "0", "msg": "", "data": rows}).encode(), "BTC-USDT")
    assert [t.trade_id for t in page.trades] == [13, 20]
    reasons = [r for _, r in page.rejected]
    assert len(reasons) == 6
    assert any("price=nan" in r for r in reasons) and any("ETH-USDT" in r for r in reasons)
    assert any("ts=17000" in r for r in reasons)


def test_history_request_shapes():
    assert history_request("BTC-USDT", after_id=None, cursor=None, limit=500) == (
        HISTORY_PATH, {"instId": "BTC-USDT", "type": "1", "limit": "100"})  # fmt: skip
    assert history_request("BTC-USDT", after_id=7, cursor=50, limit=10)[1]["after"] == "61"
    assert first_cursor(7, 123) is None
    with pytest.raises(ValueError, match="trade id"):
        history_request("BTC-USDT", after_id=None, cursor=1.5, limit=10)


def test_instruments_from_the_real_list(okx_data):
    [raw] = _lines(okx_data("rest_instruments_spot_20220513.txt.gz"))
    want = json.loads(raw)["data"]
    got = decode_instruments(raw)
    assert INSTRUMENTS_PATH == "/api/v5/public/instruments" and INSTRUMENTS_PARAMS == {
        "instType": "SPOT"
    }
    assert len(got) == len(want) == 513
    for i, w in zip(got, want, strict=True):
        assert (i.symbol, i.base, i.quote) == (w["instId"], w["baseCcy"], w["quoteCcy"])
        assert i.tick_size == float(w["tickSz"]) and i.lot_size == float(w["lotSz"])
    btc = {i.symbol: i for i in got}["BTC-USDT"]
    assert btc.key == "BTC-USDT@okx" and btc.tick_size == 0.1 and btc.lot_size == 1e-8
    assert decode_instruments(imitation.rest_instruments(got)) == got
    swap = b'{"code":"0","data":[{"instId":"BTC-USDT-SWAP","instType":"SWAP","ctValCcy":"BTC"}]}'
    assert decode_instruments(swap) == []  # spot only: no key collision with BTC-USDT
    with pytest.raises(FrameError, match="code 50011"):
        decode_instruments(b'{"code":"50011","msg":"x","data":[]}')


# -- paging ---------------------------------------------------------------------------------------

BASE_MS = 1_747_087_163_557


def history(first: int, n: int, symbol: str = "BTC-USDT") -> list[Trade]:
    return [
        Trade(
            symbol=symbol,
            trade_id=first + k,
            price=102537.9 + k % 3,
            qty=0.0001 * (1 + k % 4),
            ts=(BASE_MS + k // 3) * 1000,
            event_ts=(BASE_MS + k // 3) * 1000,
            is_buyer_maker=k % 2 == 1,
            exchange="okx",
        )
        for k in range(n)
    ]


@settings(max_examples=60, deadline=None)
@given(
    first=st.integers(1, 10**12),
    n=st.integers(0, 700),
    back=st.integers(0, 800),
    limit=st.integers(1, 150),
    pass_request=st.booleans(),
)
def test_paging_returns_every_id_exactly_once(first, n, back, limit, pass_request):
    truth = history(first, n) + history(first + 3, 25, symbol="ETH-USDT")
    after_id = max(first - 1, first + n - 1 - back)
    got: list[Trade] = []
    cursor, held = None, after_id
    for _ in range(10_000):
        path, params = history_request("BTC-USDT", after_id=after_id, cursor=cursor, limit=limit)
        status, headers, body = imitation.rest_history(truth, params, "BTC-USDT")
        assert path == HISTORY_PATH and classify_error(status, headers, body) == ("ok", None)
        page = decode_history(body, "BTC-USDT", request=params if pass_request else None)
        new = [t for t in page.trades if t.trade_id > held]
        got += new
        if new:
            held = new[-1].trade_id
        if page.next_cursor is None or (not pass_request and not new):
            break
        cursor = page.next_cursor
    else:
        raise AssertionError("paging did not end")
    assert [t.trade_id for t in got] == list(range(after_id + 1, first + n))
    mine = {t.trade_id: t for t in truth if t.symbol == "BTC-USDT"}
    assert all(t == mine[t.trade_id] for t in got)


def test_rest_history_semantics():
    truth = history(100, 20)
    _, _, b = imitation.rest_history(
        truth, {"instId": "BTC-USDT", "after": "110", "limit": "3"}, "BTC-USDT"
    )
    assert [int(r["tradeId"]) for r in json.loads(b)["data"]] == [109, 108, 107]
    _, _, b = imitation.rest_history(
        truth, {"instId": "BTC-USDT", "before": "110", "limit": "3"}, "BTC-USDT"
    )
    assert [int(r["tradeId"]) for r in json.loads(b)["data"]] == [113, 112, 111]
    _, _, b = imitation.rest_history(
        truth, {"instId": "BTC-USDT", "type": "2", "after": str(BASE_MS + 2)}, "BTC-USDT"
    )
    assert [int(r["tradeId"]) for r in json.loads(b)["data"]] == [105, 104, 103, 102, 101, 100]
    _, _, b = imitation.rest_history(truth, {"instId": "BTC-USDT", "limit": "500"}, "BTC-USDT")
    assert len(json.loads(b)["data"]) == 20
    assert (
        json.loads(imitation.rest_history(truth, {"instId": "X"}, "BTC-USDT")[2])["code"] == "51001"
    )
    assert (
        json.loads(
            imitation.rest_history(truth, {"instId": "BTC-USDT", "type": "3"}, "BTC-USDT")[2]
        )["code"]
        == "51000"
    )
    assert (
        json.loads(
            imitation.rest_history(truth, {"instId": "BTC-USDT", "after": "x"}, "BTC-USDT")[2]
        )["code"]
        == "51000"
    )


def test_instrument_round_trip():
    ins = [
        Instrument(
            venue="okx", symbol="BTC-USDT", base="BTC", quote="USDT", tick_size=0.1, lot_size=1e-8
        )
    ]
    assert decode_instruments(imitation.rest_instruments(ins)) == ins
