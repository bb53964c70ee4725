"""Live-data pipeline benchmarks (issue: live market data).

1. Recorded frames -> parsed -> stored -> 1 s bars, no network, against ``json.loads`` + one
   INSERT + commit per trade (sqlite3 defaults), in the same run.
2. End to end over a loopback WebSocket: an ``lq exchange`` process replaying the real
   recordings at full speed, looping -> the collector in this process, subscribed to the
   recordings' trade and bookTicker streams (the depth frames are not subscribed), for
   ``LQ_BENCH_E2E_SECONDS`` (default 60) s; zero loss checked by trade-id continuity and by
   every received frame being a stored row; against a bare websockets client reading the
   same streams from the same exchange (no parsing, no storing). The trade streams alone are
   ~21 % of the recordings' frames, so a trades-only collector there is limited by how fast the
   exchange process replays the rest, not by the collector; the trade path alone is measured
   on a second exchange running the simulator at full speed, trade streams only.
3. Frame received -> committed latency p50/p99 at 5k frames/s (simulator, two symbols).
4. Collector peak memory with 50 simulated symbols for ``LQ_BENCH_MEMORY_SECONDS`` (default
   600) s, against the same collector with 2 symbols for the same time.

Set ``LQ_BENCH_QUICK=1`` for a 10 s / 60 s smoke run.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._util import report  # noqa: E402
from lq.feeds.parser import Parser  # noqa: E402
from lq.feeds.recording import read_frames  # noqa: E402
from lq.store import Batch, Writer  # noqa: E402
from lq.store.schema import MIGRATIONS  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "binance"
QUICK = os.environ.get("LQ_BENCH_QUICK") == "1"
E2E_SECONDS = float(os.environ.get("LQ_BENCH_E2E_SECONDS", 10 if QUICK else 60))
MEM_SECONDS = float(os.environ.get("LQ_BENCH_MEMORY_SECONDS", 60 if QUICK else 600))


def trade_frames(copies: int) -> list[tuple[int, bytes]]:
    """The real BTCUSDT trade frames, repeated with ids and times shifted so every copy is new."""
    base = [
        (ns, raw)
        for ns, raw in read_frames(DATA / "spot_btcusdt_20240808.gz")
        if b"@trade" in raw[:40]
    ]
    out = []
    for k in range(copies):
        for ns, raw in base:
            d = json.loads(raw)
            t = d["data"]
            t["t"] += k * 10_000
            t["T"] += k * 360_000
            t["E"] += k * 360_000
            out.append((ns + k * 360_000_000_000, json.dumps(d, separators=(",", ":")).encode()))
    return out


def bench_offline(tmp: Path) -> None:
    frames = trade_frames(40)  # ~390k trade frames
    parser = Parser(exchange="binance")
    # as in the collector: parse on one thread, commit batches on a writer thread
    with Writer(tmp / "pipe.sqlite") as w, ThreadPoolExecutor(1) as pool:
        t0 = time.perf_counter()
        batch = Batch()
        pending = None
        for ns, raw in frames:
            for ev in parser.parse(raw, ns // 1000):
                batch.add(ev)
            if len(batch.trades) >= 10_000:
                if pending is not None:
                    pending.result()
                pending = pool.submit(w.write_batch, batch)
                batch = Batch()
        if pending is not None:
            pending.result()
        w.write_batch(batch)
        dt = time.perf_counter() - t0
        n, bars = w.conn.execute(
            "SELECT count(*), (SELECT sum(trades) FROM bars_1s) FROM ticks"
        ).fetchone()
    assert n == len(frames) == bars, (n, len(frames), bars)
    rate = len(frames) / dt

    naive_n = 2_000
    conn = sqlite3.connect(tmp / "naive.sqlite")
    conn.executescript(MIGRATIONS[0])
    t0 = time.perf_counter()
    for _, raw in frames[:naive_n]:
        t = json.loads(raw)["data"]
        conn.execute(
            "INSERT OR IGNORE INTO ticks VALUES ('binance', ?, ?, ?, ?, ?, ?, 0)",
            (t["s"], t["t"], t["T"] * 1000, float(t["p"]), float(t["q"]), t["m"]),
        )
        conn.commit()
    naive = naive_n / (time.perf_counter() - t0)
    conn.close()
    report(
        f"frames file -> parse -> store -> 1 s bars ({len(frames):,} trades)",
        f"{rate:,.0f} frames/s",
        baseline=f"{naive:,.0f}/s (json.loads + INSERT + commit)",
        ratio=rate / naive,
        target=">= 250k/s",
        ok=rate >= 250_000,
    )


def start_exchange(args: list[str]) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lq.cli", "exchange", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        m = re.search(r"(ws://127\.0\.0\.1:\d+)", line)
        if m:
            ws = m.group(1)
            return proc, ws, ws.replace("ws://", "http://")
    proc.kill()
    raise RuntimeError("exchange did not start")


async def _bare(ws_url: str, streams: str, seconds: float) -> int:
    import websockets

    n = 0
    url = f"{ws_url}/stream?streams={streams}"
    async with websockets.connect(url, max_size=None, compression=None) as ws:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await ws.recv()
            n += 1
    return n


async def _e2e(
    db: Path,
    ws_url: str,
    rest_url: str,
    seconds: float,
    channels: tuple[str, ...] = ("trade", "bookTicker"),
) -> tuple[float, dict[str, tuple[int, int, int]], int, int]:
    from lq.collector import Collector

    col = Collector(
        db=db,
        source="live",
        symbols=["BTCUSDT", "ETHUSDT"],
        channels=channels,
        ws_url=ws_url,
        rest_url=rest_url,
        exchange_label="bench",
        client_options={"compression": None},
    )
    col.start()
    await col.wait_started(30)
    t0 = time.monotonic()
    m0 = col.client.status.messages
    await asyncio.sleep(seconds)
    frames = col.client.status.messages - m0
    elapsed = time.monotonic() - t0
    await col.stop()
    received = col.client.status.messages
    conn = sqlite3.connect(db)
    ids = {
        s: conn.execute(
            "SELECT count(*), min(trade_id), max(trade_id) FROM ticks WHERE symbol = ?", (s,)
        ).fetchone()
        for s in ("BTCUSDT", "ETHUSDT")
    }
    stored = conn.execute(
        "SELECT (SELECT count(*) FROM ticks) + (SELECT count(*) FROM book_tickers)"
    ).fetchone()[0]
    conn.close()
    return frames / elapsed, ids, received, stored


def _e2e_case(
    tmp: Path, name: str, exchange_args: list[str], channels: tuple[str, ...], streams: str
) -> None:
    proc, ws, rest = start_exchange(exchange_args)
    try:
        base_rate = asyncio.run(_bare(ws, streams, 5.0)) / 5.0
    finally:
        proc.terminate()
        proc.wait(10)
    proc, ws, rest = start_exchange(exchange_args)
    try:
        rate, ids, received, stored = asyncio.run(
            _e2e(tmp / f"e2e-{name}.sqlite", ws, rest, E2E_SECONDS, channels)
        )
    finally:
        proc.terminate()
        proc.wait(10)
    lost = sum((hi - lo + 1) - n for n, lo, hi in ids.values())
    report(
        f"end to end over loopback, {name}, {E2E_SECONDS:.0f} s at full speed",
        f"{rate:,.0f} frames/s",
        baseline=f"{base_rate:,.0f}/s (bare websockets client)",
        ratio=rate / base_rate,
        target=">= 40k/s, zero loss",
        ok=rate >= 40_000 and lost == 0 and received == stored,
    )
    report("  trades lost (holes in stored ids)", f"{lost}", target="0", ok=lost == 0)
    report(
        "  frames received / rows stored",
        f"{received:,} / {stored:,}",
        target="equal",
        ok=received == stored,
    )


def bench_e2e(tmp: Path) -> None:
    files = [str(DATA / "spot_btcusdt_20240808.gz"), str(DATA / "spot_ethusdt_20240808.gz")]
    _e2e_case(
        tmp,
        "recordings (trade + bookTicker)",
        ["--replay", *files, "--speed", "max", "--loop", "--port", "0"],
        ("trade", "bookTicker"),
        "btcusdt@trade/ethusdt@trade/btcusdt@bookTicker/ethusdt@bookTicker",
    )
    _e2e_case(
        tmp,
        "simulator (trades only)",
        ["--symbols", "BTCUSDT,ETHUSDT", "--speed", "max", "--rate", "1000", "--port", "0"],
        ("trade",),
        "btcusdt@trade/ethusdt@trade",
    )


async def _latency(db: Path, seconds: float) -> tuple[float | None, float | None, float]:
    from lq.collector import Collector

    col = Collector(
        db=db,
        source="local",
        symbols=["BTCUSDT", "ETHUSDT"],
        simulator={"seed": 3, "rate": 2_500.0, "speed": 1.0},
    )
    col.start()
    await col.wait_started(30)
    await asyncio.sleep(2)
    col.stats.commit_latency_us.clear()
    m0 = col.client.status.messages
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    rate = (col.client.status.messages - m0) / (time.monotonic() - t0)
    p50, p99 = col.stats.latency_ms(50), col.stats.latency_ms(99)
    await col.stop()
    return p50, p99, rate


def bench_latency(tmp: Path) -> None:
    p50, p99, rate = asyncio.run(_latency(tmp / "lat.sqlite", 10 if QUICK else 20))
    report(
        f"frame received -> committed at {rate:,.0f} frames/s",
        f"p99 {p99:.1f} ms",
        baseline=f"p50 {p50:.1f} ms",
        target="p99 <= 250 ms at 5k/s",
        ok=p99 is not None and p99 <= 250,
    )


def _peak_rss_mb(symbols: int, seconds: float, db: Path) -> tuple[float, int]:
    """Peak RSS of an ``lq collect`` process fed by a separate ``lq exchange`` simulator."""
    syms = ",".join(f"S{i:02d}USDT" for i in range(symbols))
    ex, ws, rest = start_exchange(["--symbols", syms, "--rate", "20", "--seed", "4", "--port", "0"])
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lq.cli",
                "collect",
                "--db",
                str(db),
                "--ws-url",
                ws,
                "--rest-url",
                rest,
                "--exchange-label",
                "bench",
                "--symbols",
                syms,
                "--duration",
                str(seconds),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        peak = 0
        while proc.poll() is None:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                peak = max(peak, int(re.search(r"VmHWM:\s+(\d+)", status).group(1)))  # type: ignore[union-attr]
            except (FileNotFoundError, AttributeError):
                pass
            time.sleep(1)
        out = proc.stdout.read() if proc.stdout else ""
    finally:
        ex.terminate()
        ex.wait(10)
    m = re.search(r"stored ([\d,]+) new trades", out)
    return peak / 1024, int(m.group(1).replace(",", "")) if m else 0


def bench_memory(tmp: Path) -> None:
    small, _ = _peak_rss_mb(2, min(MEM_SECONDS, 60), tmp / "mem2.sqlite")
    big, trades = _peak_rss_mb(50, MEM_SECONDS, tmp / "mem50.sqlite")
    report(
        f"collector peak RSS, 50 symbols, {MEM_SECONDS:.0f} s ({trades:,} trades)",
        f"{big:.0f} MB",
        baseline=f"{small:.0f} MB (2 symbols)",
        ratio=big / small,
        target="<= 200 MB",
        ok=big <= 200,
    )


def main() -> None:
    if not DATA.exists():
        print(f"skipped: the recordings are not at {DATA}")
        return
    which = set(sys.argv[1:]) or {"offline", "e2e", "latency", "memory"}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "offline" in which:
            bench_offline(tmp)
        if "e2e" in which:
            bench_e2e(tmp)
        if "latency" in which:
            bench_latency(tmp)
        if "memory" in which:
            bench_memory(tmp)


if __name__ == "__main__":
    main()
