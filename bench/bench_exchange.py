"""Benchmark: frames/s the local exchange pushes to one loopback WebSocket client.

Baseline (same run, same client, same frames): a bare ``websockets`` server that sends
pre-encoded frames with ``await ws.send(frame)``, nothing else. The client runs in its own
process (``--client``) and counts frames; throughput is measured by the client from its
first to its last frame.

    .venv/bin/python bench/bench_exchange.py [--frames 300000]

Target: >= 40,000 frames/s (issue 3); websockets itself reaches ~78k/s on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data" / "binance"
FILES = [DATA / "spot_btcusdt_20240808.gz", DATA / "spot_ethusdt_20240808.gz"]
STREAMS = "btcusdt@trade/ethusdt@trade/btcusdt@bookTicker/ethusdt@bookTicker"
TARGET = 40_000


async def _client(url: str, n: int) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, compression=None, max_queue=None, max_size=None) as ws:
        first = await ws.recv()
        t0 = time.perf_counter()
        got = 1
        ok = True
        while got < n:
            await ws.recv()
            got += 1
        dt = time.perf_counter() - t0
        ok = bool(first)
    print(json.dumps({"frames": got, "seconds": dt, "ok": ok}))


def _run_client(url: str, n: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--client", url, "--frames", str(n)],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _frames(n: int) -> list[str]:
    from lq.feeds.recording import read_frames

    frames = []
    for path in FILES:
        for _, raw in read_frames(path):
            if b'"stream"' in raw[:12] and b"@depth" not in raw[:40]:
                frames.append(raw.decode())
    return list(itertools.islice(itertools.cycle(frames), n))


async def _baseline(n: int) -> dict:
    from websockets.asyncio.server import serve

    frames = _frames(n)

    async def handler(ws) -> None:
        for f in frames:
            await ws.send(f)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        return await asyncio.to_thread(_run_client, f"ws://127.0.0.1:{port}/", n)


async def _exchange(n: int) -> dict:
    from lq.exchange import LocalExchange, ReplaySource

    src = ReplaySource(FILES, speed=None, loop=True)
    async with LocalExchange(source=src) as ex:
        return await asyncio.to_thread(_run_client, f"{ex.ws_url}/stream?streams={STREAMS}", n)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=300_000)
    p.add_argument("--client", metavar="URL")
    args = p.parse_args()
    if args.client:
        asyncio.run(_client(args.client, args.frames))
        return 0
    if not FILES[0].exists():
        print(f"recordings not found in {DATA.resolve()}; nothing to benchmark")
        return 1
    sys.path.insert(0, str(REPO))
    base = asyncio.run(_baseline(args.frames))
    ex = asyncio.run(_exchange(args.frames))
    b_rate = base["frames"] / base["seconds"]
    e_rate = ex["frames"] / ex["seconds"]
    print(f"frames per run                 : {args.frames:,}")
    print(f"baseline bare websockets push  : {b_rate:>10,.0f} frames/s")
    print(
        f"lq exchange (replay, full speed): {e_rate:>10,.0f} frames/s   target >= {TARGET:,}"
        f"   {'OK' if e_rate >= TARGET else 'BELOW TARGET'}"
    )
    print(f"ratio exchange / baseline      : {e_rate / b_rate:>10.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
