"""A tiny fake venue written to the pure-module contract, to test the framework without a real one.

``make_toy(id_rule)`` returns a :class:`~lq.venues.base.ProtocolVenue` named ``toy`` (or
``toynoid`` with ``id_rule="none"``) built from the namespaces below. Its imitation batches
trades newest-first (as Coinbase does) so the parser must sort them, its REST history pages
by ``after`` id (oldest first, ``HISTORY_LIMIT`` per page), and its rate-limit reply is HTTP
429 with ``Retry-After``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import msgspec

from lq.errors import FrameError
from lq.feeds.events import ControlReply, Trade
from lq.venues.base import ProtocolVenue


class HistoryPage(msgspec.Struct):
    trades: list[Trade]
    next_cursor: object | None = None
    rejected: list[tuple[str, str]] = msgspec.field(default_factory=list)


def _trade(row: Mapping[str, Any], exchange: str, recv_ts: int, symbols: Iterable[str]) -> Trade:
    try:
        sym = row["s"]
        if sym not in symbols:
            raise FrameError(f"symbol {sym!r} is not subscribed")
        i = row["i"]
        if type(i) is not int or not 0 <= i < 2**63:
            raise FrameError(f"trade id {i!r} out of range")
        price, qty = float(row["p"]), float(row["q"])
        if not (1e-10 <= price <= 1e12 and 1e-10 <= qty <= 1e15):
            raise FrameError("price or quantity out of range")
        return Trade(
            symbol=sym, trade_id=i, price=price, qty=qty, ts=int(row["t"]),
            event_ts=int(row["t"]), is_buyer_maker=bool(row["m"]), recv_ts=recv_ts,
            exchange=exchange,
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise FrameError(f"bad trade row: {exc}") from None


def make_modules(name: str, id_rule: str) -> dict[str, Any]:
    def subscribe_messages(symbols: Sequence[str]) -> list[str]:
        return [json.dumps({"op": "sub", "symbols": list(symbols)})]

    protocol = SimpleNamespace(
        NAME=name,
        WS_URL=f"wss://ws.{name}.example/ws",
        REST_URL=f"https://api.{name}.example",
        ID_RULE=id_rule,
        subscribe_messages=subscribe_messages,
        ping_message=lambda: "ping",
        PING_INTERVAL_S=0.5,
        MAX_STREAMS_PER_CONNECTION=None,
        DEFAULT_SYMBOLS=("BTC-USD",),
    )

    class Parser:
        def __init__(self, symbols: Iterable[str], *, exchange: str = name) -> None:
            self.symbols = frozenset(symbols)
            self.exchange = exchange

        def parse(self, raw: bytes | str, recv_ts: int) -> list[Any]:
            if raw in ("pong", b"pong"):
                return []
            try:
                msg = json.loads(raw)
            except (ValueError, RecursionError):
                raise FrameError("not JSON") from None
            if not isinstance(msg, dict):
                raise FrameError("not an object")
            kind = msg.get("type")
            if kind == "ack":
                return [ControlReply(id=None, result=msg.get("symbols"))]
            if kind == "hb":
                return []
            if kind != "trades" or not isinstance(msg.get("data"), list):
                raise FrameError(f"unknown frame type {kind!r}")
            out = [_trade(r, self.exchange, recv_ts, self.symbols) for r in msg["data"]]
            out.sort(key=lambda t: t.trade_id)  # the venue sends newest first
            return out

    parser = SimpleNamespace(Parser=Parser)

    def history_request(
        symbol: str, *, after_id: int | None, cursor: object | None, limit: int
    ) -> tuple[str, dict[str, str]]:
        q = {"limit": str(limit)}
        if after_id is not None:
            q["after"] = str(after_id)
        return f"/trades/{symbol}", q

    def decode_history(
        body: bytes, symbol: str, *, exchange: str = name, recv_ts: int = 0
    ) -> HistoryPage:
        try:
            rows = json.loads(body)
        except ValueError:
            raise FrameError("history body is not JSON") from None
        if not isinstance(rows, list):
            raise FrameError("history body is not a list")
        trades, rejected = [], []
        for r in rows:
            try:
                trades.append(_trade(r, exchange, recv_ts, {symbol}))
            except FrameError as exc:
                rejected.append((json.dumps(r), exc.reason))
        trades.sort(key=lambda t: t.trade_id)
        return HistoryPage(trades=trades, next_cursor=None, rejected=rejected)

    def classify_error(
        status: int, headers: Mapping[str, str], body: bytes
    ) -> tuple[str, float | None]:
        if status == 429:
            return "rate_limited", float(headers.get("retry-after", "1"))
        if status >= 500:
            return "retry", 0.2
        return "fatal", None

    rest = SimpleNamespace(
        HISTORY_PATH="/trades/{symbol}",
        HISTORY_LIMIT=50,
        RATE_LIMIT_PER_S=20.0,
        history_request=history_request,
        decode_history=decode_history,
        classify_error=classify_error,
    )

    def ws_path_ok(path: str) -> bool:
        return path == "/ws"

    def on_client_text(text: str, state: dict[str, Any]) -> list[str]:
        if text == "ping":
            return ["pong"]
        msg = json.loads(text)
        state.setdefault("subs", set()).update(msg["symbols"])
        return [json.dumps({"type": "ack", "symbols": sorted(state["subs"])})]

    def row(t: Trade) -> dict[str, Any]:
        return {"s": t.symbol, "i": t.trade_id, "p": repr(t.price), "q": repr(t.qty),
                "t": t.ts, "m": t.is_buyer_maker}  # fmt: skip

    def trade_frames(trades: Sequence[Trade], state: dict[str, Any]) -> list[str]:
        mine = [t for t in trades if t.symbol in state.get("subs", ())]
        if not mine:
            return []
        mine = sorted(mine, key=lambda t: t.trade_id, reverse=True)  # newest first
        return [json.dumps({"type": "trades", "data": [row(t) for t in mine]})]

    def heartbeat_frames(state: dict[str, Any], now_us: int) -> list[str]:
        state["hb"] = state.get("hb", 0) + 1
        return [json.dumps({"type": "hb", "n": state["hb"]})]

    def rest_history(
        trades: Sequence[Trade], params: Mapping[str, str], symbol: str
    ) -> tuple[int, dict[str, str], bytes]:
        after = int(params.get("after", "-1"))
        limit = min(int(params.get("limit", "50")), 50)
        page = [t for t in trades if t.trade_id > after][:limit]
        return (
            200,
            {"Content-Type": "application/json"},
            json.dumps([row(t) for t in page]).encode(),
        )

    def rest_rate_limited() -> tuple[int, dict[str, str], bytes]:
        return 429, {"Retry-After": "1"}, b'{"message":"slow down"}'

    def rest_instruments(instruments: Sequence[Any]) -> bytes:
        return json.dumps([i.symbol for i in instruments]).encode()

    def drop_same_timestamp(trades: Sequence[Trade]) -> list[Trade]:
        out = []
        prev = None
        for t in trades:
            if prev is None or t.ts != prev.ts:
                out.append(t)
            prev = t
        return out

    imitation = SimpleNamespace(
        ws_path_ok=ws_path_ok,
        on_client_text=on_client_text,
        trade_frames=trade_frames,
        heartbeat_frames=heartbeat_frames,
        rest_history=rest_history,
        rest_rate_limited=rest_rate_limited,
        rest_instruments=rest_instruments,
        drop_same_timestamp=drop_same_timestamp,
    )
    return {"protocol": protocol, "parser": parser, "rest": rest, "imitation": imitation}


def make_toy(id_rule: str = "contiguous", name: str | None = None) -> ProtocolVenue:
    name = name or ("toy" if id_rule == "contiguous" else "toynoid")
    return ProtocolVenue(**make_modules(name, id_rule))  # type: ignore[arg-type]
