"""Sans-I/O parser for Binance depth: diff frames and snapshots in, typed events out.

:meth:`DepthParser.parse` takes one frame (``bytes`` or ``str``) and returns a
:class:`~lq.feeds.events.DepthUpdate` (``depthUpdate``: spot ``U``/``u``, USD-M with ``pu``
and ``T``), a :class:`~lq.feeds.events.DepthSnapshot` (the REST ``/api/v3/depth`` or
``/fapi/v1/depth`` JSON, or a spot partial-book frame ``@depth5/10/20``; USD-M partial frames
are refused, not yet supported), ``None`` for a
well-formed frame that is not depth (trades, tickers: counted in :attr:`DepthParser.ignored`),
or a :class:`~lq.feeds.events.Rejected` naming the problem. **It never raises**, whatever the
bytes (the same contract as :class:`lq.feeds.parser.Parser`, whose rules it applies).

Rules (``shared/reference/binance-protocol.md`` §1.6, §4.1; :mod:`lq.feeds.invariants`):

* ids ``U``, ``u``, ``lastUpdateId`` within ``0..2**63-1`` and ``U <= u``; ``pu`` within
  ``-1..2**63-1`` (``-1``: no previous event);
* prices finite within ``1e-10..1e12``; quantities ``0`` (delete) or ``1e-10..1e15`` (no
  negative, no denormal, no infinity, no NaN); a price at most once per side of a frame;
* times ``E``/``T`` in 2009..2100 (ms or µs, told apart by magnitude as in the trade parser);
* the symbol ``s`` is the stream's (``btcusdt@depth@100ms`` carries ``BTCUSDT``) and one of
  ``symbols`` when given;
* a snapshot's levels are strictly sorted best first, have no zero quantity, and are neither
  crossed nor locked (best bid < best ask). A REST snapshot does not name its symbol: pass
  ``symbol=`` (the symbol the request was for).

Examples
--------
>>> p = DepthParser()
>>> ev = p.parse(b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255308,'
...              b'"s":"BTCUSDT","U":203,"u":207,"b":[["61837.63","0.00000000"]],'
...              b'"a":[["61838.04","0.32332"]]}}', recv_ts=1723161254036059)
>>> ev.first_id, ev.last_id, ev.bids, ev.asks
(203, 207, ((61837.63, 0.0),), ((61838.04, 0.32332),))
>>> p.parse(b'{"lastUpdateId":5,"bids":[["2","1"]],"asks":[["1","1"]]}', 0, symbol="BTCUSDT").reason
'depth snapshot: crossed book: best bid 2.0 >= best ask 1.0'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

import msgspec

from lq.feeds.events import DepthSnapshot, DepthUpdate, Rejected
from lq.feeds.invariants import (
    MAX_ID,
    MAX_TS,
    MIN_QTY,
    MIN_TS,
    BookQty,
    Id,
    Price,
    Time,
    symbol_problem,
    ts_problem,
)
from lq.feeds.parser import TimeUnit, to_us
from lq.feeds.parsing import reason

__all__ = ["DepthParser"]

_Level = tuple[Price, BookQty]
_PrevId = Annotated[int, msgspec.Meta(ge=-1, le=MAX_ID)]


class _DiffP(msgspec.Struct, gc=False):
    e: str
    E: Time
    s: str
    U: Id
    u: Id
    b: list[_Level]
    a: list[_Level]
    T: Time | None = None
    pu: _PrevId | None = None


class _SnapP(msgspec.Struct, gc=False):
    lastUpdateId: Id
    bids: list[_Level]
    asks: list[_Level]
    E: Time | None = None
    T: Time | None = None


class _Env(msgspec.Struct):
    stream: str | None = None
    data: msgspec.Raw = msgspec.Raw()
    e: str | None = None
    lastUpdateId: Any = None


class _Bad(Exception):
    """Internal: a rule broken; the message is the Rejected reason."""


def _text(raw: bytes | str) -> str:
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return bytes(raw).decode("utf-8", "replace")


def _check_levels(levels: list[tuple[float, float]], side: str) -> tuple[tuple[float, float], ...]:
    seen: set[float] = set()
    for p, q in levels:
        if 0.0 < q < MIN_QTY:
            raise _Bad(f"{side} level {p!r}: quantity {q!r} is below {MIN_QTY:g} (denormal?)")
        if p in seen:
            raise _Bad(f"{side} price {p!r} appears twice in one frame")
        seen.add(p)
    return tuple(levels)


class DepthParser:
    """Turn raw Binance depth frames into :class:`DepthUpdate` / :class:`DepthSnapshot`.

    Parameters
    ----------
    exchange
        Label stored in every event's ``exchange`` field.
    time_unit
        ``"auto"`` (detect by magnitude), ``"ms"`` or ``"us"``.
    symbols
        The symbols subscribed (upper case). When given, a frame of any other symbol is a
        :class:`Rejected`.
    """

    def __init__(
        self,
        *,
        exchange: str = "binance",
        time_unit: TimeUnit = "auto",
        symbols: Iterable[str] | None = None,
    ) -> None:
        if time_unit not in ("auto", "ms", "us"):
            raise ValueError(f"time_unit={time_unit!r}: expected 'auto', 'ms' or 'us'")
        if isinstance(symbols, str):
            raise ValueError(f"symbols={symbols!r}: expected a list of symbols, not a string")
        self.exchange = exchange
        self.time_unit: TimeUnit = time_unit
        self.symbols = None if symbols is None else frozenset(symbols)
        self.updates = 0
        """Diff events produced."""
        self.snapshots = 0
        """Snapshots produced."""
        self.rejected = 0
        """Frames refused (each returned as a :class:`Rejected`)."""
        self.ignored = 0
        """Well-formed frames that are not depth (trades, tickers...)."""
        self._env = msgspec.json.Decoder(_Env)
        self._diff = msgspec.json.Decoder(_DiffP, strict=False)
        self._snap = msgspec.json.Decoder(_SnapP, strict=False)

    def parse(
        self, raw: bytes | str, recv_ts: int, *, symbol: str | None = None
    ) -> DepthUpdate | DepthSnapshot | Rejected | None:
        """Parse one frame; never raises.

        Parameters
        ----------
        raw
            The frame as received, or the REST snapshot's body.
        recv_ts
            Local receive time, µs since the epoch.
        symbol
            The symbol of a REST snapshot (which does not say it); ignored for stream frames
            (they must carry their stream's symbol).
        """
        try:
            out = self._parse(raw, recv_ts, symbol)
        except _Bad as exc:
            self.rejected += 1
            return Rejected(
                raw=_text(raw), reason=str(exc), recv_ts=recv_ts, exchange=self.exchange
            )
        except RecursionError:
            self.rejected += 1
            return Rejected(
                raw=_text(raw),
                reason="invalid JSON: nested too deeply",
                recv_ts=recv_ts,
                exchange=self.exchange,
            )
        except Exception as exc:  # whatever the bytes, nothing escapes
            self.rejected += 1
            return Rejected(
                raw=_text(raw),
                reason=f"unparseable frame: {type(exc).__name__}: {reason(exc)}",
                recv_ts=recv_ts,
                exchange=self.exchange,
            )
        if out is None:
            self.ignored += 1
        elif type(out) is DepthUpdate:
            self.updates += 1
        else:
            self.snapshots += 1
        return out

    # -- internals ----------------------------------------------------------------------------

    def _parse(
        self, raw: bytes | str, recv_ts: int, symbol: str | None
    ) -> DepthUpdate | DepthSnapshot | None:
        b = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
        if not b.strip():
            raise _Bad("empty frame")
        try:
            env = self._env.decode(b)
        except msgspec.ValidationError as exc:
            raise _Bad(f"not a Binance frame: {reason(exc)}") from None
        except msgspec.DecodeError as exc:
            raise _Bad(f"invalid JSON: {reason(exc)}") from None
        if env.stream is not None:
            stream = env.stream
            name, at, kind = stream.partition("@")
            if not at or not kind.startswith("depth"):
                return None
            if not env.data:
                raise _Bad(f"combined frame for stream {stream!r} has no 'data'")
            want = self._stream_symbol(stream, name)
            rest = kind[5:].partition("@")
            if rest[0] == "":
                return self._update(env.data, recv_ts, want, f"stream {stream!r}")
            if rest[0] in ("5", "10", "20"):
                if bytes(env.data).lstrip()[:1] == b"{" and b'"depthUpdate"' in bytes(env.data):
                    raise _Bad(
                        f"stream {stream!r}: USD-M partial-depth frames (depthUpdate-shaped) "
                        "are not supported yet; subscribe to the diff stream @depth"
                    )
                return self._snapshot(env.data, recv_ts, want, f"stream {stream!r}", "partial")
            raise _Bad(f"stream {stream!r}: not a Binance depth stream")
        if env.e is not None:
            if env.e != "depthUpdate":
                return None
            return self._update(b, recv_ts, None, "raw depthUpdate frame")
        if env.lastUpdateId is not None:
            if symbol is None:
                raise _Bad("depth snapshot: it does not name its symbol; pass symbol=")
            why = symbol_problem(symbol)
            if why is not None:
                raise _Bad(f"depth snapshot: symbol={symbol!r}: {why}")
            return self._snapshot(b, recv_ts, symbol, "depth snapshot", "rest")
        return None

    def _stream_symbol(self, stream: str, name: str) -> str:
        sym = name.upper()
        if name != name.lower() or not name:
            raise _Bad(f"stream {stream!r} refused: stream names are lower case")
        why = symbol_problem(sym)
        if why is not None:
            raise _Bad(f"stream {stream!r} refused: {why}")
        if self.symbols is not None and sym not in self.symbols:
            raise _Bad(f"stream {stream!r} refused: {sym!r} is not one of the subscribed symbols")
        return sym

    def _time(self, name: str, v: int, where: str) -> int:
        ts = to_us(v, self.time_unit)
        if MIN_TS <= ts < MAX_TS:
            return ts
        raise _Bad(f"{where}: {ts_problem(name, ts)}")

    def _update(
        self, payload: bytes | msgspec.Raw, recv_ts: int, want: str | None, where: str
    ) -> DepthUpdate:
        try:
            d = self._diff.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise _Bad(f"{where}: bad depthUpdate payload: {reason(exc)}") from None
        if d.e != "depthUpdate":
            raise _Bad(f"{where}: event type e={d.e!r} is not 'depthUpdate'")
        if want is not None:
            if d.s != want:
                raise _Bad(f"{where} carries symbol {d.s!r}, not {want!r}")
        else:
            why = symbol_problem(d.s)
            if why is not None:
                raise _Bad(f"{where}: {why}")
            if self.symbols is not None and d.s not in self.symbols:
                raise _Bad(f"{where}: symbol {d.s!r} is not one of the subscribed symbols")
        if d.u < d.U:
            raise _Bad(f"{where}: first update id U={d.U} is after the last u={d.u}")
        event_ts = self._time("E", d.E, where)
        ts = self._time("T", d.T, where) if d.T is not None else event_ts
        try:
            bids = _check_levels(d.b, "bid")
            asks = _check_levels(d.a, "ask")
        except _Bad as exc:
            raise _Bad(f"{where}: {exc}") from None
        return DepthUpdate(
            symbol=d.s,
            first_id=d.U,
            last_id=d.u,
            prev_last_id=d.pu,
            bids=bids,
            asks=asks,
            ts=ts,
            event_ts=event_ts,
            recv_ts=recv_ts,
            exchange=self.exchange,
        )

    def _snapshot(
        self,
        payload: bytes | msgspec.Raw,
        recv_ts: int,
        symbol: str,
        where: str,
        source: Any,
    ) -> DepthSnapshot:
        try:
            d = self._snap.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise _Bad(f"{where}: bad depth snapshot: {reason(exc)}") from None
        if self.symbols is not None and symbol not in self.symbols:
            raise _Bad(f"{where}: symbol {symbol!r} is not one of the subscribed symbols")
        if d.E is not None:
            self._time("E", d.E, where)
        ts = self._time("T", d.T, where) if d.T is not None else recv_ts
        for side, levels, desc in (("bid", d.bids, True), ("ask", d.asks, False)):
            prev = None
            for p, q in levels:
                if q == 0.0:
                    raise _Bad(f"{where}: {side} level {p!r} has quantity 0")
                if q < MIN_QTY:
                    raise _Bad(f"{where}: {side} level {p!r}: quantity {q!r} is below {MIN_QTY:g}")
                if prev is not None and (p >= prev if desc else p <= prev):
                    order = "descending" if desc else "ascending"
                    raise _Bad(f"{where}: {side}s are not strictly {order} at price {p!r}")
                prev = p
        if d.bids and d.asks and d.bids[0][0] >= d.asks[0][0]:
            what = "locked" if d.bids[0][0] == d.asks[0][0] else "crossed"
            raise _Bad(
                f"{where}: {what} book: best bid {d.bids[0][0]!r} >= best ask {d.asks[0][0]!r}"
            )
        return DepthSnapshot(
            symbol=symbol,
            last_update_id=d.lastUpdateId,
            bids=tuple(d.bids),
            asks=tuple(d.asks),
            ts=ts,
            recv_ts=recv_ts,
            source=source,
            exchange=self.exchange,
        )
