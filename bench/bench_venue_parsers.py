"""Benchmark: each venue's Parser.parse vs ``json.loads`` + dict access on that venue's real frames.

Run: ``.venv/bin/python bench/bench_venue_parsers.py`` (or ``python -m bench venue_parsers``).
Frames: the real trade frames of ``shared/data/<venue>/`` (Coinbase: the 3 Advanced Trade
``market_trades`` frames and the 107 Exchange ``match`` frames; Kraken: the WS v2 trade frames
of the docs and the 1,000 real REST trades re-framed as WS v2 updates by the imitation; OKX:
the 74 real ``trades`` frames), repeated to ~100k frames. The baseline builds the same
:class:`~lq.feeds.events.Trade` objects from ``json.loads`` with plain dict access and
``float()``, using lq's own exact time conversion (so both sides pay it) and no range checks;
both are measured in the same run and must agree. Target: >= 2x the baseline (issue 12).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._util import best_of, report  # noqa: E402
from lq.feeds.events import Trade  # noqa: E402
from lq.feeds.recording import read_frames  # noqa: E402

DATA = REPO / ".." / "shared" / "data"
TARGET_RATIO = 2.0
N_FRAMES = 100_000

Frames = list[tuple[int, bytes]]


def _repeat(frames: Frames) -> Frames:
    if not frames:
        return frames
    k = max(1, N_FRAMES // len(frames))
    return frames * k


# -- Coinbase ---------------------------------------------------------------------------------


def coinbase_case() -> tuple[Frames, Callable[[], object], Callable[[Frames], list[Trade]]] | None:
    from lq.venues.coinbase.parser import Parser, iso_to_us

    d = DATA / "coinbase"
    adv, exch = d / "advanced_ws_market_trades_20251231.txt", d / "exchange_ws_matches_20210417.txt"
    if not (adv.exists() and exch.exists()):
        return None
    frames = list(read_frames(adv))
    frames += [(ns, raw) for ns, raw in read_frames(exch) if b'"match"' in raw[:40]]
    frames += [(ns, raw) for ns, raw in read_frames(exch) if b'"last_match"' in raw[:40]]
    symbols = {"BTC-USD"} | {json.loads(raw)["product_id"] for _, raw in frames[3:]}

    def make() -> Parser:
        return Parser(sorted(symbols))

    def baseline(fr: Frames) -> list[Trade]:
        out: list[Trade] = []
        for recv_ns, raw in fr:
            m = json.loads(raw)
            recv = recv_ns // 1000
            if "channel" in m:
                ev_ts = iso_to_us(m["timestamp"])
                batch = []
                for ev in m["events"]:
                    for t in ev["trades"]:
                        batch.append(
                            Trade(
                                symbol=t["product_id"],
                                trade_id=int(t["trade_id"]),
                                price=float(t["price"]),
                                qty=float(t["size"]),
                                ts=iso_to_us(t["time"]),
                                event_ts=ev_ts,
                                is_buyer_maker=t["side"] == "SELL",
                                recv_ts=recv,
                                exchange="coinbase",
                            )
                        )
                batch.sort(key=lambda t: t.trade_id)
                out.extend(batch)
            else:
                ts = iso_to_us(m["time"])
                out.append(
                    Trade(
                        symbol=m["product_id"],
                        trade_id=m["trade_id"],
                        price=float(m["price"]),
                        qty=float(m["size"]),
                        ts=ts,
                        event_ts=ts,
                        is_buyer_maker=m["side"] == "buy",
                        recv_ts=recv,
                        exchange="coinbase",
                    )
                )
        return out

    return frames, make, baseline


# -- Kraken -----------------------------------------------------------------------------------


def kraken_case() -> tuple[Frames, Callable[[], object], Callable[[Frames], list[Trade]]] | None:
    from lq.venues.coinbase.parser import iso_to_us
    from lq.venues.kraken import imitation
    from lq.venues.kraken.parser import Parser
    from lq.venues.kraken.rest import decode_history

    d = DATA / "kraken"
    rest, docs = d / "rest_trades_xbtusdt_20251110.txt", d / "ws_v2_DOCS_EXAMPLES.txt"
    if not (rest.exists() and docs.exists()):
        return None
    frames = [(ns, raw) for ns, raw in read_frames(docs) if raw.startswith(b'{"channel":"trade"')]
    [(_, body)] = list(read_frames(rest))
    state = {"subs": {"BTC/USDT"}}
    for t in decode_history(body, "BTC/USDT").trades:  # one real trade per v2 update frame
        [f] = imitation.trade_frames([t], state)
        frames.append((t.ts * 1000, f.encode()))

    def make() -> Parser:
        return Parser(["BTC/USDT", "MATIC/USD"])

    def baseline(fr: Frames) -> list[Trade]:
        out: list[Trade] = []
        for recv_ns, raw in fr:
            m = json.loads(raw)
            recv = recv_ns // 1000
            batch = []
            for t in m["data"]:
                ts = iso_to_us(t["timestamp"])
                batch.append(
                    Trade(
                        symbol=t["symbol"],
                        trade_id=t["trade_id"],
                        price=t["price"],
                        qty=t["qty"],
                        ts=ts,
                        event_ts=ts,
                        is_buyer_maker=t["side"] == "sell",
                        recv_ts=recv,
                        exchange="kraken",
                    )
                )
            batch.sort(key=lambda t: t.trade_id)
            out.extend(batch)
        return out

    return frames, make, baseline


# -- OKX --------------------------------------------------------------------------------------


def okx_case() -> tuple[Frames, Callable[[], object], Callable[[Frames], list[Trade]]] | None:
    from lq.venues.okx.parser import Parser

    src = DATA / "okx" / "ws_trades_20220513.txt"
    if not src.exists():
        return None
    frames = [(ns, raw) for ns, raw in read_frames(src) if b'"data"' in raw]

    def make() -> Parser:
        return Parser(["BTC-USDT", "BTC-USD-220527", "UNI-USD-SWAP"])

    def baseline(fr: Frames) -> list[Trade]:
        out: list[Trade] = []
        for recv_ns, raw in fr:
            m = json.loads(raw)
            recv = recv_ns // 1000
            batch = []
            for t in m["data"]:
                ts = int(t["ts"]) * 1000
                batch.append(
                    Trade(
                        symbol=t["instId"],
                        trade_id=int(t["tradeId"]),
                        price=float(t["px"]),
                        qty=float(t["sz"]),
                        ts=ts,
                        event_ts=ts,
                        is_buyer_maker=t["side"] == "sell",
                        recv_ts=recv,
                        exchange="okx",
                    )
                )
            batch.sort(key=lambda t: t.trade_id)
            out.extend(batch)
        return out

    return frames, make, baseline


CASES: dict[str, Callable[[], object]] = {
    "coinbase": coinbase_case,
    "kraken": kraken_case,
    "okx": okx_case,
}


def run(name: str, case: Callable[[], object]) -> bool:
    got = case()
    if got is None:
        print(f"{name}: recordings not found under {DATA / name}; skipped")
        return True
    frames, make, baseline = got  # type: ignore[misc]
    frames = _repeat(frames)

    def lq() -> list[Trade]:
        p = make()
        out: list = []
        for recv_ns, raw in frames:
            out.extend(p.parse(raw, recv_ns // 1000))
        return out

    assert lq() == baseline(frames), f"{name}: lq and the baseline disagree"
    t_base = best_of(lambda: baseline(frames), repeat=5)
    t_lq = best_of(lq, repeat=5)
    n = len(frames)
    ratio = t_base / t_lq
    ok = ratio >= TARGET_RATIO
    report(
        f"{name}: Parser.parse, {n:,} real frames",
        f"{n / t_lq:,.0f} fr/s",
        baseline=f"json.loads+dict {n / t_base:,.0f} fr/s",
        ratio=ratio,
        target=f">= {TARGET_RATIO:.0f}x",
        ok=ok,
    )
    return ok


def main() -> int:
    ok = True
    for name, case in CASES.items():
        ok = run(name, case) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
