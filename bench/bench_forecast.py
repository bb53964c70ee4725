"""Forecasting benchmarks (issue 14): each figure next to a baseline measured in this run.

1. Feature building for 1M one-second bars (the default FeatureSpec: lags, realised and
   EWMA volatility, RSI, z-score, trade-flow imbalance, intensity), against the same
   features written with pandas rolling/ewm. Target: <= 1 s.
2. Walk-forward of the boosted model (HistGradientBoosting), 10 folds on 200k rows, two
   worker processes, against the same on one process; and LightGBM on the same task
   (the dependency decision in docs/architecture.md). Target: <= 30 s on 2 cores.
3. Live scoring per closed bar (features O(1) + the compiled one-row predictor), against
   recomputing the features with pandas over a trailing window and calling
   ``predict_proba`` for every bar. Target: <= 1 ms.

Usage: ``.venv/bin/python bench/bench_forecast.py [--bars 1000000] [--rows 200000]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _util import best_of, report

from lq.forecast import FeatureSpec, TargetSpec, build_features, make_model, make_target
from lq.forecast.evaluate import evaluate
from lq.forecast.live import LiveScorer
from lq.forecast.trained import train_model
from lq.forecast.walkforward import WalkForwardConfig, walk_forward


def make_bars(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    e = rng.normal(0, 1e-4, n)
    r = np.empty(n)
    r[0] = e[0]
    r[1:] = e[1:] + 0.05 * e[:-1]  # a faint MA(1): something, not much, to learn
    c = 100 * np.exp(np.cumsum(r))
    idx = pd.date_range("2024-01-01", periods=n, freq="1s", tz="UTC")
    bars = pd.DataFrame(
        {
            "ts": idx.as_unit("us").asi8,
            "open": np.r_[c[0], c[:-1]],
            "close": c,
            "trades": rng.integers(1, 30, n).astype(float),
            "buy_volume": rng.exponential(1.0, n),
            "sell_volume": rng.exponential(1.0, n),
        },
        index=idx,
    )
    bars.attrs["symbol"] = "BENCHUSDT"
    bars.attrs["interval_us"] = 1_000_000
    return bars


def pandas_features(bars: pd.DataFrame) -> pd.DataFrame:
    """The default features, the way a notebook would write them with pandas."""
    c = bars["close"]
    r = np.log(c).diff()
    out = {f"ret_{k}": r.shift(k) for k in range(5)}
    out["rv_30"] = np.sqrt((r**2).rolling(30).mean())
    out["ewma_vol"] = np.sqrt((r**2).ewm(alpha=0.06, adjust=False).mean())
    d = c.diff()
    ag = d.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    al = (-d).clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    out["rsi_14"] = 100 * ag / (ag + al)
    out["z_60"] = (c - c.rolling(60).mean()) / c.rolling(60).std()
    b, s = bars["buy_volume"].rolling(30).sum(), bars["sell_volume"].rolling(30).sum()
    out["flow_30"] = (b - s) / (b + s)
    out["intensity_30"] = np.log1p(bars["trades"].rolling(30).mean())
    return pd.DataFrame(out)


def bench_features(n: int) -> None:
    bars = make_bars(n)
    spec = FeatureSpec()
    ours = best_of(lambda: build_features(bars, spec), repeat=3)
    base = best_of(lambda: pandas_features(bars), repeat=3)
    report(
        f"features, {n:,} bars ({len(spec.names)} columns)",
        f"{ours:.3f} s",
        baseline=f"pandas rolling {base:.3f} s",
        ratio=base / ours,
        target="<= 1 s",
        ok=ours <= 1.0,
    )


def bench_walk_forward(rows: int) -> None:
    bars = make_bars(rows + 200, seed=1)
    target = TargetSpec(kind="sign")
    F = build_features(bars, FeatureSpec())
    t = make_target(bars, target)
    cfg = WalkForwardConfig(folds=10)
    models = {"boosted": partial(make_model, "boosted", target)}
    times = {}
    for workers in (2, 1):
        t0 = time.perf_counter()
        out = walk_forward(F.X, t.y, t.end, models, cfg, workers=workers)
        times[workers] = time.perf_counter() - t0
    report(
        f"walk-forward boosted, 10 folds, {rows:,} rows, 2 processes",
        f"{times[2]:.1f} s",
        baseline=f"1 process {times[1]:.1f} s",
        ratio=times[1] / times[2],
        target="<= 30 s",
        ok=times[2] <= 30.0,
    )
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        print("  lightgbm not installed: no comparison (pip install lightgbm)", flush=True)
        return
    both = {
        "majority": partial(make_model, "majority", target),
        "boosted": partial(make_model, "boosted", target),
        "lightgbm": partial(make_model, "lightgbm", target),
    }
    t0 = time.perf_counter()
    lg = walk_forward(F.X, t.y, t.end, {"lightgbm": both["lightgbm"]}, cfg, workers=2)
    t_lgb = time.perf_counter() - t0
    preds = {**walk_forward(F.X, t.y, t.end, {"majority": both["majority"]}, cfg), **out, **lg}
    ev = evaluate(preds, target)
    ll = ev.pooled["log_loss"]
    report(
        "  lightgbm on the same task, 2 processes",
        f"{t_lgb:.1f} s",
        baseline=f"HistGradientBoosting {times[2]:.1f} s",
        ratio=times[2] / t_lgb,
    )
    print(
        f"  log-loss: HistGradientBoosting {ll['boosted']:.5f}, LightGBM {ll['lightgbm']:.5f}, "
        f"majority {ll['majority']:.5f}",
        flush=True,
    )


def bench_live(n_bars: int) -> None:
    bars = make_bars(20_000, seed=2)
    m = train_model(bars.iloc[:15_000], target=TargetSpec(kind="sign"), model="boosted")
    scorer = LiveScorer(m)
    live = bars.iloc[15_000 : 15_000 + n_bars]
    cols = {c: live[c].to_numpy() for c in ("close", "trades", "buy_volume", "sell_volume")}
    ts = live["ts"].to_numpy()
    per = []
    for i in range(len(live)):
        t0 = time.perf_counter()
        scorer.close_bar(
            int(ts[i]),
            float(cols["close"][i]),
            trades=float(cols["trades"][i]),
            buy_volume=float(cols["buy_volume"][i]),
            sell_volume=float(cols["sell_volume"][i]),
        )
        per.append(time.perf_counter() - t0)
    ours = statistics.median(per)
    p99 = float(np.percentile(per, 99))
    # baseline: pandas features over a trailing window, then predict_proba, every bar
    est = m.estimator.estimator  # the fitted HistGradientBoostingClassifier
    hist = bars.iloc[15_000 - 300 : 15_000 + 200]
    base = []
    for i in range(300, 300 + 100):
        t0 = time.perf_counter()
        row = pandas_features(hist.iloc[i - 300 : i + 1]).iloc[[-1]].to_numpy()
        est.predict_proba(row)
        base.append(time.perf_counter() - t0)
    b = statistics.median(base)
    report(
        "live scoring per closed bar (boosted, median)",
        f"{ours * 1e3:.3f} ms",
        baseline=f"pandas window + predict_proba {b * 1e3:.2f} ms",
        ratio=b / ours,
        target="<= 1 ms",
        ok=ours <= 1e-3,
    )
    print(f"  p99 {p99 * 1e3:.3f} ms over {len(per):,} bars", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--live-bars", type=int, default=5_000)
    a = ap.parse_args()
    bench_features(a.bars)
    bench_walk_forward(a.rows)
    bench_live(a.live_bars)


if __name__ == "__main__":
    main()
