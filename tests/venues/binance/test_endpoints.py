"""Endpoint presets and URL planning (limits from shared/reference/binance-protocol.md)."""

from __future__ import annotations

import pytest

from lq.errors import ValidationError
from lq.venues.binance.endpoints import ENDPOINTS, plan_urls, resolve_endpoint, stream_name


def test_presets_carry_the_documented_hosts_and_limits():
    spot, data, us, fut = (ENDPOINTS[k] for k in ("spot", "spot-data", "us", "usdm"))
    assert (spot.ws_url, spot.rest_url, spot.max_streams, spot.inbound_limit) == (
        "wss://stream.binance.com:9443",
        "https://api.binance.com",
        1024,
        5.0,
    )
    assert (data.ws_url, data.rest_url, data.has_historical_trades) == (
        "wss://data-stream.binance.vision",
        "https://data-api.binance.vision",
        False,
    )
    assert (us.ws_url, us.rest_url) == ("wss://stream.binance.us:9443", "https://api.binance.us")
    assert (fut.ws_url, fut.rest_url, fut.rest_prefix, fut.max_streams, fut.inbound_limit) == (
        "wss://fstream.binance.com",
        "https://fapi.binance.com",
        "/fapi/v1",
        200,
        10.0,
    )


def test_spot_url_is_combined_with_microseconds():
    [(url, streams)] = plan_urls(ENDPOINTS["spot"], [("BTCUSDT", "trade"), ("ETHUSDT", "trade")])
    assert url == (
        "wss://stream.binance.com:9443/stream?streams=btcusdt@trade/ethusdt@trade"
        "&timeUnit=MICROSECOND"
    )
    assert streams == ("btcusdt@trade", "ethusdt@trade")


def test_futures_routes_book_ticker_to_public_and_the_rest_to_market():
    plan = plan_urls(
        ENDPOINTS["usdm"],
        [("BTCUSDT", "aggTrade"), ("BTCUSDT", "bookTicker"), ("BTCUSDT", "kline_1m")],
    )
    assert [u for u, _ in plan] == [
        "wss://fstream.binance.com/market/stream?streams=btcusdt@aggTrade/btcusdt@kline_1m",
        "wss://fstream.binance.com/public/stream?streams=btcusdt@bookTicker",
    ]


def test_streams_are_split_at_the_per_connection_limit_and_url_length():
    pairs = [(f"S{i:04d}USDT", "trade") for i in range(450)]
    plan = plan_urls(ENDPOINTS["usdm"], pairs)  # 200 per futures connection: 200 + 200 + 50
    assert [len(s) for _, s in plan] == [200, 200, 50]
    # spot, by length: 45 chars of prefix + 21 of "&timeUnit=MICROSECOND" + 16 per stream
    # ("s0000usdt@trade" + "/") - 1, so 65 + 16 n <= 8000 gives n = 495 on the first URL
    more = [(f"S{i:04d}USDT", "trade") for i in range(600)]
    spot = plan_urls(ENDPOINTS["spot"], more)
    assert [len(s) for _, s in spot] == [495, 105]
    assert all(len(u) <= 8000 for u, _ in spot)


def test_override_keeps_the_preset_limits():
    ep = resolve_endpoint("spot", ws_url="ws://127.0.0.1:9/", rest_url="http://127.0.0.1:9")
    assert (ep.ws_url, ep.rest_url, ep.max_streams) == (
        "ws://127.0.0.1:9",
        "http://127.0.0.1:9",
        1024,
    )


def test_bad_names_are_refused_by_field():
    with pytest.raises(ValidationError, match="endpoint='mars'"):
        resolve_endpoint("mars")
    with pytest.raises(ValidationError, match="channel='depth20'"):
        stream_name("BTCUSDT", "depth20")  # partial-book streams are not collected (yet)
    assert stream_name("BTCUSDT", "depth@100ms") == "btcusdt@depth@100ms"
    assert stream_name("BTCUSDT", "depth") == "btcusdt@depth"
    with pytest.raises(ValidationError, match="symbol='btc usdt'"):
        stream_name("btc usdt", "trade")
