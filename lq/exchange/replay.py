"""Replay of recorded frames (``<recv ns> <raw JSON>`` lines, gz or plain) as a data source.

Reads the real recordings in ``shared/data/binance/`` and lq's own ``--record`` files with
:func:`lq.feeds.recording.read_frames`. Several files are merged by receive time. ``@trade``
frames become trades (ids and prices exactly as recorded), ``@bookTicker`` frames become
quotes, ``@depth`` diffs become :class:`~lq.exchange.market.DepthIn` (``U``/``u``/``pu``
and the level strings exactly as recorded) and the first recorded REST depth snapshot of
each file becomes a :class:`~lq.exchange.market.DepthSnapIn`, released before every other
item (so the exchange's book exists before the first diff is sent, and REST
``/api/v3/depth`` answers from it). Everything else (control replies...) is skipped. With
``loop=True`` depth is replayed on the first pass only (a book cannot be continued across the
seam: the recording's last book is not its first).

Every payload variant keeps its exchange time: a spot trade its ``T``/``E``; a USD-M futures
trade its ``T``/``E`` and ``X`` (sent again in the futures shape; a non-``MARKET`` marker is
sent as a marker and kept out of the exchange's history); a USD-M/COIN-M ``@bookTicker`` its
``T`` (transaction time) and ``E``, sent again in the futures shape, so the collector stores
``T``, not the replay's clock. Spot ``@bookTicker`` has no time on the wire: the collector
stamps it on receipt, live or replayed. aggTrades and klines are rebuilt from the replayed
trades, with the trades' exchange times.

- ``speed``: 1.0 keeps the recorded inter-arrival times, N is N times faster, ``None`` as
  fast as the clients take the frames.
- ``retime=True``: exchange times are shifted so that the first trade happens now.
- ``loop=True``: start again at the end; pass ``k`` shifts trade ids by ``k`` times the id
  span of each symbol (and update ids, and times by the recording's length + 1 s), so ids
  keep increasing by exactly one across the seam when the recording is contiguous.
"""

from __future__ import annotations

import heapq
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from lq.errors import ValidationError
from lq.exchange.market import DepthIn, DepthSnapIn, QuoteIn, SymbolSpec, TradeIn
from lq.exchange.source import SourceItem, split_symbol
from lq.feeds.recording import read_frames

__all__ = ["ReplaySource"]

_decoder = msgspec.json.Decoder()


def _us(t: int) -> int:
    return t * 1000 if t < 10**14 else t


def _levels(rows: object) -> tuple[tuple[str, str], ...]:
    assert isinstance(rows, list)
    return tuple((str(p), str(q)) for p, q in rows)


def _parse(raw: bytes) -> TradeIn | QuoteIn | DepthIn | None:
    try:
        obj = _decoder.decode(raw)
    except msgspec.DecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    data = obj.get("data", obj)
    if not isinstance(data, dict):
        return None
    e = data.get("e")
    try:
        if e == "trade":
            ev = _us(data["E"])
            ts = _us(data["T"]) if "T" in data else ev
            price = data["p"]
            m = bool(data["m"])
            x = data.get("X")
            return TradeIn(
                data["s"], int(data["t"]), price, data["q"], ts, ev, m, (ts, price, m),
                None if x is None else str(x),
            )  # fmt: skip
        if e == "depthUpdate":
            pu = data.get("pu")
            return DepthIn(
                data["s"], int(data["U"]), int(data["u"]), _levels(data["b"]),
                _levels(data["a"]), _us(data["E"]), None if pu is None else int(pu),
            )  # fmt: skip
        if e in (None, "bookTicker") and "u" in data and "b" in data and "A" in data:
            ev = _us(data["E"]) if "E" in data else 0
            ts = _us(data["T"]) if "T" in data else ev
            return QuoteIn(
                data["s"], int(data["u"]), data["b"], data["B"], data["a"], data["A"], ts, ev
            )
    except (KeyError, TypeError, ValueError):
        return None
    return None


