"""REST handlers without sockets: query semantics of shared/reference section 2, by hand."""

from __future__ import annotations

import argparse

from lq.exchange import cli
from lq.exchange.market import Market, SymbolSpec, TradeIn
from lq.venues.binance.local.rest import RestApi

T = 1_723_161_600_000_000  # 2024-08-09 00:00:00 UTC in µs


def _market() -> Market:
    m = Market([SymbolSpec(symbol="BTCUSDT", base="BTC", quote="USDT", tick_size="0.01000000",
                           lot_size="0.00001000")])  # fmt: skip
    out: list = []
    # 6 trades in 4 orders: ids 100..105, one per 100 ms; order keys group (100,101), (103,104)
    orders = ["A", "A", "B", "C", "C", "D"]
    prices = [
        "10.00000000",
        "10.00000000",
        "11.00000000",
        "9.00000000",
        "9.00000000",
        "12.00000000",
    ]
    for i in range(6):
        ts = T + i * 100_000
        m.add_trade(TradeIn("BTCUSDT", 100 + i, prices[i], "1.50000000", ts, ts + 1000, i % 2 == 0, orders[i]), out)  # fmt: skip
    m.flush(out)
    return m


def _get(api: RestApi, target: str) -> object:
    res = api.handle("GET", target, {}, T / 1e6)
    assert res.status == 200, res.body
    return res.json()


def test_agg_trades_group_orders_and_honour_from_id_start_end_limit() -> None:
    api = RestApi(_market())
    rows = _get(api, "/api/v3/aggTrades?symbol=BTCUSDT")
    # hand-computed: 4 aggTrades, ids from the first trade id, qty summed per order
    assert [(r["a"], r["f"], r["l"], r["q"]) for r in rows] == [
        (100, 100, 101, "3.00000000"), (101, 102, 102, "1.50000000"),
        (102, 103, 104, "3.00000000"), (103, 105, 105, "1.50000000"),
    ]  # fmt: skip
    assert rows[0] == {"a": 100, "p": "10.00000000", "q": "3.00000000", "f": 100, "l": 101,
                       "T": T // 1000, "m": True, "M": True}  # fmt: skip
    assert [r["a"] for r in _get(api, "/api/v3/aggTrades?symbol=BTCUSDT&fromId=102&limit=5")] == [
        102,
        103,
    ]
    # startTime/endTime inclusive, in ms or µs; oldest first
    start_ms, end_ms = T // 1000 + 200, T // 1000 + 300
    got = _get(api, f"/api/v3/aggTrades?symbol=BTCUSDT&startTime={start_ms}&endTime={end_ms}")
    assert [r["a"] for r in got] == [101, 102]
    got = _get(
        api, f"/api/v3/aggTrades?symbol=BTCUSDT&startTime={start_ms * 1000}&endTime={end_ms * 1000}"
    )
    assert [r["a"] for r in got] == [101, 102]
    # endTime only: the most recent up to endTime
    assert [
        r["a"] for r in _get(api, f"/api/v3/aggTrades?symbol=BTCUSDT&endTime={end_ms}&limit=2")
    ] == [101, 102]
    assert [r["a"] for r in _get(api, "/api/v3/aggTrades?symbol=BTCUSDT&limit=1")] == [103]


def test_historical_trades_and_time_unit_header() -> None:
    api = RestApi(_market())
    rows = _get(api, "/api/v3/historicalTrades?symbol=BTCUSDT&fromId=104&limit=1000")
    assert rows == [
        {"id": 104, "price": "9.00000000", "qty": "1.50000000", "quoteQty": "13.5",
         "time": T // 1000 + 400, "isBuyerMaker": True, "isBestMatch": True},
        {"id": 105, "price": "12.00000000", "qty": "1.50000000", "quoteQty": "18",
         "time": T // 1000 + 500, "isBuyerMaker": False, "isBestMatch": True},
    ]  # fmt: skip
    res = api.handle("GET", "/api/v3/historicalTrades?symbol=BTCUSDT&limit=1", {"X-MBX-TIME-UNIT": "MICROSECOND"}, T / 1e6)  # fmt: skip
    assert res.json()[0]["time"] == T + 500_000
    assert dict(res.headers)["X-MBX-USED-WEIGHT-1M"] == "50"  # two calls of weight 25


def test_klines_by_hand() -> None:
    api = RestApi(_market())
    rows = _get(api, "/api/v3/klines?symbol=BTCUSDT&interval=1m")
    # one 1m bar: open 10, high 12, low 9, close 12; volume 6 x 1.5 = 9;
    # quote = 1.5 * (10+10+11+9+9+12) = 91.5; taker buys are m=false: ids 101, 103, 105
    # -> V = 4.5, Q = 1.5 * (10 + 9 + 12) = 46.5
    assert rows == [[T // 1000, "10.00000000", "12.00000000", "9.00000000", "12.00000000",
                     "9.00000000", T // 1000 + 59_999, "91.50000000", 6, "4.50000000",
                     "46.50000000", "0"]]  # fmt: skip
    rows = _get(api, "/api/v3/klines?symbol=BTCUSDT&interval=1s")
    assert len(rows) == 1 and rows[0][8] == 6


def test_limit_is_clamped_to_1000() -> None:
    api = RestApi(_market())
    assert len(_get(api, "/api/v3/aggTrades?symbol=BTCUSDT&limit=5000")) == 4


def test_cli_parser_builds_the_exchange() -> None:
    parser = argparse.ArgumentParser(prog="lq")
    cli.add_parser(parser.add_subparsers(dest="command"))
    ns = parser.parse_args(["exchange", "--symbols", "btcusdt,solusdt", "--seed", "3", "--speed", "max",
                            "--max-connection-age", "5", "--malformed-rate", "0.01"])  # fmt: skip
    assert ns.func is cli.run
    ex = cli.build_exchange(ns)
    assert set(ex.market.specs) == {"BTCUSDT", "SOLUSDT"}
    assert ex.source.speed is None and ex.max_connection_age == 5.0
    assert ex.faults.malformed_rate == 0.01 and ex.host == "127.0.0.1"
