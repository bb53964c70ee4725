"""The local exchange serves depth from the real recordings, over real loopback sockets.

A replay of a recording sends its ``@depth@100ms`` diffs exactly as recorded (``U``/``u``
and every level string), and REST ``/api/v3/depth`` answers a snapshot that is consistent
with them: the book of the recorded snapshot plus every diff up to its ``lastUpdateId``,
computed here by a naive dict-of-levels model (independent of lq's book). Its weight follows
the limit; a source without a book says so.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from lq.exchange import ReplaySource, SimulatorSource
from lq.feeds.recording import read_frames
from lq.venues.binance.local.server import LocalExchange

from .conftest import BTC_FILE


def _recorded(path: Path) -> tuple[dict, list[dict]]:
    snap: dict = {}
    diffs: list[dict] = []
    for _, raw in read_frames(path):
        d = json.loads(raw)
        if "lastUpdateId" in d and not snap:
            snap = d
        elif d.get("stream", "").endswith("@depth@100ms"):
            diffs.append(d["data"])
    return snap, diffs


def _naive_books(snap: dict, diffs: list[dict], depth: int) -> dict[int, tuple[list, list]]:
    """The top ``depth`` levels after each diff's ``u`` (and at the snapshot's id), as the
    exchange's strings, from a dict per side sorted after every diff."""
    bids = {p: q for p, q in snap["bids"]}
    asks = {p: q for p, q in snap["asks"]}
    sid = snap["lastUpdateId"]

    def top() -> tuple[list, list]:
        b = sorted(bids.items(), key=lambda pq: -float(pq[0]))[:depth]
        a = sorted(asks.items(), key=lambda pq: float(pq[0]))[:depth]
        return [list(x) for x in b], [list(x) for x in a]

    out = {sid: top()}
    for d in diffs:
        if d["u"] <= sid:
            continue
        for side, levels in ((bids, d["b"]), (asks, d["a"])):
            for p, q in levels:
                if float(q) == 0:
                    side.pop(p, None)
                else:
                    side[p] = q
        out[d["u"]] = top()
    return out


def test_replay_serves_recorded_diffs_and_rest_snapshots_consistent_with_them(
    recordings: Path,
) -> None:
    path = recordings / BTC_FILE
    snap, diffs = _recorded(path)
    assert len(diffs) == 3451
    books = _naive_books(snap, diffs, 100)

    async def main() -> tuple[list[dict], list[tuple[dict, str | None]]]:
        ex = LocalExchange(source=ReplaySource(path, speed=None))
        await ex.start()
        got: list[dict] = []
        answers: list[tuple[dict, str | None]] = []
        try:
            async with (
                connect(ex.ws_url + "/stream?streams=btcusdt@depth@100ms") as ws,
                httpx.AsyncClient(base_url=ex.rest_url, trust_env=False) as h,
            ):
                while len(got) < len(diffs):
                    got.append(json.loads(await asyncio.wait_for(ws.recv(), 60))["data"])
                    if len(got) % 300 == 1:  # ask REST while the stream goes on
                        r = await h.get("/api/v3/depth", params={"symbol": "BTCUSDT"})
                        assert r.status_code == 200, r.text
                        answers.append((r.json(), r.headers.get("x-mbx-used-weight-1m")))
                for limit, weight in ((1000, 50), (5000, 250)):
                    r = await h.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": limit})
                    assert r.status_code == 200
                    used = int(r.headers["x-mbx-used-weight-1m"])
                    assert used >= weight  # this call's weight is counted
                    assert len(r.json()["bids"]) <= limit
                    answers.append((r.json(), None))
        finally:
            await ex.stop()
        return got, answers

    got, answers = asyncio.run(asyncio.wait_for(main(), 240))
    # every diff as recorded: ids and level strings
    assert [(d["U"], d["u"], d["b"], d["a"]) for d in got] == [
        (d["U"], d["u"], d["b"], d["a"]) for d in diffs
    ]
    assert len(answers) >= 12
    for body, _ in answers:
        lid = body["lastUpdateId"]
        assert lid in books, f"lastUpdateId {lid} is neither the snapshot's nor a diff's u"
        want_b, want_a = books[lid]
        assert body["bids"][:100] == want_b and body["asks"][:100] == want_a
    # the last answer follows the last diff sent
    assert answers[-1][0]["lastUpdateId"] == diffs[-1]["u"]


def test_a_source_without_depth_says_so() -> None:
    async def main() -> httpx.Response:
        ex = LocalExchange(source=SimulatorSource(symbols=["BTCUSDT"], seed=3, speed=None))
        await ex.start()
        try:
            async with httpx.AsyncClient(base_url=ex.rest_url, trust_env=False) as h:
                return await h.get("/api/v3/depth", params={"symbol": "BTCUSDT"})
        finally:
            await ex.stop()

    r = asyncio.run(asyncio.wait_for(main(), 60))
    assert r.status_code == 404
    assert "no order book of BTCUSDT" in r.json()["msg"]


def test_the_rest_client_pays_the_depth_weight_by_limit_and_waits_when_it_would_overrun(
    recordings: Path,
) -> None:
    from lq.feeds import DepthParser
    from lq.feeds.events import DepthSnapshot
    from lq.venues.binance.rest import RestClient

    sleeps: list[float] = []

    async def sleep(s: float) -> None:
        sleeps.append(s)

    async def main() -> tuple[list[int | None], bytes]:
        ex = LocalExchange(source=ReplaySource(recordings / BTC_FILE, speed=None))
        await ex.start()
        used: list[int | None] = []
        try:
            async with RestClient(rest_url=ex.rest_url, sleep=sleep, weight_limit=300) as rest:
                body = await rest.depth("BTCUSDT", limit=5000)
                used.append(rest.used_weight)
                await rest.depth("BTCUSDT", limit=100)
                used.append(rest.used_weight)
                assert not sleeps
                await rest.depth("BTCUSDT")  # 1000 levels: 50 more would pass 300
                used.append(rest.used_weight)
        finally:
            await ex.stop()
        return used, body

    used, body = asyncio.run(asyncio.wait_for(main(), 60))
    assert used[:2] == [250, 255]
    assert len(sleeps) == 1 and 0 < sleeps[0] <= 60.1  # waited for the next minute first
    assert used[2] is not None and used[2] >= 305  # the server minute did not really turn
    snap = DepthParser().parse(body, 0, symbol="BTCUSDT")
    # nothing subscribed, so no diff was sent: the recorded snapshot, all its 1000 levels,
    # answered before any stream (a client may fetch first and subscribe after)
    assert isinstance(snap, DepthSnapshot) and len(snap.bids) == len(snap.asks) == 1000
    assert snap.last_update_id == 50093239218
