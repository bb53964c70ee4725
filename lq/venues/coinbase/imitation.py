"""The local exchange's Coinbase: Advanced Trade WebSocket and Exchange REST, pure.

The framework's server core owns the sockets and calls these functions with a per-connection
``state`` dict. What is imitated (checklist of ``shared/reference/venues.md`` §1.9):

* WS path ``/``; ``{"type":"subscribe"|"unsubscribe","product_ids":[...],"channel":...}`` for
  ``market_trades`` and ``heartbeats``; the ack is a ``subscriptions`` frame with the full map;
  a bad request gets ``{"type":"error","message":...}``;
* one ``sequence_num`` per connection, from 0, +1 on **every** frame;
* after a ``market_trades`` subscribe, a ``snapshot`` frame (the recent trades the core put in
  ``state["recent"][product]``, newest first), then ``update`` frames holding a window of
  trades **newest first**; strings for numbers, taker ``side``, ``time`` in µs ISO-8601 with
  trailing zeros trimmed, envelope ``timestamp`` in ns;
* ``heartbeats`` frames with ``heartbeat_counter`` +1 and a Go-style ``current_time``;
* REST ``/products/{id}/trades`` with ``after``/``before``/``limit`` (max 1000) newest first,
  ``CB-BEFORE``/``CB-AFTER`` headers, int ``trade_id``, **maker** ``side``; 429 with
  ``{"message":"Public rate limit exceeded"}``; ``/products``.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from lq.feeds.events import Trade
from lq.venues.instrument import Instrument

from .rest import MAX_LIMIT

__all__ = [
    "decimal_text",
    "drop_same_timestamp",
    "heartbeat_frames",
    "iso_us",
    "on_client_text",
    "rest_history",
    "rest_instruments",
    "rest_rate_limited",
    "trade_frames",
    "ws_path_ok",
]

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_CHANNELS = ("market_trades", "heartbeats")
_JSON = {"Content-Type": "application/json"}


def decimal_text(x: float) -> str:
    """A float as the plain decimal string a venue prints (``1e-05`` -> ``"0.00001"``); it
    parses back to the same float."""
    r = repr(float(x))
    if "e" in r or "E" in r:
        r = format(Decimal(r), "f")
    return r[:-2] if r.endswith(".0") else r


def iso_us(us: int, *, digits: int = 6, trim: bool = True) -> str:
    """µs since the epoch -> ``2025-12-31T06:00:12.44524Z`` (Go's RFC3339Nano trims zeros)."""
    sec, frac = divmod(us, 1_000_000)
    d = _EPOCH + _dt.timedelta(seconds=sec)
    f = f"{frac:06d}" + "0" * (digits - 6) if digits >= 6 else f"{frac:06d}"[:digits]
    if trim:
        f = f.rstrip("0")
    return d.strftime("%Y-%m-%dT%H:%M:%S") + (f".{f}" if f else "") + "Z"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def ws_path_ok(path: str) -> bool:
    """Advanced Trade serves market data on ``/`` (a query string is allowed)."""
    return path.partition("?")[0] in ("", "/")


def _next_seq(state: dict) -> int:
    n = state.get("seq", 0)
    state["seq"] = n + 1
    return int(n)


def _now(state: dict) -> int:
    now = state.get("now_us")
    if isinstance(now, int):
        return now
    return time.time_ns() // 1000


def _envelope(state: dict, channel: str, events: list, now_us: int) -> str:
    return _dumps(
        {
            "channel": channel,
            "client_id": "",
            "timestamp": iso_us(now_us, digits=9),
            "sequence_num": _next_seq(state),
            "events": events,
        }
    )


def _wire(t: Trade) -> dict[str, str]:
    return {
        "product_id": t.symbol,
        "trade_id": str(t.trade_id),
        "price": decimal_text(t.price),
        "size": decimal_text(t.qty),
        "time": iso_us(t.ts),
        "side": "SELL" if t.is_buyer_maker else "BUY",  # taker side
    }


def on_client_text(text: str, state: dict) -> list[str]:
    """Replies to one client frame (subscribe/unsubscribe acks, snapshot, errors)."""
    subs: dict[str, list[str]] = state.setdefault("subs", {})
    try:
        msg = json.loads(text)
    except ValueError:
        return [_dumps({"type": "error", "message": "failure to parse JSON"})]
    if not isinstance(msg, dict):
        return [_dumps({"type": "error", "message": "message must be a JSON object"})]
    kind = msg.get("type")
    channel = msg.get("channel")
    if kind not in ("subscribe", "unsubscribe"):
        return [_dumps({"type": "error", "message": f"unknown message type {kind!r}"})]
    if channel not in _CHANNELS:
        return [_dumps({"type": "error", "message": f"Unknown channel {channel!r}"})]
    ids = msg.get("product_ids", [])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return [_dumps({"type": "error", "message": "product_ids must be a list of strings"})]
    if channel == "market_trades" and not ids:
        return [_dumps({"type": "error", "message": "market_trades requires product_ids"})]
    known = state.get("products")
    if known is not None:
        bad = [i for i in ids if i not in known]
        if bad:
            return [_dumps({"type": "error", "message": f"Unknown product id(s): {bad}"})]
    now = _now(state)
    cur = subs.setdefault(channel, [])
    if kind == "subscribe":
        for i in ids:
            if i not in cur:
                cur.append(i)
    else:
        subs[channel] = [i for i in cur if i not in ids]
    out = [
        _envelope(
            state,
            "subscriptions",
            [{"subscriptions": {k: list(v) for k, v in subs.items() if v}}],
            now,
        )
    ]
    if kind == "subscribe" and channel == "market_trades":
        recent: Mapping[str, Sequence[Trade]] = state.get("recent", {})
        snap = [t for i in ids for t in recent.get(i, ())]
        snap.sort(key=lambda t: t.trade_id, reverse=True)
        out.append(
            _envelope(
                state,
                "market_trades",
                [{"type": "snapshot", "trades": [_wire(t) for t in snap]}],
                now,
            )
        )
    return out


def trade_frames(trades: Sequence[Trade], state: dict) -> list[str]:
    """One ``market_trades`` update frame carrying the window ``trades`` of the subscribed
    products, newest first (as Coinbase packs 250 ms of trades)."""
    wanted = set(state.get("subs", {}).get("market_trades", ()))
    sel = [t for t in trades if t.symbol in wanted]
    if not sel:
        return []
    sel.sort(key=lambda t: (t.trade_id, t.symbol), reverse=True)
    now = state.get("now_us")
    if not isinstance(now, int):
        now = max(t.event_ts for t in sel)
    return [
        _envelope(
            state, "market_trades", [{"type": "update", "trades": [_wire(t) for t in sel]}], now
        )
    ]


def heartbeat_frames(state: dict, now_us: int) -> list[str]:
    """One ``heartbeats`` frame if the client subscribed to them (Coinbase sends 1/s)."""
    if "heartbeats" not in state.get("subs", {}):
        return []
    n = int(state.get("hb_counter", 0)) + 1
    state["hb_counter"] = n
    sec, frac = divmod(now_us, 1_000_000)
    d = _EPOCH + _dt.timedelta(seconds=sec)
    go_time = d.strftime("%Y-%m-%d %H:%M:%S") + f".{frac:06d}000 +0000 UTC m=+{n}.000000001"
    return [
        _envelope(state, "heartbeats", [{"current_time": go_time, "heartbeat_counter": n}], now_us)
    ]


def _rest_row(t: Trade) -> dict[str, Any]:
    return {
        "time": iso_us(t.ts),
        "trade_id": t.trade_id,
        "price": decimal_text(t.price),
        "size": decimal_text(t.qty),
        "side": "buy" if t.is_buyer_maker else "sell",  # maker side
    }


def _error(status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    return status, dict(_JSON), _dumps({"message": message}).encode()


def rest_history(
    trades: Sequence[Trade], params: Mapping[str, str], symbol: str
) -> tuple[int, dict[str, str], bytes]:
    """``GET /products/{symbol}/trades``: ``after=X`` -> ids below X, ``before=X`` -> the ids
    just above X, both exclusive; newest first, ``limit`` (default and max 1000) rows."""
    own = sorted((t for t in trades if t.symbol == symbol), key=lambda t: t.trade_id)
    try:
        limit = int(params.get("limit", MAX_LIMIT))
        after = int(params["after"]) if "after" in params else None
        before = int(params["before"]) if "before" in params else None
    except ValueError:
        return _error(400, "Invalid pagination parameters")
    if limit < 1:
        return _error(400, "limit must be a positive integer")
    limit = min(limit, MAX_LIMIT)
    if before is not None and after is None:
        page = [t for t in own if t.trade_id > before][:limit]
    else:
        cand = [t for t in own if (after is None or t.trade_id < after)]
        if before is not None:
            cand = [t for t in cand if t.trade_id > before]
        page = cand[-limit:]
    page.reverse()  # newest first
    headers = dict(_JSON)
    if page:
        headers["CB-BEFORE"] = str(page[0].trade_id)
        headers["CB-AFTER"] = str(page[-1].trade_id)
    return 200, headers, _dumps([_rest_row(t) for t in page]).encode()


def rest_rate_limited() -> tuple[int, dict[str, str], bytes]:
    """Coinbase's public-rate-limit reply: HTTP 429, no ``Retry-After`` (none documented)."""
    return _error(429, "Public rate limit exceeded")


def rest_instruments(instruments: Sequence[Instrument]) -> bytes:
    """``GET /products`` in Coinbase's shape."""
    return _dumps(
        [
            {
                "id": i.symbol,
                "base_currency": i.base,
                "quote_currency": i.quote,
                "quote_increment": decimal_text(i.tick_size) if i.tick_size else "0.01",
                "base_increment": decimal_text(i.lot_size) if i.lot_size else "0.00000001",
                "display_name": f"{i.base}/{i.quote}",
                "status": "online",
                "trading_disabled": False,
            }
            for i in instruments
        ]
    ).encode()


def drop_same_timestamp(trades: Sequence[Trade]) -> list[Trade]:
    """Coinbase has no such quirk: every trade is kept (the switch is Kraken's)."""
    return list(trades)
