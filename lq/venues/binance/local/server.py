"""The local Binance-compatible exchange: WebSocket streams and REST on one host:port.

``LocalExchange`` owns a data source (:class:`~lq.exchange.ReplaySource` or
:class:`~lq.exchange.SimulatorSource`), the market record (:class:`~lq.exchange.market.Market`)
and a ``websockets`` server. Plain HTTP ``GET /api/v3/...`` requests are answered from
``process_request`` (see :mod:`lq.venues.binance.local.rest`); other paths are WebSocket endpoints
(see :mod:`lq.venues.binance.local.protocol`). This module only moves bytes and keeps time.

Keepalive is websockets' own: a ping every ``ping_interval`` seconds, and a close (1011) when
no pong arrives within ``pong_timeout``. Pings are answered by the protocol layer even during
a ``stall`` fault. Every inbound frame (ping, pong, text) counts towards ``inbound_limit`` per
rolling second; one more closes the connection with 1008 ``Too many requests``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import random
import time
from collections import deque
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response

from lq.errors import ValidationError
from lq.exchange.faults import FAULT_KINDS, Faults, garbage_frame
from lq.exchange.market import (
    DepthIn,
    DepthSnapIn,
    Market,
    OutFrame,
    QuoteIn,
    TradeIn,
    server_shutdown_frame,
)
from lq.exchange.source import Source, real_time_anchor
from lq.exchange.wsframe import send_batch
from lq.feeds.events import AggTrade, Trade
from lq.venues.binance.local.protocol import (
    INVALID_PATH,
    ConnectionSpec,
    InboundLimiter,
    Session,
    handle_control,
    parse_path,
    split_stream,
)
from lq.venues.binance.local.rest import RestApi

__all__ = ["LocalExchange"]

log = logging.getLogger("lq.exchange")

_COUNTED = frozenset({Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.PONG})
_HIGH_WATER = 20_000  # frames queued for one client before a full-speed source waits


class _Connection(ServerConnection):
    """websockets' server connection, counting inbound frames against the limit."""

    lq_limiter: InboundLimiter | None = None
    lq_spec: ConnectionSpec | None = None
    lq_over_limit: bool = False
    lq_close_task: asyncio.Task[None] | None = None

    def process_event(self, event: Any) -> None:
        if (
            self.request is not None
            and isinstance(event, Frame)
            and event.opcode in _COUNTED
            and self.lq_limiter is not None
            and not self.lq_over_limit
            and not self.lq_limiter.hit(time.monotonic())
        ):
            self.lq_over_limit = True
            log.info("connection %s: inbound limit exceeded, closing 1008", self.id)
            self.lq_close_task = self.loop.create_task(self.close(1008, "Too many requests"))
        super().process_event(event)


class _Client:
    """Per-connection state: subscriptions, outbox, active faults."""

    __slots__ = (
        "always_faulty", "dup", "faulty", "frames", "garbage_i", "held", "malformed", "ooo",
        "outbox", "rng", "session", "stall_until", "tasks", "unit", "wake", "ws",
    )  # fmt: skip

    def __init__(self, ws: _Connection, spec: ConnectionSpec, seed: int) -> None:
        self.ws = ws
        self.session = Session(streams=dict.fromkeys(spec.streams), combined=spec.combined)
        self.unit = spec.time_unit
        self.outbox: deque[bytes] = deque()
        self.wake = asyncio.Event()
        self.stall_until = 0.0
        self.dup = 0
        self.malformed = 0
        self.ooo = 0
        self.garbage_i = 0
        self.held: tuple[str, bytes] | None = None
        self.faulty = False
        self.always_faulty = False  # steady fault rates: every frame takes the slow path
        self.rng = random.Random(seed)
        self.frames = 0
        self.tasks: list[asyncio.Task[Any]] = []

    def wrap(self, stream: str, payload: bytes) -> bytes:
        if self.session.combined:
            return b'{"stream":"' + stream.encode() + b'","data":' + payload + b"}"
        return payload

    def enqueue(self, frame: OutFrame, faults: Faults) -> None:
        data = self.wrap(frame.stream, frame.payload(self.unit))
        if not self.faulty:
            self.outbox.append(data)
            if len(self.outbox) == 1:
                self.wake.set()
            return
        if self.stall_until:
            if time.monotonic() < self.stall_until:
                return
            self.stall_until = 0.0
        rng = self.rng
        if self.malformed > 0 or (faults.malformed_rate and rng.random() < faults.malformed_rate):
            self.malformed = max(0, self.malformed - 1)
            self.outbox.append(
                garbage_frame(self.garbage_i, stream=frame.stream, combined=self.session.combined)
            )
            self.garbage_i += 1
        if self.held is not None:
            held_stream, held = self.held
            if held_stream != frame.stream:
                self.outbox.append(data)
                self.outbox.append(held)
                self.held = None
                self._refresh()
                self.wake.set()
                return
            self.outbox.append(held)
            self.held = None
        if self.ooo > 0 or (faults.out_of_order_rate and rng.random() < faults.out_of_order_rate):
            self.ooo = max(0, self.ooo - 1)
            self.held = (frame.stream, data)
            return
        self.outbox.append(data)
        if self.dup > 0 or (faults.duplicate_rate and rng.random() < faults.duplicate_rate):
            self.dup = max(0, self.dup - 1)
            self.outbox.append(data)
        self._refresh()
        self.wake.set()

    def _refresh(self) -> None:
        self.faulty = bool(
            self.always_faulty
            or self.stall_until
            or self.dup
            or self.malformed
            or self.ooo
            or self.held
        )

    def release_held(self) -> None:
        if self.held is not None:
            self.outbox.append(self.held[1])
            self.held = None
            self.wake.set()


