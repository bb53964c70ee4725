"""Benchmark: order-book level changes applied per second (issue 15).

Run: ``.venv/bin/python bench/bench_book.py`` (or ``python -m bench book``).

Workload: the real recordings of ``shared/data/binance/`` (BTCUSDT and ETHUSDT spot, their
REST snapshot and every ``@depth@100ms`` diff after it, parsed once by
:class:`lq.feeds.depth.DepthParser`, outside the timing). Each round loads the snapshot and
applies all the diffs in order; a level change is one ``(price, qty)`` of a diff.

* ``L2Book.apply``: the book alone (the target, >= 500k level changes/s).
* ``BookSync.on_update``: the same diffs through the sync state machine (sequence check,
  apply, crossed/locked check), what a live feed pays.
* Each is timed on the wall clock and, again, in CPU seconds of this process
  (``time.process_time``), which other processes on a shared machine do not inflate; both
  are printed with the target.
* The baseline, measured in the same run: a naive book, a dict per side updated the same
  way and sorted in full after every diff to find the best bid and ask.

Both books must agree on the best bid/ask after every diff (checked before timing). Also
printed, without target: the depth parser's frames/s and the streaming features' updates/s.
"""

from __future__ import annotations

import gzip
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._util import best_of, report  # noqa: E402
from lq.analytics.orderbook import BookFeatures  # noqa: E402
from lq.feeds.book import L2Book  # noqa: E402
from lq.feeds.booksync import BookSync  # noqa: E402
from lq.feeds.depth import DepthParser  # noqa: E402
from lq.feeds.events import DepthSnapshot, DepthUpdate  # noqa: E402

DATA = REPO / ".." / "shared" / "data" / "binance"
FILES = ("spot_btcusdt_20240808.gz", "spot_ethusdt_20240808.gz")
TARGET = 500_000


