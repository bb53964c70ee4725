"""Alert benchmarks (issue 6).

1. Frame received -> alert event stored, p99, at 5k frames/s with 20 rules: an
   ``lq exchange`` process simulating BTCUSDT+ETHUSDT at 2,500 trades/s each, the collector
   in this process with the alert engine attached (rules that fire many times a second, so
   there are thousands of samples). Baseline: the collector's own frame received -> batch
   committed p99 in the same run.
2. Extra collector CPU of 100 rules against none at 5k frames/s: process CPU time (all
   threads: loop, parser, writer) per wall second while collecting, with the exchange in
   another process so that it is not counted.

``LQ_BENCH_QUICK=1`` shortens the runs (8 s instead of 20 s).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._util import report  # noqa: E402
from lq.alerts.engine import AlertEngine  # noqa: E402
from lq.alerts.rules import Rule  # noqa: E402
from lq.alerts.store import AlertStore  # noqa: E402

QUICK = os.environ.get("LQ_BENCH_QUICK") == "1"
SECONDS = 8.0 if QUICK else 20.0
RATE = 2_500.0  # trades/s per symbol: 5k frames/s for two symbols


def start_exchange() -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lq.cli", "exchange", "--symbols", "BTCUSDT,ETHUSDT",
         "--rate", str(RATE), "--seed", "3", "--speed", "1", "--port", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = re.search(r"(ws://127\.0\.0\.1:\d+)", proc.stderr.readline())
        if m:
            return proc, m.group(1), m.group(1).replace("ws://", "http://")
    proc.kill()
    raise RuntimeError("exchange did not start")


def rules_20() -> list[Rule]:
    """A mix with firing-heavy rules (tick z-score bands) so p99 has thousands of samples."""
    out = []
    for i, sym in enumerate(("BTCUSDT", "ETHUSDT")):
        out += [
            Rule(name=f"tickz-{sym}", metric="zscore", symbol=sym, condition="outside",
                 band=(-1.5, 1.5), window=8, sample=0.0),
            Rule(name=f"tickz2-{sym}", metric="zscore", symbol=sym, condition="outside",
                 band=(-1.8, 1.8), window=20, sample=0.0),
            Rule(name=f"px-{sym}", metric="price", symbol=sym, condition="above",
                 threshold=1e9, sample=0.0),
            Rule(name=f"z1s-{sym}", metric="zscore", symbol=sym, condition="outside",
                 band=(-1.0, 1.0), window=10),
            Rule(name=f"rsi-{sym}", metric="rsi", symbol=sym, condition="crosses_above",
                 threshold=60.0, rearm=50.0, window=14),
            Rule(name=f"ret-{sym}", metric="return", symbol=sym, condition="outside",
                 band=(-1e-4, 1e-4), lookback=5),
            Rule(name=f"vol-{sym}", metric="volatility", symbol=sym, condition="above",
                 threshold=0.1 + i, window=30),
        ]  # fmt: skip
    out += [
        Rule(name=f"spread-{m}", metric="spread_zscore", symbol="ETHUSDT/BTCUSDT",
             condition="outside", band=(-1.0, 1.0), window=30, hedge_method=m)
        for m in ("ols", "kalman")
    ] + [
        Rule(name="corr", metric="correlation", symbol="ETHUSDT/BTCUSDT", condition="below",
             threshold=0.5, window=30),
        Rule(name="drift", metric="hedge_drift", symbol="ETHUSDT/BTCUSDT", condition="outside",
             band=(-0.05, 0.05), window=30, lookback=10),
        Rule(name="stale", metric="staleness", symbol="BTCUSDT", threshold=5.0),
        Rule(name="gap", metric="unfilled_gap", symbol="ETHUSDT", threshold=0.0),
    ]  # fmt: skip
    assert len(out) == 20
    return out


def rules_100() -> list[Rule]:
    """100 distinct rules over two symbols and their pair (distinct windows/thresholds)."""
    out: list[Rule] = []
    for k in range(10):
        for sym in ("BTCUSDT", "ETHUSDT"):
            out += [
                Rule(name=f"px{k}-{sym}", metric="price", symbol=sym, condition="crosses_above",
                     threshold=1e9 + k, sample=0.0),
                Rule(name=f"z{k}-{sym}", metric="zscore", symbol=sym, condition="outside",
                     band=(-3.0, 3.0), window=20 + 10 * k),
                Rule(name=f"rsi{k}-{sym}", metric="rsi", symbol=sym, condition="crosses_below",
                     threshold=20.0, window=10 + k),
                Rule(name=f"vol{k}-{sym}", metric="volatility", symbol=sym, condition="above",
                     threshold=5.0, window=30 + k),
            ]  # fmt: skip
        out += [
            Rule(name=f"sz{k}", metric="spread_zscore", symbol="ETHUSDT/BTCUSDT",
                 condition="crosses_above", threshold=2.5, window=30 + 10 * k,
                 hedge_method="kalman" if k % 2 else "ols"),
            Rule(name=f"corr{k}", metric="correlation", symbol="ETHUSDT/BTCUSDT",
                 condition="below", threshold=-0.9, window=30 + k),
        ]  # fmt: skip
    assert len(out) == 100
    return out


async def _collect(db: Path, ws: str, rest: str, rules: list[Rule], seconds: float) -> dict:
    from lq.collector import Collector

    with AlertStore(db, known_symbols=["BTCUSDT", "ETHUSDT"]) as s:
        for r in rules:
            s.add(r)
    col = Collector(db=db, source="live", symbols=["BTCUSDT", "ETHUSDT"], ws_url=ws,
                    rest_url=rest, exchange_label="bench",
                    client_options={"compression": None})  # fmt: skip
    eng = AlertEngine.attach(col, channels={}, warmup=False) if rules else None
    if eng is not None:
        eng.start()
        await eng.wait_ready()
    col.start()
    await col.wait_started(30)
    await asyncio.sleep(3.0)  # windows fill, connection settles
    col.stats.commit_latency_us.clear()
    if eng is not None:
        eng.stats.latency_us.clear()
    m0 = col.client.status.messages
    c0, t0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu = (time.process_time() - c0) / (time.monotonic() - t0)
    rate = (col.client.status.messages - m0) / (time.monotonic() - t0)
    out = {
        "rate": rate,
        "cpu": cpu,
        "commit_p99": col.stats.latency_ms(99),
        "alert_p50": eng.stats.latency_ms(50) if eng else None,
        "alert_p99": eng.stats.latency_ms(99) if eng else None,
        "alerts": len(eng.stats.latency_us) if eng else 0,
    }
    if eng is not None:
        await eng.stop()
    await col.stop()
    return out


def bench_latency(tmp: Path) -> None:
    proc, ws, rest = start_exchange()
    try:
        r = asyncio.run(_collect(tmp / "lat.sqlite", ws, rest, rules_20(), SECONDS))
    finally:
        proc.terminate()
        proc.wait(10)
    p99, base = r["alert_p99"], r["commit_p99"]
    report(
        f"frame received -> alert stored p99 ({r['alerts']:,} alerts, 20 rules)",
        f"{p99:,.1f} ms" if p99 is not None else "n/a",
        baseline=f"{base:,.1f} ms (frame -> batch committed p99)" if base else "",
        ratio=(p99 / base) if p99 and base else None,
        target=f"<= 50 ms at 5k frames/s (measured {r['rate']:,.0f}/s)",
        ok=p99 is not None and p99 <= 50 and r["rate"] >= 4_500,
    )
    report("  alert stored p50", f"{r['alert_p50']:,.1f} ms" if r["alert_p50"] else "n/a")


def bench_cpu(tmp: Path) -> None:
    """Alternating runs (none, 100, none, 100...), least-disturbed (minimum) CPU of each:
    the machine is shared, and other load only ever adds CPU time."""
    rounds = 1 if QUICK else 3
    proc, ws, rest = start_exchange()
    none: list[dict] = []
    many: list[dict] = []
    try:
        for k in range(rounds):
            none.append(asyncio.run(_collect(tmp / f"cpu0-{k}.sqlite", ws, rest, [], SECONDS)))
            many.append(
                asyncio.run(_collect(tmp / f"cpu100-{k}.sqlite", ws, rest, rules_100(), SECONDS))
            )
    finally:
        proc.terminate()
        proc.wait(10)
    c0 = min(r["cpu"] for r in none)
    c1 = min(r["cpu"] for r in many)
    extra = c1 / c0 - 1.0
    report(
        f"collector CPU, 100 rules (min of {rounds} runs)",
        f"{c1 * 100:,.1f}% of a core",
        baseline=f"{c0 * 100:,.1f}% with no rules",
        ratio=c1 / c0,
        target="<= 1.2x (<= 20% extra) at 5k frames/s",
        ok=extra <= 0.20,
    )
    rates = [r["rate"] for r in none + many]
    report(
        "  frames/s during the runs (min / max)",
        f"{min(rates):,.0f} / {max(rates):,.0f}",
        target=">= 4,500/s each",
        ok=min(rates) >= 4_500,
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        bench_latency(Path(d))
        bench_cpu(Path(d))


if __name__ == "__main__":
    main()
