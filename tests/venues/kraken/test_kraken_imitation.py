"""The local exchange's Kraken: v2 acks per symbol, snapshot, pong, heartbeat, the api-go#36
same-timestamp drop on the real REST trades, and exact round trips through the Parser."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from lq.feeds.events import ControlReply, Trade
from lq.feeds.recording import read_frames
from lq.venues.kraken import imitation, protocol
from lq.venues.kraken.parser import Parser
from lq.venues.kraken.rest import decode_history

NOW = 1_762_795_433_971_744


def _t(i: int, sym: str = "BTC/USD", ts: int | None = None) -> Trade:
    ts = NOW + i if ts is None else ts
    return Trade(symbol=sym, trade_id=i, price=59121.8, qty=0.00022946, ts=ts, event_ts=ts,
                 is_buyer_maker=i % 2 == 1, exchange="kraken")  # fmt: skip


def test_protocol_constants():
    assert protocol.NAME == "kraken" and protocol.ID_RULE == "contiguous"
    assert (
        protocol.WS_URL == "wss://ws.kraken.com/v2"
        and protocol.REST_URL == "https://api.kraken.com"
    )
    assert json.loads(protocol.ping_message() or "") == {"method": "ping", "req_id": 0}
    assert protocol.PING_INTERVAL_S is not None and protocol.PING_INTERVAL_S < 60
    [m] = protocol.subscribe_messages(["BTC/USD", "ETH/USD"])
    assert json.loads(m) == {"method": "subscribe", "req_id": 1,
                             "params": {"channel": "trade", "symbol": ["BTC/USD", "ETH/USD"], "snapshot": True}}  # fmt: skip


def test_paths():
    assert (
        imitation.ws_path_ok("/v2")
        and not imitation.ws_path_ok("/")
        and not imitation.ws_path_ok("/v1")
    )


def test_subscribe_acks_per_symbol_and_snapshot():
    recent = {"BTC/USD": [_t(k) for k in range(60)]}
    state = {"now_us": NOW, "recent": recent}
    [m] = protocol.subscribe_messages(["BTC/USD", "ETH/USD"])
    out = imitation.on_client_text(m, state)
    p = Parser(["BTC/USD", "ETH/USD"])
    parsed = [p.parse(f, 0) for f in out]
    assert parsed[0] == [
        ControlReply(id=1, result={"channel": "trade", "symbol": "BTC/USD", "snapshot": True})
    ]
    assert [t.trade_id for t in parsed[1]] == list(range(10, 60))  # the last 50
    assert json.loads(out[1])["type"] == "snapshot"
    assert parsed[2] == [
        ControlReply(id=1, result={"channel": "trade", "symbol": "ETH/USD", "snapshot": True})
    ]
    assert parsed[3] == []  # ETH/USD: empty snapshot
    ack = json.loads(out[0])
    assert ack["success"] is True and "time_in" in ack and "time_out" in ack


def test_errors_pong_heartbeat():
    state: dict = {"now_us": NOW, "symbols": {"BTC/USD"}}
    p = Parser(["BTC/USD"])
    assert imitation.heartbeat_frames(state, NOW) == []
    cases = [
        ("{", "Malformed"),
        ('{"method":"hello"}', "not found"),
        ('{"method":"subscribe"}', "Missing params"),
        (
            '{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"]}}',
            "Channel book not found",
        ),
        (
            '{"method":"subscribe","params":{"channel":"trade","symbol":"BTC/USD"}}',
            "non-empty list",
        ),
        (
            '{"method":"subscribe","params":{"channel":"trade","symbol":["XYZ/USD"]}}',
            "Currency pair not supported",
        ),
        (
            '{"method":"unsubscribe","params":{"channel":"trade","symbol":["BTC/USD"]}}',
            "Subscription Not Found",
        ),
    ]
    for text, why in cases:
        [reply] = imitation.on_client_text(text, state)
        [e] = p.parse(reply, 0)
        assert isinstance(e, ControlReply) and why in (e.error_msg or ""), (text, e)
    [pong] = imitation.on_client_text(protocol.ping_message() or "", state)
    assert json.loads(pong)["method"] == "pong" and json.loads(pong)["req_id"] == 0
    assert p.parse(pong, 0) == []
    imitation.on_client_text(
        '{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD"]}}', state
    )
    [again] = imitation.on_client_text(
        '{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD"]}}', state
    )
    assert "Already subscribed" in (p.parse(again, 0)[0].error_msg or "")  # type: ignore[union-attr]
    assert imitation.heartbeat_frames(state, NOW) == ['{"channel":"heartbeat"}']
    assert p.parse(imitation.heartbeat_frames(state, NOW)[0], 0) == []


def test_drop_same_timestamp_on_the_real_trades(kr_data):
    [(_, raw)] = list(read_frames(kr_data("rest_trades_xbtusdt_20251110.txt")))
    trades = decode_history(raw, "BTC/USDT").trades
    kept = imitation.drop_same_timestamp(trades)
    # only the first of each run of equal µs times survives: 1000 - 430 (see test_kraken_rest)
    assert len(kept) == 570
    firsts = [t for k, t in enumerate(trades) if k == 0 or trades[k - 1].ts != t.ts]
    assert kept == firsts
    # over the socket they arrive with holes the REST page fills
    state = {"subs": {"BTC/USDT"}}
    frames = imitation.trade_frames(kept, state)
    got = [t for f in frames for t in Parser(["BTC/USDT"]).parse(f, 0)]
    assert [t.trade_id for t in got] == [t.trade_id for t in firsts]
    missing = set(range(trades[0].trade_id, trades[-1].trade_id + 1)) - {t.trade_id for t in got}
    assert len(missing) == 430 and missing == {t.trade_id for t in trades} - {
        t.trade_id for t in kept
    }


trade_st = st.builds(
    lambda i, p, q, ts, m, s: Trade(
        symbol=s,
        trade_id=i,
        price=p,
        qty=q,
        ts=ts,
        event_ts=ts,
        is_buyer_maker=m,
        exchange="kraken",
    ),
    st.integers(0, 2**63 - 1),
    st.floats(1e-10, 1e12),
    st.floats(1e-10, 1e15),
    st.integers(1_230_768_000_000_000, 4_102_444_799_999_999),
    st.booleans(),
    st.sampled_from(["BTC/USD", "ETH/USD"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(trade_st, min_size=1, max_size=30, unique_by=lambda t: (t.symbol, t.trade_id)))
def test_trade_frames_round_trip_exactly(trades):
    state = {"subs": {"BTC/USD", "ETH/USD"}}
    frames = imitation.trade_frames(trades, state)
    assert len(frames) == len({t.symbol for t in trades})
    p = Parser(["BTC/USD", "ETH/USD"])
    got = [t for f in frames for t in p.parse(f, 9)]
    want = [
        Trade(**{f: getattr(t, f) for f in t.__struct_fields__} | {"recv_ts": 9}) for t in trades
    ]
    key = lambda t: (t.symbol, t.trade_id)  # noqa: E731
    assert sorted(got, key=key) == sorted(want, key=key)
    for f in frames:
        ids = [t.trade_id for t in p.parse(f, 0)]
        assert ids == sorted(ids)


def test_unsubscribed_pairs_get_no_frames():
    assert imitation.trade_frames([_t(1)], {"subs": set()}) == []


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
        m = importlib.import_module(f"lq.venues.kraken.{mod}")
        assert [n for n in names if not hasattr(m, n)] == [], mod
    assert importlib.import_module("lq.venues.kraken.protocol").NAME == "kraken"
