"""A store whose bars lie partly in the Parquet archive and partly in the SQLite tail."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from lq.feeds.events import Trade
from lq.store import Batch, Writer
from lq.store.archive import archive_db

DAY = 86_400_000_000


def archived_store(path: Path, *, seed: int = 7) -> tuple[Path, int]:
    """BTCUSDT trades every 10 s from 22:00 two days ago to 02:00 yesterday (UTC); the
    closed day before midnight is archived, the rest stays in SQLite. Returns ``(db,
    midnight µs)``."""
    rng = np.random.default_rng(seed)
    midnight = time.time_ns() // 1000 // DAY * DAY - DAY
    start = midnight - 2 * 3_600_000_000
    n = 4 * 360
    px = np.round(60_000 * np.exp(np.cumsum(rng.normal(0, 0.0015, n))), 2)
    trades = [
        Trade(
            symbol="BTCUSDT",
            trade_id=1000 + k,
            price=float(px[k]),
            qty=0.01 + float(np.round(rng.random(), 3)),
            ts=start + k * 10_000_000,
            event_ts=start + k * 10_000_000 + 5,
            is_buyer_maker=bool(k % 2),
            recv_ts=start + k * 10_000_000 + 9,
        )
        for k in range(n)
    ]
    with Writer(path, source="import") as w:
        w.write_batch(Batch(trades=trades))
    res = archive_db(path, None, now_us=midnight)  # <db>.archive: the day before midnight
    assert res.total_rows > 0, res.summary()
    return path, midnight
