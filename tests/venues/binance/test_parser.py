"""Parser: real recordings, every payload variant in the reference, and malformed frames.

Reference frames are quoted from shared/reference/binance-protocol.md (section numbers given);
expected values are read off those frames by hand. Times: ms * 1000 = µs, exact integers.
"""

from __future__ import annotations

import json

import pytest

from lq.errors import FrameError
from lq.feeds.events import (
    AggTrade,
    BookTicker,
    ControlReply,
    Kline,
    ServerShutdown,
    Trade,
    TradeMarker,
)
from lq.feeds.recording import read_frames
from lq.venues.binance.parser import Parser, to_us

from .conftest import recording

RECV = 1_723_161_253_991_000  # an arbitrary local receive time, µs


def one(raw: str | bytes, **kw: object):
    out = Parser(**kw).parse(raw, RECV)  # type: ignore[arg-type]
    assert len(out) == 1, out
    return out[0]


# -- the two real recordings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "count", "first_id"),
    [("spot_btcusdt_20240808.gz", 9_757, 3_735_683_259), ("spot_ethusdt_20240808.gz", 6_106, None)],
)
def test_every_trade_of_the_real_recording_is_parsed_exactly(name, count, first_id):
    # Independent reference: json.loads of each line's frame, float(p) and float(q) (the README
    # of shared/data/binance gives the counts and the BTCUSDT id range).
    p = Parser()
    got: list[Trade] = []
    want: list[dict] = []
    for recv_ns, raw in read_frames(recording(name)):
        events = p.parse(raw, recv_ns // 1000)
        got.extend(e for e in events if isinstance(e, Trade))
        d = json.loads(raw)
        if d.get("stream", "").endswith("@trade"):
            want.append(d["data"] | {"recv": recv_ns // 1000})
    assert len(got) == len(want) == count
    ids = [t.trade_id for t in got]
    assert ids == [w["t"] for w in want]
    assert ids == list(range(ids[0], ids[0] + count))  # contiguous, as the README says
    if first_id is not None:
        assert ids[0] == first_id
    for t, w in zip(got, want, strict=True):
        assert t.price == float(w["p"])  # exact equality: same decimal string, same rounding
        assert t.qty == float(w["q"])
        assert t.ts == w["T"] * 1000 and t.event_ts == w["E"] * 1000
        assert t.is_buyer_maker is w["m"]
        assert t.symbol == w["s"] and t.recv_ts == w["recv"]


def test_real_recording_book_tickers_and_ignored_depth_are_accounted_for():
    # README: BTCUSDT has 28,040 @bookTicker and 3,451 @depth@100ms frames plus one REST
    # snapshot line; depth is not modelled, so 3,452 frames are ignored, none rejected.
    p = Parser()
    books = 0
    for recv_ns, raw in read_frames(recording("spot_btcusdt_20240808.gz")):
        books += sum(isinstance(e, BookTicker) for e in p.parse(raw, recv_ns // 1000))
    assert books == 28_040
    assert p.ignored == 3_451 + 1


# -- @trade variants (reference 1.6, 4.1, 4.2) ------------------------------------------------

SPOT_2024 = (
    '{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000",'
    '"q":"0.02000000","T":1723161255342,"m":true,"M":true}'
)
SPOT_2021_WITH_B_A = (
    '{"e":"trade","E":1624832253279,"s":"BTCUSDT","t":935421409,'
    '"p":"34188.03000000","q":"0.01200000","b":6657454517,"a":6657454504,'
    '"T":1624832253271,"m":false,"M":true}'
)
FUTURES_TRADE = (
    '{"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT","t":5266583935,'
    '"p":"61800.30","q":"0.006","X":"MARKET","m":false}'
)


@pytest.mark.parametrize(
    ("raw", "tid", "price", "qty", "ts_ms", "maker"),
    [
        (SPOT_2024, 3735683259, 61837.63, 0.02, 1723161255342, True),
        (SPOT_2021_WITH_B_A, 935421409, 34188.03, 0.012, 1624832253271, False),
        (FUTURES_TRADE, 5266583935, 61800.30, 0.006, 1723161256322, False),
    ],
    ids=["spot-2024", "spot-2021-b-a", "usdm-X-no-M"],
)
def test_trade_variants_raw_and_combined(raw, tid, price, qty, ts_ms, maker):
    for frame in (raw, f'{{"stream":"btcusdt@trade","data":{raw}}}'):
        t = one(frame)
        assert isinstance(t, Trade)
        assert (t.trade_id, t.price, t.qty, t.ts, t.is_buyer_maker) == (
            tid,
            price,
            qty,
            ts_ms * 1000,
            maker,
        )
        assert t.recv_ts == RECV and t.symbol == "BTCUSDT"


def test_microsecond_times_are_detected_by_magnitude_and_fixed_by_config():
    us = SPOT_2024.replace("1723161255342", "1723161255342123").replace(
        "1723161255343", "1723161255343456"
    )
    t = one(us)
    assert (t.ts, t.event_ts) == (1723161255342123, 1723161255343456)
    assert one(SPOT_2024, time_unit="ms").ts == 1723161255342000
    assert one(us, time_unit="us").ts == 1723161255342123
    with pytest.raises(FrameError, match=r"outside 2009-01-01\.\.2100-01-01"):
        one(SPOT_2024, time_unit="us")  # told µs, the ms value would be 1970: refused
    assert to_us(1723161255342) == 1723161255342000 and to_us(1723161255342123) == 1723161255342123


def test_bytes_and_str_frames_give_the_same_event():
    assert one(SPOT_2024) == one(SPOT_2024.encode())


def test_exchange_label_is_stamped():
    assert one(SPOT_2024, exchange="binance.us").exchange == "binance.us"


# -- @aggTrade, @bookTicker, @kline (reference 1.6, 4.1) ----------------------------------------

SPOT_AGG = (
    '{"e":"aggTrade","E":1633998523963,"s":"NKNUSDT","a":15683430,"p":"0.35280000",'
    '"q":"58.00000000","f":19862790,"l":19862790,"T":1633998523963,"m":false,"M":true}'
)
FUT_AGG = (
    '{"e":"aggTrade","E":1626992741575,"a":16599292,"s":"CTKUSDT","p":"1.01100","q":"10",'
    '"f":23961322,"l":23961322,"T":1626992741421,"m":false}'
)


@pytest.mark.parametrize(
    ("raw", "stream", "want"),
    [
        (
            SPOT_AGG,
            "nknusdt@aggTrade",
            ("NKNUSDT", 15683430, 19862790, 19862790, 0.3528, 58.0, 1633998523963000),
        ),
        (
            FUT_AGG,
            "ctkusdt@aggTrade",
            ("CTKUSDT", 16599292, 23961322, 23961322, 1.011, 10.0, 1626992741421000),
        ),
    ],
    ids=["spot", "usdm-no-M"],
)
def test_agg_trade_variants(raw, stream, want):
    for frame in (raw, f'{{"stream":"{stream}","data":{raw}}}'):
        a = one(frame)
        assert isinstance(a, AggTrade)
        assert (a.symbol, a.agg_id, a.first_id, a.last_id, a.price, a.qty, a.ts) == want


def test_spot_book_ticker_has_no_time_so_ts_is_receipt():
    raw = (
        '{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000",'
        '"a":"25.36520000","A":"40.66000000"}'
    )
    for frame in (raw, f'{{"stream":"bnbusdt@bookTicker","data":{raw}}}'):
        b = one(frame)
        assert isinstance(b, BookTicker)
        assert (b.update_id, b.bid, b.bid_qty, b.ask, b.ask_qty) == (
            400900217,
            25.3519,
            31.21,
            25.3652,
            40.66,
        )
        assert b.ts == RECV


def test_futures_book_ticker_uses_transaction_time():
    raw = (
        '{"e":"bookTicker","u":5123107839020,"s":"BTCUSDT","b":"61800.20","B":"2.507",'
        '"a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256314}'
    )
    for frame in (raw, f'{{"stream":"btcusdt@bookTicker","data":{raw}}}'):
        b = one(frame)
        assert (b.update_id, b.bid, b.ask, b.ts) == (
            5123107839020,
            61800.2,
            61800.3,
            1723161256313000,
        )


# The reference's example (section 1.6) with a consistent low and quote volumes: the docs'
# own numbers have low 0.0015 > open 0.0010 and q = 1.0 < low * v = 1.5, which no real kline
# can have (test_invariants.py checks that the docs' example is refused for exactly that).
KLINE = (
    '{"e":"kline","E":1672515782136,"s":"BNBBTC","k":{"t":1672515780000,"T":1672515839999,'
    '"s":"BNBBTC","i":"1m","f":100,"L":200,"o":"0.0010","c":"0.0020","h":"0.0025",'
    '"l":"0.0010","v":"1000","n":100,"x":false,"q":"1.5000","V":"500","Q":"0.750",'
    '"B":"123456"}}'
)


@pytest.mark.parametrize("stream", ["bnbbtc@kline_1m", "bnbbtc@kline_1m@+08:00"])
def test_kline_raw_and_combined(stream):
    for frame in (KLINE, f'{{"stream":"{stream}","data":{KLINE}}}'):
        k = one(frame)
        assert isinstance(k, Kline)
        assert (k.interval, k.open_time, k.close_time) == ("1m", 1672515780000000, 1672515839999000)
        assert (k.open, k.high, k.low, k.close) == (0.001, 0.0025, 0.001, 0.002)
        assert (
            k.volume,
            k.quote_volume,
            k.trades,
            k.taker_buy_volume,
            k.taker_buy_quote_volume,
        ) == (1000.0, 1.5, 100, 500.0, 0.75)
        assert (k.first_id, k.last_id, k.closed, k.event_ts) == (100, 200, False, 1672515782136000)


# -- serverShutdown and control replies (reference 1.2, 1.5) -------------------------------------


def test_server_shutdown_raw_and_combined():
    raw = '{"e":"serverShutdown","E":1770123456789}'
    for frame in (raw, f'{{"stream":"!serverShutdown","data":{raw}}}'):
        s = one(frame)
        assert s == ServerShutdown(event_ts=1770123456789000, recv_ts=RECV)


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ('{"result":null,"id":1}', ControlReply(id=1, result=None)),
        ('{"result":["btcusdt@aggTrade"],"id":3}', ControlReply(id=3, result=["btcusdt@aggTrade"])),
        ('{"result":true,"id":"abc-2"}', ControlReply(id="abc-2", result=True)),
        (
            '{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":2}',
            ControlReply(id=2, error_code=2, error_msg="Invalid request: invalid stream"),
        ),
        (
            '{"error":{"code":3,"msg":"Invalid JSON: expected value at line 1 column 1"},"id":null}',
            ControlReply(
                id=None, error_code=3, error_msg="Invalid JSON: expected value at line 1 column 1"
            ),
        ),
    ],
)
def test_control_replies(raw, want):
    assert one(raw) == want


# -- streams lq does not model ------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        '{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,'
        '"u":2,"b":[["1.0","2"]],"a":[]}}',
        '{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[],"a":[]}',
        '{"lastUpdateId":160,"bids":[["0.0024","10"]],"asks":[["0.0026","100"]]}',
        '{"stream":"btcusdt@miniTicker","data":{"e":"24hrMiniTicker","E":1}}',
    ],
    ids=["depth-combined", "depth-raw", "depth-snapshot", "miniTicker"],
)
def test_unmodelled_streams_are_ignored_or_rejected_on_request(raw):
    p = Parser()
    assert p.parse(raw, RECV) == [] and p.ignored == 1
    with pytest.raises(FrameError, match="unsupported"):
        Parser(unknown="reject").parse(raw, RECV)


# -- malformed frames: each gives its reason ------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty frame"),
        ("not json", "invalid JSON"),
        (SPOT_2024[:40], "invalid JSON"),
        (f'{{"stream":"btcusdt@trade","data":{SPOT_2024[:60]}', "invalid JSON"),
        ("[1,2,3]", "not a Binance frame: Expected `object`, got `array`"),
        ('{"stream":"btcusdt@trade"}', "has no 'data'"),
        ('{"stream":"btcusdt@trade","data":[1]}', "bad trade payload: Expected `object`"),
        (
            '{"stream":"btcusdt@trade","data":' + SPOT_2024.replace(',"t":3735683259', "") + "}",
            "bad trade payload: Object missing required field `t`",
        ),
        (
            SPOT_2024.replace('"61837.63000000"', '"abc"'),
            "bad trade payload: Expected `float`, got `str` - at `$.p`",
        ),
        (SPOT_2024.replace('"61837.63000000"', '"NaN"'), "at `$.p`"),
        (SPOT_2024.replace('"0.02000000"', '"-0.02"'), "Expected `float` >= 1e-10 - at `$.q`"),
        (SPOT_2024.replace('"t":3735683259', '"t":1.5'), "Expected `int`, got `float` - at `$.t`"),
        (
            '{"stream":"nknusdt@aggTrade","data":' + SPOT_AGG.replace(',"f":19862790', "") + "}",
            "bad aggTrade payload: Object missing required field `f`",
        ),
        (
            '{"stream":"bnbbtc@kline_1m","data":{"e":"kline","E":1672515782136,"s":"BNBBTC",'
            '"k":{}}}',
            "bad kline payload: Object missing required field",
        ),
        ('{"result":null}', "no 'id'"),
        ('{"foo":1}', "unrecognised frame"),
        ('{"error":"boom","id":1}', "bad error reply"),
    ],
)
def test_malformed_frames_raise_frame_error_with_reason_and_raw(raw, reason):
    with pytest.raises(FrameError) as info:
        Parser().parse(raw, RECV)
    assert reason in info.value.reason
    assert info.value.raw == raw