def best_cpu(fn: Callable[[], object], *, repeat: int) -> float:
    """Least CPU time of ``fn`` in seconds (``time.process_time``), after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def load(name: str) -> tuple[list[str], DepthSnapshot, list[DepthUpdate]]:
    sym = name.split("_")[1].upper()
    p = DepthParser()
    snap: DepthSnapshot | None = None
    diffs: list[DepthUpdate] = []
    frames: list[str] = []
    with gzip.open(DATA / name, "rt") as f:
        for line in f:
            _, _, raw = line.partition(" ")
            out = p.parse(raw, 0, symbol=sym)
            if isinstance(out, DepthSnapshot):
                snap = out
            elif isinstance(out, DepthUpdate):
                frames.append(raw)
                diffs.append(out)
    assert snap is not None and p.rejected == 0
    return frames, snap, [d for d in diffs if d.last_id > snap.last_update_id]


def naive_round(snap: DepthSnapshot, diffs: list[DepthUpdate]) -> list[tuple[float, float]]:
    bids = dict(snap.bids)
    asks = dict(snap.asks)
    out = []
    for d in diffs:
        for p, q in d.bids:
            if q == 0.0:
                bids.pop(p, None)
            else:
                bids[p] = q
        for p, q in d.asks:
            if q == 0.0:
                asks.pop(p, None)
            else:
                asks[p] = q
        sb = sorted(bids, reverse=True)
        sa = sorted(asks)
        out.append((sb[0], sa[0]))
    return out


def book_round(snap: DepthSnapshot, diffs: list[DepthUpdate]) -> L2Book:
    book = L2Book()
    book.load(bids=snap.bids, asks=snap.asks, update_id=snap.last_update_id)
    apply = book.apply
    for d in diffs:
        apply(bids=d.bids, asks=d.asks, update_id=d.last_id)
    return book


def sync_round(snap: DepthSnapshot, diffs: list[DepthUpdate]) -> BookSync:
    s = BookSync(snap.symbol)
    s.on_snapshot(snap)
    on = s.on_update
    for d in diffs:
        on(d)
    assert s.synced and s.resync_total == 0
    return s


def main() -> int:
    if not DATA.is_dir():
        print(f"skipped: {DATA} is not here")
        return 0
    cases = [load(n) for n in FILES]
    changes = sum(len(d.bids) + len(d.asks) for _, _, diffs in cases for d in diffs)
    n_diffs = sum(len(diffs) for _, _, diffs in cases)
    levels = [len(s.bids) + len(s.asks) for _, s, _ in cases]
    print(
        f"workload: {n_diffs:,} real diffs, {changes:,} level changes, snapshots of "
        f"{levels[0]:,} / {levels[1]:,} levels (BTCUSDT / ETHUSDT)"
    )
    # the two books agree after every diff
    for _, snap, diffs in cases:
        book = L2Book()
        book.load(bids=snap.bids, asks=snap.asks, update_id=snap.last_update_id)
        for d, want in zip(diffs, naive_round(snap, diffs), strict=True):
            book.apply(bids=d.bids, asks=d.asks, update_id=d.last_id)
            assert (book.best_bid, book.best_ask) == want

    def run_book() -> None:
        for _, snap, diffs in cases:
            book_round(snap, diffs)

    def run_sync() -> None:
        for _, snap, diffs in cases:
            sync_round(snap, diffs)

    def run_naive() -> None:
        for _, snap, diffs in cases:
            naive_round(snap, diffs)

    t_naive = best_of(run_naive, repeat=3)
    t_book = best_of(run_book, repeat=7)
    t_sync = best_of(run_sync, repeat=7)
    c_naive = best_cpu(run_naive, repeat=3)
    c_book = best_cpu(run_book, repeat=7)
    c_sync = best_cpu(run_sync, repeat=7)
    # the snapshot load is part of each round; say what it costs
    t_load = best_of(lambda: [book_round(s, []) for _, s, _ in cases], repeat=7)
    naive_rate = changes / t_naive
    book_rate = changes / t_book
    sync_rate = changes / t_sync
    report(
        "L2Book.apply: level changes/s (snapshot load included)",
        f"{book_rate:,.0f}/s",
        baseline=f"{naive_rate:,.0f}/s dict+sort",
        ratio=book_rate / naive_rate,
        target=f">= {TARGET:,}/s",
        ok=book_rate >= TARGET,
    )
    report(
        "BookSync.on_update: level changes/s (sequence+cross checks)",
        f"{sync_rate:,.0f}/s",
        baseline=f"{naive_rate:,.0f}/s dict+sort",
        ratio=sync_rate / naive_rate,
        target=f">= {TARGET:,}/s",
        ok=sync_rate >= TARGET,
    )
    report("  of which snapshot loads (2 per round)", f"{t_load * 1e3:,.2f} ms/round")
    # the same rounds timed in CPU seconds of this process: what the code costs, whatever
    # the other processes on a shared machine do to the wall clock
    for name, c in (("L2Book.apply", c_book), ("BookSync.on_update", c_sync)):
        rate, base = changes / c, changes / c_naive
        report(
            f"{name}: level changes per CPU second",
            f"{rate:,.0f}/s",
            baseline=f"{base:,.0f}/s dict+sort",
            ratio=rate / base,
            target=f">= {TARGET:,}/s",
            ok=rate >= TARGET,
        )

    frames = [f for fr, _, _ in cases for f in fr]
    parser = DepthParser()

    def run_parse() -> None:
        for raw in frames:
            parser.parse(raw, 0)

    t_parse = best_of(run_parse, repeat=3)
    report("DepthParser.parse: real depth frames/s", f"{len(frames) / t_parse:,.0f}/s")

    _, snap, diffs = cases[0]

    def run_features() -> None:
        book = L2Book()
        book.load(bids=snap.bids, asks=snap.asks, update_id=snap.last_update_id)
        f = BookFeatures(levels=10, bps=10.0)
        for d in diffs:
            book.apply(bids=d.bids, asks=d.asks)
            f.update(book, d.bids, d.asks)

    t_feat = best_of(run_features, repeat=3) - best_of(lambda: book_round(snap, diffs), repeat=3)
    report(
        "BookFeatures.update (10 levels, 10 bps), BTCUSDT: updates/s",
        f"{len(diffs) / max(t_feat, 1e-9):,.0f}/s",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
