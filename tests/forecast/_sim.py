"""Simulated bars with a known predictable component (or none), seeded."""

from __future__ import annotations

import numpy as np
import pandas as pd


def bars_from_returns(r: np.ndarray, *, seed: int = 0, start: str = "2024-01-01") -> pd.DataFrame:
    """1 s bars whose close-to-close log returns are ``r`` (first bar at 100), with trades,
    taker flows and a quote that carry no information."""
    rng = np.random.default_rng(seed + 1)
    n = r.size
    lc = np.log(100.0) + np.cumsum(r)
    close = np.exp(lc)
    open_ = np.exp(np.r_[lc[0], lc[:-1]])
    idx = pd.date_range(start, periods=n, freq="1s", tz="UTC")
    buy = rng.exponential(1.0, n)
    sell = rng.exponential(1.0, n)
    spread = close * 1e-4
    bars = pd.DataFrame(
        {
            "ts": idx.as_unit("us").asi8,
            "open": open_,
            "high": np.maximum(open_, close),
            "low": np.minimum(open_, close),
            "close": close,
            "volume": buy + sell,
            "trades": rng.integers(1, 30, n).astype(float),
            "buy_volume": buy,
            "sell_volume": sell,
            "bid": close - spread / 2,
            "ask": close + spread / 2,
            "bid_qty": rng.exponential(2.0, n),
            "ask_qty": rng.exponential(2.0, n),
        },
        index=idx,
    )
    bars.attrs["symbol"] = "SIMUSDT"
    bars.attrs["interval_us"] = 1_000_000
    return bars


def ar1(n: int, phi: float, *, sigma: float = 1e-4, seed: int = 0) -> pd.DataFrame:
    """Bars whose returns follow r_t = phi r_{t-1} + e_t."""
    rng = np.random.default_rng(seed)
    e = rng.normal(0.0, sigma, n)
    r = np.empty(n)
    r[0] = e[0]
    for t in range(1, n):
        r[t] = phi * r[t - 1] + e[t]
    return bars_from_returns(r, seed=seed)


def random_walk(n: int, *, sigma: float = 1e-4, seed: int = 0) -> pd.DataFrame:
    """Bars whose returns are i.i.d. normal: nothing to forecast."""
    rng = np.random.default_rng(seed)
    return bars_from_returns(rng.normal(0.0, sigma, n), seed=seed)


def vol_regimes(n: int, *, block: int = 500, seed: int = 0) -> pd.DataFrame:
    """Returns whose volatility switches between 0.5e-4 and 3e-4 in persistent blocks."""
    rng = np.random.default_rng(seed)
    levels = rng.choice([0.5e-4, 3e-4], size=n // block + 1)
    sig = np.repeat(levels, block)[:n]
    return bars_from_returns(rng.normal(0.0, 1.0, n) * sig, seed=seed)


def activity_vol(n: int, *, phi: float = 0.995, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Volatility driven by a latent, persistent activity level ``a`` (log AR(1)) that the
    trade counts reveal: ``trades ~ 1 + Poisson(8 exp(a))`` and ``sigma = 1e-4 exp(a)``.
    Past returns reveal ``a`` only noisily (one draw a bar); trade intensity sharply.
    Returns the bars and ``sigma`` of every bar (the oracle's knowledge of the present)."""
    rng = np.random.default_rng(seed)
    a = np.empty(n)
    a[0] = 0.0
    e = rng.normal(0.0, 0.6 * np.sqrt(1 - phi * phi), n)
    for t in range(1, n):
        a[t] = phi * a[t - 1] + e[t]
    sig = 1e-4 * np.exp(a)
    bars = bars_from_returns(rng.normal(0.0, 1.0, n) * sig, seed=seed)
    bars["trades"] = 1.0 + rng.poisson(8.0 * np.exp(a)).astype(float)
    return bars, sig