class ReplaySource:
    """Replay recorded frames as the exchange's market (see the module docstring).

    Parameters
    ----------
    paths
        One or more recordings.
    speed
        Playback speed, or ``None`` for as fast as possible.
    loop
        Start again at the end, with ids and times shifted to keep increasing.
    retime
        Shift exchange times so that the replay looks live now.
    """

    def __init__(
        self,
        paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        speed: float | None = 1.0,
        loop: bool = False,
        retime: bool = False,
    ) -> None:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValidationError("paths", paths, "at least one recording is needed")
        for p in self.paths:
            if not p.exists():
                raise ValidationError("paths", str(p), "no such recording")
        if speed is not None and speed <= 0:
            raise ValidationError("speed", speed, "must be positive or None (as fast as possible)")
        self.speed = speed
        self.loop = loop
        self.retime = retime
        self._specs: dict[str, SymbolSpec] | None = None

    def specs(self) -> list[SymbolSpec]:
        """Symbols seen in the recordings (one pass over the files, cached)."""
        if self._specs is None:
            specs: dict[str, SymbolSpec] = {}
            for _, item in self._one_pass():
                if item.symbol not in specs:
                    b, q = split_symbol(item.symbol)
                    specs[item.symbol] = SymbolSpec(
                        symbol=item.symbol, base=b, quote=q,
                        tick_size="0.01000000", lot_size="0.00001000",
                    )  # fmt: skip
            self._specs = specs
        return list(self._specs.values())

    def snapshots(self) -> list[DepthSnapIn]:
        """The first recorded REST depth snapshot of each file (its symbol is the file's
        first depth stream's: a REST answer does not name it)."""
        out: list[DepthSnapIn] = []
        for p in self.paths:
            symbol: str | None = None
            body: bytes | None = None
            for _, raw in read_frames(p):
                if symbol is None and b"@depth" in raw[:64]:
                    symbol = raw[raw.index(b'"stream":"') + 10 : raw.index(b"@")].decode().upper()
                elif body is None and raw.lstrip().startswith(b'{"lastUpdateId"'):
                    body = raw
                if symbol is not None and body is not None:
                    break
            if symbol is None or body is None:
                continue
            try:
                d = _decoder.decode(body)
                out.append(
                    DepthSnapIn(
                        symbol, int(d["lastUpdateId"]), _levels(d["bids"]), _levels(d["asks"])
                    )
                )
            except (msgspec.DecodeError, KeyError, TypeError, ValueError, AssertionError):
                continue
        return out

    def _one_pass(self) -> Iterator[tuple[int, TradeIn | QuoteIn | DepthIn]]:
        merged = heapq.merge(*(read_frames(p) for p in self.paths), key=lambda fr: fr[0])
        for recv_ns, raw in merged:
            item = _parse(raw)
            if item is not None:
                yield recv_ns // 1000, item

    def items(self) -> Iterator[SourceItem]:
        """Items in receive-time order; pacing clock = recorded receive time (µs). The
        recorded depth snapshots come first.

        With ``loop=True`` the first pass is kept in memory (the recordings are tens of
        thousands of items) and every later pass shifts it, without reading the files again."""
        offset: int | None = None
        lo_id: dict[str, int] = {}
        hi_id: dict[str, int] = {}
        lo_u: dict[str, int] = {}
        hi_u: dict[str, int] = {}
        first_at = last_at = None
        cache: list[tuple[int, TradeIn | QuoteIn]] = []
        snaps = self.snapshots()
        k = 0
        while True:
            id_shift = {s: k * (hi_id[s] - lo_id[s] + 1) for s in hi_id} if k else {}
            u_shift = {s: k * (hi_u[s] - lo_u[s] + 1) for s in hi_u} if k else {}
            t_shift = k * (last_at - first_at + 1_000_000) if k else 0  # type: ignore[operator]
            for at, item in self._one_pass() if k == 0 else cache:
                if snaps:
                    for snap in snaps:
                        yield at, snap
                    snaps = []
                if type(item) is DepthIn:
                    if k == 0:
                        first_at = at if first_at is None else first_at
                        last_at = at
                    if offset:
                        item = item._replace(ts=item.ts + offset)
                    yield at, item
                    continue
                if k == 0:
                    if self.loop:
                        cache.append((at, item))  # type: ignore[arg-type]  # never DepthIn
                    first_at = at if first_at is None else first_at
                    last_at = at
                if type(item) is TradeIn:
                    s = item.symbol
                    if k == 0:
                        lo_id[s] = min(lo_id.get(s, item.trade_id), item.trade_id)
                        hi_id[s] = max(hi_id.get(s, item.trade_id), item.trade_id)
                    if offset is None:
                        offset = time.time_ns() // 1000 - item.event_ts if self.retime else 0
                    shift = t_shift + offset
                    if shift or k:
                        ts = item.ts + shift
                        item = TradeIn(
                            s, item.trade_id + id_shift.get(s, 0), item.price, item.qty, ts,
                            item.event_ts + shift, item.is_buyer_maker,
                            (ts, item.price, item.is_buyer_maker), item.trade_type,
                        )  # fmt: skip
                else:
                    assert type(item) is QuoteIn
                    s = item.symbol
                    if k == 0:
                        lo_u[s] = min(lo_u.get(s, item.update_id), item.update_id)
                        hi_u[s] = max(hi_u.get(s, item.update_id), item.update_id)
                    if k or offset:
                        shift = t_shift + (offset or 0)
                        item = QuoteIn(
                            s, item.update_id + u_shift.get(s, 0), item.bid, item.bid_qty,
                            item.ask, item.ask_qty, item.ts + shift if item.ts else 0,
                            item.event_ts + shift if item.event_ts else 0,
                        )  # fmt: skip
                yield at + t_shift, item
            if not self.loop or first_at is None:
                return
            k += 1
