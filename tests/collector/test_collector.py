"""The collector end to end: local exchange -> real loopback WebSocket -> client -> SQLite.

For every fault the stored trade ids must equal the exchange's own ids exactly: none lost,
none duplicated. The exchange's ``trades(symbol)`` is the truth.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from lq.collector import Collector
from lq.exchange import LocalExchange, SimulatorSource
from lq.feeds import Backoff

SYMBOLS = ("BTCUSDT", "ETHUSDT")
FAST = {
    "backoff": Backoff(initial=0.05, max_delay=0.2, seed=1),
    "stale_after": 0.8,
    "backfill_delay": 0.05,
}


CONNECTED: dict[tuple[int, str], int] = {}


def stored(db: Path, symbol: str) -> list[tuple[int, float, float]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT trade_id, price, qty FROM ticks WHERE symbol = ? ORDER BY trade_id", (symbol,)
        ).fetchall()
    finally:
        conn.close()


def assert_exact(db: Path, ex: LocalExchange, symbol: str) -> int:
    rows = stored(db, symbol)
    truth = ex.trades(symbol)
    assert rows, f"nothing stored for {symbol}"
    ids = [r[0] for r in rows]
    first = ids[0]
    expected = [(t.trade_id, t.price, t.qty) for t in truth if t.trade_id >= first]
    # the exchange trades from its start; the collector stores from its connection on (on a
    # loaded machine that can be a second later): nothing after the connection may be missing
    at_connect = CONNECTED.get((id(ex), symbol), truth[0].trade_id)
    assert first <= at_connect + 50, "the collector started long after it connected"
    missing = sorted(set(e[0] for e in expected) - set(ids))
    extra = sorted(set(ids) - set(e[0] for e in expected))
    assert not missing, f"{symbol}: {len(missing)} trades lost, e.g. {missing[:5]}"
    assert not extra, (
        f"{symbol}: {len(extra)} trades that the exchange never made, e.g. {extra[:5]}"
    )
    assert rows == expected  # same ids, prices and quantities
    return len(rows)


async def scenario(
    db: Path,
    act: Callable[[LocalExchange, Collector], Awaitable[None]],
    *,
    seconds: float = 3.0,
    rate: float = 150.0,
    exchange_options: dict | None = None,
    client_options: dict | None = None,
) -> tuple[LocalExchange, Collector]:
    """Run the simulator for ``seconds`` while ``act`` breaks things, then drain and stop."""
    ex = LocalExchange(
        source=SimulatorSource(symbols=SYMBOLS, seed=11, rate=rate, duration=seconds),
        host="127.0.0.1",
        port=0,
        **(exchange_options or {}),
    )
    await ex.start()
    col = Collector(
        db=db,
        source="live",
        symbols=SYMBOLS,
        ws_url=ex.ws_url,
        rest_url=ex.rest_url,
        exchange_label="local",
        client_options={**FAST, "compression": None, **(client_options or {})},
    )
    col.start()
    try:
        await col.wait_started(30)
        for s in SYMBOLS:  # the exchange's last id when the collector was connected
            made = ex.trades(s)
            CONNECTED[(id(ex), s)] = made[-1].trade_id if made else 0
        await act(ex, col)
        # the simulator stops after `seconds`; wait until everything it made is stored
        # (every id from the first stored to the exchange's last, so a hole still being
        # backfilled is waited for; generous: on a loaded machine a backfill takes seconds)
        deadline = time.monotonic() + seconds + 60
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            done = all(_complete(db, ex, s) for s in SYMBOLS)
            # compare only once the simulator has made its last trade (else the truth
            # still grows while we compare)
            if done and ex.source_done.is_set():
                break
    finally:
        await col.stop()
        await ex.stop()
    return ex, col


def _complete(db: Path, ex: LocalExchange, symbol: str) -> bool:
    """Stored ids run without a hole from the first stored to the exchange's last."""
    rows, truth = stored(db, symbol), ex.trades(symbol)
    if not rows or not truth or rows[-1][0] != truth[-1].trade_id:
        return False
    return sum(1 for t in truth if t.trade_id >= rows[0][0]) == len(rows)


def run(coro):
    return asyncio.run(coro)


async def nothing(ex: LocalExchange, col: Collector) -> None:
    await asyncio.sleep(0.5)


def _inject(kind: str, at: float = 0.8, **params):
    async def act(ex: LocalExchange, col: Collector) -> None:
        await asyncio.sleep(at)
        ex.inject(kind, **params)
        await asyncio.sleep(0.5)

    return act


