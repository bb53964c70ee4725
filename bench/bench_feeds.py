"""Benchmark: parse the real recording's @trade frames, lq Parser vs json.loads + dict access.

Run: ``.venv/bin/python bench/bench_feeds.py``. Both are measured in the same run on the same
frames; the figure printed is frames/s and the ratio against the baseline, with the target.
Target: the parser must not be the pipeline's bottleneck. Issue 3 asks >= 200k frames/s for
the whole pipeline (parse + store + bars), so the parser alone should do >= 500k frames/s
(at most 40% of that budget) and beat the baseline by >= 2x.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lq.feeds.events import Trade  # noqa: E402
from lq.feeds.parser import Parser  # noqa: E402
from lq.feeds.recording import read_frames  # noqa: E402

DATA = REPO / ".." / "shared" / "data" / "binance" / "spot_btcusdt_20240808.gz"
TARGET_FPS = 500_000
TARGET_RATIO = 2.0


def baseline(frames: list[tuple[int, bytes]]) -> list[Trade]:
    out = []
    for recv_ns, raw in frames:
        d = json.loads(raw)["data"]
        out.append(
            Trade(
                symbol=d["s"],
                trade_id=d["t"],
                price=float(d["p"]),
                qty=float(d["q"]),
                ts=d["T"] * 1000,
                event_ts=d["E"] * 1000,
                is_buyer_maker=d["m"],
                recv_ts=recv_ns // 1000,
            )
        )
    return out


def lq_parse(frames: list[tuple[int, bytes]]) -> list[Trade]:
    p = Parser()
    out: list = []
    for recv_ns, raw in frames:
        out.extend(p.parse(raw, recv_ns // 1000))
    return out


def best_of(fn, frames, repeat: int = 7) -> tuple[float, list[Trade]]:
    best = float("inf")
    res: list[Trade] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = fn(frames)
        best = min(best, time.perf_counter() - t0)
    return best, res


def main() -> None:
    if not DATA.exists():
        raise SystemExit(f"recording not found: {DATA}")
    frames = [(ns, raw) for ns, raw in read_frames(DATA) if b'@trade"' in raw[:40]]
    t_base, want = best_of(baseline, frames)
    t_lq, got = best_of(lq_parse, frames)
    assert got == want, "lq and the baseline disagree"
    n = len(frames)
    base_fps, lq_fps = n / t_base, n / t_lq
    print(f"trade frames: {n} (real BTCUSDT recording, best of 7)")
    print(f"baseline json.loads + dict access: {base_fps:12,.0f} frames/s  (ratio 1.00)")
    print(
        f"lq Parser.parse                  : {lq_fps:12,.0f} frames/s  "
        f"(ratio {lq_fps / base_fps:.2f}; target >= {TARGET_FPS:,} frames/s and "
        f">= {TARGET_RATIO:.1f}x) {'OK' if lq_fps >= TARGET_FPS and lq_fps / base_fps >= TARGET_RATIO else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
