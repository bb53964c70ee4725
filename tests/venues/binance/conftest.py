"""A small Binance-speaking server on a real loopback socket, for transport tests.

It serves combined streams on ``/stream?streams=...`` and REST ``/api/v3/historicalTrades`` and
``/api/v3/aggTrades`` on the same port, keeps every trade it produced (the truth), and can
misbehave on command: close with any code, drop TCP without a close frame, stall, send
``serverShutdown``, duplicate frames, skip ids on the socket (REST still has them), send
malformed frames, and answer REST with 429 + ``Retry-After``.

This is test scaffolding only; :mod:`lq.exchange` is the full local exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

RECORDINGS = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "binance"
BASE_MS = 1_723_161_255_000  # 2024-08-08 23:54:15 UTC, ms


def recording(name: str) -> Path:
    path = RECORDINGS / name
    if not path.exists():
        pytest.skip(f"real recording {path} not found (shared/data/binance beside the repo)")
    return path


def run(coro: Awaitable[Any], timeout: float = 20.0) -> Any:
    """Run a test coroutine on a fresh loop with a hard timeout (tests may use asyncio.run)."""

    async def main() -> Any:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(main())


async def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or cond}")
        await asyncio.sleep(0.01)


class FakeBinance:
    """Trades per symbol with ids +1; every trade is kept for REST and for assertions."""

    def __init__(self, *, symbols: tuple[str, ...] = ("BTCUSDT",), first_id: int = 1000) -> None:
        self.symbols = symbols
        self.history: dict[str, list[dict[str, Any]]] = {s: [] for s in symbols}
        self.next_id = dict.fromkeys(symbols, first_id)
        self.conns: set[ServerConnection] = set()
        self.stalled: set[ServerConnection] = set()
        self.connections_opened = 0
        self.skip_next = 0
        self.duplicate_next = 0
        self.rest_429 = 0  # answer this many REST calls with 429
        self.retry_after = "3"
        self.rest_calls: list[str] = []
        self.reject_handshakes = False
        self.url = ""
        self._server: Any = None
        self.agg_invalid_row = False
        self.max_window_ms: int | None = None  # wider startTime..endTime -> -1127
        self.rest_override: dict[int, dict[str, Any]] = {}  # REST row id -> fields to replace

    # -- server -------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeBinance:
        self._server = await serve(
            self._handler,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            ping_interval=None,
            compression=None,
        )
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}"
        self.rest_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path.startswith("/api/v3/"):
            return self._rest(parts.path[len("/api/v3/") :], parse_qs(parts.query))
        if self.reject_handshakes:
            return conn.respond(503, "unavailable\n")
        if parts.path != "/stream":
            return conn.respond(400, "Invalid request path\n")
        return None

    def _rest(self, name: str, q: dict[str, list[str]]) -> Response:
        self.rest_calls.append(name)
        if self.rest_429 > 0:
            self.rest_429 -= 1
            return _json(
                429,
                {"code": -1003, "msg": "Too much request weight used"},
                {"Retry-After": self.retry_after, "X-MBX-USED-WEIGHT-1M": "6001"},
            )
        symbol = q.get("symbol", [""])[0]
        if symbol not in self.history:
            return _json(400, {"code": -1121, "msg": "Invalid symbol."})
        limit = int(q.get("limit", ["500"])[0])
        from_id = int(q.get("fromId", ["0"])[0])
        rows = [t for t in self.history[symbol] if t["t"] >= from_id]
        if "startTime" in q or "endTime" in q:
            lo = int(q.get("startTime", ["0"])[0])
            hi = int(q.get("endTime", [str(2**62)])[0])
            if self.max_window_ms is not None and hi - lo > self.max_window_ms:
                return _json(
                    400, {"code": -1127, "msg": "More than 1 hours between startTime and endTime."}
                )
            rows = [t for t in rows if lo <= t["T"] <= hi]
        rows = rows[:limit]
        if name == "historicalTrades":
            body = [
                {
                    "id": t["t"],
                    "price": t["p"],
                    "qty": t["q"],
                    "quoteQty": "0",
                    "time": t["T"],
                    "isBuyerMaker": t["m"],
                    "isBestMatch": True,
                }
                for t in rows
            ]
            for row in body:
                row.update(self.rest_override.get(row["id"], {}))
            return _json(200, body, {"X-MBX-USED-WEIGHT-1M": "25"})
        if name == "aggTrades":  # one aggregate per trade: a = f = l = t
            body = [
                {
                    "a": t["t"],
                    "p": t["p"],
                    "q": t["q"],
                    "f": t["t"],
                    "l": t["t"],
                    "T": t["T"],
                    "m": t["m"],
                    "M": True,
                }
                for t in rows
            ]
            if self.agg_invalid_row:
                body.insert(
                    0,
                    {
                        "a": from_id,
                        "p": "0",
                        "q": "0",
                        "f": -1,
                        "l": -1,
                        "T": BASE_MS,
                        "m": True,
                        "M": True,
                    },
                )
            return _json(200, body, {"X-MBX-USED-WEIGHT-1M": "4"})
        return _json(400, {"code": -1100, "msg": f"unknown endpoint {name}"})

    async def _handler(self, conn: ServerConnection) -> None:
        self.connections_opened += 1
        self.conns.add(conn)
        try:
            await conn.wait_closed()
        finally:
            self.conns.discard(conn)
            self.stalled.discard(conn)

    # -- market -------------------------------------------------------------------------------

    def trade(self, symbol: str = "BTCUSDT") -> dict[str, Any]:
        i = self.next_id[symbol]
        self.next_id[symbol] = i + 1
        n = len(self.history[symbol])
        t = {
            "e": "trade",
            "E": BASE_MS + n + 1,
            "s": symbol,
            "t": i,
            "p": f"{61837.63 + (n % 17) * 0.01:.8f}",
            "q": f"{0.001 * (1 + n % 5):.8f}",
            "T": BASE_MS + n,
            "m": n % 2 == 0,
            "M": True,
        }
        self.history[symbol].append(t)
        return t

    async def publish(self, symbol: str = "BTCUSDT") -> int:
        """Make one trade and send it to every (non-stalled) connection; returns its id."""
        t = self.trade(symbol)
        if self.skip_next:
            self.skip_next -= 1
            return t["t"]
        frame = json.dumps({"stream": f"{symbol.lower()}@trade", "data": t})
        copies = 2 if self.duplicate_next else 1
        self.duplicate_next = max(0, self.duplicate_next - 1)
        await self.broadcast(frame, copies=copies)
        return t["t"]

    async def broadcast(self, frame: str, copies: int = 1) -> None:
        for c in list(self.conns):
            if c in self.stalled:
                continue
            for _ in range(copies):
                with contextlib.suppress(Exception):
                    await c.send(frame)

    def ids(self, symbol: str = "BTCUSDT") -> list[int]:
        return [t["t"] for t in self.history[symbol]]

    # -- faults -------------------------------------------------------------------------------

    async def close_all(self, code: int, reason: str = "") -> None:
        for c in list(self.conns):
            with contextlib.suppress(Exception):
                await c.close(code, reason)

    def drop_tcp(self) -> None:
        for c in list(self.conns):
            c.transport.abort()

    def stall(self) -> None:
        self.stalled |= self.conns

    async def server_shutdown(self) -> None:
        await self.broadcast(
            json.dumps({"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": BASE_MS}})
        )


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    data = json.dumps(body).encode()
    h = Headers({"Content-Type": "application/json", "Content-Length": str(len(data))})
    for k, v in (headers or {}).items():
        h[k] = v
    reason = {200: "OK", 400: "Bad Request", 429: "Too Many Requests", 418: "I'm a teapot"}
    return Response(status, reason.get(status, "Error"), h, data)


async def pace(fake: FakeBinance, n: int, *, every: float = 0.002, symbol: str = "BTCUSDT") -> None:
    for _ in range(n):
        await fake.publish(symbol)
        await asyncio.sleep(every)