def test_clean_session_stores_every_trade_once(tmp_path):
    # 10 s of trading: on a loaded machine the collector may connect seconds in, and what it
    # stores (from its connection on) must still be enough to mean something
    ex, col = run(scenario(tmp_path / "a.sqlite", nothing, seconds=10.0))
    n = sum(assert_exact(tmp_path / "a.sqlite", ex, s) for s in SYMBOLS)
    assert n > 500
    assert col.stats.trades_new == n


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("close_1001", {}),
        ("drop_tcp", {}),
        ("stall", {"seconds": 2.0}),
        ("duplicate", {"count": 50}),
        ("skip_ids", {"symbol": "BTCUSDT", "count": 25}),
        ("shutdown", {}),
        ("out_of_order", {"count": 20}),
    ],
)
def test_after_each_fault_stored_ids_equal_the_exchanges_exactly(tmp_path, kind, params):
    db = tmp_path / "f.sqlite"
    ex, col = run(scenario(db, _inject(kind, **params)))
    for s in SYMBOLS:
        assert_exact(db, ex, s)
    st = col.client.status
    if kind in ("close_1001", "drop_tcp", "stall"):
        assert st.reconnects >= 1
    if kind == "skip_ids":
        conn = sqlite3.connect(db)
        gaps = conn.execute(
            "SELECT symbol, last_missing - first_missing + 1, status FROM gaps"
        ).fetchall()
        assert ("BTCUSDT", 25, "filled") in gaps or sum(
            g[1] for g in gaps if g[2] == "filled"
        ) >= 25
        assert not [g for g in gaps if g[2] == "unfilled"]


def test_short_maximum_connection_age_rotates_without_loss(tmp_path):
    db = tmp_path / "r.sqlite"
    ex, col = run(scenario(db, nothing, seconds=4.0, exchange_options={"max_connection_age": 1.0}))
    for s in SYMBOLS:
        assert_exact(db, ex, s)
    assert col.client.status.rotations + col.client.status.reconnects >= 2


def test_one_percent_malformed_frames_are_dead_letters_and_the_rest_is_stored(tmp_path):
    db = tmp_path / "m.sqlite"

    async def act(ex: LocalExchange, col: Collector) -> None:
        for _ in range(10):  # ~900 trade frames in 3 s: 9 garbage frames is 1%
            ex.inject("malformed", count=1)
            await asyncio.sleep(0.2)

    ex, _col = run(scenario(db, act))
    total = sum(assert_exact(db, ex, s) for s in SYMBOLS)
    conn = sqlite3.connect(db)
    dead = conn.execute("SELECT source, reason, raw FROM dead_letters").fetchall()
    assert len(dead) == 10, dead
    assert all(src == "feed" and reason and raw for src, reason, raw in dead)
    # every trade made once the collector was connected is stored (~900 in an unloaded 3 s
    # session; a collector that connects late on a loaded machine sees fewer, all of them)
    made = sum(sum(1 for t in ex.trades(s) if t.trade_id > CONNECTED[(id(ex), s)]) for s in SYMBOLS)
    assert total >= made > 300


def test_rest_429_with_retry_after_is_obeyed_during_backfill(tmp_path):
    db = tmp_path / "429.sqlite"

    async def act(ex: LocalExchange, col: Collector) -> None:
        await asyncio.sleep(0.5)
        ex.inject("rest_429", count=2, retry_after=1)
        t0 = time.monotonic()
        ex.inject("skip_ids", symbol="ETHUSDT", count=10)
        while col.client.status.gaps_filled < 1 and time.monotonic() - t0 < 10:
            await asyncio.sleep(0.05)
        act.waited = time.monotonic() - t0  # type: ignore[attr-defined]

    ex, col = run(scenario(db, act))
    for s in SYMBOLS:
        assert_exact(db, ex, s)
    assert act.waited >= 1.0  # two 429s with Retry-After: 1 were waited out, not hammered  # type: ignore[attr-defined]
    assert col.client.status.gaps_filled >= 1


def test_replaying_the_real_recordings_stores_every_trade_exactly(tmp_path, shared_data):
    import json

    from lq.feeds.recording import read_frames

    files = [shared_data / "spot_btcusdt_20240808.gz", shared_data / "spot_ethusdt_20240808.gz"]
    truth: dict[str, list[tuple[int, float, float]]] = {"BTCUSDT": [], "ETHUSDT": []}
    for f in files:
        for _, raw in read_frames(f):
            d = json.loads(raw)
            if d.get("stream", "").endswith("@trade"):
                t = d["data"]
                truth[t["s"]].append((t["t"], float(t["p"]), float(t["q"])))
    db = tmp_path / "replay.sqlite"

    async def go() -> Collector:
        col = Collector(
            db=db,
            source="replay:" + ",".join(map(str, files)),
            symbols=SYMBOLS,
            replay={"speed": None},
            client_options=FAST,
        )
        col.start()
        deadline = time.monotonic() + 240  # an outcome, waited for (minutes under load)
        while time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            if all(len(stored(db, s)) == len(truth[s]) for s in SYMBOLS):
                break
        await asyncio.sleep(0.3)
        await col.stop()
        return col

    run(go())
    assert len(truth["BTCUSDT"]) == 9_757 and len(truth["ETHUSDT"]) == 6_106
    for s in SYMBOLS:
        assert stored(db, s) == truth[s]
    conn = sqlite3.connect(db)
    assert (
        conn.execute("SELECT sum(trades) FROM bars_1s WHERE symbol='BTCUSDT'").fetchone()[0]
        == 9_757
    )
    assert (
        conn.execute("SELECT count(*) FROM book_tickers").fetchone()[0] == 0
    )  # only trades were asked for
    assert conn.execute("SELECT DISTINCT exchange FROM ticks").fetchall() == [("replay",)]
