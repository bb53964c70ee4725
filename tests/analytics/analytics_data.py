"""Shared data for the analytics tests: seeded synthetic series and the real recordings."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "binance"


def cointegrated_pair(
    n: int = 5000, *, alpha: float = 0.3, beta: float = 1.7, phi: float = 0.9, seed: int = 7
) -> tuple[np.ndarray, np.ndarray]:
    """The simulator's kind of pair: x a log-price random walk, y = alpha + beta*x + AR(1)."""
    rng = np.random.default_rng(seed)
    x = 4.0 + np.cumsum(0.01 * rng.standard_normal(n))
    e = np.zeros(n)
    shocks = 0.002 * rng.standard_normal(n)
    for t in range(1, n):
        e[t] = phi * e[t - 1] + shocks[t]
    return alpha + beta * x + e, x


def load_trades(symbol: str) -> pd.DataFrame:
    """Trades of one recording as a tick frame (ts µs, price, qty, trade_id), via json."""
    path = DATA / f"spot_{symbol.lower()}_20240808.gz"
    if not path.exists():
        pytest.skip(f"real Binance recording not found at {path} (shared data folder absent)")
    rows = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            _, raw = line.split(" ", 1)
            msg = json.loads(raw)
            if msg.get("stream", "").endswith("@trade"):
                d = msg["data"]
                rows.append((int(d["T"]) * 1000, float(d["p"]), float(d["q"]), int(d["t"])))
    return pd.DataFrame(rows, columns=["ts", "price", "qty", "trade_id"])
