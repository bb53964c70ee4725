"""The pure Binance protocol rules: paths, control replies, inbound limit.

Expected replies are copied from shared/reference/binance-protocol.md section 1.5 (official
spot docs, web-socket-streams.md) and the wire format logged by clients (ctubio #1121).
"""

from __future__ import annotations

import json

import pytest

from lq.venues.binance.local.protocol import (
    ConnectionSpec,
    InboundLimiter,
    Session,
    handle_control,
    is_valid_stream,
    parse_path,
    split_stream,
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/ws", ConnectionSpec(streams=(), combined=False, time_unit="MILLISECOND")),
        ("/ws/btcusdt@trade", ConnectionSpec(streams=("btcusdt@trade",), combined=False, time_unit="MILLISECOND")),
        ("/ws/btcusdt@trade/ethusdt@aggTrade", ConnectionSpec(streams=("btcusdt@trade", "ethusdt@aggTrade"), combined=False, time_unit="MILLISECOND")),
        ("/stream", ConnectionSpec(streams=(), combined=True, time_unit="MILLISECOND")),
        ("/stream?streams=btcusdt@trade/ethusdt@kline_1m", ConnectionSpec(streams=("btcusdt@trade", "ethusdt@kline_1m"), combined=True, time_unit="MILLISECOND")),
        ("/stream?streams=btcusdt@trade&timeUnit=MICROSECOND", ConnectionSpec(streams=("btcusdt@trade",), combined=True, time_unit="MICROSECOND")),
        ("/stream?streams=btcusdt@trade&timeUnit=microsecond", ConnectionSpec(streams=("btcusdt@trade",), combined=True, time_unit="MICROSECOND")),
        ("/stream?streams=btcusdt%40trade%2Fethusdt%40trade", ConnectionSpec(streams=("btcusdt@trade", "ethusdt@trade"), combined=True, time_unit="MILLISECOND")),
    ],
)  # fmt: skip
def test_valid_paths_are_parsed(path: str, expected: ConnectionSpec) -> None:
    assert parse_path(path) == expected


@pytest.mark.parametrize(
    "path",
    ["/", "/api", "/wss/btcusdt@trade", "/ws/btcusdt@nonsense", "/ws/BTCUSDT@trade",
     "/stream?streams=btcusdt@trade&timeUnit=NANOSECOND", "/stream?foo=1"],
)  # fmt: skip
def test_invalid_paths_are_refused(path: str) -> None:
    assert parse_path(path) is None


def test_more_than_max_streams_in_url_is_refused() -> None:
    streams = "/".join(f"s{i}usdt@trade" for i in range(1025))
    assert parse_path(f"/stream?streams={streams}") is None
    assert parse_path(f"/stream?streams={streams}", max_streams=2000) is not None


def test_stream_names() -> None:
    assert is_valid_stream("xrpxrp@miniTicker")  # unknown symbol, valid syntax (Binance.Net #620)
    assert is_valid_stream("btcusdt@kline_1s") and is_valid_stream("btcusdt@kline_1M")
    assert is_valid_stream("btcusdt@kline_1h@+08:00") and is_valid_stream("btcusdt@depth@100ms")
    assert not is_valid_stream("btcusdt@kline_2m")
    assert not is_valid_stream("btcusdt")
    assert split_stream("btcusdt@kline_1m") == ("BTCUSDT", "kline_1m")


def _ctl(session: Session, msg: object) -> bytes:
    raw = msg if isinstance(msg, str) else json.dumps(msg)
    return handle_control(session, raw).reply


