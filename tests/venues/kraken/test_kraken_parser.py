"""Kraken parser (WS v2): every real frame of shared/data/kraken, field by field, plus malformed
and control frames.

Independent reference: ``json.loads`` of each frame, ``float`` of the JSON numbers (Python's
correctly rounded parse), ``datetime.fromisoformat`` for the RFC 3339 times, and the taker-side
convention of shared/reference/venues.md §2.3 (``side`` = taker side).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lq.errors import FrameError
from lq.feeds.events import ControlReply, Trade
from lq.feeds.recording import read_frames
from lq.venues.kraken.parser import Parser, pair_problem

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def ref_us(s: str) -> int:
    t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return (t - EPOCH) // dt.timedelta(microseconds=1)


def test_docs_v2_frames(kr_data):
    p = Parser(["MATIC/USD"])
    kinds: collections.Counter[str] = collections.Counter()
    trades: list[Trade] = []
    for _, raw in read_frames(kr_data("ws_v2_DOCS_EXAMPLES.txt")):
        d = json.loads(raw)
        if "method" in d:  # the client's subscribe request, quoted in the docs
            kinds["request"] += 1
            with pytest.raises(FrameError, match="client 'subscribe' request"):
                p.parse(raw, 0)
            continue
        kinds[d["channel"]] += 1
        events = p.parse(raw, 11)
        if d["channel"] == "heartbeat":
            assert events == []
            continue
        assert len(events) == len(d["data"])
        for t, w in zip(events, d["data"], strict=True):
            assert isinstance(t, Trade) and t.exchange == "kraken"
            assert t.symbol == w["symbol"] == "MATIC/USD"
            assert t.trade_id == w["trade_id"]
            assert t.price == w["price"] and t.qty == w["qty"]
            assert t.ts == t.event_ts == ref_us(w["timestamp"])
            assert t.is_buyer_maker is (w["side"] == "sell")
            assert t.recv_ts == 11
        trades += events
    assert kinds == {"request": 1, "trade": 1, "heartbeat": 1}
    assert [t.trade_id for t in trades] == [4665846, 4665847]
    assert trades[1].qty == 1136.19677815 and trades[0].price == 0.5147


REAL_V2 = (
    '{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"sell",'
    '"price":59121.8,"qty":0.00022946,"ord_type":"market","trade_id":72823289,'
    '"timestamp":"2024-08-12T19:38:30.575191Z"}]}'
)  # a real frame, shared/reference/venues.md §2.3


def test_the_quoted_real_v2_frame():
    [t] = Parser(["BTC/USD"]).parse(REAL_V2, 1)
    # hand-read: 2024-08-12T19:38:30Z = 1723491510 s (date -u -d ... +%s), .575191 s
    assert t == Trade(symbol="BTC/USD", trade_id=72823289, price=59121.8, qty=0.00022946,
                      ts=1_723_491_510_575_191, event_ts=1_723_491_510_575_191,
                      is_buyer_maker=True, recv_ts=1, exchange="kraken")  # fmt: skip


def test_v1_session_every_frame_accounted_for(kr_data):
    # README: 49 frames: 1 systemStatus, 10 subscriptionStatus, 30 heartbeat, 8 trade arrays
    p = Parser(["XBT/USD"])
    kinds: collections.Counter[str] = collections.Counter()
    for _, raw in read_frames(kr_data("ws_v1_trade_session_20210417.txt")):
        d = json.loads(raw)
        if isinstance(d, list):
            kinds["trade array"] += 1
            with pytest.raises(FrameError, match="v1 trades carry no trade id"):
                p.parse(raw, 0)
            continue
        kinds[d["event"]] += 1
        events = p.parse(raw, 0)
        if d["event"] == "subscriptionStatus":
            assert events == [ControlReply(id=None, result="subscribed")]
        else:
            assert events == []
    assert kinds == {"systemStatus": 1, "subscriptionStatus": 10, "heartbeat": 30, "trade array": 8}


def test_batches_come_out_ascending():
    d = json.loads(REAL_V2)
    row = d["data"][0]
    d["data"] = [row | {"trade_id": 72823289 + k, "qty": 0.1 * (k + 1)} for k in (2, 0, 1)]
    out = Parser(["BTC/USD"]).parse(json.dumps(d), 0)
    assert [t.trade_id for t in out] == [72823289, 72823290, 72823291]


def test_control_frames():
    p = Parser(["BTC/USD"])
    ack = ('{"method":"subscribe","result":{"channel":"trade","symbol":"BTC/USD","snapshot":true},'
           '"success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z","req_id":1}')  # fmt: skip
    assert p.parse(ack, 0) == [
        ControlReply(id=1, result={"channel": "trade", "symbol": "BTC/USD", "snapshot": True})
    ]
    refused = ('{"error":"Public market data subscriptions are unavailable on this endpoint. Try ws.kraken.com",'
               '"method":"subscribe","success":false,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}')  # fmt: skip
    [r] = p.parse(refused, 0)
    assert r.id is None and "Try ws.kraken.com" in (r.error_msg or "")
    assert p.parse('{"method":"pong","req_id":42,"time_in":"x","time_out":"y"}', 0) == []
    assert p.parse('{"channel":"heartbeat"}', 0) == []
    assert p.parse('{"channel":"status","type":"update","data":[{"system":"online"}]}', 0) == []
    assert p.parse('{"channel":"book","type":"update","data":[]}', 0) == []
    assert p.ignored == 1
    assert p.parse('{"Error":"Exceeded msg rate"}', 0) == [
        ControlReply(id=None, error_msg="Exceeded msg rate")
    ]
    # key order other than Kraken's: the generic path parses it
    d = json.loads(REAL_V2)
    assert (
        len(p.parse(json.dumps({"data": d["data"], "type": "update", "channel": "trade"}), 0)) == 1
    )


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ('"symbol":"BTC/USD"', '"symbol":"ETH/USD"', "not one of the subscribed"),
        ('"symbol":"BTC/USD"', '"symbol":"BTCUSD"', "not a Kraken pair"),
        ('"symbol":"BTC/USD"', '"symbol":"btc/usd"', "not allowed"),
        ('"trade_id":72823289', '"trade_id":-1', ">= 0"),
        ('"trade_id":72823289', '"trade_id":9223372036854775808', "<= 9223372036854775807"),
        ('"trade_id":72823289', '"trade_id":"x"', "Expected `int`"),
        ('"trade_id":72823289', '"trade_id":1.5', "Expected `int`"),
        ('"price":59121.8', '"price":1e308', "<= 1000000000000.0"),
        ('"price":59121.8', '"price":"nan"', ">= 1e-10"),
        ('"price":59121.8', '"price":"inf"', "<= 1000000000000.0"),
        ('"price":59121.8', '"price":0', ">= 1e-10"),
        ('"price":59121.8', '"price":null', "price"),
        ('"qty":0.00022946', '"qty":1e-320', ">= 1e-10"),
        ('"qty":0.00022946', '"qty":-2', ">= 1e-10"),
        ('"side":"sell"', '"side":"s"', "side"),
        ('"timestamp":"2024-08-12T19:38:30.575191Z"', '"timestamp":"2024-08-12 19:38"', "ISO-8601"),
        (
            '"timestamp":"2024-08-12T19:38:30.575191Z"',
            '"timestamp":"1723491510.575191"',
            "ISO-8601",
        ),
        (
            '"timestamp":"2024-08-12T19:38:30.575191Z"',
            '"timestamp":"2008-08-12T19:38:30Z"',
            "outside 2009..2100",
        ),
        ('"timestamp":"2024-08-12T19:38:30.575191Z"', '"timestamp":1723491510', "Expected `str`"),
        ('"type":"update"', '"type":"delete"', "type"),
        ('"data":[', '"data":{"x":[', "data"),
    ],
)
def test_each_broken_field_is_a_frame_error(old, new, reason):
    assert old in REAL_V2
    raw = REAL_V2.replace(old, new, 1)
    with pytest.raises(FrameError) as ei:
        Parser(["BTC/USD"]).parse(raw, 0)
    assert reason in ei.value.reason, ei.value.reason
    assert ei.value.raw == raw


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty frame"),
        ("nope", "invalid JSON"),
        ("[1,", "invalid JSON"),
        ("[" * 5000 + "]" * 5000, ""),
        ("{}", "none of 'channel'"),
        ('"x"', "not a Kraken frame"),
        ('{"method":"subscribe","req_id":3}', "without 'success'"),
        ('{"event":"weird"}', "unrecognised v1 event"),
        (b"\xc3\x28", "invalid JSON"),
    ],
)
def test_malformed_frames(raw, reason):
    with pytest.raises(FrameError) as ei:
        Parser(["BTC/USD"]).parse(raw, 0)
    assert reason in ei.value.reason


def test_pair_names():
    assert pair_problem("BTC/USD") is None and pair_problem("ETH2.S/ETH") is None
    assert "BASE/QUOTE" in (pair_problem("BTCUSD") or "")
    assert "BASE/QUOTE" in (pair_problem("BTC/USD/X") or "")
    assert "BASE/QUOTE" in (pair_problem("/USD") or "")
    with pytest.raises(ValueError, match="not a string"):
        Parser("BTC/USD")
    with pytest.raises(ValueError, match="BASE/QUOTE"):
        Parser(["BTC-USD"])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_nothing_but_frame_error_escapes(raw):
    with contextlib.suppress(FrameError):
        Parser(["BTC/USD"]).parse(raw, 0)