class LocalExchange:
    """A Binance-compatible exchange on 127.0.0.1: WebSocket streams and REST, one port.

    Parameters
    ----------
    source
        Where the market comes from: :class:`~lq.exchange.ReplaySource` or
        :class:`~lq.exchange.SimulatorSource`.
    host, port
        Where to listen; ``port=0`` picks a free port (read :attr:`ws_url` after ``start``).
    ping_interval
        Seconds between server pings (Binance: 20).
    pong_timeout
        Seconds to wait for the pong before closing (Binance: 60).
    max_connection_age
        Seconds after which a connection is closed (Binance: 24 h); ``None``: never.
    shutdown_notice
        Send ``serverShutdown`` before closing a connection for its age.
    shutdown_grace
        Seconds a connection stays open after ``serverShutdown`` (data still flowing), so a
        client can open its replacement first; the client may close it sooner.
    inbound_limit
        Inbound frames allowed per rolling second (Binance: 5).
    max_streams
        Streams allowed per connection (Binance: 1024).
    rest_weight_limit
        REST request weight allowed per minute (Binance: 6000).
    rest_api_key
        When set, REST ``historicalTrades`` needs this key in ``X-MBX-APIKEY`` (HTTP 401,
        code -2014, without it), as on USD-M futures and Binance.US.
    faults
        Steady fault rates (see :class:`~lq.exchange.Faults`).
    compression
        ``"deflate"`` to offer permessage-deflate like Binance does; ``None`` (the default) is
        faster on loopback.
    """

    def __init__(
        self,
        *,
        source: Source,
        host: str = "127.0.0.1",
        port: int = 0,
        ping_interval: float | None = 20.0,
        pong_timeout: float | None = 60.0,
        max_connection_age: float | None = None,
        shutdown_notice: bool = True,
        shutdown_grace: float = 5.0,
        inbound_limit: float = 5.0,
        max_streams: int = 1024,
        rest_weight_limit: int = 6000,
        rest_api_key: str | None = None,
        faults: Faults | None = None,
        compression: str | None = None,
    ) -> None:
        if max_connection_age is not None and max_connection_age <= 0:
            raise ValidationError("max_connection_age", max_connection_age, "must be positive")
        if inbound_limit <= 0:
            raise ValidationError("inbound_limit", inbound_limit, "must be positive")
        self.source = source
        self.host = host
        self.port = port
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.max_connection_age = max_connection_age
        self.shutdown_notice = shutdown_notice
        if not shutdown_grace >= 0:
            raise ValidationError("shutdown_grace", shutdown_grace, "must be >= 0 seconds")
        self.shutdown_grace = float(shutdown_grace)
        self.inbound_limit = inbound_limit
        self.max_streams = max_streams
        self.faults = faults or Faults()
        self.compression = compression
        self.market = Market(source.specs())
        self.rest = RestApi(
            self.market, weight_limit=rest_weight_limit, identity=self.label, api_key=rest_api_key
        )
        self.frames_sent = 0
        self.connections_opened = 0
        self.source_done = asyncio.Event()
        """Set when the source is exhausted and every frame has been dispatched."""
        self._clients: set[_Client] = set()
        self._subs: dict[str, set[_Client]] = {}
        self._server: Server | None = None
        self._producer: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._skip: dict[str | None, int] = {}
        self._skipped: set[tuple[str, int]] = set()
        self._depth_rules: list[list[Any]] = []  # [kind, symbol | None, min u, count]
        self._depth_hit: dict[tuple[str, int], str] = {}  # (symbol, u) -> kind: both streams
        self.depth_faults: dict[str, int] = {}
        """Depth diffs hit per fault kind (``drop_depth``, ``duplicate_depth``, ``cross_depth``)."""
        self._fault_rng = random.Random(self.faults.seed)
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def label(self) -> str:
        """The exchange label of the data served: ``"replay"`` for recordings, else ``"local"``
        (sent with every REST answer, so a collector never takes it for live Binance)."""
        return "replay" if type(self.source).__name__ == "ReplaySource" else "local"

    @property
    def ws_url(self) -> str:
        """``ws://host:port`` (after :meth:`start`)."""
        return f"ws://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        """``http://host:port`` (after :meth:`start`)."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind, start serving, and start releasing the source's items."""
        snapshots = getattr(self.source, "snapshots", None)
        if callable(snapshots):  # a replay's recorded books: REST answers before any stream
            for snap in snapshots():
                self.market.add_depth_snapshot(snap)
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            create_connection=_Connection,
            compression=self.compression,
            ping_interval=self.ping_interval,
            ping_timeout=self.pong_timeout,
            max_queue=64,
            write_limit=2**20,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self._producer = asyncio.get_running_loop().create_task(self._produce())
        log.info("local exchange at %s (REST %s)", self.ws_url, self.rest_url)

    async def stop(self) -> None:
        """Close every connection (1001) and stop serving."""
        if self._producer is not None:
            self._producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._producer
            self._producer = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for t in list(self._tasks):
            t.cancel()

    async def __aenter__(self) -> LocalExchange:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- truth for tests -------------------------------------------------------------------
    def trades(self, symbol: str) -> list[Trade]:
        """Every trade the exchange has produced for ``symbol`` so far (sent or not)."""
        return self.market.trade_events(symbol)

    def agg_trades(self, symbol: str) -> list[AggTrade]:
        """Every closed aggTrade of ``symbol`` so far."""
        return self.market.agg_events(symbol)

    @property
    def connection_count(self) -> int:
        """Open WebSocket connections."""
        return len(self._clients)

    # -- faults ---------------------------------------------------------------------------
    def inject(self, kind: str, **params: Any) -> None:
        """Break something now; see :mod:`lq.exchange.faults` for the kinds and parameters."""
        if kind not in FAULT_KINDS:
            raise ValidationError("kind", kind, f"not one of {FAULT_KINDS}")
        log.info("inject %s %s", kind, params)
        if kind == "rest_429" or kind == "rest_418":
            self.rest.force(
                429 if kind == "rest_429" else 418,
                count=int(params.get("count", 1)),
                retry_after=int(params.get("retry_after", 1)),
            )
            return
        if kind == "old_depth_snapshot":
            old = self.rest.old_depth
            old[str(params["symbol"])] = old.get(str(params["symbol"]), 0) + int(
                params.get("count", 1)
            )
            return
        if kind in ("drop_depth", "duplicate_depth", "cross_depth"):
            self._depth_rules.append(
                [
                    kind,
                    params.get("symbol"),
                    int(params.get("update_id", -1)),
                    int(params.get("count", 1)),
                ]
            )
            return
        if kind == "skip_ids":
            sym = params.get("symbol")
            self._skip[sym] = self._skip.get(sym, 0) + int(params.get("count", 1))
            return
        for c in list(self._clients):
            if kind == "close_1001":
                self._spawn(c.ws.close(1001, params.get("reason", "going away")))
            elif kind == "drop_tcp":
                c.ws.transport.abort()
            elif kind == "shutdown":
                self._spawn(self._shutdown(c))
            elif kind == "stall":
                c.stall_until = time.monotonic() + float(params.get("seconds", 5.0))
                c.outbox.clear()
            elif kind == "duplicate":
                c.dup += int(params.get("count", 1))
            elif kind == "malformed":
                c.malformed += int(params.get("count", 1))
            elif kind == "out_of_order":
                c.ooo += int(params.get("count", 1))
            c._refresh()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shutdown(self, c: _Client) -> None:
        """``serverShutdown``, then the connection stays open ``shutdown_grace`` s (data keeps
        flowing) so the client can open its replacement, as Binance does; then 1001."""
        frame = server_shutdown_frame(time.time_ns() // 1000)
        with contextlib.suppress(ConnectionClosed):
            await c.ws.send(c.wrap(frame.stream, frame.payload(c.unit)), text=True)
            if self.shutdown_grace > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(c.ws.wait_closed(), self.shutdown_grace)
            await c.ws.close(1001, "going away")

    # -- HTTP side ------------------------------------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path
        if path.startswith(("/api/", "/fapi/")):
            res = self.rest.handle("GET", path, request.headers, time.time())
            headers = Headers(res.headers)
            headers["Content-Length"] = str(len(res.body))
            headers["Connection"] = "close"
            return Response(res.status, http.HTTPStatus(res.status).phrase, headers, res.body)
        spec = parse_path(path, max_streams=self.max_streams)
        if spec is None:
            return connection.respond(http.HTTPStatus.BAD_REQUEST, INVALID_PATH)
        assert isinstance(connection, _Connection)
        connection.lq_spec = spec
        connection.lq_limiter = InboundLimiter(self.inbound_limit)
        return None

    # -- WebSocket side -------------------------------------------------------------------
    def _subscribe(self, c: _Client, streams: tuple[str, ...] | list[str]) -> None:
        for s in streams:
            self._subs.setdefault(s, set()).add(c)
            symbol, kind = split_stream(s)
            if kind.startswith("kline_"):
                self.market.activate_kline(symbol, kind[6:].split("@")[0])
        if self._subs:
            self._subscribed.set()

    def _unsubscribe(self, c: _Client, streams: tuple[str, ...] | list[str]) -> None:
        for s in streams:
            subs = self._subs.get(s)
            if subs is not None:
                subs.discard(c)
                if not subs:
                    del self._subs[s]
        if not self._subs:
            self._subscribed.clear()

    async def _handle(self, conn: ServerConnection) -> None:
        assert isinstance(conn, _Connection)
        ws = conn
        spec = ws.lq_spec
        assert spec is not None
        self.connections_opened += 1
        c = _Client(ws, spec, self.faults.seed + self.connections_opened)
        c.always_faulty = self.faults.any
        c._refresh()
        self._clients.add(c)
        self._subscribe(c, spec.streams)
        loop = asyncio.get_running_loop()
        c.tasks.append(loop.create_task(self._writer(c)))
        if self.max_connection_age is not None:
            c.tasks.append(loop.create_task(self._age_out(c, self.max_connection_age)))
        try:
            async for msg in ws:
                res = handle_control(c.session, msg, max_streams=self.max_streams)
                if res.subscribed:
                    self._subscribe(c, res.subscribed)
                if res.unsubscribed:
                    self._unsubscribe(c, res.unsubscribed)
                await ws.send(res.reply, text=True)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(c)
            self._unsubscribe(c, list(c.session.streams))
            for t in c.tasks:
                t.cancel()

    async def _writer(self, c: _Client) -> None:
        ws = c.ws
        box = c.outbox
        try:
            while True:
                while box:
                    # One write for a batch of frames, framed by lq.exchange.wsframe: the same
                    # bytes as ws.send(frame, text=True) per frame, without its per-frame cost.
                    sent = await send_batch(ws, box)
                    c.frames += sent
                    self.frames_sent += sent
                c.wake.clear()
                await c.wake.wait()
        except ConnectionClosed:
            pass

    async def _age_out(self, c: _Client, age: float) -> None:
        await asyncio.sleep(age)
        log.info("connection %s reached max age %.3fs", c.ws.id, age)
        if self.shutdown_notice:
            await self._shutdown(c)
        else:
            with contextlib.suppress(ConnectionClosed):
                await c.ws.close(1001, "going away")

    # -- the market -----------------------------------------------------------------------
    def _dispatch(self, frames: list[OutFrame]) -> None:
        subs = self._subs
        faults = self.faults
        skipping = bool(self._skip) or faults.skip_rate > 0 or bool(self._skipped)
        depth_faults = bool(self._depth_rules) or bool(self._depth_hit)
        for fr in frames:
            if skipping and fr.trade_ids and self._skips(fr):
                continue
            copies = 1
            if depth_faults and fr.kind == "depthUpdate":
                fault = self._depth_fault(fr)
                if fault == "drop_depth":
                    continue
                if fault == "duplicate_depth":
                    copies = 2
                elif fault == "cross_depth":
                    fr = self._crossed(fr)
            clients = subs.get(fr.stream)
            if clients:
                for c in clients:
                    for _ in range(copies):
                        c.enqueue(fr, faults)
        frames.clear()

    def _depth_fault(self, fr: OutFrame) -> str | None:
        """The depth fault that hits this diff frame, if any (both streams of one diff)."""
        key = (fr.symbol, fr.fields[2])
        hit = self._depth_hit.pop(key, None)
        if hit is not None:  # the same diff's other stream
            return hit
        for rule in self._depth_rules:
            kind, sym, min_u, _ = rule
            if (sym is None or sym == fr.symbol) and fr.fields[2] >= min_u:
                rule[3] -= 1
                if rule[3] <= 0:
                    self._depth_rules.remove(rule)
                self._depth_hit[key] = kind
                self.depth_faults[kind] = self.depth_faults.get(kind, 0) + 1
                log.info("%s: %s depth diff u=%d", kind, fr.symbol, fr.fields[2])
                return str(kind)
        return None

    def _crossed(self, fr: OutFrame) -> OutFrame:
        """The diff with one more bid level, 0.1 % above the exchange's best ask: a crossed
        book on the wire (the exchange's own book, and REST, do not have it)."""
        book = self.market.depth_books.get(fr.symbol)
        best_ask = min((float(p) for p in book.asks), default=1.0) if book else 1.0
        s, first, last, pu, bids, asks, e = fr.fields
        extra = f'["{best_ask * 1.001:.8f}","1.00000000"]'.encode()
        bids = b"[" + extra + (b"," + bids[1:] if bids != b"[]" else b"]")
        return OutFrame(fr.stream, fr.symbol, fr.kind, (s, first, last, pu, bids, asks, e))

    def _skips(self, fr: OutFrame) -> bool:
        if fr.kind == "aggTrade":
            return any((fr.symbol, t) in self._skipped for t in fr.trade_ids)
        key: str | None = fr.symbol if self._skip.get(fr.symbol) else None
        if self._skip.get(key):
            self._skip[key] -= 1
            if not self._skip[key]:
                del self._skip[key]
        elif not (self.faults.skip_rate and self._fault_rng.random() < self.faults.skip_rate):
            return False
        self._skipped.add((fr.symbol, fr.trade_ids[0]))
        log.debug("skipping %s trade %d on the socket", fr.symbol, fr.trade_ids[0])
        return True

    def _backlogged(self) -> bool:
        return any(len(c.outbox) > _HIGH_WATER for c in self._clients)

    async def _produce(self) -> None:
        market = self.market
        speed = self.source.speed
        loop = asyncio.get_running_loop()
        out: list[OutFrame] = []
        at0 = 0
        wall0 = 0.0
        n = 0
        add_trade = market.add_trade
        add_quote = market.add_quote
        if speed is None:
            await self._subscribed.wait()
        for at, item in self.source.items():
            if speed is not None:
                if not wall0:
                    at0, wall0 = at, real_time_anchor(at, speed, loop.time())
                delay = wall0 + (at - at0) / 1e6 / speed - loop.time()
                if delay > 0.001:
                    market.flush(out)
                    self._dispatch(out)
                    await asyncio.sleep(delay)
                elif len(out) >= 256:
                    self._dispatch(out)
                    await asyncio.sleep(0)
            else:
                n += 1
                if not n & 255:
                    self._dispatch(out)
                    await asyncio.sleep(0)
                    while self._backlogged() or not self._subscribed.is_set():
                        await asyncio.sleep(0.001)
            if type(item) is TradeIn:
                add_trade(item, out)
            elif type(item) is DepthIn:
                market.add_depth(item, out)
            elif type(item) is DepthSnapIn:
                market.add_depth_snapshot(item)
            else:
                assert isinstance(item, QuoteIn)
                add_quote(item, out)
        market.flush(out)
        self._dispatch(out)
        for c in self._clients:
            c.release_held()
        self.source_done.set()
        log.info("source exhausted")
