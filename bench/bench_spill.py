"""Storage-failure benchmarks (issue 10: exactly once, under every fault).

A collector in this process writes to a database on a small tmpfs, fed by an ``lq exchange``
process simulating two symbols (trades and book tickers) at a realistic rate
(``LQ_BENCH_SPILL_RATE`` trades/s per symbol, default 100: a busy BTCUSDT minute). The disk is
filled for ``LQ_BENCH_OUTAGE_SECONDS`` (default 30) while the collector goes on receiving into
memory and the spill directory (on the ordinary disk), then the ballast is removed.

1. Bytes spilled per second of outage, against the bytes of the frames received in the same
   time (what a raw frame recording would have written).
2. Time from "disk has space again" to "spill re-imported" (status storing, spill directory
   empty), against the outage's length: how many times faster than real time it catches up.
3. Zero loss: after recovery the stored trade ids are contiguous from the first one, and
   nothing was dropped.

Needs root (``mount -t tmpfs``); prints "skipped" with the reason otherwise.
"""

from __future__ import annotations

import asyncio
import errno
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

RATE = float(os.environ.get("LQ_BENCH_SPILL_RATE", 100))
OUTAGE = float(os.environ.get("LQ_BENCH_OUTAGE_SECONDS", 30))
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def start_exchange() -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lq.cli",
            "exchange",
            "--symbols",
            ",".join(SYMBOLS),
            "--rate",
            str(RATE),
            "--seed",
            "8",
            "--port",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(r"(ws://127\.0\.0\.1:\d+)", proc.stderr.readline())
        if m:
            return proc, m.group(1), m.group(1).replace("ws://", "http://")
    proc.kill()
    raise RuntimeError("exchange did not start")


def fill(d: Path) -> Path:
    ballast = d / "ballast"
    with open(ballast, "wb", buffering=0) as f:
        for size in (1 << 20, 65536, 4096, 1):
            while True:
                try:
                    f.write(b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    return ballast


async def run(small: Path, spill: Path, ws: str, rest: str) -> dict[str, float]:
    from lq.collector import Collector

    db = small / "lq.sqlite"
    col = Collector(
        db=db,
        source="live",
        symbols=SYMBOLS,
        channels=("trade", "bookTicker"),
        ws_url=ws,
        rest_url=rest,
        exchange_label="bench",
        spill_dir=spill,
        max_buffer=2_000,  # small: most of the outage goes through the spill
        client_options={"compression": None},
    )
    col.start()
    await col.wait_started(60)
    await asyncio.sleep(3)
    ballast = await asyncio.to_thread(fill, small)
    t_fail = time.monotonic()
    while not col._failure and time.monotonic() - t_fail < 60:
        await asyncio.sleep(0.05)
    m0 = col.client.status.messages
    t0 = time.monotonic()
    wire0 = wire_bytes(col)
    await asyncio.sleep(OUTAGE)
    outage = time.monotonic() - t0
    msgs = col.client.status.messages - m0
    wire = wire_bytes(col) - wire0
    spilled_bytes = col.stats.bytes_spilled
    spilled = col.stats.events_spilled
    ballast.unlink()
    t_free = time.monotonic()
    while (col._failure or col._spill_pending or col._backlog) and time.monotonic() - t_free < 300:
        await asyncio.sleep(0.02)
    recovered = time.monotonic() - t_free
    await asyncio.sleep(2)
    await col.stop()
    conn = sqlite3.connect(db)
    holes = 0
    for s in SYMBOLS:
        n, lo, hi = conn.execute(
            "SELECT count(*), min(trade_id), max(trade_id) FROM ticks WHERE symbol = ?", (s,)
        ).fetchone()
        holes += (hi - lo + 1) - n
    conn.close()
    return {
        "outage": outage,
        "messages": msgs,
        "wire": wire,
        "spilled_bytes": spilled_bytes,
        "spilled": spilled,
        "recovered": recovered,
        "holes": holes,
        "lost": col.stats.events_lost,
        "reimported": col.stats.events_reimported,
    }


def wire_bytes(col: object) -> int:
    """Bytes of frames received so far (the client's recorder is off: estimate from a
    typical frame size measured on the simulator's frames)."""
    st = col.client.status  # type: ignore[attr-defined]
    return int(st.messages * _FRAME_BYTES)


_FRAME_BYTES = 0.0


def frame_size(ws: str) -> float:
    import websockets

    async def go() -> float:
        url = f"{ws}/stream?streams=" + "/".join(
            f"{s.lower()}@{c}" for s in SYMBOLS for c in ("trade", "bookTicker")
        )
        total = n = 0
        async with websockets.connect(url, compression=None, max_size=None) as conn:
            while n < 2_000:
                total += len(await conn.recv(decode=False))
                n += 1
        return total / n

    return asyncio.run(go())


def main() -> None:
    global _FRAME_BYTES
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        print("skipped: needs root to mount a small tmpfs (mount -t tmpfs)")
        return
    with tempfile.TemporaryDirectory() as d:
        small, spill = Path(d) / "small", Path(d) / "spill"
        small.mkdir()
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(small)],
            capture_output=True,
            text=True,
        )
        if r.returncode:
            print(f"skipped: mount -t tmpfs not allowed here: {r.stderr.strip()}")
            return
        ex, ws, rest = start_exchange()
        try:
            _FRAME_BYTES = frame_size(ws)
            res = asyncio.run(run(small, spill, ws, rest))
        finally:
            ex.terminate()
            ex.wait(10)
            subprocess.run(["umount", "-l", str(small)], check=False)
    per_s = res["spilled_bytes"] / res["outage"]
    wire_s = res["wire"] / res["outage"]
    rate = res["messages"] / res["outage"]
    report(
        f"bytes spilled per second of outage ({rate:,.0f} frames/s received)",
        f"{per_s / 1024:,.1f} KiB/s",
        baseline=f"{wire_s / 1024:,.1f} KiB/s of frames on the wire",
        ratio=per_s / wire_s if wire_s else None,
        target="<= the wire bytes",
        ok=per_s <= wire_s,
    )
    report(
        f"disk has space again -> spill re-imported ({res['reimported']:,.0f} events)",
        f"{res['recovered']:.2f} s",
        baseline=f"{res['outage']:.0f} s of outage",
        ratio=res["outage"] / res["recovered"] if res["recovered"] else None,
        target="<= 10% of the outage (>= 10x real time)",
        ok=res["recovered"] <= 0.1 * res["outage"],
    )
    report(
        "  trades lost / events dropped after recovery",
        f"{res['holes']:.0f} / {res['lost']:.0f}",
        target="0 / 0",
        ok=res["holes"] == 0 and res["lost"] == 0,
    )


if __name__ == "__main__":
    main()
