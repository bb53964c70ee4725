"""Sans-I/O parser: one raw WebSocket frame in, typed :mod:`lq.feeds.events` out.

The parser never touches a socket. :meth:`Parser.parse` takes the frame exactly as received
(``bytes`` or ``str``) plus the local receive time and returns a list of events, or raises
:class:`~lq.errors.FrameError` naming the reason and carrying the raw frame. **Nothing else
ever escapes it**, whatever the bytes: not JSON, wrong types, a frame nested 1,000 deep
(``RecursionError`` inside the decoder), invalid UTF-8, surrogates in a ``str``.

Accepted shapes (see ``shared/reference/binance-protocol.md`` sections 1.2, 1.5, 1.6, 4):

* combined frames ``{"stream": "<name>", "data": {...}}`` and raw payloads;
* ``@trade`` (spot with or without the removed ``b``/``a`` order ids, futures with ``X`` and
  without ``M``), ``@aggTrade`` (spot and futures), ``@bookTicker`` (spot without ``e``/``E``/
  ``T``, futures with them), ``@kline_<interval>``;
* control replies ``{"result": ..., "id": ...}`` and ``{"error": {"code", "msg"}, "id": ...}``;
* ``serverShutdown``, raw and combined (``!serverShutdown``).

Every field is range-checked where it is parsed, by the rules of :mod:`lq.feeds.invariants`
(the same rules the writer applies to rows from any source): ids within ``0..2**63-1``, prices
and quantities finite and within sane bounds (no ``1e308``, no denormal ``1e-320``), times in
2009..2100, klines complete and consistent, no crossed book, aggTrade ``f <= l``. The symbol
must be the stream's: in a combined frame ``btcusdt@trade`` carries ``"s": "BTCUSDT"``; a raw
frame's symbol must be one of ``symbols`` (what the client subscribed) when given. A frame
that breaks a rule is a :class:`~lq.errors.FrameError` (the client dead-letters it), never an
event. USD-M futures ``@trade`` entries whose ``X`` is not ``MARKET`` (``NA``,
``INSURANCE_FUND``, ...) are not trades: they become :class:`~lq.feeds.events.TradeMarker`
events, counted in :attr:`Parser.markers`, which the client never delivers.

Frames of streams lq does not model (``@depth``, tickers, REST depth snapshots in recordings)
are valid JSON objects and are ignored (counted in :attr:`Parser.ignored`) unless
``unknown="reject"``.

Times become int64 microseconds. Binance sends milliseconds by default and microseconds with
``timeUnit=MICROSECOND``; ``time_unit="auto"`` tells them apart by magnitude (a value below
1e14 is milliseconds: 1e14 ms is the year 5138, 1e14 µs is 1973). Prices and quantities are
parsed from their decimal strings once, by msgspec, into float64. Decoding is lax about JSON
types (an id sent as ``"12"`` is accepted), strict about values.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

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
    TradeMarker,
)
from lq.feeds.invariants import (
    MAX_TS,
    MIN_QTY,
    MIN_TS,
    BookQty,
    Count,
    Id,
    KlineId,
    Price,
    Qty,
    Time,
    Volume,
    agg_trade_problem,
    book_ticker_problem,
    kline_problem,
    symbol_problem,
    ts_problem,
)
from lq.feeds.parsing import as_bytes, as_frame_error, reason, subscribed

__all__ = ["Parser", "TimeUnit", "to_us"]

TimeUnit = Literal["auto", "ms", "us"]

_MS_BELOW = 100_000_000_000_000  # values below this are milliseconds (13-digit epoch ms)


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
    E: Time
    s: str
    t: Id
    p: Price
    q: Qty
    T: Time
    m: bool
    # USD-M futures: MARKET; any other X (NA, INSURANCE_FUND...) fails here and is
    # turned into a TradeMarker on the slower path
    X: Literal["MARKET"] | None = None


class _MarkerP(msgspec.Struct, gc=False):
    """A futures ``@trade`` entry that is not a market trade: only what identifies it."""

    X: str
    s: str
    E: Time
    t: Id | None = None
    T: Time | None = None


class _AggP(msgspec.Struct, gc=False):
    E: Time
    s: str
    a: Id
    p: Price
    q: Qty
    f: Id
    l: Id  # noqa: E741 - Binance's field name
    T: Time
    m: bool


class _BookP(msgspec.Struct, gc=False):
    u: Id
    s: str
    b: Price
    B: BookQty
    a: Price
    A: BookQty
    E: Time | None = None
    T: Time | None = None


class _K(msgspec.Struct, gc=False):
    t: Time
    T: Time
    i: str
    f: KlineId
    L: KlineId
    o: Price
    c: Price
    h: Price
    l: Price  # noqa: E741
    v: Volume
    n: Count
    x: bool
    q: Volume
    V: Volume
    Q: Volume
    s: str | None = None


class _KlineP(msgspec.Struct, gc=False):
    E: Time
    s: str
    k: _K


class _ShutdownP(msgspec.Struct, gc=False):
    E: Time


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
    stream: str
    data: _TradeP


class _AggF(msgspec.Struct, gc=False):
    data: _AggP


class _BookF(msgspec.Struct, gc=False):
    stream: str
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
_BAD = ""  # cache value of a stream prefix whose symbol is refused
_MAX_CACHED = 4096


def _where(kind: str, stream: bytes | None) -> str:
    if stream is None:
        return f"raw {kind} frame"
    return f"stream {stream.decode('utf-8', 'replace')!r}"


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
    symbols
        The symbols subscribed (upper case). When given, a frame of any other symbol is
        refused; combined frames must in any case carry their stream's symbol.

    Examples
    --------
    >>> p = Parser()
    >>> raw = (b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,'
    ...        b'"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000",'
    ...        b'"T":1723161255342,"m":true,"M":true}}')
    >>> [t] = p.parse(raw, recv_ts=1723161253991000)
    >>> t.trade_id, t.price, t.ts
    (3735683259, 61837.63, 1723161255342000)
    >>> p.parse(raw.replace(b'"s":"BTCUSDT"', b'"s":"ETHUSDT"'), 0)
    Traceback (most recent call last):
    ...
    lq.errors.FrameError: stream 'btcusdt@trade' carries symbol 'ETHUSDT', not 'BTCUSDT'
    """

    def __init__(
        self,
        *,
        exchange: str = "binance",
        time_unit: TimeUnit = "auto",
        unknown: Literal["ignore", "reject"] = "ignore",
        symbols: Iterable[str] | None = None,
    ) -> None:
        if time_unit not in ("auto", "ms", "us"):
            raise ValueError(f"time_unit={time_unit!r}: expected 'auto', 'ms' or 'us'")
        if unknown not in ("ignore", "reject"):
            raise ValueError(f"unknown={unknown!r}: expected 'ignore' or 'reject'")
        self.exchange = exchange
        self.time_unit: TimeUnit = time_unit
        self.unknown = unknown
        self.symbols: frozenset[str] | None = None
        if symbols is not None:
            self.symbols = subscribed(symbols, symbol_problem, "symbols")
        self.ignored = 0
        """Well-formed frames of streams lq does not model (depth, tickers, snapshots)."""
        self.markers = 0
        """USD-M ``@trade`` entries that are not market trades (``X`` other than ``MARKET``)."""
        self._stream_sym: dict[bytes, str] = {}
        self._env = msgspec.json.Decoder(_Envelope)
        self._err = msgspec.json.Decoder(_Err)
        self._marker = msgspec.json.Decoder(_MarkerP, strict=False)
        self._payload: dict[str, msgspec.json.Decoder[Any]] = {
            "trade": msgspec.json.Decoder(_TradeP, strict=False),
            "aggTrade": msgspec.json.Decoder(_AggP, strict=False),
            "bookTicker": msgspec.json.Decoder(_BookP, strict=False),
            "kline": msgspec.json.Decoder(_KlineP, strict=False),
            "serverShutdown": msgspec.json.Decoder(_ShutdownP, strict=False),
        }
        self._fast: dict[bytes, tuple[msgspec.json.Decoder[Any], str]] = {
            b"aggTrade": (msgspec.json.Decoder(_AggF, strict=False), "aggTrade"),
        }
        self._fast_book = msgspec.json.Decoder(_BookF, strict=False)
        self._streams: dict[str, tuple[str, str]] = {}
        """symbol -> its ``@trade`` and ``@bookTicker`` stream names; ``("", "")`` for a
        symbol that is refused (no stream has that name)."""
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
            The frame is not JSON, not an object, a payload lacks or mistypes a field, or a
            value breaks a rule of :mod:`lq.feeds.invariants`. Nothing else is ever raised.
        """
        try:
            b = raw if type(raw) is bytes else as_bytes(raw)
            if b[:11] == _PREFIX:
                end = b.find(b'"', 11)
                at = b.find(b"@", 11, end)
                if at > 0:
                    n = end - at  # cheap tests of the stream kind; the name is compared below
                    if n == 6 and b[at + 1] == 116:  # "trade": the hot path, inlined
                        try:
                            f = self._fast_trade.decode(b)
                        except (msgspec.DecodeError, msgspec.ValidationError):
                            return self._generic(b, raw, recv_ts)
                        d = f.data
                        # the symbol must be the stream's: btcusdt@trade carries BTCUSDT
                        names = self._streams.get(d.s)
                        if names is None:
                            names = self._learn_symbol(d.s)
                        t, e = d.T, d.E
                        if self._auto:
                            if t < _MS_BELOW:
                                t *= 1000
                            if e < _MS_BELOW:
                                e *= 1000
                        else:
                            t *= self._mul
                            e *= self._mul
                        if f.stream != names[0] or not (
                            MIN_TS <= t < MAX_TS and MIN_TS <= e < MAX_TS
                        ):
                            return self._generic(b, raw, recv_ts)
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
                    if n == 11 and b[at + 1] == 98:  # "bookTicker", 60% of real traffic
                        try:
                            fb = self._fast_book.decode(b)
                        except (msgspec.DecodeError, msgspec.ValidationError):
                            return self._generic(b, raw, recv_ts)
                        bk = fb.data
                        names = self._streams.get(bk.s)
                        if names is None:
                            names = self._learn_symbol(bk.s)
                        bt = bk.T
                        be = bk.E
                        if bt is None:
                            bt = be
                        if bt is None:
                            bt = recv_ts  # spot sends no time: stamped on receipt
                        elif self._auto:
                            if bt < _MS_BELOW:
                                bt *= 1000
                        else:
                            bt *= self._mul
                        if be is not None:
                            be = be * 1000 if self._auto and be < _MS_BELOW else be * self._mul
                        else:
                            be = bt
                        bq, aq = bk.B, bk.A
                        # lq.feeds.invariants.book_ticker_problem, inlined (the bounds of
                        # bid, ask and the quantities were checked while decoding)
                        if (
                            fb.stream == names[1]
                            and bk.b <= bk.a
                            and (bq == 0.0 or bq >= MIN_QTY)
                            and (aq == 0.0 or aq >= MIN_QTY)
                            and MIN_TS <= bt < MAX_TS
                            and MIN_TS <= be < MAX_TS
                        ):
                            return [
                                BookTicker(
                                    symbol=bk.s,
                                    update_id=bk.u,
                                    bid=bk.b,
                                    bid_qty=bq,
                                    ask=bk.a,
                                    ask_qty=aq,
                                    ts=bt,
                                    recv_ts=recv_ts,
                                    exchange=self.exchange,
                                )
                            ]
                        return self._generic(b, raw, recv_ts)
                    kind = b[at + 1 : end]
                    fast = self._fast.get(kind)
                    if fast is not None or kind[:6] == b"kline_":
                        try:
                            if fast is not None:
                                dec, name = fast
                            else:
                                dec, name = self._fast_kline, "kline"
                            dd = dec.decode(b).data
                        except (msgspec.DecodeError, msgspec.ValidationError):
                            pass  # the generic path below finds the precise reason
                        else:
                            pfx = b[11:at]
                            want = self._stream_sym.get(pfx)
                            if want is None:
                                want = self._learn(pfx)
                            if want and want == dd.s:
                                return [self._build(name, dd, recv_ts, raw, b[11:end])]
            return self._generic(b, raw, recv_ts)
        except FrameError:
            raise
        except Exception as exc:  # whatever the bytes, only FrameError leaves the parser
            raise as_frame_error(exc, raw) from None

    # -- internals ----------------------------------------------------------------------------

    def _learn_symbol(self, symbol: str) -> tuple[str, str]:
        """The ``@trade`` and ``@bookTicker`` stream names ``symbol`` must arrive on, cached;
        ``("", "")`` if the symbol is refused (not an exchange symbol, or not subscribed)."""
        ok = (
            symbol_problem(symbol) is None
            and symbol.lower().upper() == symbol
            and (self.symbols is None or symbol in self.symbols)
        )
        low = symbol.lower()
        names = (low + "@trade", low + "@bookTicker") if ok else ("", "")
        if len(self._streams) >= _MAX_CACHED:
            self._streams.clear()
        self._streams[symbol] = names
        return names

    def _learn(self, prefix: bytes) -> str:
        """The symbol a combined stream's name prefix (``btcusdt``) stands for, or ``""``."""
        try:
            text = prefix.decode()
        except UnicodeDecodeError:
            text = ""
        sym = text.upper()
        ok = (
            bool(text)
            and text == text.lower()
            and symbol_problem(sym) is None
            and (self.symbols is None or sym in self.symbols)
        )
        if len(self._stream_sym) >= _MAX_CACHED:
            self._stream_sym.clear()
        self._stream_sym[prefix] = sym if ok else _BAD
        return sym if ok else _BAD

    def _want(self, stream: str, raw: bytes | str) -> str:
        """The symbol stream ``stream`` must carry (raises FrameError if refused)."""
        name = stream.partition("@")[0]
        want = self._learn(name.encode("utf-8", "surrogatepass"))
        if not want:
            if name != name.lower():
                why = "stream names are lower case"
            else:
                sym = name.upper()
                why = symbol_problem(sym) or f"{sym!r} is not one of the subscribed symbols"
            raise FrameError(f"stream {stream!r} refused: {why}", raw)
        return want

    def _check_symbol(
        self, got: str, want: str | None, kind: str, stream: bytes | None, raw: bytes | str
    ) -> None:
        where = _where(kind, stream)
        if want is not None:
            if got != want:
                raise FrameError(f"{where} carries symbol {got!r}, not {want!r}", raw)
            return
        why = symbol_problem(got)
        if why is not None:
            raise FrameError(f"{where}: {why}", raw)
        if self.symbols is not None and got not in self.symbols:
            raise FrameError(f"{where}: symbol {got!r} is not one of the subscribed symbols", raw)

    def _ts(self, v: int) -> int:
        unit = self.time_unit
        if unit == "ms" or (unit == "auto" and v < _MS_BELOW):
            return v * 1000
        return v

    def _time(self, name: str, v: int, kind: str, stream: bytes | None, raw: bytes | str) -> int:
        ts = self._ts(v)
        if MIN_TS <= ts < MAX_TS:
            return ts
        raise FrameError(f"{_where(kind, stream)}: {ts_problem(name, ts)}", raw)

    def _build(
        self, kind: str, d: Any, recv_ts: int, raw: bytes | str, stream: bytes | None
    ) -> Event:
        """The event for a decoded payload whose symbol has been checked; raises FrameError
        when a rule of :mod:`lq.feeds.invariants` is broken."""
        time = self._time
        if kind == "trade":  # X is MARKET or absent: markers fail _TradeP (see _payload_event)
            return Trade(
                symbol=d.s,
                trade_id=d.t,
                price=d.p,
                qty=d.q,
                ts=time("T", d.T, kind, stream, raw),
                event_ts=time("E", d.E, kind, stream, raw),
                is_buyer_maker=d.m,
                recv_ts=recv_ts,
                exchange=self.exchange,
            )
        ev: Event
        if kind == "aggTrade":
            ev = AggTrade(
                symbol=d.s,
                agg_id=d.a,
                first_id=d.f,
                last_id=d.l,
                price=d.p,
                qty=d.q,
                ts=time("T", d.T, kind, stream, raw),
                event_ts=time("E", d.E, kind, stream, raw),
                is_buyer_maker=d.m,
                recv_ts=recv_ts,
                exchange=self.exchange,
            )
            why = agg_trade_problem(ev)
        elif kind == "bookTicker":
            t = d.T if d.T is not None else d.E
            if d.E is not None:
                time("E", d.E, kind, stream, raw)
            ev = BookTicker(
                symbol=d.s,
                update_id=d.u,
                bid=d.b,
                bid_qty=d.B,
                ask=d.a,
                ask_qty=d.A,
                ts=time("T", t, kind, stream, raw) if t is not None else recv_ts,
                recv_ts=recv_ts,
                exchange=self.exchange,
            )
            why = book_ticker_problem(ev)
        elif kind == "kline":
            k = d.k
            if k.s is not None and k.s != d.s:
                raise FrameError(
                    f"{_where(kind, stream)}: kline symbol {k.s!r} differs from {d.s!r}", raw
                )
            if stream is not None:
                _, _, ch = stream.decode("utf-8", "replace").partition("@kline_")
                if ch.partition("@")[0] != k.i:
                    raise FrameError(
                        f"{_where(kind, stream)} carries a kline of interval {k.i!r}", raw
                    )
            ev = Kline(
                symbol=d.s,
                interval=k.i,
                open_time=time("t", k.t, kind, stream, raw),
                close_time=time("T", k.T, kind, stream, raw),
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
                event_ts=time("E", d.E, kind, stream, raw),
                recv_ts=recv_ts,
                exchange=self.exchange,
            )
            why = kline_problem(ev)
        else:  # serverShutdown
            return ServerShutdown(event_ts=time("E", d.E, kind, stream, raw), recv_ts=recv_ts)
        if why is not None:
            raise FrameError(f"{_where(kind, stream)}: {why}", raw)
        return ev

    def _marker_event(
        self,
        symbol: str,
        trade_id: int | None,
        trade_type: str,
        t: int | None,
        e: int,
        recv_ts: int,
        kind: str,
        stream: bytes | None,
        raw: bytes | str,
    ) -> TradeMarker:
        ev_ts = self._time("E", e, kind, stream, raw)
        ts = self._time("T", t, kind, stream, raw) if t is not None else ev_ts
        if not (0 < len(trade_type) <= 32 and trade_type.isascii() and trade_type.isupper()):
            raise FrameError(
                f"{_where(kind, stream)}: trade type X={trade_type[:40]!r} is not a Binance one",
                raw,
            )
        self.markers += 1
        return TradeMarker(
            symbol=symbol,
            trade_id=trade_id,
            trade_type=trade_type,
            ts=ts,
            recv_ts=recv_ts,
            exchange=self.exchange,
        )

    def _payload_event(
        self,
        kind: str,
        payload: bytes | memoryview,
        raw: bytes | str,
        recv_ts: int,
        want: str | None,
        stream: bytes | None,
    ) -> Event:
        try:
            d = self._payload[kind].decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            if kind == "trade":  # a futures marker (p = "0") is not a bad trade
                try:
                    m = self._marker.decode(payload)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    m = None
                if m is not None and m.X != "MARKET":
                    self._check_symbol(m.s, want, kind, stream, raw)
                    return self._marker_event(m.s, m.t, m.X, m.T, m.E, recv_ts, kind, stream, raw)
            raise FrameError(
                f"{_where(kind, stream)}: bad {kind} payload: {reason(exc)}", raw
            ) from None
        if kind != "serverShutdown":
            self._check_symbol(d.s, want, kind, stream, raw)
        return self._build(kind, d, recv_ts, raw, stream)

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
            raise FrameError(f"not a Binance frame: {reason(exc)}", raw) from None
        except msgspec.DecodeError as exc:
            raise FrameError(f"invalid JSON: {reason(exc)}", raw) from None

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
            want = self._want(stream, raw) if kind != "serverShutdown" else None
            return [
                self._payload_event(
                    kind,
                    env.data,
                    raw,
                    recv_ts,
                    want,
                    stream.encode("utf-8", "surrogatepass"),
                )
            ]

        if env.error:
            try:
                err = self._err.decode(env.error)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise FrameError(f"bad error reply: {reason(exc)}", raw) from None
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
            return [self._payload_event(kind, b, raw, recv_ts, None, None)]
        if env.u is not None and env.s is not None:  # spot @bookTicker: no "e"
            return [self._payload_event("bookTicker", b, raw, recv_ts, None, None)]
        if env.lastUpdateId is not None:
            return self._ignore("depth snapshot", raw)
        raise FrameError(
            "unrecognised frame: none of 'stream', 'e', 'result', 'error' present", raw
        )