def test_bad_options_are_refused_by_name():
    with pytest.raises(ValueError, match="time_unit='s'"):
        Parser(time_unit="s")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown='drop'"):
        Parser(unknown="drop")  # type: ignore[arg-type]


# -- USD-M futures markers and symbols (issue 10) -------------------------------------------

FUT_NA = (
    '{"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT","t":5266583936,'
    '"p":"0","q":"0","X":"NA","m":true}'
)


@pytest.mark.parametrize(
    ("raw", "x"),
    [
        (FUT_NA, "NA"),
        (FUTURES_TRADE.replace('"MARKET"', '"INSURANCE_FUND"'), "INSURANCE_FUND"),
        (FUTURES_TRADE.replace('"MARKET"', '"ADL"'), "ADL"),
    ],
    ids=["NA-price-0", "insurance-fund-real-price", "adl"],
)
def test_futures_non_market_trades_are_markers_not_trades(raw, x):
    for frame in (raw, f'{{"stream":"btcusdt@trade","data":{raw}}}'):
        p = Parser()
        [m] = p.parse(frame, RECV)
        assert isinstance(m, TradeMarker) and not isinstance(m, Trade)
        assert (m.symbol, m.trade_type, m.ts) == ("BTCUSDT", x, 1723161256322000)
        assert m.trade_id == json.loads(raw)["t"]
        assert p.markers == 1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (FUT_NA.replace('"X":"NA"', '"X":"MARKET"'), "at `$.p`"),  # a MARKET trade at 0
        (FUT_NA.replace('"X":"NA",', ""), "at `$.p`"),  # spot trade at 0: no X, no marker
        (FUT_NA.replace('"s":"BTCUSDT"', '"s":"ETHUSDT"'), "carries symbol 'ETHUSDT'"),
        (FUT_NA.replace('"t":5266583936', '"t":9223372036854775808'), "at `$.t`"),
        (FUT_NA.replace('"X":"NA"', '"X":"<b>"'), "is not a Binance one"),
    ],
)
def test_a_marker_is_checked_like_a_trade(raw, reason):
    with pytest.raises(FrameError) as info:
        Parser().parse(f'{{"stream":"btcusdt@trade","data":{raw}}}', RECV)
    assert reason in info.value.reason


