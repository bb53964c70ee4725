"""The venue-independent local exchange core, driven by a venue's pure ``imitation`` module.

:class:`VenueExchange` moves bytes and keeps time; everything the venue says comes from
``lq/venues/<venue>/imitation.py`` (see :class:`~lq.venues.base.ProtocolVenue`):

* WebSocket upgrades on paths ``imitation.ws_path_ok(path)`` accepts (else HTTP 404 JSON);
* every client text frame -> ``imitation.on_client_text(text, state)`` -> replies sent back
  (``state`` is the connection's dict, owned by the imitation: subscriptions, sequence
  numbers; the core sets ``state["path"]`` (the request path), ``state["symbols"]`` and
  ``state["products"]`` (the symbols served), ``state["recent"]`` (``{symbol: the last
  RECENT trades}``, for snapshots) and ``state["now_us"]`` before each call);
* new trades are released in batches every ``batch_interval`` s (Coinbase's 250 ms):
  ``imitation.trade_frames(trades, state)`` per connection, which frames only what the
  connection subscribed;
* ``imitation.heartbeat_frames(state, now_us)`` every ``heartbeat_interval`` s;
* at full speed (a source with ``speed=None``) trades are produced from the first
  subscription on, and wait while any client has more than ``_HIGH_WATER`` frames queued
  (as the Binance exchange does), so a slow client is never outrun and memory stays bounded;
  frames leave in batches, one socket write each (:mod:`lq.exchange.wsframe`);
* REST: the history path (``rest.HISTORY_PATH``, ``{placeholders}`` matched) ->
  ``imitation.rest_history(truth, params, symbol)``, limited to ``rest_rate_limit`` calls per
  second (over it, ``imitation.rest_rate_limited()``, the venue's real refusal);
  ``instruments.INSTRUMENTS_PATH`` -> ``imitation.rest_instruments(instruments)``; anything
  else is HTTP 404 with a JSON body.

The truth (:meth:`VenueExchange.trades`) is every trade produced, sent or not. Faults
(:meth:`VenueExchange.inject`): ``close_1001``, ``drop_tcp``, ``stall`` (``seconds``),
``duplicate`` / ``drop`` (the next ``count`` trade frames of every connection), ``skip_ids``
(``count`` trades of ``symbol`` kept off the socket, REST keeps them), ``rest_429``
(``count`` REST calls answered with the venue's rate-limit reply) and ``same_timestamp``
(``on=True``: the socket drops every trade sharing its timestamp with the previous one, via
``imitation.drop_same_timestamp``, Kraken's WS v2 behaviour, krakenfx/api-go#36).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import logging
import random
import re
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from lq.errors import ValidationError
from lq.exchange.faults import Faults, garbage_frame
from lq.exchange.market import TradeIn
from lq.exchange.source import Source, real_time_anchor
from lq.exchange.wsframe import send_batch
from lq.feeds.events import Trade
from lq.venues.instrument import Instrument

if TYPE_CHECKING:
    from lq.venues.base import ProtocolVenue

__all__ = ["VENUE_FAULT_KINDS", "VenueExchange"]

log = logging.getLogger("lq.exchange.venue")

VENUE_FAULT_KINDS = (
    "close_1001",
    "drop_tcp",
    "stall",
    "duplicate",
    "drop",
    "skip_ids",
    "rest_429",
    "same_timestamp",
)


RECENT = 50
"""Trades per symbol the core offers a connection as ``state["recent"]`` (snapshots)."""
_HIGH_WATER = 1_000
"""Frames queued for one client before a full-speed source waits (a Coinbase frame holds a
whole batch of trades)."""


class _Client:
    __slots__ = (
        "drop", "dup", "garbage_i", "held", "outbox", "rng", "stall_until", "state", "tasks",
        "wake", "ws",
    )  # fmt: skip

    def __init__(self, ws: ServerConnection, seed: int = 0) -> None:
        self.ws = ws
        self.outbox: deque[bytes] = deque()
        self.wake = asyncio.Event()
        self.state: dict[str, Any] = {}
        self.stall_until = 0.0
        self.dup = 0
        self.drop = 0
        self.tasks: list[asyncio.Task[Any]] = []
        self.rng = random.Random(seed)
        self.garbage_i = 0
        self.held: str | None = None


def _path_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    rx = "".join(
        f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") and p.endswith("}") else re.escape(p)
        for p in parts
    )
    return re.compile("^" + rx + "$")


class VenueExchange:
    """One venue's imitation on 127.0.0.1: WebSocket and REST on one port.

    Parameters
    ----------
    venue
        The :class:`~lq.venues.base.ProtocolVenue` (its ``imitation`` module speaks).
    source
        Trades for the venue's symbols (:class:`~lq.exchange.simulator.SimulatorSource`,
        :class:`~lq.exchange.multi.VenueFeedSource`...). Quotes are ignored.
    label
        The ``exchange`` label of the served data (``local``; a collector stores rows under
        the label it is given).
    batch_interval
        Seconds between trade batches (Coinbase: 0.25; 0 sends each step at once).
    heartbeat_interval
        Seconds between ``heartbeat_frames`` calls (``None``: never).
    rest_rate_limit
        REST calls per second allowed (default the venue's ``RATE_LIMIT_PER_S``).
    ping_interval, pong_timeout
        WebSocket pings every ``ping_interval`` s; a connection whose pong is ``pong_timeout``
        s late is closed (``None``: never).
    faults
        Steady fault rates (:class:`~lq.exchange.faults.Faults`), as for Binance: garbage
        frames before a data frame (``malformed_rate``), data frames sent twice
        (``duplicate_rate``), trades kept off the socket while REST keeps them
        (``skip_rate``), a data frame held back behind the next one (``out_of_order_rate``).
    """

    def __init__(
        self,
        *,
        venue: ProtocolVenue,
        source: Source,
        host: str = "127.0.0.1",
        port: int = 0,
        label: str = "local",
        batch_interval: float = 0.25,
        heartbeat_interval: float | None = 1.0,
        rest_rate_limit: float | None = None,
        instruments: Sequence[Instrument] | None = None,
        ping_interval: float | None = 20.0,
        pong_timeout: float | None = 20.0,
        faults: Faults | None = None,
    ) -> None:
        if venue.imitation is None:
            raise ValidationError("venue", venue.name, "has no imitation module")
        self.venue = venue
        self.imitation = venue.imitation
        self.source = source
        self.host = host
        self.port = port
        self._label = label
        self.batch_interval = batch_interval
        self.heartbeat_interval = heartbeat_interval
        rate = rest_rate_limit if rest_rate_limit is not None else venue.rest.RATE_LIMIT_PER_S
        self.rest_rate_limit = float(rate)
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.faults = faults or Faults()
        self._fault_rng = random.Random(self.faults.seed)
        specs = source.specs()
        self.symbols = [s.symbol for s in specs]
        self.instruments = (
            list(instruments) if instruments is not None else [self._instrument(s) for s in specs]
        )
        self._truth: dict[str, list[Trade]] = {s: [] for s in self.symbols}
        self._clients: set[_Client] = set()
        self._server: Server | None = None
        self._producer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._skip: dict[str | None, int] = {}
        self._skipped: set[tuple[str, int]] = set()
        self._same_ts = False
        self._prev_sent: dict[str, Trade] = {}
        self._forced_429 = 0
        self._rest_next = time.monotonic()
        self._tokens = 2.0
        self.rest_calls: list[tuple[float, str, int]] = []
        """``(monotonic time, target, status)`` of every REST request (tests)."""
        self.history_calls: list[tuple[float, str, int]] = []
        """The same for the trade-history endpoint only."""
        self.frames_sent = 0
        self.connections_opened = 0
        self.source_done = asyncio.Event()
        self._history_rx = _path_pattern(venue.rest.HISTORY_PATH)
        self._symbol_keys = self._history_keys()
        inst = venue.instruments
        self._instruments_path = getattr(inst, "INSTRUMENTS_PATH", None) if inst else None

    def _instrument(self, spec: Any) -> Instrument:
        guess = self.venue.instrument(spec.symbol)
        return Instrument(
            venue=guess.venue,
            symbol=spec.symbol,
            base=guess.base,
            quote=guess.quote,
            tick_size=float(spec.tick_size),
            lot_size=float(spec.lot_size),
        )

    # -- identity -------------------------------------------------------------------------
    @property
    def label(self) -> str:
        return self._label

    @property
    def ws_url(self) -> str:
        """The venue's WebSocket URL on this server (its production path kept)."""
        path = urlsplit(self.venue.ws_url).path or ""
        return f"ws://{self.host}:{self.port}{path}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            compression=None,
            ping_interval=self.ping_interval,
            ping_timeout=self.pong_timeout,
            max_queue=64,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        self._producer = asyncio.get_running_loop().create_task(self._produce())
        log.info("local %s at %s", self.venue.name, self.ws_url)

    async def stop(self) -> None:
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

    async def __aenter__(self) -> VenueExchange:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- truth ----------------------------------------------------------------------------
    def trades(self, symbol: str) -> list[Trade]:
        """Every trade of ``symbol`` produced so far (sent on the socket or not)."""
        return list(self._truth.get(symbol, ()))

    @property
    def connection_count(self) -> int:
        return len(self._clients)

    # -- faults ---------------------------------------------------------------------------
    def inject(self, kind: str, **params: Any) -> None:
        if kind not in VENUE_FAULT_KINDS:
            raise ValidationError("kind", kind, f"not one of {VENUE_FAULT_KINDS}")
        log.info("inject %s %s into %s", kind, params, self.venue.name)
        if kind == "rest_429":
            self._forced_429 += int(params.get("count", 1))
            return
        if kind == "skip_ids":
            sym = params.get("symbol")
            self._skip[sym] = self._skip.get(sym, 0) + int(params.get("count", 1))
            return
        if kind == "same_timestamp":
            self._same_ts = bool(params.get("on", True))
            return
        for c in list(self._clients):
            if kind == "close_1001":
                self._spawn(c.ws.close(1001, params.get("reason", "going away")))
            elif kind == "drop_tcp":
                c.ws.transport.abort()
            elif kind == "stall":
                c.stall_until = time.monotonic() + float(params.get("seconds", 5.0))
            elif kind == "duplicate":
                c.dup += int(params.get("count", 1))
            elif kind == "drop":
                c.drop += int(params.get("count", 1))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- HTTP -----------------------------------------------------------------------------
    def _history_keys(self) -> dict[str, tuple[str, dict[str, str]]]:
        """Per symbol, what identifies its history request: the path and the query values
        that differ between symbols (``instId``, ``pair``...)."""
        reqs = {
            s: self.venue.rest.history_request(s, after_id=None, cursor=None, limit=1)
            for s in self.symbols
        }
        out = {}
        for s, (path, q) in reqs.items():
            ident = {
                k: str(v)
                for k, v in q.items()
                if any(str(o[1].get(k)) != str(v) for t, o in reqs.items() if t != s)
            }
            out[s] = (path, ident)
        return out

    def _symbol_of(self, path: str, query: Mapping[str, str]) -> str | None:
        for s, (p, ident) in self._symbol_keys.items():
            if p == path and all(query.get(k) == v for k, v in ident.items()):
                return s
        return None

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if upgrade and self.imitation.ws_path_ok(parts.path or "/"):
            return None
        status, headers, body = self._rest(parts.path, parts.query)
        h = Headers(headers)
        h["Content-Length"] = str(len(body))
        h["Connection"] = "close"
        h.setdefault("Content-Type", "application/json")
        h["X-LQ-Exchange"] = self.label
        return Response(status, http.HTTPStatus(status).phrase, h, body)

    def _rest(self, path: str, query_text: str) -> tuple[int, dict[str, str], bytes]:
        query = {k: v[-1] for k, v in parse_qs(query_text, keep_blank_values=True).items()}
        target = path + ("?" + query_text if query_text else "")
        now = time.monotonic()
        if self._instruments_path and path == self._instruments_path:
            res = (200, {"Content-Type": "application/json"},
                   self.imitation.rest_instruments(self.instruments))  # fmt: skip
        elif self._history_rx.match(path):
            symbol = self._symbol_of(path, query)
            if self._forced_429 > 0 or not self._take_token(now):
                self._forced_429 = max(0, self._forced_429 - 1)
                res = self.imitation.rest_rate_limited()
            elif symbol is None:
                res = (404, {}, json.dumps({"message": f"unknown instrument at {target}"}).encode())
            else:
                res = self.imitation.rest_history(self._truth[symbol], query, symbol)
        else:
            res = (404, {}, json.dumps({"message": f"not found: {path}"}).encode())
        self.rest_calls.append((now, target, res[0]))
        if self._history_rx.match(path):
            self.history_calls.append((now, target, res[0]))
        return int(res[0]), dict(res[1]), bytes(res[2])

    def _take_token(self, now: float) -> bool:
        """A token bucket of ``rest_rate_limit`` per second holding two (a small burst, as
        the venues allow: Coinbase 15, OKX 20 per 2 s)."""
        rate = self.rest_rate_limit
        self._tokens = min(2.0, self._tokens + (now - self._rest_next) * rate)
        self._rest_next = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    # -- WebSocket ------------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        self.connections_opened += 1
        c = _Client(ws, self.faults.seed + self.connections_opened)
        req = ws.request
        c.state.update(
            path=req.path if req is not None else "/",
            symbols=frozenset(self.symbols),
            products=frozenset(self.symbols),
        )
        self._clients.add(c)
        loop = asyncio.get_running_loop()
        c.tasks.append(loop.create_task(self._writer(c)))
        if self.heartbeat_interval:
            c.tasks.append(loop.create_task(self._heartbeats(c)))
        try:
            async for msg in ws:
                text = msg if isinstance(msg, str) else msg.decode("utf-8", "replace")
                c.state["now_us"] = time.time_ns() // 1000
                c.state["recent"] = {s: t[-RECENT:] for s, t in self._truth.items()}
                for reply in self.imitation.on_client_text(text, c.state):
                    self._spawn_send(c, reply)  # in order with the data frames
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(c)
            for t in c.tasks:
                t.cancel()

    async def _heartbeats(self, c: _Client) -> None:
        assert self.heartbeat_interval
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(self.heartbeat_interval)
                if time.monotonic() < c.stall_until:
                    continue
                for fr in self.imitation.heartbeat_frames(c.state, time.time_ns() // 1000):
                    self._spawn_send(c, fr)

    def _send(self, c: _Client, frames: Sequence[str]) -> None:
        if time.monotonic() < c.stall_until:
            return
        f = self.faults
        rng = c.rng
        for fr in frames:
            if c.drop > 0:
                c.drop -= 1
                continue
            if f.malformed_rate and rng.random() < f.malformed_rate:
                self._spawn_send(c, garbage_frame(c.garbage_i, stream="", combined=False).decode())
                c.garbage_i += 1
            if c.held is not None:  # the frame held back goes after this one
                held, c.held = c.held, None
                self._spawn_send(c, fr)
                self._spawn_send(c, held)
                self.frames_sent += 2
                continue
            if f.out_of_order_rate and rng.random() < f.out_of_order_rate:
                c.held = fr
                continue
            self._spawn_send(c, fr)
            self.frames_sent += 1
            if c.dup > 0 or (f.duplicate_rate and rng.random() < f.duplicate_rate):
                c.dup = max(0, c.dup - 1)
                self._spawn_send(c, fr)

    def _spawn_send(self, c: _Client, frame: str) -> None:
        c.outbox.append(frame.encode())
        c.wake.set()

    async def _writer(self, c: _Client) -> None:
        ws = c.ws
        box = c.outbox
        with contextlib.suppress(ConnectionClosed):
            while True:
                while box:
                    await send_batch(ws, box)  # one write, the bytes of ws.send per frame
                c.wake.clear()
                await c.wake.wait()

    def _ready(self) -> bool:
        """Full speed waits for this: a client has subscribed and none is backlogged."""
        subscribed = False
        for c in self._clients:
            if len(c.outbox) > _HIGH_WATER:
                return False
            subscribed = subscribed or bool(c.state.get("subs"))
        return subscribed

    # -- the market -----------------------------------------------------------------------
    def _release(self, batch: list[Trade]) -> None:
        if not batch:
            return
        wire = [t for t in batch if not self._skips(t)]
        if self._same_ts:
            kept: list[Trade] = []
            by_sym: dict[str, list[Trade]] = {}
            for t in wire:
                by_sym.setdefault(t.symbol, []).append(t)
            for sym, ts in by_sym.items():
                prev = self._prev_sent.get(sym)
                run = ([prev] if prev is not None else []) + ts
                out = list(self.imitation.drop_same_timestamp(run))
                if prev is not None and out and out[0] is prev:
                    out = out[1:]
                kept.extend(out)
            wire = sorted(kept, key=lambda t: (t.ts, t.trade_id))
        for t in batch:
            self._prev_sent[t.symbol] = t
        if not wire:
            return
        now_us = time.time_ns() // 1000
        for c in list(self._clients):
            c.state["now_us"] = now_us
            frames = self.imitation.trade_frames(wire, c.state)
            if frames:
                self._send(c, frames)

    def _skips(self, t: Trade) -> bool:
        key: str | None = t.symbol if self._skip.get(t.symbol) else None
        if self._skip.get(key):
            self._skip[key] -= 1
            if not self._skip[key]:
                del self._skip[key]
        elif not (self.faults.skip_rate and self._fault_rng.random() < self.faults.skip_rate):
            return False
        self._skipped.add((t.symbol, t.trade_id))
        return True

    def _record(self, item: TradeIn) -> Trade:
        t = Trade(
            symbol=item.symbol,
            trade_id=item.trade_id,
            price=float(item.price),
            qty=float(item.qty),
            ts=item.ts,
            event_ts=item.event_ts,
            is_buyer_maker=item.is_buyer_maker,
            exchange=self.label,
        )
        self._truth[item.symbol].append(t)
        return t

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        speed = self.source.speed
        batch: list[Trade] = []
        at0 = 0
        wall0 = 0.0
        next_flush = loop.time() + self.batch_interval
        n = 0
        if speed is None:  # as fast as the clients take it: from the first subscription on
            while not self._ready():
                await asyncio.sleep(0.001)
        for at, item in self.source.items():
            if type(item) is not TradeIn or item.symbol not in self._truth:
                continue
            if speed is not None:
                if not wall0:
                    at0, wall0 = at, real_time_anchor(at, speed, loop.time())
                due = wall0 + (at - at0) / 1e6 / speed
                while due > loop.time():
                    if loop.time() >= next_flush:
                        self._release(batch)
                        batch = []
                        next_flush = loop.time() + self.batch_interval
                    await asyncio.sleep(min(due, next_flush) - loop.time() + 0.0005)
            batch.append(self._record(item))
            n += 1
            if loop.time() >= next_flush or (speed is None and len(batch) >= 256):
                self._release(batch)
                batch = []
                next_flush = loop.time() + self.batch_interval
                if speed is None:
                    await asyncio.sleep(0)
                    while not self._ready():
                        await asyncio.sleep(0.001)
        self._release(batch)
        self.source_done.set()
        log.info("%s source exhausted after %d trades", self.venue.name, n)
