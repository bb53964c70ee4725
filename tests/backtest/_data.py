"""Seeded synthetic bars for the backtest tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "binance"


def make_bars(
    closes: list[float] | np.ndarray,
    opens: list[float] | np.ndarray | None = None,
    *,
    freq: str = "1min",
    start: str = "2024-01-01",
    **extra: list[float] | np.ndarray,
) -> pd.DataFrame:
    """Bars with the given closes (and opens; default = previous close)."""
    c = np.asarray(closes, dtype=float)
    o = np.r_[c[0], c[:-1]] if opens is None else np.asarray(opens, dtype=float)
    idx = pd.date_range(start, periods=c.size, freq=freq, tz="UTC")
    cols = {
        "open": o,
        "high": np.maximum(o, c),
        "low": np.minimum(o, c),
        "close": c,
        "volume": np.ones(c.size),
    }
    cols.update({k: np.asarray(v, dtype=float) for k, v in extra.items()})
    return pd.DataFrame(cols, index=idx)


def random_bars(n: int, seed: int, *, p0: float = 100.0, vol: float = 0.002) -> pd.DataFrame:
    """A seeded log-normal random walk with opens near the previous close and a spread."""
    rng = np.random.default_rng(seed)
    lc = np.log(p0) + np.cumsum(rng.normal(0.0, vol, n))
    close = np.exp(lc)
    opens = np.exp(np.r_[lc[0], lc[:-1]] + rng.normal(0.0, vol / 4, n))
    spread = close * rng.uniform(1e-4, 5e-4, n)
    return make_bars(close, opens, bid=close - spread / 2, ask=close + spread / 2)


def random_pair(n: int, seed: int) -> dict[str, pd.DataFrame]:
    """Two seeded bars frames whose log closes are cointegrated (beta 1.3, AR(1) spread)."""
    rng = np.random.default_rng(seed)
    lx = np.log(50.0) + np.cumsum(rng.normal(0.0, 0.002, n))
    e = np.zeros(n)
    shocks = rng.normal(0.0, 0.001, n)
    for t in range(1, n):
        e[t] = 0.95 * e[t - 1] + shocks[t]
    ly = 0.5 + 1.3 * lx + e
    out = {}
    for sym, lp in (("YYY", ly), ("XXX", lx)):
        c = np.exp(lp)
        o = np.exp(np.r_[lp[0], lp[:-1]] + rng.normal(0.0, 0.0003, n))
        out[sym] = make_bars(c, o)
    return out
