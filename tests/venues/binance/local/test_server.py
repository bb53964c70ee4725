"""The local exchange over real loopback sockets: websockets client and httpx on 127.0.0.1.

Expected behaviour is Binance's, from shared/reference/binance-protocol.md section 6 (the
checklist) and the sections it cites; each test names the item it checks.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from lq.exchange import Faults, LocalExchange, ReplaySource, SimulatorSource

BTC_FILE = "spot_btcusdt_20240808.gz"
ETH_FILE = "spot_ethusdt_20240808.gz"
T0 = 1_700_000_000_000_000


def run(factory: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    """Run one async test body on a fresh loop (tests own their loop; library code never)."""

    async def main() -> Any:
        return await asyncio.wait_for(factory(), timeout)

    return asyncio.run(main())


def sim(rate: float = 200.0, speed: float | None = 1.0, **kw: Any) -> SimulatorSource:
    return SimulatorSource(symbols=["BTCUSDT", "ETHUSDT"], seed=7, rate=rate, speed=speed, **kw)


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def collect(ws: ClientConnection, seconds: float) -> list[str | bytes]:
    """Every frame received within ``seconds`` (stops early when the connection closes)."""
    out: list[str | bytes] = []
    end = time.monotonic() + seconds
    try:
        while (left := end - time.monotonic()) > 0:
            out.append(await asyncio.wait_for(ws.recv(), left))
    except (TimeoutError, ConnectionClosed):
        pass
    return out


async def drain_until_quiet(ws: ClientConnection, quiet: float = 1.0) -> list[str | bytes]:
    out: list[str | bytes] = []
    try:
        while True:
            out.append(await asyncio.wait_for(ws.recv(), quiet))
    except (TimeoutError, ConnectionClosed):
        pass
    return out


def trade_ids(frames: list[str | bytes]) -> list[int]:
    ids = []
    for f in frames:
        try:
            d = json.loads(f)
        except ValueError:
            continue
        d = d.get("data", d)
        if d.get("e") == "trade" and isinstance(d.get("t"), int):
            ids.append(d["t"])
    return ids


# -- paths ----------------------------------------------------------------------------


def test_unknown_path_is_http_400_invalid_request_path() -> None:
    async def body() -> None:
        async with LocalExchange(source=sim()) as ex:
            async with httpx.AsyncClient() as http:
                r = await http.get(ex.rest_url + "/")
            assert r.status_code == 400 and r.text == "Invalid request path"
            assert r.headers["content-type"].startswith("text/plain")
            with pytest.raises(InvalidStatus) as err:
                async with connect(ex.ws_url + "/wss/btcusdt@trade"):
                    pass
            assert err.value.response.status_code == 400

    run(body)


def test_raw_stream_payload_has_binance_fields_in_ms_and_combined_wraps_it() -> None:
    async def body() -> None:
        async with LocalExchange(source=sim()) as ex:
            async with connect(ex.ws_url + "/ws/btcusdt@trade") as ws:
                d = await recv_json(ws)
            # section 1.6 spot @trade: exactly these keys, numbers as strings, ids/times ints
            assert list(d) == ["e", "E", "s", "t", "p", "q", "T", "m", "M"]
            assert d["e"] == "trade" and d["s"] == "BTCUSDT" and d["M"] is True
            assert isinstance(d["p"], str) and isinstance(d["t"], int)
            assert len(str(d["T"])) == 13 and d["E"] >= d["T"]
            url = ex.ws_url + "/stream?streams=ethusdt@trade&timeUnit=MICROSECOND"
            async with connect(url) as ws:
                w = await recv_json(ws)
            assert list(w) == ["stream", "data"] and w["stream"] == "ethusdt@trade"
            assert w["data"]["s"] == "ETHUSDT" and len(str(w["data"]["T"])) == 16

    run(body)


def test_book_ticker_and_agg_trade_payloads() -> None:
    async def body() -> None:
        ex = LocalExchange(source=sim())
        async with ex, connect(ex.ws_url + "/ws/btcusdt@bookTicker/btcusdt@aggTrade") as ws:
            frames = [json.loads(f) for f in await collect(ws, 1.0)]
        books = [f for f in frames if "u" in f]
        aggs = [f for f in frames if f.get("e") == "aggTrade"]
        assert books and aggs
        assert list(books[0]) == ["u", "s", "b", "B", "a", "A"]  # spot: no e, E, T
        assert list(aggs[0]) == ["e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"]
        for a, b in itertools.pairwise(aggs):
            assert b["a"] == a["a"] + 1 and b["f"] == a["l"] + 1  # contiguous ranges

    run(body)


# -- control messages over the socket ------------------------------------------------------


def test_subscribe_then_data_flows_and_set_property_combined_wraps_it() -> None:
    async def body() -> None:
        async with LocalExchange(source=sim()) as ex, connect(ex.ws_url + "/ws") as ws:
            await ws.send('{"method":"SUBSCRIBE","params":["btcusdt@trade","xrpxrp@trade"],"id":1}')
            assert await recv_json(ws) == {"result": None, "id": 1}  # unknown symbol: silent
            d = await recv_json(ws)
            assert d["e"] == "trade" and d["s"] == "BTCUSDT"
            await ws.send('{"method":"SET_PROPERTY","params":["combined",true],"id":2}')
            frames = [json.loads(f) for f in await collect(ws, 0.5)]
            assert {"result": None, "id": 2} in frames
            after = frames[frames.index({"result": None, "id": 2}) + 1 :]
            assert after and all(f["stream"] == "btcusdt@trade" for f in after)
            await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":3}')
            replies = [json.loads(f) for f in await collect(ws, 0.5)]
            assert {"result": ["btcusdt@trade", "xrpxrp@trade"], "id": 3} in replies
            await ws.send('{"method":"SUBSCRIBE","params":["btcusdt@bogus"],"id":4}')
            replies = [json.loads(f) for f in await collect(ws, 0.5)]
            assert {
                "error": {"code": 2, "msg": "Invalid request: invalid stream"},
                "id": 4,
            } in replies

    run(body)


def test_more_than_five_inbound_messages_per_second_closes_1008_too_many_requests() -> None:
    async def body() -> None:
        async with LocalExchange(source=sim()) as ex, connect(ex.ws_url + "/ws") as ws:
            for i in range(6):
                await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
            await drain_until_quiet(ws, 2.0)
            assert ws.close_code == 1008 and ws.close_reason == "Too many requests"

    run(body)


def test_pings_count_towards_the_inbound_limit() -> None:
    async def body() -> None:
        async with (
            LocalExchange(source=sim(), inbound_limit=3) as ex,
            connect(ex.ws_url + "/ws") as ws,
        ):
            for _ in range(4):
                await ws.ping()
            await drain_until_quiet(ws, 2.0)
            assert ws.close_code == 1008

    run(body)


def test_five_messages_per_second_paced_at_250ms_stay_connected() -> None:
    async def body() -> None:
        async with LocalExchange(source=sim()) as ex, connect(ex.ws_url + "/ws") as ws:
            for i in range(8):  # Lean #5583: one per 250 ms is safe
                await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
                assert await recv_json(ws) == {"result": [], "id": i}
                await asyncio.sleep(0.25)
            assert ws.close_code is None

    run(body)


def test_server_pings_and_closes_a_client_that_does_not_pong() -> None:
    async def body() -> None:
        ex = LocalExchange(source=sim(), ping_interval=0.2, pong_timeout=0.4)
        async with ex, connect(ex.ws_url + "/ws", ping_interval=None) as ws:
            await asyncio.sleep(0.6)  # the client answers pings: still open
            assert ws.close_code is None
            ws.transport.pause_reading()  # now it cannot see pings, so it never pongs
            await asyncio.sleep(1.0)
            ws.transport.resume_reading()
            await drain_until_quiet(ws, 2.0)
            assert ws.close_code == 1011  # websockets: keepalive ping timeout

    run(body)


def test_max_connection_age_sends_server_shutdown_then_closes() -> None:
    async def body() -> None:
        ex = LocalExchange(source=sim(rate=5), max_connection_age=0.5, shutdown_grace=0.0)
        async with ex:
            async with connect(ex.ws_url + "/stream?streams=btcusdt@trade") as ws:
                frames = [json.loads(f) for f in await drain_until_quiet(ws, 2.0)]
            shutdown = [f for f in frames if f["stream"] == "!serverShutdown"]
            assert len(shutdown) == 1 and shutdown[0]["data"]["e"] == "serverShutdown"
            assert frames[-1] == shutdown[0] and ws.close_code == 1001
            async with connect(ex.ws_url + "/ws/btcusdt@trade") as ws:  # raw form
                frames = [json.loads(f) for f in await drain_until_quiet(ws, 2.0)]
            assert frames[-1]["e"] == "serverShutdown" and list(frames[-1]) == ["e", "E"]

    run(body)


def test_after_server_shutdown_the_connection_stays_open_for_the_grace_period() -> None:
    """Binance keeps a connection open for a while after ``serverShutdown`` so the client
    can open its replacement; lq used to close it at once (issue 12). Data keeps flowing
    after the notice, then 1001; a client that leaves first is not held."""

    async def body() -> None:
        ex = LocalExchange(source=sim(rate=40), max_connection_age=0.3, shutdown_grace=1.5)
        async with ex:
            async with connect(ex.ws_url + "/stream?streams=btcusdt@trade") as ws:
                frames = [json.loads(f) for f in await drain_until_quiet(ws, 4.0)]
                assert ws.close_code == 1001
            kinds = [f["stream"] for f in frames]
            notice = kinds.index("!serverShutdown")
            assert kinds.count("!serverShutdown") == 1
            assert len(kinds) - notice - 1 >= 5  # trades still delivered during the grace
            async with connect(ex.ws_url + "/ws/btcusdt@trade") as ws:
                async for raw in ws:
                    if json.loads(raw).get("e") == "serverShutdown":
                        break
                await ws.close()  # the client's own close ends it at once
            assert ws.close_code == 1000

    run(body)


# -- faults ---------------------------------------------------------------------------


def test_close_1001_fault() -> None:
    async def body() -> None:
        async with (
            LocalExchange(source=sim()) as ex,
            connect(ex.ws_url + "/ws/btcusdt@trade") as ws,
        ):
            await recv_json(ws)
            ex.inject("close_1001")
            await drain_until_quiet(ws)
            assert ws.close_code == 1001 and ws.close_reason == "going away"

    run(body)


def test_drop_tcp_fault_gives_1006_without_close_frame() -> None:
    async def body() -> None:
        async with (
            LocalExchange(source=sim()) as ex,
            connect(ex.ws_url + "/ws/btcusdt@trade") as ws,
        ):
            await recv_json(ws)
            ex.inject("drop_tcp")
            await drain_until_quiet(ws)
            assert ws.close_code == 1006 and ws.protocol.close_rcvd is None

    run(body)


def test_stall_sends_no_data_but_answers_pings_and_rest_keeps_the_trades() -> None:
    async def body() -> None:
        async with (
            LocalExchange(source=sim()) as ex,
            connect(ex.ws_url + "/ws/btcusdt@trade") as ws,
        ):
            before = trade_ids(await collect(ws, 0.3))
            ex.inject("stall", seconds=1.0)
            stalled_ms = time.time() * 1000
            t0 = time.monotonic()
            pong = await ws.ping()
            await asyncio.wait_for(pong, 0.5)  # answered during the stall
            during = await collect(ws, 0.8 - (time.monotonic() - t0))
            after = trade_ids(await collect(ws, 1.0))
            # only frames already on their way when the stall began (a frame leaves at or
            # after its event time E, so E dates it): none made during the stall
            late = [json.loads(f)["E"] for f in during if json.loads(f)["E"] > stalled_ms + 5]
            assert before and not late and after, (late, stalled_ms)
            before += trade_ids(during)
            missing = range(before[-1] + 1, after[0])
            assert len(missing) > 0  # the stall lost frames on this connection
            async with httpx.AsyncClient() as http:
                r = await http.get(
                    ex.rest_url + "/api/v3/historicalTrades",
                    params={"symbol": "BTCUSDT", "fromId": missing[0], "limit": len(missing)},
                )
            assert [t["id"] for t in r.json()] == list(missing)

    run(body)


def test_duplicate_fault_sends_frames_twice() -> None:
    async def body() -> None:
        async with (
            LocalExchange(source=sim()) as ex,
            connect(ex.ws_url + "/ws/btcusdt@trade") as ws,
        ):
            first = await asyncio.wait_for(ws.recv(), 5)
            ex.inject("duplicate", count=5)
            ids = trade_ids([first, *await collect(ws, 1.0)])
            assert len(ids) - len(set(ids)) == 5
            assert sorted(set(ids)) == list(range(ids[0], ids[-1] + 1))  # nothing lost

    run(body)


def test_skip_ids_fault_keeps_trades_off_the_socket_but_rest_has_them() -> None:
    async def body() -> None:
        async with LocalExchange(source=sim()) as ex:
            async with connect(ex.ws_url + "/ws/btcusdt@trade/ethusdt@trade") as ws:
                first = await asyncio.wait_for(ws.recv(), 5)
                ex.inject("skip_ids", symbol="BTCUSDT", count=3)
                frames = [first, *await collect(ws, 1.0)]
            btc = [json.loads(f)["t"] for f in frames if '"BTCUSDT"' in f]
            eth = [json.loads(f)["t"] for f in frames if '"ETHUSDT"' in f]
            holes = sorted(set(range(btc[0], btc[-1] + 1)) - set(btc))
            assert len(holes) == 3 and holes == list(range(holes[0], holes[0] + 3))
            assert eth == list(range(eth[0], eth[-1] + 1))  # other symbol untouched
            truth = {t.trade_id for t in ex.trades("BTCUSDT")}
            assert set(holes) <= truth
            async with httpx.AsyncClient() as http:
                r = await http.get(
                    ex.rest_url + "/api/v3/historicalTrades",
                    params={"symbol": "BTCUSDT", "fromId": holes[0], "limit": 3},
                )
                agg = await http.get(
                    ex.rest_url + "/api/v3/aggTrades",
                    params={"symbol": "BTCUSDT", "startTime": 0, "limit": 1000},
                )
            assert [t["id"] for t in r.json()] == holes
            covered = {i for a in agg.json() for i in range(a["f"], a["l"] + 1)}
            assert set(holes) <= covered

    run(body)


def test_malformed_fault_adds_garbage_and_delivers_every_real_trade() -> None:
    async def body() -> None:
        async with (
            LocalExchange(source=sim()) as ex,
            connect(ex.ws_url + "/stream?streams=btcusdt@trade") as ws,
        ):
            first = await asyncio.wait_for(ws.recv(), 5)
            ex.inject("malformed", count=3)
            frames = [first, *await collect(ws, 1.0)]
        bad = 0
        for f in frames:
            try:
                d = json.loads(f)["data"]
                assert isinstance(d["t"], int) and isinstance(d["T"], int)
            except (ValueError, KeyError, TypeError, AssertionError):
                bad += 1
        assert bad == 3
        ids = trade_ids(frames)
        assert ids == list(range(ids[0], ids[0] + len(ids)))

    run(body)


def test_out_of_order_fault_swaps_frames_across_streams_and_loses_none() -> None:
    async def body() -> None:
        async with LocalExchange(source=sim(rate=400)) as ex:
            url = ex.ws_url + "/ws/btcusdt@trade/ethusdt@trade"
            async with connect(url) as ws:
                await recv_json(ws)
                frames = [json.loads(f) for f in await collect(ws, 0.3)]
                ex.inject("out_of_order", count=20)
                frames += [json.loads(f) for f in await collect(ws, 1.0)]
        seq = [(f["T"], f["s"], f["t"]) for f in frames]
        inversions = sum(1 for a, b in itertools.pairwise(seq) if b[0] < a[0])
        assert inversions >= 1
        for sym in ("BTCUSDT", "ETHUSDT"):
            ids = [t for _, s, t in seq if s == sym]
            assert ids == list(range(ids[0], ids[0] + len(ids)))  # per stream order kept

    run(body)


def test_one_percent_malformed_rate_keeps_every_real_trade(recordings: Path) -> None:
    async def body() -> None:
        src = ReplaySource(recordings / ETH_FILE, speed=None)
        ex = LocalExchange(source=src, faults=Faults(malformed_rate=0.01, seed=3))
        async with ex, connect(ex.ws_url + "/ws/ethusdt@trade", max_queue=None) as ws:
            frames = await drain_until_quiet(ws, 1.5)
        ids = trade_ids(frames)
        assert ids == [t.trade_id for t in ex.trades("ETHUSDT")] and len(ids) == 6106
        garbage = len(frames) - len(ids)
        assert 30 <= garbage <= 95  # Binomial(6106, 0.01): mean 61, sd 7.8 -> ±4 sd

    run(body)


# -- replay and history ---------------------------------------------------------------------


def test_replay_of_the_real_recordings_over_the_socket_is_exact(recordings: Path) -> None:
    async def body() -> None:
        src = ReplaySource([recordings / BTC_FILE, recordings / ETH_FILE], speed=None)
        ex = LocalExchange(source=src)
        url = ex.ws_url
        async with ex:
            url = ex.ws_url + "/stream?streams=btcusdt@trade/ethusdt@trade"
            async with connect(url, max_queue=None) as ws:
                frames = [json.loads(f) for f in await drain_until_quiet(ws, 1.5)]
        got: dict[str, list[tuple[int, str]]] = {"btcusdt@trade": [], "ethusdt@trade": []}
        for f in frames:
            got[f["stream"]].append((f["data"]["t"], f["data"]["p"]))
        for stream, name in (("btcusdt@trade", BTC_FILE), ("ethusdt@trade", ETH_FILE)):
            ref = []  # independent reference: the stdlib json module over the file
            with gzip.open(recordings / name, "rt") as fh:
                for line in fh:
                    fr = json.loads(line.split(" ", 1)[1])
                    if fr.get("stream") == stream:
                        ref.append((fr["data"]["t"], fr["data"]["p"]))
            assert got[stream] == ref
        assert len(got["btcusdt@trade"]) == 9757 and len(got["ethusdt@trade"]) == 6106

    run(body, timeout=60)


def test_rest_history_equals_what_the_socket_sent() -> None:
    async def body() -> None:
        src = sim(speed=None, start_time_us=T0, duration=5.0)
        ex = LocalExchange(source=src)
        async with ex:
            async with connect(
                ex.ws_url + "/ws/btcusdt@trade/btcusdt@aggTrade", max_queue=None
            ) as ws:
                frames = [json.loads(f) for f in await drain_until_quiet(ws, 1.0)]
            trades = [f for f in frames if f["e"] == "trade"]
            aggs = [f for f in frames if f["e"] == "aggTrade"]
            async with httpx.AsyncClient() as http:
                r = await http.get(
                    ex.rest_url + "/api/v3/historicalTrades",
                    params={"symbol": "BTCUSDT", "fromId": trades[0]["t"], "limit": 1000},
                )
                a = await http.get(
                    ex.rest_url + "/api/v3/aggTrades",
                    params={"symbol": "BTCUSDT", "fromId": aggs[0]["a"], "limit": 1000},
                )
        assert 0 < len(trades) < 1000 and ex.source_done.is_set()
        assert [
            (t["id"], t["price"], t["qty"], t["time"], t["isBuyerMaker"]) for t in r.json()
        ] == [(t["t"], t["p"], t["q"], t["T"], t["m"]) for t in trades]
        assert [(x["a"], x["p"], x["q"], x["f"], x["l"], x["T"], x["m"]) for x in a.json()] == [
            (x["a"], x["p"], x["q"], x["f"], x["l"], x["T"], x["m"]) for x in aggs
        ]
        assert [t.trade_id for t in ex.trades("BTCUSDT")] == [t["t"] for t in trades]

    run(body)


def test_closed_kline_on_the_socket_equals_rest_klines() -> None:
    async def body() -> None:
        ex = LocalExchange(source=sim(rate=50))
        async with ex, connect(ex.ws_url + "/ws/btcusdt@kline_1s") as ws:
            frames = [json.loads(f) for f in await collect(ws, 3.5)]
            closed = [f["k"] for f in frames if f["k"]["x"]]
            assert closed and all(f["e"] == "kline" and f["k"]["i"] == "1s" for f in frames)
            k = closed[0]
            assert k["T"] == k["t"] + 999  # close = open + interval - 1 ms
            async with httpx.AsyncClient() as http:
                r = await http.get(
                    ex.rest_url + "/api/v3/klines",
                    params={"symbol": "BTCUSDT", "interval": "1s", "startTime": k["t"], "limit": 1},
                )
        row = r.json()[0]
        assert row == [k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"],
                       k["V"], k["Q"], "0"]  # fmt: skip
        truth = [t for t in ex.trades("BTCUSDT") if k["t"] * 1000 <= t.ts < (k["T"] + 1) * 1000]
        assert k["n"] == len(truth) and k["f"] == truth[0].trade_id and k["L"] == truth[-1].trade_id
        assert float(k["h"]) == max(t.price for t in truth)
        assert float(k["v"]) == pytest.approx(sum(t.qty for t in truth), rel=1e-12)

    run(body)


# -- REST limits and errors ----------------------------------------------------------------


def test_rest_weights_429_retry_after_and_418_ban() -> None:
    async def body() -> None:
        ex = LocalExchange(source=sim(), rest_weight_limit=10)
        async with ex, httpx.AsyncClient() as http:
            url = ex.rest_url + "/api/v3/aggTrades"
            r1 = await http.get(url, params={"symbol": "BTCUSDT"})
            r2 = await http.get(url, params={"symbol": "BTCUSDT"})
            assert (
                r1.headers["X-MBX-USED-WEIGHT-1M"] == "4"
                and r2.headers["X-MBX-USED-WEIGHT-1M"] == "8"
            )
            r3 = await http.get(url, params={"symbol": "BTCUSDT"})  # 12 > 10
            assert r3.status_code == 429 and r3.json()["code"] == -1003
            assert 1 <= int(r3.headers["Retry-After"]) <= 60
            codes = [
                (await http.get(url, params={"symbol": "BTCUSDT"})).status_code for _ in range(5)
            ]
            assert codes == [429, 429, 429, 429, 418]  # ignoring Retry-After gets a ban
            r = await http.get(ex.rest_url + "/api/v3/ping")
            assert r.status_code == 418 and int(r.headers["Retry-After"]) > 60

    run(body)


def test_rest_429_fault_then_normal_service() -> None:
    async def body() -> None:
        async with LocalExchange(source=sim()) as ex, httpx.AsyncClient() as http:
            ex.inject("rest_429", count=2, retry_after=3)
            url = ex.rest_url + "/api/v3/time"
            got = [await http.get(url) for _ in range(3)]
            assert [r.status_code for r in got] == [429, 429, 200]
            assert got[0].headers["Retry-After"] == "3"
            assert abs(got[2].json()["serverTime"] - time.time() * 1000) < 5000

    run(body)


def test_rest_errors_are_binance_codes() -> None:
    async def body() -> None:
        async with (
            LocalExchange(source=sim()) as ex,
            httpx.AsyncClient(base_url=ex.rest_url) as http,
        ):
            r = await http.get("/api/v3/aggTrades")
            assert r.status_code == 400 and r.json()["code"] == -1102
            r = await http.get("/api/v3/aggTrades", params={"symbol": "NOPEUSDT"})
            assert r.status_code == 400 and r.json() == {"code": -1121, "msg": "Invalid symbol."}
            r = await http.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "2m"})
            assert r.json() == {"code": -1120, "msg": "Invalid interval."}
            r = await http.get("/api/v3/aggTrades", params={"symbol": "BTCUSDT", "limit": "ten"})
            assert r.json()["code"] == -1100
            r = await http.get("/api/v3/exchangeInfo")
            info = {s["symbol"]: s for s in r.json()["symbols"]}
            assert set(info) == {"BTCUSDT", "ETHUSDT"}
            filters = {f["filterType"]: f for f in info["BTCUSDT"]["filters"]}
            assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
            assert filters["LOT_SIZE"]["stepSize"] == "0.00001000"
            assert (await http.get("/api/v3/ping")).json() == {}

    run(body)
