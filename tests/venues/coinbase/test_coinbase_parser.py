"""Coinbase parser: every real frame of shared/data/coinbase, field by field, plus malformed and
control frames.

Independent reference for each field: ``json.loads`` of the frame, ``float(str)`` for prices and
sizes, ``datetime.fromisoformat`` for times (µs = (t - epoch) // 1 µs), and the side
conventions of shared/reference/venues.md §1.3 (Advanced Trade ``side`` = taker side,
Exchange ``side`` = maker side; lq's ``is_buyer_maker`` = the taker sold).
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
from lq.venues.coinbase.parser import Parser, iso_to_us

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
PRODUCTS = ["SKL-USD", "SKL-BTC", "SKL-GBP", "BAND-GBP", "BAND-BTC", "NMR-EUR", "YFI-BTC",
            "DASH-BTC", "NU-GBP", "CRV-EUR"]  # fmt: skip


def ref_us(s: str) -> int:
    """Reference µs of an ISO time: datetime (which keeps 6 digits) on the text cut to µs."""
    body = s.rstrip("Z")
    if "." in body:
        head, frac = body.split(".")
        body = f"{head}.{(frac + '000000')[:6]}"
    t = dt.datetime.fromisoformat(body).replace(tzinfo=dt.UTC)
    return (t - EPOCH) // dt.timedelta(microseconds=1)


# -- real frames -------------------------------------------------------------------------------


def test_advanced_trade_frames_field_by_field(cb_data):
    p = Parser(["BTC-USD"])
    got: list[Trade] = []
    want = []
    frames = 0
    for recv_ns, raw in read_frames(cb_data("advanced_ws_market_trades_20251231.txt")):
        frames += 1
        events = p.parse(raw, recv_ns // 1000)
        d = json.loads(raw)
        assert d["channel"] == "market_trades"
        for ev in d["events"]:
            for w in ev["trades"]:
                want.append((w, d))
        got.extend(events)
    assert frames == 3 and len(got) == len(want) == 3
    for t, (w, env) in zip(got, want, strict=True):
        assert isinstance(t, Trade)
        assert t.exchange == "coinbase"
        assert t.symbol == w["product_id"] == "BTC-USD"
        assert t.trade_id == int(w["trade_id"])
        assert t.price == float(w["price"])
        assert t.qty == float(w["size"])
        assert t.ts == ref_us(w["time"])
        assert t.event_ts == ref_us(env["timestamp"])  # ns envelope floored to µs
        assert t.is_buyer_maker is (w["side"] == "SELL")
        assert t.recv_ts == 0
    assert [t.trade_id for t in got] == [929248657, 929248658, 929248659]
    # hand-read: "time":"2025-12-31T06:00:12.44524Z" -> .445240 s; 2025-12-31T06:00:12Z is
    # 1767160812 s (date -u -d 2025-12-31T06:00:12Z +%s)
    assert got[0].ts == 1_767_160_812_445_240
    assert got[0].event_ts == 1_767_160_812_516_946  # .516946132 floored
    assert p.sequence_num == 1853 and p.sequence_breaks == 0


def test_exchange_session_every_frame_counted_and_trades_exact(cb_data):
    # README: 9,946 frames: 3 subscriptions, 10 snapshot, 9,719 l2update, 107 ticker,
    # 10 last_match, 97 match
    p = Parser(PRODUCTS)
    kinds: collections.Counter[str] = collections.Counter()
    trades: list[Trade] = []
    replies = 0
    n_ignored_want = 0
    for recv_ns, raw in read_frames(cb_data("exchange_ws_session_20210417.txt.gz")):
        d = json.loads(raw)
        kinds[d["type"]] += 1
        events = p.parse(raw, recv_ns // 1000)
        if d["type"] in ("match", "last_match"):
            [t] = events
            assert isinstance(t, Trade)
            assert t.symbol == d["product_id"]
            assert t.trade_id == d["trade_id"]
            assert t.price == float(d["price"]) and t.qty == float(d["size"])
            assert t.ts == t.event_ts == ref_us(d["time"])
            assert t.is_buyer_maker is (d["side"] == "buy")  # Exchange side = maker side
            assert t.recv_ts == recv_ns // 1000
            trades.append(t)
        elif d["type"] == "subscriptions":
            [r] = events
            assert isinstance(r, ControlReply) and r.result == d["channels"]
            replies += 1
        else:
            assert events == []
            n_ignored_want += 1
    assert sum(kinds.values()) == 9946
    assert kinds == {"subscriptions": 3, "snapshot": 10, "l2update": 9719, "ticker": 107,
                     "last_match": 10, "match": 97}  # fmt: skip
    assert len(trades) == 107 and replies == 3 and p.ignored == n_ignored_want == 9836
    by_product: dict[str, list[int]] = collections.defaultdict(list)
    for t in trades:
        by_product[t.symbol].append(t.trade_id)
    assert set(by_product) == set(PRODUCTS)
    for ids in by_product.values():  # strictly +1 per product, as the README says
        assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert by_product["SKL-USD"][0] == 1568267 and by_product["SKL-USD"][-1] == 1568319
    assert by_product["DASH-BTC"] == list(range(923560, 923576))


def test_matches_subset_is_the_same_trades(cb_data):
    p = Parser(PRODUCTS)
    out = [
        e
        for _, raw in read_frames(cb_data("exchange_ws_matches_20210417.txt"))
        for e in p.parse(raw, 0)
    ]
    assert sum(isinstance(e, Trade) for e in out) == 107
    assert sum(isinstance(e, ControlReply) for e in out) == 3


# -- batches, control frames --------------------------------------------------------------------

FRAME_1854 = (
    '{"channel":"market_trades","client_id":"","timestamp":"2025-12-31T06:00:13.715382929Z",'
    '"sequence_num":1854,"events":[{"type":"update","trades":['
    '{"product_id":"BTC-USD","trade_id":"929248663","price":"88355.59","size":"0.001","time":"2025-12-31T06:00:13.654578Z","side":"BUY"},'
    '{"product_id":"BTC-USD","trade_id":"929248662","price":"88355.58","size":"0.002","time":"2025-12-31T06:00:13.613311Z","side":"SELL"},'
    '{"product_id":"BTC-USD","trade_id":"929248661","price":"88355.58","size":"0.003","time":"2025-12-31T06:00:13.6Z","side":"SELL"},'
    '{"product_id":"BTC-USD","trade_id":"929248660","price":"88355.57","size":"0.004","time":"2025-12-31T06:00:13.5Z","side":"BUY"}]}]}'
)  # the shape of reference §1.3's frame 1854 (ids 663, 662 quoted; 661, 660 as it implies)


def test_newest_first_batch_comes_out_ascending():
    out = Parser(["BTC-USD"]).parse(FRAME_1854, 5)
    assert [t.trade_id for t in out] == [929248660, 929248661, 929248662, 929248663]
    assert [t.is_buyer_maker for t in out] == [False, True, True, False]
    assert [t.qty for t in out] == [0.004, 0.003, 0.002, 0.001]
    assert out[1].ts == 1_767_160_813_600_000


def test_snapshot_event_is_used():
    raw = FRAME_1854.replace('"type":"update"', '"type":"snapshot"')
    assert len(Parser(["BTC-USD"]).parse(raw, 0)) == 4


def test_sequence_num_jump_is_counted():
    p = Parser(["BTC-USD"])
    p.parse(FRAME_1854, 0)
    p.parse(FRAME_1854.replace('"sequence_num":1854', '"sequence_num":1855'), 0)
    assert p.sequence_breaks == 0
    p.parse(FRAME_1854.replace('"sequence_num":1854', '"sequence_num":1857'), 0)
    assert p.sequence_breaks == 1 and p.sequence_num == 1857


def test_control_frames():
    p = Parser(["BTC-USD"])
    ack = (
        '{"channel":"subscriptions","client_id":"","timestamp":"2026-06-14T05:35:45.540672514Z",'
        '"sequence_num":17,"events":[{"subscriptions":{"market_trades":["BTC-USD"],"heartbeats":["heartbeats"]}}]}'
    )
    [r] = p.parse(ack, 0)
    assert r == ControlReply(
        id=None, result={"market_trades": ["BTC-USD"], "heartbeats": ["heartbeats"]}
    )
    empty = (
        '{"channel":"subscriptions","timestamp":"2026-06-14T05:35:45.540672514Z",'
        '"sequence_num":18,"events":[{"subscriptions":{}}]}'
    )  # the real empty ack, §1.2
    assert p.parse(empty, 0) == [ControlReply(id=None, result={})]
    hb = (
        '{"channel":"heartbeats","client_id":"","timestamp":"2026-09-30T02:37:15.057778606Z",'
        '"sequence_num":19,"events":[{"current_time":"2026-09-30 02:37:15.057778606 +0000 UTC m=+21697.195984854","heartbeat_counter":42}]}'
    )
    assert p.parse(hb, 0) == []
    assert p.sequence_num == 19 and p.sequence_breaks == 0
    [e] = p.parse('{"type":"error","message":"Failed to subscribe"}', 0)
    assert e == ControlReply(id=None, error_msg="Failed to subscribe")
    assert p.parse('{"channel":"ticker","timestamp":"x","sequence_num":20,"events":[]}', 0) == []
    assert p.ignored == 1
    # fields in another order than Coinbase's: the generic path still parses them
    d = json.loads(FRAME_1854)
    re = json.dumps(
        {
            "events": d["events"],
            "timestamp": d["timestamp"],
            "sequence_num": 21,
            "channel": "market_trades",
        }
    )
    assert [t.trade_id for t in p.parse(re, 0)] == [929248660, 929248661, 929248662, 929248663]


# -- malformed ----------------------------------------------------------------------------------

ONE = (
    '{"channel":"market_trades","client_id":"","timestamp":"2025-12-31T06:00:12.516946132Z",'
    '"sequence_num":1851,"events":[{"type":"update","trades":[{"product_id":"BTC-USD",'
    '"trade_id":"929248657","price":"88355.59","size":"0.00136573",'
    '"time":"2025-12-31T06:00:12.44524Z","side":"SELL"}]}]}'
)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ('"product_id":"BTC-USD"', '"product_id":"ETH-USD"', "not one of the subscribed"),
        ('"product_id":"BTC-USD"', '"product_id":"btc-usd"', "not allowed"),
        ('"product_id":"BTC-USD"', '"product_id":7', "Expected `str`"),
        ('"trade_id":"929248657"', '"trade_id":"-1"', ">= 0"),
        ('"trade_id":"929248657"', '"trade_id":"9223372036854775808"', "<= 9223372036854775807"),
        ('"trade_id":"929248657"', '"trade_id":"abc"', "Expected `int`"),
        ('"trade_id":"929248657"', '"trade_id":[1]', "Expected `int`"),
        ('"price":"88355.59"', '"price":"nan"', "price"),
        ('"price":"88355.59"', '"price":"inf"', "price"),
        ('"price":"88355.59"', '"price":"1e308"', "<= 1000000000000.0"),
        ('"price":"88355.59"', '"price":"0"', ">= 1e-10"),
        ('"price":"88355.59"', '"price":"-1"', ">= 1e-10"),
        ('"size":"0.00136573"', '"size":"1e-320"', ">= 1e-10"),
        ('"size":"0.00136573"', '"size":"1e16"', "<= 1000000000000000.0"),
        ('"size":"0.00136573"', '"size":null', "size"),
        ('"time":"2025-12-31T06:00:12.44524Z"', '"time":"yesterday"', "not an ISO-8601"),
        ('"time":"2025-12-31T06:00:12.44524Z"', '"time":"2025-13-31T06:00:12Z"', "month"),
        ('"time":"2025-12-31T06:00:12.44524Z"', '"time":"2025-12-31T06:61:12Z"', "out of range"),
        (
            '"time":"2025-12-31T06:00:12.44524Z"',
            '"time":"2025-12-31T06:00:12.44524+02:00"',
            "not UTC",
        ),
        (
            '"time":"2025-12-31T06:00:12.44524Z"',
            '"time":"2025-12-31T06:00:12.1234567890Z"',
            "fraction",
        ),
        (
            '"time":"2025-12-31T06:00:12.44524Z"',
            '"time":"2200-12-31T06:00:12Z"',
            "outside 2009..2100",
        ),
        (
            '"time":"2025-12-31T06:00:12.44524Z"',
            '"time":"2025-12-31T06:00:12.4\u0661Z"',
            "ISO-8601",
        ),
        ('"side":"SELL"', '"side":"sell"', "side"),
        ('"side":"SELL"', '"side":true', "side"),
        (',"side":"SELL"', "", "side"),
        ('"timestamp":"2025-12-31T06:00:12.516946132Z"', '"timestamp":"now"', "timestamp"),
        ('"sequence_num":1851', '"sequence_num":-5', "sequence_num"),
        ('"type":"update"', '"type":"delete"', "not snapshot/update"),
        ('"trades":[', '"trades":{"a":[', "trades"),
    ],
)
def test_each_broken_field_is_a_frame_error(old, new, reason):
    assert old in ONE
    raw = ONE.replace(old, new, 1)
    with pytest.raises(FrameError) as ei:
        Parser(["BTC-USD"]).parse(raw, 0)
    assert reason in ei.value.reason, ei.value.reason
    assert "\n" not in ei.value.reason
    assert ei.value.raw == raw


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty frame"),
        ("   ", "empty frame"),
        ("not json", "invalid JSON"),
        ("[1,2]", "not a Coinbase frame"),
        ("{}", "neither 'channel' nor 'type'"),
        ('{"type":"weird"}', "unrecognised frame type"),
        ('{"type":"subscribe","product_ids":["BTC-USD"]}', "client subscribe"),
        ('{"channel":"market_trades"', "bad market_trades frame"),
        ("[" * 5000 + "]" * 5000, "not a Coinbase frame"),
        (b"\xff\xfe", "invalid JSON"),
        ("\ud800", "invalid JSON"),
        (
            '{"type":"match","trade_id":1,"side":"buy","size":"1","price":"1","product_id":"SKL-USD","time":"2021-04-17T16:44:05Z"}',
            "not one of the subscribed",
        ),
        (
            '{"type":"match","trade_id":1,"side":"BUY","size":"1","price":"1","product_id":"BTC-USD","time":"2021-04-17T16:44:05Z"}',
            "bad match frame",
        ),
        (
            '{"type":"last_match","trade_id":1,"side":"buy","size":"1","price":"1","product_id":"BTC-USD","time":"17/04/2021"}',
            "not an ISO-8601",
        ),
        (
            '{"type":"match","trade_id":1,"side":"buy","size":"1","price":"1","product_id":"BTC-USD","time":"2021-04-17T16:44:05.61739\u0661Z"}',
            "ISO-8601",
        ),
        (
            '{"type":"match","trade_id":1,"side":"buy","size":"1","price":"1","product_id":"BTC-USD","time":"2021-04-17T16:44:05.617399+"}',
            "not UTC",
        ),
        (
            '{"channel":"subscriptions","sequence_num":1,"events":[{"subscriptions":[]}]}',
            "bad subscriptions frame",
        ),
    ],
)
def test_malformed_frames(raw, reason):
    with pytest.raises(FrameError) as ei:
        Parser(["BTC-USD"]).parse(raw, 0)
    assert reason in ei.value.reason, ei.value.reason


def test_symbols_are_checked_at_construction():
    with pytest.raises(ValueError, match="not a string"):
        Parser("BTC-USD")
    with pytest.raises(ValueError, match="not allowed"):
        Parser(["btc-usd"])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_nothing_but_frame_error_escapes(raw):
    with contextlib.suppress(FrameError):
        Parser(["BTC-USD"]).parse(raw, 0)


@settings(max_examples=300, deadline=None)
@given(st.integers(1_230_768_000_000_000, 4_102_444_799_999_999), st.integers(0, 999))
def test_iso_to_us_matches_datetime(us, ns):
    # reference: datetime's isoformat of the µs value (independent formatting), plus ns digits
    t = EPOCH + dt.timedelta(microseconds=us)
    s = t.strftime("%Y-%m-%dT%H:%M:%S") + f".{t.microsecond:06d}{ns:03d}Z"
    assert iso_to_us(s) == us
    assert iso_to_us(s.replace(f"{ns:03d}Z", "Z")) == us
