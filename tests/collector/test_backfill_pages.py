"""A REST backfill page serves every open hole it covers, and checks the stored trades it
repeats (real local exchange, real loopback sockets, real SQLite).

Binance's client asked one page of 1,000 trades per hole, 0.25 s apart, and kept only that
hole's ids: a feed that skips often (the QA run: 5 % of trades at 100/s) grew its open holes
without bound. And a page repeating a stored id with another price was dropped as a duplicate.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time

from lq.collector import Collector
from lq.exchange import LocalExchange, SimulatorSource
from lq.exchange.faults import Faults


def test_one_page_fills_every_hole_it_covers_and_the_feed_keeps_up(tmp_path):
    db = tmp_path / "pages.sqlite"

    async def go() -> tuple[list[int], list[int], int, int]:
        ex = LocalExchange(
            source=SimulatorSource(symbols=("BTCUSDT",), seed=11, rate=150.0, duration=8.0),
            faults=Faults(skip_rate=0.08, seed=2),
            port=0,
        )
        await ex.start()
        col = Collector(
            db=db, source="live", symbols=["BTCUSDT"], ws_url=ex.ws_url, rest_url=ex.rest_url,
            exchange_label="local", client_options={"compression": None, "backfill_delay": 0.25},
        )  # fmt: skip
        col.start()
        try:
            await col.wait_started(30)
            deadline = time.monotonic() + 60
            while not ex.source_done.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            truth = [t.trade_id for t in ex.trades("BTCUSDT")]

            def open_holes() -> int:
                c = sqlite3.connect(db)
                try:
                    return c.execute(
                        "SELECT count(*) FROM gaps WHERE status != 'filled'"
                    ).fetchone()[0]
                finally:
                    c.close()

            def contiguous() -> bool:
                c = sqlite3.connect(db)
                try:
                    n, lo, hi = c.execute(
                        "SELECT count(*), min(trade_id), max(trade_id) FROM ticks"
                    ).fetchone()
                finally:
                    c.close()
                return bool(n) and hi - lo + 1 == n

            # every hole a later trade revealed is written (a flush), fetched and closed
            while time.monotonic() < deadline and not (open_holes() == 0 and contiguous()):
                await asyncio.sleep(0.2)
            found = col.client.status.gaps_found
            calls = ex.rest.calls.get("/api/v3/historicalTrades", 0)
        finally:
            await col.stop()
            await ex.stop()
        c = sqlite3.connect(db)
        stored = [i for (i,) in c.execute("SELECT trade_id FROM ticks ORDER BY 1")]
        c.close()
        return stored, truth, found, calls

    stored, truth, found, calls = asyncio.run(go())
    # every id once, up to the last one stored (a skip after the last trade sent shows no hole)
    assert stored == truth[truth.index(stored[0]) : truth.index(stored[-1]) + 1]
    assert found >= 30, found  # the skips made many holes...
    assert calls < found / 2, (calls, found)  # ...and pages covering several filled them


def test_a_backfill_page_repeating_a_stored_id_with_another_price_is_a_dead_letter(tmp_path):
    # a REST page holding id 1004 twice (two prices): the second was dropped as a duplicate
    import json

    from websockets.asyncio.server import serve
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    t0 = 1_723_161_255_000

    def trade(i: int, price: str = "61837.63") -> dict:
        return {"e": "trade", "E": t0 + i, "s": "BTCUSDT", "t": i, "p": price, "q": "0.001",
                "T": t0 + i, "m": True, "M": True}  # fmt: skip

    def row(i: int, price: float = 61837.63) -> dict:
        return {"id": i, "price": str(price), "qty": "0.001", "quoteQty": "61.8", "time": t0 + i,
                "isBuyerMaker": True, "isBestMatch": True}  # fmt: skip

    page = [row(1004), row(1004, 66.0), row(1005), row(1006)]

    async def handler(conn):  # type: ignore[no-untyped-def]
        for i in (1000, 1001, 1002, 1003, 1006, 1007):
            await conn.send(json.dumps({"stream": "btcusdt@trade", "data": trade(i)}))
        await conn.wait_closed()

    def http_reply(conn, request):  # type: ignore[no-untyped-def]
        if request.path.startswith("/api/v3/historicalTrades"):
            body = json.dumps(page).encode()
            return Response(200, "OK", Headers({"Content-Type": "application/json"}), body)
        if not request.path.startswith("/stream"):
            return Response(404, "Not Found", Headers({"Content-Type": "application/json"}),
                            b'{"code":-1,"msg":"no"}')  # fmt: skip
        return None

    async def main() -> Collector:
        server = await serve(handler, "127.0.0.1", 0, process_request=http_reply,
                             ping_interval=None, compression=None)  # fmt: skip
        port = server.sockets[0].getsockname()[1]
        col = Collector(
            db=tmp_path / "page.sqlite", source="live", symbols=["BTCUSDT"], channels=["trade"],
            ws_url=f"ws://127.0.0.1:{port}", rest_url=f"http://127.0.0.1:{port}",
            exchange_label="hx", client_options={"compression": None, "backfill_delay": 0.0},
        )  # fmt: skip
        col.start()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and col.stats.dead_letters < 1:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
        finally:
            await col.stop()
            server.close()
        return col

    col = asyncio.run(main())
    c = sqlite3.connect(tmp_path / "page.sqlite")
    stored = c.execute("SELECT trade_id, price FROM ticks ORDER BY 1").fetchall()
    dead = [r for (r,) in c.execute("SELECT reason FROM dead_letters")]
    c.close()
    assert [i for i, _ in stored] == list(range(1000, 1008))
    assert dict(stored)[1004] == 61837.63
    assert len(dead) == 1 and "trade 1004 conflicts" in dead[0] and "66.0" in dead[0], dead
    assert col.duplicates == 0  # the conflict is a dead letter, not also a duplicate
