"""Sans-I/O parser: one raw WebSocket frame in, typed :mod:`lq.feeds.events` out.

The parser never touches a socket. :meth:`Parser.parse` takes the frame exactly as received
(``bytes`` or ``str``) plus the local receive time and returns a list of events, or raises
:class:`~lq.errors.FrameError` naming the reason and carrying the raw frame.

Accepted shapes (see ``shared/reference/binance-protocol.md`` sections 1.2, 1.5, 1.6, 4):

* combined frames ``{"stream": "<name>", "data": {...}}`` and raw payloads;
* ``@trade`` (spot with or without the removed ``b``/``a`` order ids, futures with ``X`` and
  without ``M``), ``@aggTrade`` (spot and futures), ``@bookTicker`` (spot without ``e``/``E``/
  ``T``, futures with them), ``@kline_<interval>``;
* control replies ``{"result": ..., "id": ...}`` and ``{"error": {"code", "msg"}, "id": ...}``;
* ``serverShutdown``, raw and combined (``!serverShutdown``).

Frames of streams lq does not model (``@depth``, tickers, REST depth snapshots in recordings)
are valid JSON objects and are ignored (counted in :attr:`Parser.ignored`) unless
``unknown="reject"``.

Times become int64 microseconds. Binance sends milliseconds by default and microseconds with
``timeUnit=MICROSECOND``; ``time_unit="auto"`` tells them apart by magnitude (a value below
1e14 is milliseconds: 1e14 ms is the year 5138, 1e14 µs is 1973). Prices and quantities are
parsed from their decimal strings once, by msgspec, into float64; they must be finite and
non-negative. Decoding is lax about JSON types (an id sent as ``"12"`` is accepted), strict
about values.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from lq.errors import FrameError
from lq.feeds.events import (
    AggTrade,
    BookTicker,
    ControlReply,
    Event,
    Kline,
    ServerShutdown,
    Trade,
)

__all__ = ["Parser", "TimeUnit", "to_us"]

TimeUnit = Literal["auto", "ms", "us"]

_MS_BELOW = 100_000_000_000_000  # values below this are milliseconds (13-digit epoch ms)

# A decimal string (or number) that must be finite and >= 0: rejects "nan", "inf", "-1", "abc".
_Num = Annotated[float, msgspec.Meta(ge=0.0, le=1.7e308)]


def to_us(value: int, unit: TimeUnit = "auto") -> int:
    """Convert an exchange timestamp to microseconds.

    Parameters
    ----------
    value
        Epoch time in milliseconds or microseconds.
    unit
        ``"ms"``, ``"us"`` or ``"auto"`` (values below 1e14 are taken as milliseconds).
    """
    if unit == "ms" or (unit == "auto" and value < _MS_BELOW):
        return value * 1000
    return value


# --- wire payloads (field letters as Binance sends them; unknown fields are ignored) -----------


class _TradeP(msgspec.Struct, gc=False):
    E: int
    s: str
    t: int
    p: _Num
    q: _Num
    T: int
    m: bool


class _AggP(msgspec.Struct, gc=False):
    E: int
    s: str
    a: int
    p: _Num
    q: _Num
    f: int
    l: int  # noqa: E741 - Binance's field name
    T: int
    m: bool


class _BookP(msgspec.Struct, gc=False):
    u: int
    s: str
    b: _Num
    B: _Num
    a: _Num
    A: _Num
    E: int | None = None
    T: int | None = None


class _K(msgspec.Struct, gc=False):
    t: int
    T: int
    i: str
    f: int
    L: int
    o: _Num
    c: _Num
    h: _Num
    l: _Num  # noqa: E741
    v: _Num
    n: int
    x: bool
    q: _Num
    V: _Num
    Q: _Num


class _KlineP(msgspec.Struct, gc=False):
    E: int
    s: str
    k: _K


class _ShutdownP(msgspec.Struct, gc=False):
    E: int


class _Err(msgspec.Struct):
    code: int
    msg: str = ""


class _Envelope(msgspec.Struct):
    """Just enough of any frame to decide what it is."""

    stream: str | None = None
    data: msgspec.Raw = msgspec.Raw()
    e: str | None = None
    s: str | None = None
    u: int | None = None
    result: Any | UnsetType = UNSET
    error: msgspec.Raw = msgspec.Raw()
    id: int | str | UnsetType | None = UNSET
    lastUpdateId: int | None = None


# Combined frames for the hot path: one decode gives stream and typed payload.
class _TradeF(msgspec.Struct, gc=False):
    data: _TradeP


class _AggF(msgspec.Struct, gc=False):
    data: _AggP


class _BookF(msgspec.Struct, gc=False):
    data: _BookP


class _KlineF(msgspec.Struct, gc=False):
    data: _KlineP


_KIND_OF_E = {
    "trade": "trade",
    "aggTrade": "aggTrade",
    "bookTicker": "bookTicker",
    "kline": "kline",
    "serverShutdown": "serverShutdown",
}

_PREFIX = b'{"stream":"'


def _reason(exc: Exception) -> str:
    return str(exc).replace("\n", " ")


class Parser:
    """Turn raw Binance frames into :mod:`lq.feeds.events`.

    Parameters
    ----------
    exchange
        Label stored in every event's ``exchange`` field.
    time_unit
        ``"auto"`` (detect by magnitude), ``"ms"`` or ``"us"``.
    unknown
        What to do with a well-formed frame of a stream lq does not model (depth, tickers):
        ``"ignore"`` (count it in :attr:`ignored`) or ``"reject"`` (raise ``FrameError``).

    Examples
    --------
    >>> p = Parser()
    >>> raw = (b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,'
    ...        b'"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000",'
    ...        b'"T":1723161255342,"m":true,"M":true}}')
    >>> [t] = p.parse(raw, recv_ts=1723161253991000)
    >>> t.trade_id, t.price, t.ts
    (3735683259, 61837.63, 1723161255342000)
    """

    def __init__(
        self,
        *,
        exchange: str = "binance",
        time_unit: TimeUnit = "auto",
        unknown: Literal["ignore", "reject"] = "ignore",
    ) -> None:
        if time_unit not in ("auto", "ms", "us"):
            raise ValueError(f"time_unit={time_unit!r}: expected 'auto', 'ms' or 'us'")
        if unknown not in ("ignore", "reject"):
            raise ValueError(f"unknown={unknown!r}: expected 'ignore' or 'reject'")
        self.exchange = exchange
        self.time_unit: TimeUnit = time_unit
        self.unknown = unknown
        self.ignored = 0
        """Well-formed frames of streams lq does not model (depth, tickers, snapshots)."""
        self._env = msgspec.json.Decoder(_Envelope)
        self._err = msgspec.json.Decoder(_Err)
        self._payload: dict[str, msgspec.json.Decoder[Any]] = {
            "trade": msgspec.json.Decoder(_TradeP, strict=False),
            "aggTrade": msgspec.json.Decoder(_AggP, strict=False),
            "bookTicker": msgspec.json.Decoder(_BookP, strict=False),
            "kline": msgspec.json.Decoder(_KlineP, strict=False),
            "serverShutdown": msgspec.json.Decoder(_ShutdownP, strict=False),
        }
        self._fast: dict[bytes, tuple[msgspec.json.Decoder[Any], str]] = {
            b"trade": (msgspec.json.Decoder(_TradeF, strict=False), "trade"),
            b"aggTrade": (msgspec.json.Decoder(_AggF, strict=False), "aggTrade"),
            b"bookTicker": (msgspec.json.Decoder(_BookF, strict=False), "bookTicker"),
        }
        self._fast_kline = msgspec.json.Decoder(_KlineF, strict=False)
        self._fast_trade = msgspec.json.Decoder(_TradeF, strict=False)
        self._auto = time_unit == "auto"
        self._mul = 1000 if time_unit == "ms" else 1

    # -- public -------------------------------------------------------------------------------

    def parse(self, raw: bytes | str, recv_ts: int) -> list[Event]:
        """Parse one frame.

        Parameters
        ----------
        raw
            The frame as received (text frames may be passed as ``str`` or UTF-8 ``bytes``).
        recv_ts
            Local receive time, µs since the epoch (``time.time_ns() // 1000``).

        Returns
        -------
        list of Event
            Usually one event; empty for an ignored stream.

        Raises
        ------
        FrameError
            The frame is not JSON, not an object, or a payload lacks or mistypes a field.
        """
        b = raw.encode() if isinstance(raw, str) else raw
        if b[:11] == _PREFIX:
            end = b.find(b'"', 11)
            at = b.find(b"@", 11, end)
            if at > 0:
                kind = b[at + 1 : end]
                if kind == b"trade":  # the hot path, inlined
                    try:
                        d = self._fast_trade.decode(b).data
                    except (msgspec.DecodeError, msgspec.ValidationError):
                        return self._generic(b, raw, recv_ts)
                    t, e = d.T, d.E
                    if self._auto:
                        if t < _MS_BELOW:
                            t *= 1000
                        if e < _MS_BELOW:
                            e *= 1000
                    else:
                        t *= self._mul
                        e *= self._mul
                    return [
                        Trade(
                            symbol=d.s,
                            trade_id=d.t,
                            price=d.p,
                            qty=d.q,
                            ts=t,
                            event_ts=e,
                            is_buyer_maker=d.m,
                            recv_ts=recv_ts,
                            exchange=self.exchange,
                        )
                    ]
                fast = self._fast.get(kind)
                try:
                    if fast is not None:
                        return [self._build(fast[1], fast[0].decode(b).data, recv_ts)]
                    if kind[:6] == b"kline_":
                        return [self._build("kline", self._fast_kline.decode(b).data, recv_ts)]
                except (msgspec.DecodeError, msgspec.ValidationError):
                    pass  # the generic path below finds the precise reason
        return self._generic(b, raw, recv_ts)

    # -- internals ----------------------------------------------------------------------------

    def _ts(self, v: int) -> int:
        unit = self.time_unit
        if unit == "ms" or (unit == "auto" and v < _MS_BELOW):
            return v * 1000
        return v

    def _build(self, kind: str, d: Any, recv_ts: int) -> Event:
        ts = self._ts
        if kind == "trade":
            return Trade(
                symbol=d.s,
                trade_id=d.t,
                price=d.p,
                qty=d.q,
                ts=ts(d.T),
                event_ts=ts(d.E),
                is_buyer_maker=d.m,
                recv_ts=recv_ts,
                exchange=self.exchange,
            )
        if kind == "aggTrade":
            return AggTrade(
                symbol=d.s,
                agg_id=d.a,
                first_id=d.f,
                last_id=d.l,
                price=d.p,
                qty=d.q,
                ts=ts(d.T),
                event_ts=ts(d.E),
                is_buyer_maker=d.m,
                recv_ts=recv_ts,
                exchange=self.exchange,
            )
        if kind == "bookTicker":
            t = d.T if d.T is not None else d.E
            return BookTicker(
                symbol=d.s,
                update_id=d.u,
                bid=d.b,
                bid_qty=d.B,
                ask=d.a,
                ask_qty=d.A,
                ts=ts(t) if t is not None else recv_ts,
                recv_ts=recv_ts,
                exchange=self.exchange,
            )
        if kind == "kline":
            k = d.k
            return Kline(
                symbol=d.s,
                interval=k.i,
                open_time=ts(k.t),
                close_time=ts(k.T),
                open=k.o,
                high=k.h,
                low=k.l,
                close=k.c,
                volume=k.v,
                quote_volume=k.q,
                trades=k.n,
                taker_buy_volume=k.V,
                taker_buy_quote_volume=k.Q,
                first_id=k.f,
                last_id=k.L,
                closed=k.x,
                event_ts=ts(d.E),
                recv_ts=recv_ts,
                exchange=self.exchange,
            )
        # serverShutdown
        return ServerShutdown(event_ts=ts(d.E), recv_ts=recv_ts)

    def _payload_event(
        self, kind: str, payload: bytes | memoryview, raw: bytes | str, recv_ts: int, where: str
    ) -> Event:
        try:
            d = self._payload[kind].decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise FrameError(f"{where}: bad {kind} payload: {_reason(exc)}", raw) from None
        return self._build(kind, d, recv_ts)

    def _ignore(self, what: str, raw: bytes | str) -> list[Event]:
        if self.unknown == "reject":
            raise FrameError(f"unsupported {what}", raw)
        self.ignored += 1
        return []

    def _generic(self, b: bytes, raw: bytes | str, recv_ts: int) -> list[Event]:
        if not b.strip():
            raise FrameError("empty frame", raw)
        try:
            env = self._env.decode(b)
        except msgspec.ValidationError as exc:
            raise FrameError(f"not a Binance frame: {_reason(exc)}", raw) from None
        except msgspec.DecodeError as exc:
            raise FrameError(f"invalid JSON: {_reason(exc)}", raw) from None

        if env.stream is not None:  # combined
            stream = env.stream
            if not env.data:
                raise FrameError(f"combined frame for stream {stream!r} has no 'data'", raw)
            if stream == "!serverShutdown":
                kind = "serverShutdown"
            else:
                _, at, rest = stream.partition("@")
                if not at:
                    return self._ignore(f"stream {stream!r}", raw)
                kind = "kline" if rest.startswith("kline_") else rest
            if kind not in self._payload:
                return self._ignore(f"stream {stream!r}", raw)
            return [self._payload_event(kind, env.data, raw, recv_ts, f"stream {stream!r}")]

        if env.error:
            try:
                err = self._err.decode(env.error)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise FrameError(f"bad error reply: {_reason(exc)}", raw) from None
            rid = None if env.id is UNSET else env.id
            return [ControlReply(id=rid, error_code=err.code, error_msg=err.msg)]  # type: ignore[arg-type]
        if env.result is not UNSET:
            if env.id is UNSET:
                raise FrameError("control reply has 'result' but no 'id'", raw)
            return [ControlReply(id=env.id, result=env.result)]  # type: ignore[arg-type]

        if env.e is not None:  # raw payload
            kind = _KIND_OF_E.get(env.e, "")
            if not kind:
                return self._ignore(f"event type e={env.e!r}", raw)
            return [self._payload_event(kind, b, raw, recv_ts, f"raw {env.e} frame")]
        if env.u is not None and env.s is not None:  # spot @bookTicker: no "e"
            return [self._payload_event("bookTicker", b, raw, recv_ts, "raw bookTicker frame")]
        if env.lastUpdateId is not None:
            return self._ignore("depth snapshot", raw)
        raise FrameError(
            "unrecognised frame: none of 'stream', 'e', 'result', 'error' present", raw
        )