def test_raw_frames_must_carry_a_subscribed_symbol():
    p = Parser(symbols=["BTCUSDT"])
    assert p.parse(SPOT_2024, RECV)[0].symbol == "BTCUSDT"
    with pytest.raises(FrameError, match="'ETHUSDT' is not one of the subscribed symbols"):
        p.parse(SPOT_2024.replace('"BTCUSDT"', '"ETHUSDT"'), RECV)
    with pytest.raises(FrameError, match="not one of the subscribed symbols"):
        p.parse(f'{{"stream":"ethusdt@trade","data":{SPOT_2024}}}', RECV)
    with pytest.raises(ValueError, match="symbols"):
        Parser(symbols=["btcusdt"])


@pytest.mark.parametrize(
    "frame",
    [
        "[" * 1000 + "]" * 1000,
        '{"stream":"btcusdt@trade","data":' + "[" * 5000 + "]" * 5000 + "}",
        '{"e":' * 1000 + "1" + "}" * 1000,
        "\ud800",  # a lone surrogate in a str frame
        b"\xff\xfe\x00",
        bytearray(SPOT_2024.encode()),
    ],
    ids=["array-1000", "data-5000", "object-1000", "surrogate", "invalid-utf8", "bytearray"],
)
def test_nothing_but_frame_error_leaves_the_parser(frame):
    try:
        Parser().parse(frame, RECV)
    except FrameError as exc:
        assert exc.reason
