"""Real third-party Binance clients against the local exchange over loopback (issue 12):
ccxt.pro (async ``watch_trades``, then ``fetch_ticker``/``fetch_trades``) and python-binance
(``AsyncClient`` REST and ``BinanceSocketManager.trade_socket``), their URLs pointed at the
local exchange. Every trade they report is checked against the exchange's truth."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from lq.exchange import LocalExchange, SimulatorSource

from ..conftest import run


def _exchange(duration: float | None = None) -> LocalExchange:
    src = SimulatorSource(symbols=["BTCUSDT", "ETHUSDT"], seed=4, rate=25.0, duration=duration)
    return LocalExchange(source=src)


def test_ccxt_pro_watch_trades_and_rest_match_the_exchange() -> None:
    ccxtpro = pytest.importorskip("ccxt.pro")

    async def main() -> None:
        ex = _exchange()
        await ex.start()
        c = ccxtpro.binance({"options": {"fetchMarkets": {"types": ["spot"]}}})
        for k, v in list(c.urls["api"].items()):  # ccxt's documented URL override
            if isinstance(v, str) and v.startswith("https://api.binance.com/api/"):
                c.urls["api"][k] = v.replace("https://api.binance.com", ex.rest_url)
        c.urls["api"]["ws"]["spot"] = ex.ws_url + "/ws"  # ccxt opens /ws/<index>, then SUBSCRIBEs
        try:
            got: list[dict[str, Any]] = []
            deadline = time.monotonic() + 60
            while len(got) < 40 and time.monotonic() < deadline:
                got.extend(await c.watch_trades("BTC/USDT"))
            ticker = await c.fetch_ticker("BTC/USDT")
            recent = await c.fetch_trades("BTC/USDT", limit=5)
        finally:
            await c.close()
            await ex.stop()
        truth = {t.trade_id: t for t in ex.trades("BTCUSDT")}
        ids = [int(t["id"]) for t in got]
        assert len(ids) >= 40 and ids == sorted(set(ids))
        assert ids == list(range(ids[0], ids[0] + len(ids)))  # none lost on the way
        for t in got:
            want = truth[int(t["id"])]
            assert t["price"] == want.price and t["amount"] == want.qty
            assert t["timestamp"] == want.ts // 1000
            assert t["side"] == ("sell" if want.is_buyer_maker else "buy")
        assert ticker["symbol"] == "BTC/USDT" and ticker["last"] in {
            t.price for t in truth.values()
        }
        assert all(int(r["info"]["a"]) >= 1 for r in recent) and len(recent) == 5
        assert "/api/v3/ticker/24hr?symbol=BTCUSDT" in ex.rest.targets

    run(main(), timeout=180)


def test_python_binance_socket_manager_and_rest_client_match_the_exchange() -> None:
    binance = pytest.importorskip("binance")
    from binance.exceptions import BinanceAPIException

    async def main() -> None:
        ex = _exchange(duration=4.0)
        await ex.start()

        class LocalClient(binance.AsyncClient):  # type: ignore[misc,name-defined]
            API_URL = ex.rest_url + "/api"

        client = await LocalClient.create()
        try:
            bm = binance.BinanceSocketManager(client)
            bm.STREAM_URL = ex.ws_url + "/"
            got: list[dict[str, Any]] = []
            async with bm.trade_socket("BTCUSDT") as stream:
                deadline = time.monotonic() + 60
                while len(got) < 30 and time.monotonic() < deadline:
                    msg = await asyncio.wait_for(stream.recv(), 30)
                    if msg.get("e") == "trade":
                        got.append(msg)
            await asyncio.wait_for(ex.source_done.wait(), 60)
            truth = ex.trades("BTCUSDT")
            hist = await client.get_historical_trades(symbol="BTCUSDT", fromId=truth[0].trade_id)
            aggs = await client.get_aggregate_trades(symbol="BTCUSDT", fromId=0)
            ticker = await client.get_ticker(symbol="BTCUSDT")
            with pytest.raises(BinanceAPIException) as err:  # JSON, not "Invalid JSON"
                await client.get_order_book(symbol="BTCUSDT")
        finally:
            await client.close_connection()
            await ex.stop()
        by_id = {t.trade_id: t for t in truth}
        ids = [m["t"] for m in got]
        assert ids == list(range(ids[0], ids[0] + len(ids)))
        for m in got:
            assert float(m["p"]) == by_id[m["t"]].price and m["s"] == "BTCUSDT"
        assert [h["id"] for h in hist] == [t.trade_id for t in truth][:500]
        assert [float(h["price"]) for h in hist] == [t.price for t in truth][:500]
        covered = [i for a in aggs for i in range(a["f"], a["l"] + 1)]
        assert covered and covered == [t.trade_id for t in truth][: len(covered)]
        assert float(ticker["lastPrice"]) == truth[-1].price
        assert ticker["count"] == len(truth) and ticker["lastId"] == truth[-1].trade_id
        assert err.value.status_code == 404 and "depth" in err.value.message

    run(main(), timeout=180)


def test_ws_any_segment_then_subscribe_json_errors_and_tickers() -> None:
    """What the third-party clients needed, checked directly: ``/ws/<anything>`` opens a
    connection without streams (SUBSCRIBE adds them), unknown paths and ``depth`` are JSON
    ``{"code","msg"}`` 404s, ``ticker/price`` and ``ticker/bookTicker`` answer."""

    async def main() -> None:
        ex = _exchange()
        await ex.start()
        try:
            async with connect(ex.ws_url + "/ws/0") as ws:
                await ws.send(
                    json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@trade"], "id": 1})
                )
                first = json.loads(await asyncio.wait_for(ws.recv(), 30))
                assert first == {"result": None, "id": 1}
                trade = json.loads(await asyncio.wait_for(ws.recv(), 30))
                assert trade["e"] == "trade" and trade["s"] == "ETHUSDT"
            async with httpx.AsyncClient(base_url=ex.rest_url, trust_env=False) as h:
                for path in ("/api/v3/nope", "/api/v3/depth?symbol=BTCUSDT"):
                    r = await h.get(path)
                    assert r.status_code == 404
                    assert r.headers["content-type"].startswith("application/json")
                    assert set(r.json()) == {"code", "msg"}
                price = (await h.get("/api/v3/ticker/price", params={"symbol": "BTCUSDT"})).json()
                book = (await h.get("/api/v3/ticker/bookTicker?symbol=ETHUSDT")).json()
                every = (await h.get("/api/v3/ticker/price")).json()
                bad = await h.get("/api/v3/ticker/24hr?symbol=NOPE")
            assert set(price) == {"symbol", "price"} and float(price["price"]) > 0
            assert float(book["askPrice"]) > float(book["bidPrice"]) > 0
            assert {p["symbol"] for p in every} == {"BTCUSDT", "ETHUSDT"}
            assert bad.status_code == 400 and bad.json()["code"] == -1121
        finally:
            await ex.stop()

    run(main(), timeout=120)
