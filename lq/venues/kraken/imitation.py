"""The local exchange's Kraken: WebSocket v2 and REST ``/0/public/Trades``, pure.

Imitated (checklist of ``shared/reference/venues.md`` §2.8):

* WS path ``/v2``; ``subscribe``/``unsubscribe`` with ``params.channel`` ``trade``,
  ``params.symbol[]``, ``params.snapshot``; one ack per symbol with ``success``, ``time_in``,
  ``time_out`` and the echoed ``req_id``; errors ``success:false`` with ``error``;
* ``trade`` frames ``{"channel":"trade","type":"snapshot"|"update","data":[...]}`` with JSON
  number price/qty, RFC 3339 µs times, taker side; a snapshot of up to 50 recent trades
  (``state["recent"][symbol]``) when asked;
* ``{"channel":"heartbeat"}`` when idle; ``ping`` -> ``pong`` with ``time_in``/``time_out``;
* the api-go#36 fault: :func:`drop_same_timestamp` removes every trade that shares its
  timestamp with the previous trade of its pair (REST keeps them);
* REST ``/0/public/Trades?pair&since&count``: oldest first, at most 1000 rows, ``since`` an
  exclusive ns cursor, ``last`` the ns time of the page's last trade, the REST pair name as the
  result key, errors in the body; the rate-limit reply is HTTP 200 with
  ``{"error":["EGeneral:Too many requests"]}``; ``/0/public/AssetPairs``.

Kraken's trade times are finer than µs; the imitation gives the trades that share one µs
distinct ns times (``ts * 1000 + k`` for the k-th of them), so the ns cursor pages through
them exactly, as Kraken's does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from lq.feeds.events import Trade
from lq.venues.coinbase.imitation import decimal_text, iso_us
from lq.venues.instrument import Instrument

from .rest import MAX_LIMIT, rest_pair

__all__ = [
    "drop_same_timestamp",
    "heartbeat_frames",
    "ns_times",
    "on_client_text",
    "rest_history",
    "rest_instruments",
    "rest_rate_limited",
    "trade_frames",
    "ws_path_ok",
]

SNAPSHOT_TRADES = 50
_JSON = {"Content-Type": "application/json"}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def ws_path_ok(path: str) -> bool:
    """Kraken's public v2 endpoint is ``/v2``."""
    return path.partition("?")[0] in ("/v2", "/v2/")


def _now(state: dict) -> int:
    now = state.get("now_us")
    return now if isinstance(now, int) else time.time_ns() // 1000


def _wire(t: Trade) -> dict[str, Any]:
    return {
        "symbol": t.symbol,
        "side": "sell" if t.is_buyer_maker else "buy",  # taker side
        "price": t.price,
        "qty": t.qty,
        "ord_type": "market",
        "trade_id": t.trade_id,
        "timestamp": iso_us(t.ts, trim=False),
    }


def on_client_text(text: str, state: dict) -> list[str]:
    """Replies to one client frame: acks (one per symbol), snapshot, pong, errors."""
    subs: set[str] = state.setdefault("subs", set())
    now = _now(state)
    stamp = iso_us(now, trim=False)
    try:
        msg = json.loads(text)
    except ValueError:
        return [
            _dumps(
                {
                    "error": "Malformed request",
                    "success": False,
                    "time_in": stamp,
                    "time_out": stamp,
                }
            )
        ]
    if not isinstance(msg, dict):
        return [
            _dumps(
                {
                    "error": "Malformed request",
                    "success": False,
                    "time_in": stamp,
                    "time_out": stamp,
                }
            )
        ]
    method = msg.get("method")
    rid = msg.get("req_id")
    tail: dict[str, Any] = {"time_in": stamp, "time_out": stamp}
    if rid is not None:
        tail["req_id"] = rid

    def err(why: str, **extra: Any) -> str:
        return _dumps({"error": why, "method": method, "success": False, **extra, **tail})

    if method == "ping":
        return [_dumps({"method": "pong", **tail})]
    if method not in ("subscribe", "unsubscribe"):
        return [err(f"Method {method!r} not found" if method else "Missing method")]
    params = msg.get("params")
    if not isinstance(params, dict):
        return [err("Missing params")]
    channel = params.get("channel")
    if channel != "trade":
        return [err(f"Channel {channel} not found")]
    symbols = params.get("symbol")
    if not isinstance(symbols, list) or not symbols or not all(isinstance(s, str) for s in symbols):
        return [err("symbol must be a non-empty list of pairs")]
    snapshot = params.get("snapshot", False)
    if not isinstance(snapshot, bool):
        return [err("snapshot must be a boolean")]
    known = state.get("symbols")
    out: list[str] = []
    recent: Mapping[str, Sequence[Trade]] = state.get("recent", {})
    for s in symbols:
        if known is not None and s not in known:
            out.append(err(f"Currency pair not supported {s}", symbol=s))
            continue
        result: dict[str, Any] = {"channel": "trade", "symbol": s}
        if method == "subscribe":
            if s in subs:
                out.append(err("Already subscribed", symbol=s))
                continue
            subs.add(s)
            result["snapshot"] = snapshot
        else:
            if s not in subs:
                out.append(err("Subscription Not Found", symbol=s))
                continue
            subs.discard(s)
        out.append(_dumps({"method": method, "result": result, "success": True, **tail}))
        if method == "subscribe" and snapshot:
            snap = sorted(recent.get(s, ()), key=lambda t: t.trade_id)[-SNAPSHOT_TRADES:]
            out.append(
                _dumps({"channel": "trade", "type": "snapshot", "data": [_wire(t) for t in snap]})
            )
    return out


