"""A seeded multi-venue market for the Venues tab's tests, written through lq's Writer.

One BTC price path (log random walk on a 10 ms grid) traded on four exchange labels:

=========  ===========  =====  ===============  =========================================
label      symbol       quote  lag behind path  notes
=========  ===========  =====  ===============  =========================================
coinbase   BTC-USD      USD    0 ms (leads)     holes: ids 1000-1009 filled, 2000-2004 not
binance    BTCUSDT      USDT   150 ms           USDT prices 4 bps above USD (the basis)
okx        BTC-USDT     USDT   300 ms           3 dead letters
bybit      BTCUSDT      USDT   150 ms           few trades; declared "no exact ids"
=========  ===========  =====  ===============  =========================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lq.feeds.events import Gap, Rejected, Trade
from lq.store import Batch, Writer

S = 1_000_000
T0 = 1_723_161_600 * S
BASIS_USDT = 1.0004  # BTC in USDT = BTC in USD * this (USDT a little below the dollar)


@dataclass(frozen=True)
class VenueSpec:
    exchange: str
    symbol: str
    rate: float  # trades per second
    lag_ms: int
    basis: float


VENUES = (
    VenueSpec("coinbase", "BTC-USD", 8.0, 0, 1.0),
    VenueSpec("binance", "BTCUSDT", 20.0, 150, BASIS_USDT),
    VenueSpec("okx", "BTC-USDT", 5.0, 300, BASIS_USDT),
    VenueSpec("bybit", "BTCUSDT", 0.15, 150, BASIS_USDT),
)
FILLED = (1000, 1009)
UNFILLED = (2000, 2004)


def make_trades(seconds: float = 600.0, *, seed: int = 5, t0: int = T0) -> dict[str, list[Trade]]:
    """Exchange label -> its trades (ids 1.. contiguous), by time."""
    rng = np.random.default_rng(seed)
    steps = int(seconds * 100) + 100
    path = np.log(60_000.0) + np.cumsum(rng.normal(0, 8e-5, steps))  # 10 ms grid
    out: dict[str, list[Trade]] = {}
    for v in VENUES:
        n = rng.poisson(v.rate * seconds)
        ts = np.sort(t0 + rng.integers(0, int(seconds * S), n))
        idx = np.clip((ts - t0) // 10_000 - v.lag_ms // 10, 0, steps - 1)
        px = np.round(np.exp(path[idx]) * v.basis, 2)
        qty = np.round(rng.uniform(0.001, 0.5, n), 6)
        out[v.exchange] = [
            Trade(
                symbol=v.symbol,
                trade_id=i + 1,
                price=float(p),
                qty=float(q),
                ts=int(t),
                event_ts=int(t),
                is_buyer_maker=bool(i % 2),
                recv_ts=int(t) + 5_000,
                exchange=v.exchange,
            )
            for i, (t, p, q) in enumerate(zip(ts.tolist(), px.tolist(), qty.tolist(), strict=True))
        ]
    return out


def write_market(db: Path, trades: dict[str, list[Trade]], *, backfill: bool = True) -> None:
    """Write ``trades`` as a collector would: coinbase's holes recorded in the gap ledger
    (1000-1009 then filled by 'REST', 2000-2004 unfillable), 3 dead letters from okx."""

    def hole(t: Trade) -> bool:
        return t.exchange == "coinbase" and (
            FILLED[0] <= t.trade_id <= FILLED[1] or UNFILLED[0] <= t.trade_id <= UNFILLED[1]
        )

    now = T0
    with Writer(db) as w:
        live = [t for ts in trades.values() for t in ts if not hole(t)]
        gaps = [
            Gap(
                symbol="BTC-USD",
                kind="trade",
                first_missing=a,
                last_missing=b,
                status="found",
                detected_ts=now,
                exchange="coinbase",
            )
            for a, b in (FILLED, UNFILLED)
        ]
        dead = [
            Rejected(
                raw=f'{{"bad": {i}}}',
                reason="okx: price is not a number",
                recv_ts=now,
                exchange="okx",
            )
            for i in range(3)
        ]
        w.write_batch(Batch(trades=live, gaps=gaps, rejected=dead))
        if backfill:
            filled = [t for t in trades["coinbase"] if FILLED[0] <= t.trade_id <= FILLED[1]]
            w.write_batch(
                Batch(
                    trades=filled,
                    gaps=[
                        Gap(
                            symbol="BTC-USD",
                            kind="trade",
                            first_missing=FILLED[0],
                            last_missing=FILLED[1],
                            status="filled",
                            detected_ts=now,
                            exchange="coinbase",
                        ),
                        Gap(
                            symbol="BTC-USD",
                            kind="trade",
                            first_missing=UNFILLED[0],
                            last_missing=UNFILLED[1],
                            status="unfilled",
                            detected_ts=now,
                            reason="REST returned nothing for these ids",
                            exchange="coinbase",
                        ),
                    ],
                )
            )


def run_live(db: Path, seconds: float, *, history: float = 300.0) -> None:
    """Write the market as it happens: ``history`` seconds at once (ending now), then every
    0.25 s the trades whose time has come, for ``seconds`` (the Venues tab's live test)."""
    import time

    t_start = time.time_ns() // 1000 - int(history * S)
    trades = make_trades(history + seconds, t0=t_start)
    write_market(
        db, {k: [t for t in v if t.ts < t_start + int(history * S)] for k, v in trades.items()}
    )
    flat = sorted((t for v in trades.values() for t in v if t.ts >= t_start + int(history * S)),
                  key=lambda t: t.ts)  # fmt: skip
    i = 0
    published = 0.0
    with Writer(db) as w:
        while i < len(flat):
            if time.monotonic() - published >= 2.0:
                # as each venue's collector does, every few seconds: bybit's feed declares
                # its trade ids not exact
                published = time.monotonic()
                for v in VENUES:
                    w.set_feed_status(exchange=v.exchange, source="live", state="live",
                                      detail={"ids": "none" if v.exchange == "bybit" else "contiguous"})  # fmt: skip
            now = time.time_ns() // 1000
            j = i
            while j < len(flat) and flat[j].ts <= now:
                j += 1
            if j > i:
                w.write_trades(flat[i:j])
                i = j
            time.sleep(0.25)


if __name__ == "__main__":
    import sys

    run_live(Path(sys.argv[1]), float(sys.argv[2]))
