"""Multi-venue end to end over loopback (issue 12): one collector on four venues at full speed.

An ``lq exchange`` process serves Binance, Coinbase, Kraken and OKX (each venue's imitation
on its own port, one simulated market, ``--speed max``: every venue sends as fast as its
client reads, from its first subscription on); the collector in this process follows
BTC and ETH on all four (``FeedSpec`` per venue, one writer, one SQLite file) for
``LQ_BENCH_E2E_SECONDS`` (default 60) s. Zero loss is checked per venue and symbol: the
stored ids are contiguous (count == max - min + 1), no gap was found, and every trade the
collector received is a stored row (received == stored). Frames differ in weight by venue:
a Coinbase ``market_trades`` frame carries a batch of trades and a Kraken ``update`` frame
every trade of its pair in one release, while Binance and OKX send one trade per frame, so
both frames/s and trades/s are printed. The baseline, in the same run, is a bare
``websockets`` client per venue on a fresh exchange process (subscribe, count frames: no
parsing, no storing).

Set ``LQ_BENCH_QUICK=1`` for a 10 s smoke run. Run it at high priority on a shared machine::

    setsid sh -c 'echo -15 > /proc/self/autogroup; exec nice -n -15 .venv/bin/python -m bench venues_e2e'
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._util import report  # noqa: E402

QUICK = os.environ.get("LQ_BENCH_QUICK") == "1"
E2E_SECONDS = float(os.environ.get("LQ_BENCH_E2E_SECONDS", 10 if QUICK else 60))
BARE_SECONDS = 5.0 if QUICK else 10.0
TARGET = 40_000
VENUES: dict[str, tuple[str, ...]] = {
    "binance": ("BTCUSDT", "ETHUSDT"),
    "coinbase": ("BTC-USD", "ETH-USD"),
    "kraken": ("BTC/USD", "ETH/USD"),
    "okx": ("BTC-USDT", "ETH-USDT"),
}
_LINE = re.compile(r"^(\w+): WebSocket (ws://\S+)\s+REST (http://\S+)")


def start_exchange() -> tuple[subprocess.Popen[str], dict[str, tuple[str, str]]]:
    """``lq exchange`` with the four venues at full speed; ``{venue: (ws_url, rest_url)}``."""
    args = [sys.executable, "-m", "lq.cli", "exchange", "--speed", "max", "--rate", "1000"]
    for v, syms in VENUES.items():
        args += ["--symbols", f"{v}:{','.join(syms)}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    urls: dict[str, tuple[str, str]] = {}
    deadline = time.monotonic() + 60
    while len(urls) < len(VENUES) and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = _LINE.match(line.strip())
        if m:
            urls[m.group(1)] = (m.group(2), m.group(3))
    if len(urls) < len(VENUES):
        proc.kill()
        raise RuntimeError(f"exchange did not start (got {sorted(urls)})")
    return proc, urls


def stop_exchange(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


async def _bare_one(venue: str, ws_url: str, seconds: float) -> int:
    """Frames a bare client reads from one venue in ``seconds`` (after its first frame)."""
    import websockets

    from lq.venues.registry import get_venue

    v = get_venue(venue)
    syms = list(VENUES[venue])
    if venue == "binance":
        url = f"{ws_url}/stream?streams=" + "/".join(f"{s.lower()}@trade" for s in syms)
        subscribe: list[str] = []
    else:
        url = ws_url
        subscribe = list(v.protocol.subscribe_messages(syms))
    async with websockets.connect(url, max_size=None, compression=None) as ws:
        for m in subscribe:
            await ws.send(m)
        await ws.recv()
        n = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await ws.recv()
            n += 1
    return n


async def _bare(urls: dict[str, tuple[str, str]], seconds: float) -> dict[str, float]:
    counts = await asyncio.gather(*(_bare_one(v, urls[v][0], seconds) for v in VENUES))
    return {v: n / seconds for v, n in zip(VENUES, counts, strict=True)}


async def _collect(
    db: Path, urls: dict[str, tuple[str, str]], seconds: float
) -> tuple[dict[str, float], dict[str, float], dict[str, int], dict[str, int]]:
    """Per venue: frames/s, trades/s, trades received, gaps found."""
    from lq.collector import Collector, FeedSpec

    feeds = [
        FeedSpec(
            venue=v,
            symbols=syms,
            label=f"bench-{v}",
            ws_url=urls[v][0],
            rest_url=urls[v][1],
        )
        for v, syms in VENUES.items()
    ]
    col = Collector(db=db, source="live", feeds=feeds, client_options={"compression": None})
    col.start()
    await col.wait_started(60)
    clients = {v: col.clients[f"bench-{v}"] for v in VENUES}
    await asyncio.sleep(1.0)  # every feed subscribed and flowing
    m0 = {v: c.status.messages for v, c in clients.items()}
    t0_trades = dict(col.stats.trades_by_label)
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - t0
    frames = {v: (c.status.messages - m0[v]) / elapsed for v, c in clients.items()}
    trades = {
        v: (col.stats.trades_by_label.get(f"bench-{v}", 0) - t0_trades.get(f"bench-{v}", 0))
        / elapsed
        for v in VENUES
    }
    await col.stop()
    received = {v: col.stats.trades_by_label.get(f"bench-{v}", 0) for v in VENUES}
    gaps = {v: int(c.status.gaps_found or 0) for v, c in clients.items()}
    return frames, trades, received, gaps


def main() -> int:
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "venues.sqlite"
        proc, urls = start_exchange()
        try:
            bare = asyncio.run(_bare(urls, BARE_SECONDS))
        finally:
            stop_exchange(proc)
        proc, urls = start_exchange()
        try:
            frames, trades, received, gaps = asyncio.run(_collect(db, urls, E2E_SECONDS))
        finally:
            stop_exchange(proc)
        conn = sqlite3.connect(db)
        rows = conn.execute(
            "SELECT exchange, symbol, count(*), min(trade_id), max(trade_id) FROM ticks "
            "GROUP BY exchange, symbol"
        ).fetchall()
        conn.close()
    holes: dict[str, int] = {v: 0 for v in VENUES}
    stored: dict[str, int] = {v: 0 for v in VENUES}
    for label, _sym, n, lo, hi in rows:
        v = label.removeprefix("bench-")
        holes[v] += (hi - lo + 1) - n
        stored[v] += n
    symbols_seen = {(label, sym) for label, sym, *_ in rows}
    all_symbols = all((f"bench-{v}", s) in symbols_seen for v, syms in VENUES.items() for s in syms)
    total_frames = sum(frames.values())
    total_trades = sum(trades.values())
    total_bare = sum(bare.values())
    lost = sum(holes.values()) + sum(gaps.values())
    equal = all(received[v] == stored[v] for v in VENUES)
    ok = total_frames >= TARGET and lost == 0 and equal and all_symbols
    report(
        f"four venues end to end, one collector, {E2E_SECONDS:.0f} s at full speed",
        f"{total_frames:,.0f} frames/s",
        baseline=f"{total_bare:,.0f}/s (bare websockets clients)",
        ratio=total_frames / total_bare if total_bare else None,
        target=f">= {TARGET // 1000}k/s, zero loss",
        ok=ok,
    )
    report("  trades/s (all venues)", f"{total_trades:,.0f} trades/s")
    for v in VENUES:
        report(
            f"  {v}: frames/s, trades/s (bare client frames/s)",
            f"{frames[v]:,.0f} / {trades[v]:,.0f}",
            baseline=f"{bare[v]:,.0f}/s",
        )
    report(
        "  trades lost (holes in stored ids + gaps found)",
        f"{lost}",
        target="0",
        ok=lost == 0 and all_symbols,
    )
    report(
        "  trades received / rows stored",
        f"{sum(received.values()):,} / {sum(stored.values()):,}",
        target="equal per venue",
        ok=equal,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