def trade_frames(trades: Sequence[Trade], state: dict) -> list[str]:
    """One ``update`` frame per subscribed pair carrying its trades in id order."""
    subs = state.get("subs", set())
    by_symbol: dict[str, list[Trade]] = {}
    for t in trades:
        if t.symbol in subs:
            by_symbol.setdefault(t.symbol, []).append(t)
    out = []
    for ts in by_symbol.values():
        ts.sort(key=lambda t: t.trade_id)
        out.append(_dumps({"channel": "trade", "type": "update", "data": [_wire(t) for t in ts]}))
    return out


def heartbeat_frames(state: dict, now_us: int) -> list[str]:
    """``{"channel":"heartbeat"}`` once something is subscribed (Kraken: ~1/s when idle)."""
    return ['{"channel":"heartbeat"}'] if state.get("subs") else []


def drop_same_timestamp(trades: Sequence[Trade]) -> list[Trade]:
    """What WS v2 delivers per krakenfx/api-go#36: of the trades of a pair that share one
    timestamp, only the first (lowest id)."""
    last_ts: dict[str, int] = {}
    out = []
    for t in sorted(trades, key=lambda t: (t.symbol, t.trade_id)):
        if last_ts.get(t.symbol) != t.ts:
            out.append(t)
        last_ts[t.symbol] = t.ts
    out.sort(key=lambda t: (t.ts, t.trade_id))
    return out


def ns_times(trades: Sequence[Trade]) -> list[int]:
    """The ns time Kraken would give each of ``trades`` (sorted by id): ``ts * 1000 + k`` for
    the k-th trade (k < 1000) of those sharing one µs."""
    out = []
    prev, k = None, 0
    for t in trades:
        k = k + 1 if t.ts == prev else 0
        prev = t.ts
        out.append(t.ts * 1000 + min(k, 999))
    return out


def _seconds(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def _body(obj: Any) -> bytes:
    return _dumps(obj).encode()


def rest_history(
    trades: Sequence[Trade], params: Mapping[str, str], symbol: str
) -> tuple[int, dict[str, str], bytes]:
    """``GET /0/public/Trades``: the trades of ``symbol`` with ns time > ``since``, oldest first,
    ``count`` (default and max 1000) rows, ``last`` = ns time of the last row."""
    pair = params.get("pair", "")
    if pair != rest_pair(symbol) and pair != symbol:
        return 200, dict(_JSON), _body({"error": ["EQuery:Unknown asset pair"]})
    try:
        since = int(params["since"]) if "since" in params else None
        count = int(params.get("count", MAX_LIMIT))
    except ValueError:
        return 200, dict(_JSON), _body({"error": ["EGeneral:Invalid arguments"]})
    count = max(1, min(count, MAX_LIMIT))
    own = sorted((t for t in trades if t.symbol == symbol), key=lambda t: t.trade_id)
    ns = ns_times(own)
    if since is None:
        sel = list(zip(own, ns, strict=True))[-count:]
    else:
        sel = [(t, n) for t, n in zip(own, ns, strict=True) if n > since][:count]
    rows = [
        f'["{decimal_text(t.price)}","{decimal_text(t.qty)}",{_seconds(n)},'
        f'"{"s" if t.is_buyer_maker else "b"}","m","",{t.trade_id}]'  # time: a JSON number
        for t, n in sel
    ]
    last = sel[-1][1] if sel else (since if since is not None else 0)
    text = f'{{"error":[],"result":{{{json.dumps(pair)}:[{",".join(rows)}],"last":"{last}"}}}}'
    return 200, dict(_JSON), text.encode()


def rest_rate_limited() -> tuple[int, dict[str, str], bytes]:
    """Kraken's rate-limit reply: HTTP 200 with the error in the body."""
    return 200, dict(_JSON), b'{"error":["EGeneral:Too many requests"]}'


def rest_instruments(instruments: Sequence[Instrument]) -> bytes:
    """``GET /0/public/AssetPairs`` in Kraken's shape (``wsname`` in the v2 spelling)."""
    result = {}
    for i in instruments:
        alt = rest_pair(i.symbol)
        d: dict[str, Any] = {"altname": alt, "wsname": i.symbol, "base": i.base, "quote": i.quote}
        if i.tick_size is not None:
            d["tick_size"] = decimal_text(i.tick_size)
        if i.lot_size is not None:
            d["lot_decimals"] = max(0, -_exp10(i.lot_size))
        result[alt] = d
    return _body({"error": [], "result": result})


def _exp10(x: float) -> int:
    from decimal import Decimal

    return Decimal(repr(x)).normalize().as_tuple().exponent  # type: ignore[return-value]
