"""The frame-boundary rules every venue parser shares (lq.feeds.parsing)."""

from __future__ import annotations

import msgspec
import pytest

from lq.errors import FrameError
from lq.feeds.invariants import symbol_problem
from lq.feeds.parsing import GuardedParser, as_bytes, decode, reason, subscribed
from lq.venues.binance.parser import Parser as BinanceParser
from lq.venues.coinbase.parser import Parser as CoinbaseParser
from lq.venues.kraken.parser import Parser as KrakenParser
from lq.venues.okx.parser import Parser as OkxParser


class _Boom(GuardedParser):
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.seen: list[bytes] = []

    def _parse(self, b: bytes, raw: bytes | str, recv_ts: int) -> list:
        self.seen.append(b)
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (RecursionError("maximum recursion depth exceeded"), "invalid JSON: nested too deeply"),
        (KeyError("x"), "unparseable frame: KeyError: 'x'"),
        (ValueError("two\nlines"), "unparseable frame: ValueError: two lines"),
        (OverflowError("int too big"), "unparseable frame: OverflowError: int too big"),
    ],
)
def test_only_frame_errors_leave_a_guarded_parser(exc: BaseException, message: str) -> None:
    p = _Boom(exc)
    with pytest.raises(FrameError) as info:
        p.parse("{}", 0)
    assert str(info.value).startswith(message)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert p.seen == [b"{}"]  # text frames reach _parse as UTF-8 bytes


def test_a_frame_error_passes_unchanged() -> None:
    err = FrameError("trade 7: price=0.0: outside 1e-08..1e+09", b"{}")
    with pytest.raises(FrameError) as info:
        _Boom(err).parse(b"{}", 0)
    assert info.value is err


def test_a_frame_that_is_not_text_or_bytes_is_a_frame_error() -> None:
    with pytest.raises(FrameError, match="unparseable frame: TypeError: expected bytes or str"):
        _Boom(AssertionError("never reached")).parse(12, 0)  # type: ignore[arg-type]


def test_as_bytes_keeps_lone_surrogates_for_the_json_decoder_to_refuse() -> None:
    assert as_bytes("é") == "é".encode()
    assert as_bytes(bytearray(b"ab")) == b"ab" and as_bytes(memoryview(b"ab")) == b"ab"
    assert as_bytes("\ud800") == b"\xed\xa0\x80"
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(b'"' + as_bytes("\ud800") + b'"')


class _P(msgspec.Struct):
    a: int


def test_decode_tells_syntax_from_shape() -> None:
    dec = msgspec.json.Decoder(_P)
    assert decode(dec, b'{"a":1}', "", "thing").a == 1
    with pytest.raises(FrameError, match=r"^bad thing: Expected `int`, got `str` - at `\$.a`"):
        decode(dec, b'{"a":"x"}', "", "thing")
    with pytest.raises(FrameError, match=r"^bad thing: "):
        decode(dec, b"{", "", "thing")
    with pytest.raises(FrameError, match=r"^not a Foo frame: Object missing required field"):
        decode(dec, b"{}", "", "frame", shape="not a Foo frame")
    with pytest.raises(FrameError, match=r"^invalid JSON: "):
        decode(dec, b"{", "", "frame", shape="not a Foo frame")


def test_subscribed_checks_every_symbol() -> None:
    assert subscribed(["BTCUSDT", "ETHUSDT"], symbol_problem, "symbols") == {"BTCUSDT", "ETHUSDT"}
    with pytest.raises(ValueError, match="expected a list of pairs, not a string"):
        subscribed("BTC/USD", symbol_problem, "pairs")
    with pytest.raises(ValueError, match=r"^symbols: "):
        subscribed(["BTCUSDT", "<b>x</b>"], symbol_problem, "symbols")


def test_reason_is_one_line() -> None:
    assert reason(ValueError("a\nb\nc")) == "a b c"


@pytest.mark.parametrize(
    "make",
    [
        lambda: BinanceParser(symbols=["BTCUSDT"]),
        lambda: CoinbaseParser(["BTC-USD"]),
        lambda: KrakenParser(["BTC/USD"]),
        lambda: OkxParser(["BTC-USDT"]),
    ],
    ids=["binance", "coinbase", "kraken", "okx"],
)
@pytest.mark.parametrize(
    "raw",
    [b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000, "\ud800", b"\xff\xfe", b""],
    ids=["deep-array", "deep-object", "lone-surrogate", "not-utf8", "empty"],
)
def test_every_venue_parser_turns_hostile_bytes_into_one_frame_error(make, raw) -> None:
    with pytest.raises(FrameError) as info:
        make().parse(raw, 0)
    assert "\n" not in str(info.value)
