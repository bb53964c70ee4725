"""The local exchange's OKX: business-only trades-all, acks per arg with connId and id, errors
with string codes, ping/pong, and exact round trips through the Parser."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from lq.feeds.events import ControlReply, Trade
from lq.venues.okx import imitation, protocol
from lq.venues.okx.parser import Parser


def test_protocol_constants():
    assert protocol.NAME == "okx" and protocol.ID_RULE == "contiguous"
    assert protocol.WS_URL == "wss://ws.okx.com:8443/ws/v5/business"
    assert protocol.REST_URL == "https://www.okx.com"
    assert protocol.ping_message() == "ping"
    assert (
        protocol.PING_INTERVAL_S is not None and protocol.PING_INTERVAL_S < protocol.NO_DATA_CLOSE_S
    )
    [m] = protocol.subscribe_messages(["BTC-USDT", "ETH-USDT"])
    assert json.loads(m) == {"id": "1", "op": "subscribe", "args": [
        {"channel": "trades-all", "instId": "BTC-USDT"}, {"channel": "trades-all", "instId": "ETH-USDT"}]}  # fmt: skip


def test_paths():
    assert imitation.ws_path_ok("/ws/v5/business") and imitation.ws_path_ok("/ws/v5/public")
    assert not imitation.ws_path_ok("/ws/v5/private") and not imitation.ws_path_ok("/")


def test_acks_errors_ping():
    state: dict = {"path": "/ws/v5/business", "symbols": {"BTC-USDT", "ETH-USDT"}}
    p = Parser(["BTC-USDT", "ETH-USDT"])
    [m] = protocol.subscribe_messages(["BTC-USDT", "ETH-USDT"])
    out = imitation.on_client_text(m, state)
    assert [p.parse(f, 0) for f in out] == [
        [ControlReply(id="1", result={"channel": "trades-all", "instId": "BTC-USDT"})],
        [ControlReply(id="1", result={"channel": "trades-all", "instId": "ETH-USDT"})],
    ]
    assert all(json.loads(f)["connId"] == json.loads(out[0])["connId"] for f in out)
    assert imitation.on_client_text("ping", state) == ["pong"] and p.parse("pong", 0) == []
    for text, code in [
        ("nonsense", 60012),
        ('{"op":"login"}', 60012),
        ('{"id":"7","op":"subscribe","args":[]}', 60012),
        ('{"op":"subscribe","args":[{"channel":"trades-all","instId":"XYZ-USDT"}]}', 60018),
        ('{"op":"subscribe","args":[{"channel":"candle1m","instId":"BTC-USDT"}]}', 60018),
        (
            '{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}',
            60018,
        ),  # public only
    ]:
        [reply] = imitation.on_client_text(text, state)
        [e] = p.parse(reply, 0)
        assert isinstance(e, ControlReply) and e.error_code == code, (text, e)
        assert isinstance(json.loads(reply)["code"], str)
    [echo] = imitation.on_client_text('{"id":"7","op":"subscribe","args":[]}', state)
    assert json.loads(echo)["id"] == "7"
    # trades-all on the public URL: wrong URL
    [wrong] = imitation.on_client_text(m, {"path": "/ws/v5/public"})[:1]
    assert p.parse(wrong, 0)[0].error_code == 60018  # type: ignore[union-attr]
    assert imitation.heartbeat_frames(state, 0) == []


def test_unsubscribe_stops_pushes():
    state: dict = {}
    imitation.on_client_text(protocol.subscribe_messages(["BTC-USDT"])[0], state)
    t = Trade(symbol="BTC-USDT", trade_id=1, price=1.0, qty=1.0, ts=1_747_087_163_557_000,
              event_ts=1_747_087_163_557_000, is_buyer_maker=False, exchange="okx")  # fmt: skip
    assert len(imitation.trade_frames([t], state)) == 1
    imitation.on_client_text(
        '{"op":"unsubscribe","args":[{"channel":"trades-all","instId":"BTC-USDT"}]}', state
    )
    assert imitation.trade_frames([t], state) == []
    assert imitation.drop_same_timestamp([t, t]) == [t, t]


trade_st = st.builds(
    lambda i, p, q, ms, m, s: Trade(
        symbol=s,
        trade_id=i,
        price=p,
        qty=q,
        ts=ms * 1000,
        event_ts=ms * 1000,
        is_buyer_maker=m,
        exchange="okx",
    ),
    st.integers(0, 2**63 - 1),
    st.floats(1e-10, 1e12),
    st.floats(1e-10, 1e15),
    st.integers(1_230_768_000_000, 4_102_444_799_999),  # OKX times are whole ms
    st.booleans(),
    st.sampled_from(["BTC-USDT", "ETH-USDT"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(trade_st, min_size=1, max_size=30, unique_by=lambda t: (t.symbol, t.trade_id)))
def test_trade_frames_round_trip_exactly(trades):
    state: dict = {}
    imitation.on_client_text(protocol.subscribe_messages(["BTC-USDT", "ETH-USDT"])[0], state)
    frames = imitation.trade_frames(trades, state)
    assert len(frames) == len(trades)  # one trade per push
    p = Parser(["BTC-USDT", "ETH-USDT"])
    got = [t for f in frames for t in p.parse(f, 4)]
    want = sorted(
        (Trade(**{f: getattr(t, f) for f in t.__struct_fields__} | {"recv_ts": 4}) for t in trades),
        key=lambda t: (t.trade_id, t.symbol),
    )
    assert got == want


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
        m = importlib.import_module(f"lq.venues.okx.{mod}")
        assert [n for n in names if not hasattr(m, n)] == [], mod
    assert importlib.import_module("lq.venues.okx.protocol").NAME == "okx"
