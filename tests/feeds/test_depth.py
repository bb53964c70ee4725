"""lq.feeds.depth.DepthParser: depth frames and snapshots to typed events; a bad frame is a
Rejected naming the problem, never an exception."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lq.feeds.depth import DepthParser
from lq.feeds.events import DepthSnapshot, DepthUpdate, Rejected

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "binance"

SPOT = {
    "e": "depthUpdate",
    "E": 1723161255308,
    "s": "BTCUSDT",
    "U": 50093239203,
    "u": 50093239207,
    "b": [["55653.87000000", "0.00000000"]],
    "a": [["61838.04000000", "0.32332000"], ["61844.30000000", "0.40163000"]],
}
# USD-M @depth: T and pu (shared/reference/binance-protocol.md §4.1)
USDM = {
    "e": "depthUpdate",
    "E": 1723161256322,
    "T": 1723161256320,
    "s": "BTCUSDT",
    "U": 5123107839020,
    "u": 5123107839030,
    "pu": 5123107839019,
    "b": [["61800.20", "2.507"]],
    "a": [["61800.30", "0"]],
}
SNAP = {
    "lastUpdateId": 50093239218,
    "bids": [["61837.63", "3.78826"], ["61837.62", "0.617"]],
    "asks": [["61837.64", "1.54698"], ["61839.00", "1"]],
}


def combined(stream: str, data: object) -> bytes:
    return json.dumps({"stream": stream, "data": data}).encode()


def test_spot_diff_is_parsed_with_ids_levels_and_times() -> None:
    p = DepthParser()
    ev = p.parse(combined("btcusdt@depth@100ms", SPOT), recv_ts=7)
    assert isinstance(ev, DepthUpdate)
    assert (ev.symbol, ev.first_id, ev.last_id, ev.prev_last_id) == (
        "BTCUSDT",
        50093239203,
        50093239207,
        None,
    )
    assert ev.bids == ((55653.87, 0.0),)
    assert ev.asks == ((61838.04, 0.32332), (61844.3, 0.40163))
    assert ev.event_ts == ev.ts == 1723161255308000
    assert ev.recv_ts == 7
    assert p.updates == 1
    # the 1000 ms stream and a raw (non-combined) frame give the same event
    assert p.parse(combined("btcusdt@depth", SPOT), 7) == ev
    assert p.parse(json.dumps(SPOT), 7) == ev


def test_usdm_diff_carries_pu_and_transaction_time() -> None:
    ev = DepthParser().parse(combined("btcusdt@depth@0ms", USDM), 1)
    assert isinstance(ev, DepthUpdate)
    assert ev.prev_last_id == 5123107839019
    assert ev.ts == 1723161256320000 and ev.event_ts == 1723161256322000
    assert ev.asks == ((61800.3, 0.0),)


def test_rest_snapshot_needs_its_symbol_and_partial_stream_names_it() -> None:
    p = DepthParser()
    raw = json.dumps(SNAP)
    r = p.parse(raw, 5)
    assert isinstance(r, Rejected) and "pass symbol=" in r.reason
    s = p.parse(raw, 5, symbol="BTCUSDT")
    assert isinstance(s, DepthSnapshot)
    assert (s.symbol, s.last_update_id, s.source, s.ts) == ("BTCUSDT", 50093239218, "rest", 5)
    assert s.bids[0] == (61837.63, 3.78826) and s.asks[-1] == (61839.0, 1.0)
    part = p.parse(combined("btcusdt@depth5@100ms", SNAP), 5)
    assert isinstance(part, DepthSnapshot) and part.source == "partial"
    assert part.symbol == "BTCUSDT"


def test_usdm_partial_depth_is_refused_clearly() -> None:
    r = DepthParser().parse(combined("btcusdt@depth5@100ms", USDM), 0)
    assert isinstance(r, Rejected) and "USD-M partial-depth" in r.reason


def test_other_streams_are_ignored_not_rejected() -> None:
    p = DepthParser()
    trade = combined("btcusdt@trade", {"e": "trade", "s": "BTCUSDT"})
    assert p.parse(trade, 0) is None
    assert p.parse(json.dumps({"u": 1, "s": "BTCUSDT", "b": "1"}), 0) is None
    assert p.ignored == 2


def _mut(**kw: object) -> dict:
    d = dict(SPOT)
    d.update(kw)
    return d


BAD = [
    (_mut(U=2**63), "U"),
    (_mut(u=-1), "u"),
    (_mut(U=10, u=9), "first update id U=10 is after the last u=9"),
    (_mut(b=[["1e308", "1"]]), "b"),
    (_mut(b=[["-5", "1"]]), "b"),
    (_mut(b=[["nan", "1"]]), "b"),
    (_mut(a=[["100", "-1"]]), "a"),
    (_mut(a=[["100", "inf"]]), "a"),
    (_mut(a=[["100", "1e-320"]]), "denormal"),
    (_mut(a=[["100", "1"], ["100", "2"]]), "appears twice"),
    (_mut(a=[["100"]]), "a"),
    (_mut(E=1), "E"),
    (_mut(s="ETHUSDT"), "carries symbol 'ETHUSDT', not 'BTCUSDT'"),
    (_mut(pu=-2), "pu"),
]


@pytest.mark.parametrize(("frame", "says"), BAD)
def test_bad_diff_is_rejected_with_its_reason(frame: dict, says: str) -> None:
    p = DepthParser()
    r = p.parse(combined("btcusdt@depth@100ms", frame), 3)
    assert isinstance(r, Rejected), r
    assert says in r.reason
    assert r.recv_ts == 3 and "\n" not in r.reason
    assert p.rejected == 1


@pytest.mark.parametrize(
    ("snap", "says"),
    [
        ({**SNAP, "lastUpdateId": 2**63}, "lastUpdateId"),
        ({**SNAP, "bids": [["1", "1"], ["2", "1"]], "asks": [["3", "1"]]}, "not strictly"),
        ({**SNAP, "asks": [["61837.64", "1"], ["61837.64", "1"]]}, "not strictly"),
        ({**SNAP, "bids": [["61837.64", "1"]]}, "locked book"),
        ({**SNAP, "bids": [["61900", "1"]]}, "crossed book"),
        ({**SNAP, "bids": [["61800", "0"]]}, "quantity 0"),
    ],
)
def test_bad_snapshot_is_rejected(snap: dict, says: str) -> None:
    r = DepthParser().parse(json.dumps(snap), 0, symbol="BTCUSDT")
    assert isinstance(r, Rejected) and says in r.reason


def test_stream_and_symbol_rules() -> None:
    p = DepthParser(symbols=["BTCUSDT"])
    assert isinstance(p.parse(combined("ethusdt@depth", {**SPOT, "s": "ETHUSDT"}), 0), Rejected)
    assert isinstance(p.parse(combined("BTCUSDT@depth", SPOT), 0), Rejected)
    assert isinstance(p.parse(combined("btcusdt@depth7", SPOT), 0), Rejected)
    assert isinstance(p.parse(combined("btcusdt@depth", {**SPOT, "e": "trade"}), 0), Rejected)
    assert isinstance(p.parse(b"", 0), Rejected)
    assert isinstance(p.parse(b"[" * 5000, 0), Rejected)
    assert isinstance(p.parse("\ud800", 0), Rejected)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_nothing_escapes_the_parser(raw: bytes | str) -> None:
    out = DepthParser().parse(raw, 0, symbol="BTCUSDT")
    assert out is None or isinstance(out, DepthUpdate | DepthSnapshot | Rejected)


@settings(max_examples=300, deadline=None)
@given(
    pos=st.integers(0, 10_000),
    junk=st.sampled_from(['"', "}", "-", "1e400", "null", "[", ",", "NaN", "0"]),
)
def test_mutated_real_frames_parse_or_are_rejected(pos: int, junk: str) -> None:
    raw = combined("btcusdt@depth@100ms", SPOT).decode()
    pos %= len(raw)
    mutated = raw[:pos] + junk + raw[pos + 1 :]
    out = DepthParser().parse(mutated, 0)
    assert out is None or isinstance(out, DepthUpdate | DepthSnapshot | Rejected)


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/binance/ is not here")
@pytest.mark.parametrize(
    ("name", "updates"),
    [("spot_btcusdt_20240808.gz", 3451), ("spot_ethusdt_20240808.gz", 3434)],
)
def test_every_real_depth_frame_and_the_snapshot_parse(name: str, updates: int) -> None:
    p = DepthParser()
    sym = name.split("_")[1].upper()
    snaps = 0
    with gzip.open(DATA / name, "rt") as f:
        for line in f:
            ts, _, raw = line.partition(" ")
            out = p.parse(raw, int(ts) // 1000, symbol=sym)
            assert not isinstance(out, Rejected), out
            snaps += isinstance(out, DepthSnapshot)
    assert (p.updates, snaps, p.rejected) == (updates, 1, 0)


def _real_frames(limit: int = 300) -> list[str]:
    out: list[str] = []
    path = DATA / "spot_btcusdt_20240808.gz"
    if not path.exists():
        return out
    with gzip.open(path, "rt") as f:
        for line in f:
            raw = line.partition(" ")[2].rstrip("\n")
            if "@depth" in raw[:40] or raw.startswith('{"lastUpdateId"'):
                out.append(raw)
            if len(out) >= limit:
                break
    return out


REAL = _real_frames()


@pytest.mark.skipif(not REAL, reason="../shared/data/binance/ is not here")
@settings(max_examples=400, deadline=None)
@given(
    i=st.integers(0, 10**6),
    pos=st.integers(0, 10**6),
    junk=st.sampled_from(
        ['"', "}", "-", "1e400", "null", "[", ",", "NaN", "0", "9" * 20, "-0.0000000001", "1e-320"]
    ),
)
def test_mutated_real_depth_frames_never_escape_and_never_break_a_rule(i, pos, junk) -> None:
    """Real frames of the BTCUSDT recording with one token replaced: the parser returns an
    event that obeys every rule, or a Rejected, never anything else."""
    from lq.feeds.invariants import MAX_ID, MAX_PRICE, MAX_QTY, MIN_PRICE, MIN_QTY

    raw = REAL[i % len(REAL)]
    pos %= len(raw)
    out = DepthParser().parse(raw[:pos] + junk + raw[pos + 1 :], 0, symbol="BTCUSDT")
    if isinstance(out, DepthUpdate):
        assert 0 <= out.first_id <= out.last_id <= MAX_ID
    if isinstance(out, DepthUpdate | DepthSnapshot):
        for p, q in (*out.bids, *out.asks):
            assert MIN_PRICE <= p <= MAX_PRICE
            assert q == 0.0 or MIN_QTY <= q <= MAX_QTY
    if isinstance(out, DepthSnapshot) and out.bids and out.asks:
        assert out.bids[0][0] < out.asks[0][0]
        assert all(q > 0 for _, q in (*out.bids, *out.asks))
    assert out is None or isinstance(out, DepthUpdate | DepthSnapshot | Rejected)
