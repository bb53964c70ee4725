"""Small helpers shared by the benchmark scripts."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def best_of(fn: Callable[[], object], *, repeat: int = 5, warmup: int = 1) -> float:
    """Best wall time of ``fn`` in seconds (the least disturbed run on a shared machine)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def median_of(fn: Callable[[], object], *, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def report(
    name: str,
    value: str,
    *,
    baseline: str = "",
    ratio: float | None = None,
    target: str = "",
    ok: bool | None = None,
) -> None:
    parts = [f"{name:<58} {value:>16}"]
    if baseline:
        parts.append(f"baseline {baseline}")
    if ratio is not None:
        parts.append(f"ratio {ratio:,.1f}x")
    if target:
        parts.append(f"target {target}")
    if ok is not None:
        parts.append("OK" if ok else "MISSED")
    print("  ".join(parts), flush=True)
