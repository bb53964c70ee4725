"""The local exchange's OKX v5: WebSocket ``trades-all`` and REST ``history-trades``, pure.

Imitated (checklist of ``shared/reference/venues.md`` §3.7):

* paths ``/ws/v5/public`` and ``/ws/v5/business``; ``trades-all`` only on business (the core
  puts the path in ``state["path"]``; elsewhere error 60018);
* ``op`` subscribe/unsubscribe with ``args``; one ack per arg with ``event``, ``arg``,
  ``connId`` and the echoed ``id``; errors ``{"event":"error","code":"60012",...}`` with a
  string code; text ``ping`` -> ``pong``;
* ``trades-all`` pushes: one trade per push, string fields, ms ``ts``, taker side;
* REST ``/api/v5/market/history-trades`` (``type`` 1 = by tradeId, 2 = by ts; ``after``/
  ``before`` exclusive; ``limit`` at most 100; newest first) and the rate-limit reply
  ``{"code":"50011","msg":"Rate limit reached..."}`` (HTTP 429);
  ``/api/v5/public/instruments``.

OKX sends no heartbeat frames (the client pings); :func:`heartbeat_frames` returns ``[]``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from lq.feeds.events import Trade
from lq.venues.coinbase.imitation import decimal_text
from lq.venues.instrument import Instrument

from .protocol import CHANNEL
from .rest import MAX_LIMIT

__all__ = [
    "drop_same_timestamp",
    "heartbeat_frames",
    "on_client_text",
    "rest_history",
    "rest_instruments",
    "rest_rate_limited",
    "trade_frames",
    "ws_path_ok",
]

_JSON = {"Content-Type": "application/json"}
_PATHS = ("/ws/v5/public", "/ws/v5/business")
_BUSINESS_ONLY = frozenset({"trades-all"})
_PUBLIC_ONLY = frozenset({"trades"})


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def ws_path_ok(path: str) -> bool:
    """OKX's public and business WebSocket paths."""
    return path.partition("?")[0] in _PATHS


def _conn_id(state: dict) -> str:
    cid = state.get("conn_id")
    if not isinstance(cid, str):
        cid = f"{id(state) & 0xFFFFFFFF:08x}"
        state["conn_id"] = cid
    return cid


def on_client_text(text: str, state: dict) -> list[str]:
    """Replies to one client frame: ``pong``, one ack per subscribed arg, or an error."""
    if text == "ping":
        return ["pong"]
    subs: set[tuple[str, str]] = state.setdefault("subs", set())
    cid = _conn_id(state)
    try:
        msg = json.loads(text)
    except ValueError:
        msg = None
    rid = msg.get("id") if isinstance(msg, dict) else None
    head: dict[str, Any] = {"id": rid} if isinstance(rid, str) else {}

    def err(code: str, why: str) -> str:
        return _dumps({**head, "event": "error", "code": code, "msg": why, "connId": cid})

    if not isinstance(msg, dict) or msg.get("op") not in ("subscribe", "unsubscribe"):
        return [err("60012", f"Invalid request: {text[:200]}")]
    op = msg["op"]
    args = msg.get("args")
    if not isinstance(args, list) or not args:
        return [err("60012", f"Invalid request: {text[:200]}")]
    path = str(state.get("path", "/ws/v5/business")).partition("?")[0]
    known = state.get("symbols")
    out = []
    for a in args:
        if not isinstance(a, dict) or not isinstance(a.get("channel"), str):
            out.append(err("60012", f"Invalid request: {text[:200]}"))
            continue
        ch, inst = a["channel"], a.get("instId")
        wrong_url = (ch in _BUSINESS_ONLY and path != "/ws/v5/business") or (
            ch in _PUBLIC_ONLY and path != "/ws/v5/public"
        )
        if wrong_url or ch not in _BUSINESS_ONLY | _PUBLIC_ONLY:
            out.append(
                err(
                    "60018",
                    f"Wrong URL or channel:{ch},instId:{inst} doesn't exist. Please use the "
                    "correct URL, channel and parameters referring to API document.",
                )
            )
            continue
        if not isinstance(inst, str) or (known is not None and inst not in known):
            out.append(err("60018", f"Wrong URL or channel:{ch},instId:{inst} doesn't exist."))
            continue
        if op == "subscribe":
            subs.add((ch, inst))
        else:
            subs.discard((ch, inst))
        out.append(
            _dumps({**head, "event": op, "arg": {"channel": ch, "instId": inst}, "connId": cid})
        )
    return out


