"""OKX parser: every real frame of shared/data/okx, field by field, plus malformed and control
frames.

Independent reference: ``json.loads`` of each frame, ``float(str)`` for px/sz, ``int(ts) * 1000``
for the ms times, and the taker-side convention of shared/reference/venues.md §3.3.
"""

from __future__ import annotations

import collections
import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lq.errors import FrameError
from lq.feeds.events import ControlReply, Trade
from lq.feeds.recording import read_frames
from lq.venues.okx.parser import Parser

INSTS = ["BTC-USDT", "BTC-USD-220527", "UNI-USD-SWAP"]


def check_trade(t, w, recv_ts):
    assert isinstance(t, Trade) and t.exchange == "okx"
    assert t.symbol == w["instId"]
    assert t.trade_id == int(w["tradeId"])
    assert t.price == float(w["px"]) and t.qty == float(w["sz"])
    assert t.ts == t.event_ts == int(w["ts"]) * 1000
    assert t.is_buyer_maker is (w["side"] == "sell")
    assert t.recv_ts == recv_ts


def test_trades_file_field_by_field(okx_data):
    p = Parser(INSTS)
    acks = 0
    by_inst: dict[str, list[int]] = collections.defaultdict(list)
    for recv_ns, raw in read_frames(okx_data("ws_trades_20220513.txt")):
        d = json.loads(raw)
        events = p.parse(raw, recv_ns // 1000)
        if "event" in d:
            assert events == [ControlReply(id=None, result=d["arg"])]
            acks += 1
            continue
        assert len(events) == len(d["data"]) == 1  # 2022: one trade per push, no count
        check_trade(events[0], d["data"][0], recv_ns // 1000)
        by_inst[events[0].symbol].append(events[0].trade_id)
    assert acks == 18
    assert {k: len(v) for k, v in by_inst.items()} == {
        "BTC-USDT": 69,
        "BTC-USD-220527": 4,
        "UNI-USD-SWAP": 1,
    }
    assert by_inst["BTC-USDT"] == list(range(338476307, 338476376))  # README: strictly +1
    assert by_inst["BTC-USD-220527"] == [7849, 7850, 7851, 7852]


def test_public_session_every_frame_accounted_for(okx_data):
    # README: 410 frames: 18 acks, 28 tickers, 74 trades, 290 books
    p = Parser(INSTS)
    kinds: collections.Counter[str] = collections.Counter()
    trades = 0
    for recv_ns, raw in read_frames(okx_data("ws_public_session_20220513.txt.gz")):
        d = json.loads(raw)
        events = p.parse(raw, recv_ns // 1000)
        if "event" in d:
            kinds["ack"] += 1
            assert events == [ControlReply(id=None, result=d["arg"])]
            continue
        ch = d["arg"]["channel"]
        kinds[ch] += 1
        if ch == "trades":
            [t] = events
            check_trade(t, d["data"][0], recv_ns // 1000)
            trades += 1
        else:
            assert events == []
    assert kinds == {"ack": 18, "tickers": 28, "trades": 74, "books": 290}
    assert trades == 74 and p.ignored == 28 + 290


def test_docs_examples(okx_data):
    p = Parser(["BTC-USDT"])
    lines = [raw for _, raw in read_frames(okx_data("DOCS_EXAMPLES.txt"))]
    assert len(lines) == 5
    with pytest.raises(FrameError, match="neither 'arg' nor 'event'"):
        p.parse(lines[0], 0)  # the history-trades REST body: not a WS frame
    with pytest.raises(FrameError, match=r"count=3 folds ids 130639472\.\.130639474"):
        p.parse(lines[1], 0)  # the aggregated `trades` push: never used for ids
    [t] = p.parse(lines[2], 0)
    check_trade(t, json.loads(lines[2])["data"][0], 0)
    assert p.parse(lines[3], 0) == [
        ControlReply(id="1512", result={"channel": "trades-all", "instId": "BTC-USDT"})
    ]
    [e] = p.parse(lines[4], 0)
    assert (
        e.id == "1512"
        and e.error_code == 60012
        and (e.error_msg or "").startswith("Invalid request")
    )


PUSH = (
    '{"arg":{"channel":"trades-all","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT",'
    '"tradeId":"130639474","px":"42219.9","sz":"0.12060306","side":"buy","ts":"1630048897897"}]}'
)


def test_control_frames_and_batches():
    p = Parser(["BTC-USDT"])
    assert p.parse("pong", 0) == [] and p.parse(b"pong", 0) == []
    notice = '{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade.","connId":"a4d3ae55"}'
    [n] = p.parse(notice, 0)
    assert n.error_code == 64008 and "service upgrade" in (n.error_msg or "")
    assert (
        p.parse(
            '{"event":"channel-conn-count","channel":"trades-all","connCount":"2","connId":"a"}', 0
        )
        == []
    )
    assert p.parse(
        '{"event":"unsubscribe","arg":{"channel":"trades-all","instId":"BTC-USDT"},"connId":"a"}', 0
    ) == [ControlReply(id=None, result={"channel": "trades-all", "instId": "BTC-USDT"})]
    d = json.loads(PUSH)
    e = d["data"][0]
    d["data"] = [e | {"tradeId": "130639476"}, e, e | {"tradeId": "130639475", "count": "1"}]
    assert [t.trade_id for t in p.parse(json.dumps(d), 0)] == [130639474, 130639475, 130639476]
    # key order other than OKX's: the generic path
    assert (
        len(
            p.parse(
                json.dumps({"data": [e], "arg": {"instId": "BTC-USDT", "channel": "trades-all"}}), 0
            )
        )
        == 1
    )


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ('"instId":"BTC-USDT"},', '"instId":"ETH-USDT"},', "not one of the subscribed"),
        (
            '"data":[{"instId":"BTC-USDT"',
            '"data":[{"instId":"ETH-USDT"',
            "carries a trade of 'ETH-USDT'",
        ),
        ('"tradeId":"130639474"', '"tradeId":"-3"', ">= 0"),
        ('"tradeId":"130639474"', '"tradeId":"9223372036854775808"', "<= 9223372036854775807"),
        ('"tradeId":"130639474"', '"tradeId":"x1"', "Expected `int`"),
        ('"px":"42219.9"', '"px":"NaN"', "px"),
        ('"px":"42219.9"', '"px":"-inf"', ">= 1e-10"),
        ('"px":"42219.9"', '"px":"1e308"', "<= 1000000000000.0"),
        ('"px":"42219.9"', '"px":""', "px"),
        ('"sz":"0.12060306"', '"sz":"0"', ">= 1e-10"),
        ('"sz":"0.12060306"', '"sz":"1e-320"', ">= 1e-10"),
        ('"side":"buy"', '"side":"BUY"', "not buy/sell"),
        ('"side":"buy"', '"side":1', "side"),
        ('"ts":"1630048897897"', '"ts":"1630048897897000"', "outside 2009..2100"),
        ('"ts":"1630048897897"', '"ts":"123"', "ts"),
        ('"ts":"1630048897897"', '"ts":"soon"', "Expected `int`"),
        ('"ts":"1630048897897"', '"ts":"1630048897897","count":"5"', "count=5"),
        ('"data":[', '"data":{"a":[', "data"),
    ],
)
def test_each_broken_field_is_a_frame_error(old, new, reason):
    assert old in PUSH
    raw = PUSH.replace(old, new, 1)
    with pytest.raises(FrameError) as ei:
        Parser(["BTC-USDT"]).parse(raw, 0)
    assert reason in ei.value.reason, ei.value.reason
    assert ei.value.raw == raw


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty frame"),
        ("ping", "invalid JSON"),
        ("[]", "not an OKX frame"),
        ("{}", "neither 'arg' nor 'event'"),
        ('{"event":"what"}', "unrecognised event"),
        ('{"op":"subscribe","args":[]}', "client 'subscribe' request"),
        ('{"arg":{"channel":"books","instId":"BTC-USDT"}}', "has no 'data'"),
        ('{"arg":{"channel":"trades-all"},"data":[]}', "without arg.instId"),
        ("{" * 3000, "invalid JSON"),
    ],
)
def test_malformed_frames(raw, reason):
    with pytest.raises(FrameError) as ei:
        Parser(["BTC-USDT"]).parse(raw, 0)
    assert reason in ei.value.reason, ei.value.reason


def test_symbols_checked():
    with pytest.raises(ValueError, match="not a string"):
        Parser("BTC-USDT")
    with pytest.raises(ValueError, match="not allowed"):
        Parser(["btc-usdt"])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_nothing_but_frame_error_escapes(raw):
    with contextlib.suppress(FrameError):
        Parser(["BTC-USDT"]).parse(raw, 0)