def test_subscribe_unsubscribe_list_exact_replies() -> None:
    # the exchange of section 1.5, byte for byte
    s = Session()
    assert (
        _ctl(s, {"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "btcusdt@depth"], "id": 1})
        == b'{"result":null,"id":1}'
    )
    assert (
        _ctl(s, {"method": "UNSUBSCRIBE", "params": ["btcusdt@depth"], "id": 312})
        == b'{"result":null,"id":312}'
    )
    assert (
        _ctl(s, {"method": "LIST_SUBSCRIPTIONS", "id": 3})
        == b'{"result":["btcusdt@aggTrade"],"id":3}'
    )
    assert (
        _ctl(s, {"method": "SET_PROPERTY", "params": ["combined", True], "id": 5})
        == b'{"result":null,"id":5}'
    )
    assert (
        _ctl(s, {"method": "GET_PROPERTY", "params": ["combined"], "id": 2})
        == b'{"result":true,"id":2}'
    )
    assert s.combined is True


def test_subscribe_reports_what_changed() -> None:
    s = Session(streams={"a@trade": None})
    res = handle_control(s, '{"method":"SUBSCRIBE","params":["a@trade","b@trade"],"id":"x1"}')
    assert res.subscribed == ("b@trade",) and res.reply == b'{"result":null,"id":"x1"}'
    res = handle_control(s, '{"method":"UNSUBSCRIBE","params":["a@trade","zz@trade"],"id":null}')
    assert res.unsubscribed == ("a@trade",) and res.reply == b'{"result":null,"id":null}'


def test_unknown_symbol_is_accepted_silently() -> None:
    s = Session()
    assert (
        _ctl(s, {"method": "SUBSCRIBE", "params": ["xrpxrp@miniTicker"], "id": 9})
        == b'{"result":null,"id":9}'
    )


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        ({"method": "SET_PROPERTY", "params": ["colour", True], "id": 4}, {"code": 0, "msg": "Unknown property"}),
        ({"method": "GET_PROPERTY", "params": ["colour"], "id": 4}, {"code": 0, "msg": "Unknown property"}),
        ({"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 4}, {"code": 1, "msg": "Invalid value type: expected Boolean"}),
        ({"method": "SET_PROPERTY", "params": [7, True], "id": 4}, {"code": 2, "msg": "Invalid request: property name must be a string"}),
        ({"method": "SET_PROPERTY", "params": ["combined", True, 1], "id": 4}, {"code": 2, "msg": "Invalid request: too many parameters"}),
        ({"method": "SUBSCRIBE", "params": ["btcusdt@nonsense"], "id": 4}, {"code": 2, "msg": "Invalid request: invalid stream"}),
    ],
)  # fmt: skip
def test_control_errors_carry_the_request_id(msg: dict, expected: dict) -> None:
    reply = json.loads(_ctl(Session(), msg))
    assert reply == {"error": expected, "id": 4}


def test_bad_id_is_refused() -> None:
    for bad in (1.5, True, {"a": 1}, "x" * 37, "has space"):
        reply = json.loads(_ctl(Session(), {"method": "LIST_SUBSCRIPTIONS", "id": bad}))
        assert reply["error"] == {
            "code": 2, "msg": "Invalid request: request ID must be an unsigned integer"
        }  # fmt: skip
    missing = json.loads(_ctl(Session(), {"method": "LIST_SUBSCRIPTIONS"}))
    assert missing["error"]["code"] == 2


def test_unknown_method_and_missing_method_and_bad_json() -> None:
    raw = '{"method":"SUBSCRIBX","params":[],"id":1}'
    reply = json.loads(handle_control(Session(), raw).reply)
    # serde points just past the variant: column of the closing quote, 1-based = 21
    assert reply == {
        "error": {
            "code": 2,
            "msg": "Invalid request: unknown variant `SUBSCRIBX`, expected one of `SUBSCRIBE`, "
            "`UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY` "
            "at line 1 column 21",
        },
        "id": None,
    }
    raw = '{"params":[],"id":1}'
    reply = json.loads(handle_control(Session(), raw).reply)
    assert reply["error"] == {
        "code": 2, "msg": f"Invalid request: missing field `method` at line 1 column {len(raw)}"
    }  # fmt: skip
    reply = json.loads(handle_control(Session(), "hello").reply)
    assert reply == {"error": {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}, "id": None}  # fmt: skip


def test_more_than_1024_streams_is_an_error_and_subscribes_nothing() -> None:
    s = Session()
    first = [f"s{i}usdt@trade" for i in range(1024)]
    assert handle_control(s, json.dumps({"method": "SUBSCRIBE", "params": first, "id": 1})).reply == b'{"result":null,"id":1}'  # fmt: skip
    res = handle_control(s, '{"method":"SUBSCRIBE","params":["one@trade"],"id":2}')
    assert json.loads(res.reply) == {"error": {"code": 4, "msg": "Too many subscriptions"}, "id": 2}
    assert len(s.streams) == 1024 and "one@trade" not in s.streams


def test_inbound_limiter_allows_five_per_rolling_second_and_refuses_the_sixth() -> None:
    lim = InboundLimiter(5)
    assert all(lim.hit(t) for t in (0.0, 0.1, 0.2, 0.3, 0.4))
    assert not lim.hit(0.5)  # sixth within one second
    lim = InboundLimiter(5)
    # 1 per 250 ms (Lean #5583's safe pace) never trips: at most 4 in any 1 s window
    assert all(lim.hit(i * 0.25) for i in range(40))
    lim = InboundLimiter(5)
    # bursts of 5 every 1.5 s: each burst has left the window before the next
    assert all(lim.hit(b + j * 0.01) for b in (0.0, 1.5, 3.0) for j in range(5))
    assert not lim.hit(3.5)  # but a sixth inside the last burst's second trips
