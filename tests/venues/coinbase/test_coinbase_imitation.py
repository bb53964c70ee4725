"""The local exchange's Coinbase: subscribe acks, snapshot, newest-first batches with a
per-connection sequence_num, heartbeats, and exact round trips through the real Parser."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from lq.feeds.events import ControlReply, Trade
from lq.venues.coinbase import imitation, protocol
from lq.venues.coinbase.parser import Parser

NOW = 1_767_160_813_715_382


def subscribed(*products: str, heartbeats: bool = True) -> tuple[dict, list[str]]:
    state: dict = {"now_us": NOW}
    out: list[str] = []
    msgs = protocol.subscribe_messages(list(products))
    for m in msgs if heartbeats else msgs[:1]:
        out += imitation.on_client_text(m, state)
    return state, out


def test_protocol_constants():
    assert protocol.NAME == "coinbase" and protocol.ID_RULE == "contiguous"
    assert protocol.WS_URL == "wss://advanced-trade-ws.coinbase.com"
    assert protocol.REST_URL == "https://api.exchange.coinbase.com"
    assert protocol.ping_message() is None and protocol.PING_INTERVAL_S is None
    m = [json.loads(x) for x in protocol.subscribe_messages(["BTC-USD", "ETH-USD"])]
    assert m == [
        {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channel": "market_trades"},
        {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channel": "heartbeats"},
    ]


def test_paths():
    assert imitation.ws_path_ok("/") and imitation.ws_path_ok("") and imitation.ws_path_ok("/?x=1")
    assert not imitation.ws_path_ok("/ws") and not imitation.ws_path_ok("/stream")


def test_subscribe_ack_snapshot_and_sequence():
    _, out = subscribed("BTC-USD")
    frames = [json.loads(f) for f in out]
    assert [f["channel"] for f in frames] == ["subscriptions", "market_trades", "subscriptions"]
    assert [f["sequence_num"] for f in frames] == [0, 1, 2]
    assert frames[1]["events"] == [{"type": "snapshot", "trades": []}]
    p = Parser(["BTC-USD"])
    replies = [e for f in out for e in p.parse(f, 0)]
    assert replies[-1] == ControlReply(
        id=None, result={"market_trades": ["BTC-USD"], "heartbeats": ["BTC-USD"]}
    )
    assert p.sequence_breaks == 0


def test_snapshot_carries_recent_trades_newest_first():
    trades = [_t(10 + k) for k in range(3)]
    state = {"now_us": NOW, "recent": {"BTC-USD": trades}}
    out = imitation.on_client_text(protocol.subscribe_messages(["BTC-USD"])[0], state)
    snap = json.loads(out[1])["events"][0]
    assert snap["type"] == "snapshot" and [t["trade_id"] for t in snap["trades"]] == [
        "12",
        "11",
        "10",
    ]
    assert Parser(["BTC-USD"]).parse(out[1], 0) == [_with(t, event_ts=NOW) for t in trades]


def test_bad_requests_get_error_frames():
    state: dict = {"products": {"BTC-USD"}}
    cases = [
        ("not json", "parse"),
        ("[1]", "object"),
        ('{"type":"hello"}', "unknown message type"),
        ('{"type":"subscribe","channel":"level3","product_ids":["BTC-USD"]}', "Unknown channel"),
        ('{"type":"subscribe","channel":"market_trades","product_ids":[]}', "requires product_ids"),
        (
            '{"type":"subscribe","channel":"market_trades","product_ids":"BTC-USD"}',
            "list of strings",
        ),
        (
            '{"type":"subscribe","channel":"market_trades","product_ids":["DOGE-XYZ"]}',
            "Unknown product",
        ),
    ]
    p = Parser(["BTC-USD"])
    for text, why in cases:
        [reply] = imitation.on_client_text(text, state)
        [e] = p.parse(reply, 0)
        assert isinstance(e, ControlReply) and why in (e.error_msg or ""), (text, e)


def test_unsubscribe_stops_trades():
    state, _ = subscribed("BTC-USD", "ETH-USD")
    imitation.on_client_text(
        '{"type":"unsubscribe","product_ids":["ETH-USD"],"channel":"market_trades"}', state
    )
    [f] = imitation.trade_frames([_t(1), _t(2, "ETH-USD")], state)
    assert [t["product_id"] for t in json.loads(f)["events"][0]["trades"]] == ["BTC-USD"]
    assert imitation.trade_frames([_t(3, "ETH-USD")], state) == []


def test_heartbeats_parse_to_nothing_and_keep_the_sequence():
    state, out = subscribed("BTC-USD")
    p = Parser(["BTC-USD"])
    for f in out:
        p.parse(f, 0)
    for k in range(5):
        [hb] = imitation.heartbeat_frames(state, NOW + k * 1_000_000)
        assert json.loads(hb)["events"][0]["heartbeat_counter"] == k + 1
        assert p.parse(hb, 0) == []
    [f] = imitation.trade_frames([_t(1)], state)
    assert len(p.parse(f, 0)) == 1
    assert p.sequence_num == 8 and p.sequence_breaks == 0
    assert imitation.heartbeat_frames({"now_us": NOW}, NOW) == []  # not subscribed: none


def _t(i: int, sym: str = "BTC-USD", **kw) -> Trade:
    base = dict(
        symbol=sym,
        trade_id=i,
        price=88355.59,
        qty=0.00136573,
        ts=NOW - 1000 + i,
        event_ts=NOW - 1000 + i,
        is_buyer_maker=i % 2 == 0,
        exchange="coinbase",
    )
    base.update(kw)
    return Trade(**base)  # type: ignore[arg-type]


def _with(t: Trade, **kw) -> Trade:
    d = {f: getattr(t, f) for f in t.__struct_fields__}
    d.update(kw)
    return Trade(**d)


trade_st = st.builds(
    lambda i, p, q, ts, m, s: Trade(
        symbol=s,
        trade_id=i,
        price=p,
        qty=q,
        ts=ts,
        event_ts=ts,
        is_buyer_maker=m,
        exchange="coinbase",
    ),
    st.integers(0, 2**63 - 1),
    st.floats(1e-10, 1e12),
    st.floats(1e-10, 1e15),
    st.integers(1_230_768_000_000_000, 4_102_444_799_999_999),
    st.booleans(),
    st.sampled_from(["BTC-USD", "ETH-USD"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(trade_st, min_size=1, max_size=30, unique_by=lambda t: (t.symbol, t.trade_id)))
def test_trade_frames_round_trip_exactly(trades):
    state, _ = subscribed("BTC-USD", "ETH-USD")
    state["now_us"] = NOW
    [frame] = imitation.trade_frames(trades, state)
    wire = json.loads(frame)["events"][0]["trades"]
    keys = [(int(w["trade_id"]), w["product_id"]) for w in wire]
    assert keys == sorted(keys, reverse=True)  # newest first, as Coinbase packs them
    got = Parser(["BTC-USD", "ETH-USD"]).parse(frame, 3)
    want = sorted((_with(t, event_ts=NOW, recv_ts=3) for t in trades), key=lambda t: t.trade_id)
    assert sorted(got, key=lambda t: (t.trade_id, t.symbol)) == sorted(
        want, key=lambda t: (t.trade_id, t.symbol)
    )
    assert [t.trade_id for t in got] == sorted(t.trade_id for t in got)


def test_drop_same_timestamp_is_a_no_op_here():
    ts = [_t(1), _t(2, ts=_t(1).ts)]
    assert imitation.drop_same_timestamp(ts) == ts


def test_the_contract_names_are_all_there():
    import importlib

    want = {
        "protocol": ["NAME", "WS_URL", "REST_URL", "ID_RULE", "subscribe_messages", "ping_message",
                     "PING_INTERVAL_S", "MAX_STREAMS_PER_CONNECTION"],
        "parser": ["Parser"],
        "rest": ["HISTORY_PATH", "HISTORY_LIMIT", "history_request", "decode_history", "HistoryPage",
                 "classify_error", "RATE_LIMIT_PER_S", "first_cursor"],
        "instruments": ["INSTRUMENTS_PATH", "decode_instruments"],
        "imitation": ["ws_path_ok", "on_client_text", "trade_frames", "heartbeat_frames",
                      "rest_history", "rest_rate_limited", "rest_instruments", "drop_same_timestamp"],
    }  # fmt: skip
    for mod, names in want.items():
        m = importlib.import_module(f"lq.venues.coinbase.{mod}")
        assert [n for n in names if not hasattr(m, n)] == [], mod
    assert importlib.import_module("lq.venues.coinbase.protocol").NAME == "coinbase"