def _entry(t: Trade) -> dict[str, str]:
    return {
        "instId": t.symbol,
        "tradeId": str(t.trade_id),
        "px": decimal_text(t.price),
        "sz": decimal_text(t.qty),
        "side": "sell" if t.is_buyer_maker else "buy",  # taker side
        "ts": str(t.ts // 1000),
    }


def trade_frames(trades: Sequence[Trade], state: dict) -> list[str]:
    """One ``trades-all`` push per trade of a subscribed instrument, in id order. OKX times are
    ms: a trade's µs below the ms are not representable (the core's trades should be whole ms)."""
    subs = state.get("subs", set())
    sel = sorted(
        (t for t in trades if (CHANNEL, t.symbol) in subs), key=lambda t: (t.trade_id, t.symbol)
    )
    return [
        _dumps({"arg": {"channel": CHANNEL, "instId": t.symbol}, "data": [_entry(t)]}) for t in sel
    ]


def heartbeat_frames(state: dict, now_us: int) -> list[str]:
    """OKX sends no heartbeats: the client pings (see :data:`.protocol.PING_INTERVAL_S`)."""
    return []


def _reply(code: str, msg: str, data: list, status: int = 200) -> tuple[int, dict[str, str], bytes]:
    return status, dict(_JSON), _dumps({"code": code, "msg": msg, "data": data}).encode()


def rest_history(
    trades: Sequence[Trade], params: Mapping[str, str], symbol: str
) -> tuple[int, dict[str, str], bytes]:
    """``GET /api/v5/market/history-trades``: ``after`` -> older than, ``before`` -> newer than
    (exclusive), by tradeId (``type=1``, default) or ts ms (``type=2``); newest first."""
    if params.get("instId") != symbol:
        return _reply("51001", "Instrument ID does not exist", [])
    kind = params.get("type", "1")
    if kind not in ("1", "2"):
        return _reply("51000", "Parameter type error", [])
    try:
        limit = int(params.get("limit", MAX_LIMIT))
        after = int(params["after"]) if "after" in params else None
        before = int(params["before"]) if "before" in params else None
    except ValueError:
        return _reply("51000", "Parameter after/before/limit error", [])
    limit = max(1, min(limit, MAX_LIMIT))
    own = sorted((t for t in trades if t.symbol == symbol), key=lambda t: t.trade_id)

    def key(t: Trade) -> int:
        return t.trade_id if kind == "1" else t.ts // 1000

    if before is not None and after is None:
        page = [t for t in own if key(t) > before][:limit]
    else:
        cand = [t for t in own if after is None or key(t) < after]
        if before is not None:
            cand = [t for t in cand if key(t) > before]
        page = cand[-limit:]
    page.reverse()
    return _reply("0", "", [_entry(t) for t in page])


def rest_rate_limited() -> tuple[int, dict[str, str], bytes]:
    """OKX's rate-limit reply."""
    return _reply(
        "50011",
        "Rate limit reached. Please refer to API documentation and throttle requests accordingly.",
        [],
        status=429,
    )


def rest_instruments(instruments: Sequence[Instrument]) -> bytes:
    """``GET /api/v5/public/instruments?instType=SPOT`` in OKX's shape."""
    data = [
        {
            "instId": i.symbol,
            "instType": "SPOT",
            "baseCcy": i.base,
            "quoteCcy": i.quote,
            "tickSz": decimal_text(i.tick_size) if i.tick_size else "0.1",
            "lotSz": decimal_text(i.lot_size) if i.lot_size else "0.00000001",
            "state": "live",
        }
        for i in instruments
    ]
    return _dumps({"code": "0", "msg": "", "data": data}).encode()


def drop_same_timestamp(trades: Sequence[Trade]) -> list[Trade]:
    """OKX has no such quirk: every trade is kept (the switch is Kraken's)."""
    return list(trades)
