"""Fuzz: thousands of mutated real frames through Parser.parse and the Writer.

Seeds are the real recorded frames of ``../shared/data/binance/`` (spot ``@trade``,
``@bookTicker``, ``@depth``, the REST snapshot line) plus the reference's other payload
variants (aggTrade, kline, USD-M trade with ``X``, futures bookTicker, markers), rewritten for
BTCUSDT/ETHUSDT. Hypothesis mutates them: bytes flipped, inserted, deleted, truncated;
numbers and strings replaced by extremes (2**63, -1, 1e308, 1e-320, NaN, "", lower-case and
RTL-override symbols...); values retyped; frames nested up to 1,500 deep.

Properties: nothing but ``FrameError`` escapes the parser; every event it returns satisfies
``lq.feeds.invariants``; the writer takes every batch without raising and refuses none of the
parser's events; and every row in the SQLite file satisfies the invariants (checked with plain
SQL after every batch, and by reading every row back at the end).
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from venues.binance.conftest import recording

from lq.errors import FrameError
from lq.feeds.events import AggTrade, BookTicker, Kline, Rejected, Trade
from lq.feeds.invariants import (
    MAX_ID,
    MAX_PRICE,
    MAX_QTY,
    MAX_TS,
    MAX_VOLUME,
    MIN_PRICE,
    MIN_QTY,
    MIN_TS,
    problem,
)
from lq.feeds.parser import Parser
from lq.feeds.recording import read_frames
from lq.store import Batch, Writer

SYMBOLS = ("BTCUSDT", "ETHUSDT")
E_MS = 1_723_161_256_322


def _real_seeds() -> list[bytes]:
    out: list[bytes] = []
    for name in ("spot_btcusdt_20240808.gz", "spot_ethusdt_20240808.gz"):
        kinds: dict[bytes, int] = {}
        for _, raw in read_frames(recording(name)):
            key = raw[11:40].split(b'"', 1)[0].split(b"@", 1)[-1] if raw[:2] == b'{"' else b""
            if kinds.get(key, 0) < 60:  # a spread of every kind in the recording
                kinds[key] = kinds.get(key, 0) + 1
                out.append(raw)
    return out


def _c(stream: str, data: dict[str, Any]) -> bytes:
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":")).encode()


def _reference_seeds() -> list[bytes]:
    agg = {"e": "aggTrade", "E": E_MS, "s": "BTCUSDT", "a": 16599292, "p": "61800.30",
           "q": "0.006", "f": 23961322, "l": 23961324, "T": E_MS - 2, "m": False}  # fmt: skip
    fut_trade = {"e": "trade", "E": E_MS, "T": E_MS, "s": "BTCUSDT", "t": 5266583935,
                 "p": "61800.30", "q": "0.006", "X": "MARKET", "m": False}  # fmt: skip
    marker = {**fut_trade, "t": 5266583936, "p": "0", "q": "0", "X": "NA"}
    fut_book = {"e": "bookTicker", "u": 5123107839020, "s": "ETHUSDT", "b": "2600.20",
                "B": "2.507", "a": "2600.30", "A": "2.510", "T": E_MS, "E": E_MS}  # fmt: skip
    m0 = E_MS // 60_000 * 60_000
    kline = {"e": "kline", "E": E_MS, "s": "BTCUSDT",
             "k": {"t": m0, "T": m0 + 59_999, "s": "BTCUSDT", "i": "1m", "f": 100, "L": 200,
                   "o": "61800.10", "c": "61800.90", "h": "61801.00", "l": "61800.00",
                   "v": "10.5", "n": 100, "x": False, "q": "648909.0", "V": "5.0",
                   "Q": "309002.5", "B": "0"}}  # fmt: skip
    return [
        _c("btcusdt@aggTrade", agg),
        json.dumps(agg).encode(),
        _c("btcusdt@trade", fut_trade),
        _c("btcusdt@trade", marker),
        _c("ethusdt@bookTicker", fut_book),
        _c("btcusdt@kline_1m", kline),
        json.dumps(kline).encode(),
        b'{"result":null,"id":1}',
        b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1770123456789}}',
    ]


SEEDS: list[bytes] = []

NUMBERS = [b"9223372036854775807", b"9223372036854775808", b"18446744073709551616", b"-1",
           b"0", b"-0", b"1e308", b"1e-320", b"5e-324", b"NaN", b"Infinity", b"1.5", b"1e400",
           b"null", b"true", b"[]", b"{}", b'"12"', b'"abc"', b"1" * 400]  # fmt: skip
STRINGS = [b'"1e308"', b'"1e-320"', b'"0"', b'"-1"', b'"nan"', b'"inf"', b'""', b'"btcusdt"',
           b'"ETHUSDT"', b'"<script>"', '"BTC\u202eUSDT"'.encode(), b'"\\u0000"',
           b'"\\ud800"', b'"' + b"A" * 300 + b'"', b"12", b"null", b"[1]"]  # fmt: skip
_NUM = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_STR = re.compile(rb'"(?:[^"\\]|\\.)*"')
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)


def _replace(draw: Any, raw: bytes, pattern: re.Pattern[bytes], choices: Any) -> bytes:
    spans = [m.span() for m in pattern.finditer(raw)]
    if not spans:
        return raw
    a, b = draw(st.sampled_from(spans))
    return raw[:a] + draw(choices) + raw[b:]


def _retype(draw: Any, raw: bytes) -> bytes:
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):  # a frame an earlier mutation nested ~1,000 deep
        return raw
    node = obj
    while isinstance(node, dict) and node:
        key = draw(st.sampled_from(sorted(node)))
        if isinstance(node[key], dict) and draw(st.booleans()):
            node = node[key]
            continue
        if draw(st.integers(0, 4)) == 0:
            del node[key]
        else:
            node[key] = draw(JSON)
        break
    try:
        return json.dumps(obj).encode()
    except RecursionError:
        return raw


def _nest(draw: Any, raw: bytes) -> bytes:
    k = draw(st.sampled_from([1, 3, 50, 999, 1000, 1500]))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    if raw.startswith(b'{"stream":') and b'"data":' in raw and draw(st.booleans()):
        head, _, tail = raw.partition(b'"data":')
        return head + b'"data":' + opener * k + tail[:-1] + closer * k + b"}"
    return opener * k + raw + closer * k


@st.composite
def mutated(draw: Any) -> bytes:
    raw = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.integers(0, 7))
        n = len(raw)
        if op == 0 and n:
            i = draw(st.integers(0, n - 1))
            raw = raw[:i] + bytes([draw(st.integers(0, 255))]) + raw[i + 1 :]
        elif op == 1:
            i = draw(st.integers(0, n))
            raw = raw[:i] + draw(st.binary(max_size=4)) + raw[i:]
        elif op == 2 and n:
            i = draw(st.integers(0, n - 1))
            raw = raw[:i] + raw[i + draw(st.integers(1, 8)) :]
        elif op == 3:
            raw = raw[: draw(st.integers(0, n))]
        elif op == 4:
            nums = st.sampled_from(NUMBERS) | st.integers().map(lambda v: str(v).encode())
            raw = _replace(draw, raw, _NUM, nums | st.floats().map(lambda v: repr(v).encode()))
        elif op == 5:
            raw = _replace(draw, raw, _STR, st.sampled_from(STRINGS))
        elif op == 6:
            raw = _retype(draw, raw)
        else:
            raw = _nest(draw, raw)
    return raw


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    if not SEEDS:
        SEEDS.extend(_real_seeds() + _reference_seeds())
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.sqlite"
    w = Writer(path, source="fuzz")
    yield path, w, {"frames": 0, "events": 0}
    w.close()


_SQL_CHECKS = {
    "ticks": f"trade_id < 0 OR trade_id > {MAX_ID} OR NOT (price BETWEEN {MIN_PRICE} AND "
    f"{MAX_PRICE}) OR NOT (qty BETWEEN {MIN_QTY} AND {MAX_QTY}) OR ts < {MIN_TS} OR "
    f"ts >= {MAX_TS} OR symbol NOT IN ('BTCUSDT', 'ETHUSDT')",
    "agg_trades": f"agg_id < 0 OR first_id < 0 OR first_id > last_id OR NOT (price BETWEEN "
    f"{MIN_PRICE} AND {MAX_PRICE}) OR NOT (qty BETWEEN {MIN_QTY} AND {MAX_QTY}) OR ts < "
    f"{MIN_TS} OR ts >= {MAX_TS}",
    "book_tickers": f"update_id < 0 OR bid > ask OR bid < {MIN_PRICE} OR ask > {MAX_PRICE} OR "
    f"(bid_qty != 0 AND NOT (bid_qty BETWEEN {MIN_QTY} AND {MAX_QTY})) OR "
    f"(ask_qty != 0 AND NOT (ask_qty BETWEEN {MIN_QTY} AND {MAX_QTY})) OR ts < {MIN_TS} OR "
    f"ts >= {MAX_TS}",
    "klines": f"NOT (low <= open AND low <= close AND open <= high AND close <= high) OR "
    f"low < {MIN_PRICE} OR high > {MAX_PRICE} OR open_time >= close_time OR open_time < "
    f"{MIN_TS} OR close_time >= {MAX_TS} OR volume < 0 OR volume > {MAX_VOLUME} OR trades < 0"
    " OR interval NOT IN ('1s','1m','3m','5m','15m','30m','1h','2h','4h','6h','8h','12h',"
    "'1d','3d','1w','1M')",
}


@pytest.mark.slow
@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(frames=st.lists(mutated(), min_size=1, max_size=12))
def test_only_frame_errors_escape_and_every_stored_row_obeys_the_invariants(store, frames):
    _, writer, counts = store
    parser = Parser(symbols=SYMBOLS)
    batch = Batch()
    for raw in frames:
        try:
            events = parser.parse(raw, 1_723_161_257_000_000)
        except FrameError as exc:
            assert exc.reason
            batch.add(Rejected(raw=raw.decode("utf-8", "replace"), reason=exc.reason, recv_ts=1))
            continue
        # anything but FrameError propagates here and fails the test
        for ev in events:
            assert problem(ev) is None, (ev, problem(ev))
            batch.add(ev)
        counts["events"] += len(events)
    counts["frames"] += len(frames)
    conflicts = (
        "SELECT count(*) FROM dead_letters WHERE reason LIKE '% conflicts with the stored %'"
    )
    before = writer.conn.execute(conflicts).fetchone()[0]
    res = writer.write_batch(batch)  # must never raise
    # the store is shared by all examples: a mutated trade stored earlier under the id of a
    # real one makes the real one a conflicting duplicate, a dead letter that names it;
    # nothing else may be refused
    conflicted = writer.conn.execute(conflicts).fetchone()[0] - before
    assert res.trades.rejected + res.agg_trades.rejected == conflicted
    assert (res.book_tickers.rejected, res.klines.rejected) == (0, 0)
    for table, bad in _SQL_CHECKS.items():
        n = writer.conn.execute(f"SELECT count(*) FROM {table} WHERE {bad}").fetchone()[0]
        assert n == 0, f"{table}: {n} stored rows break the invariants"


@pytest.mark.slow
def test_fuzzed_file_read_back_obeys_the_invariants(store):
    path, _, counts = store
    assert counts["frames"] >= 1000 and counts["events"] >= 100, counts  # the fuzz above ran
    conn = sqlite3.connect(Path(path))
    n = 0
    for sym, tid, ts, p, q, m in conn.execute(
        "SELECT symbol, trade_id, ts, price, qty, is_buyer_maker FROM ticks"
    ):
        ev: object = Trade(symbol=sym, trade_id=tid, price=p, qty=q, ts=ts, event_ts=ts,
                           is_buyer_maker=bool(m))  # fmt: skip
        assert problem(ev) is None, ev
        n += 1
    for row in conn.execute(
        "SELECT symbol, agg_id, first_id, last_id, price, qty, ts FROM agg_trades"
    ):
        ev = AggTrade(symbol=row[0], agg_id=row[1], first_id=row[2], last_id=row[3],
                      price=row[4], qty=row[5], ts=row[6], event_ts=row[6], is_buyer_maker=True)  # fmt: skip
        assert problem(ev) is None, ev
    for row in conn.execute(
        "SELECT symbol, update_id, bid, bid_qty, ask, ask_qty, ts FROM book_tickers"
    ):
        ev = BookTicker(symbol=row[0], update_id=row[1], bid=row[2], bid_qty=row[3],
                        ask=row[4], ask_qty=row[5], ts=row[6])  # fmt: skip
        assert problem(ev) is None, ev
    for row in conn.execute(
        "SELECT symbol, interval, open_time, close_time, open, high, low, close, volume,"
        " quote_volume, trades, taker_buy_volume, taker_buy_quote_volume FROM klines"
    ):
        ev = Kline(symbol=row[0], interval=row[1], open_time=row[2], close_time=row[3],
                   open=row[4], high=row[5], low=row[6], close=row[7], volume=row[8],
                   quote_volume=row[9], trades=row[10], taker_buy_volume=row[11],
                   taker_buy_quote_volume=row[12], first_id=-1, last_id=-1, closed=True,
                   event_ts=row[3])  # fmt: skip
        assert problem(ev) is None, ev
    assert n > 0
    conn.close()
