"""Live scoring: bars built from trades and scored as they close give the batch numbers;
the running score equals the losses computed in batch; fast predictors equal scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from _sim import ar1

from lq.forecast import FeatureSpec, TargetSpec, losses, make_target
from lq.forecast.live import ForecastPoint, LiveScorer
from lq.forecast.trained import train_model


def _trades_of(bars: pd.DataFrame, seed: int = 0):
    """Exactly ``trades`` trades per bar that rebuild it: the last at the close, taker buys
    (even positions) and sells (odd) sharing the bar's buy and sell volume."""
    rng = np.random.default_rng(seed)
    out = []
    for ts, row in zip(bars["ts"].to_numpy(), bars.itertuples(), strict=True):
        k = int(row.trades)
        assert k >= 2
        prices = [*rng.uniform(row.low, row.high, k - 1), row.close]
        n_buy, n_sell = (k + 1) // 2, k // 2
        for j, p in enumerate(prices):
            sell = j % 2 == 1
            q = row.sell_volume / n_sell if sell else row.buy_volume / n_buy
            out.append((int(ts) + 1000 * j, float(p), q, sell))
    return out


@pytest.mark.parametrize(
    ("kind", "horizon", "model"),
    [("sign", 1, "boosted"), ("return", "3s", "linear"), ("volatility", 5, "boosted")],
)
def test_trades_scored_live_give_the_batch_forecasts_and_losses(kind, horizon, model):
    spec = FeatureSpec(
        zscore_windows=(20,), vol_windows=(10,), flow_windows=(10,), intensity_windows=(10,)
    )
    bars = ar1(1400, 0.25, seed=4)
    bars["trades"] = np.maximum(bars["trades"], 2.0)
    bars = bars.iloc[np.sort(np.random.default_rng(4).choice(1400, 1300, replace=False))]
    target = TargetSpec(kind=kind, horizon=horizon)
    m = train_model(bars.iloc[:800], target=target, features=spec, model=model)
    live = bars.iloc[800:].copy()
    scorer = LiveScorer(m, window=10_000)
    points, resolved = [], []
    for ts, p, q, maker in _trades_of(live):
        for ev in scorer.on_trade(ts, p, q, maker):
            (points if isinstance(ev, ForecastPoint) else resolved).append(ev)
    # the last bar is still open (no later trade): everything before it was scored
    batch = m.score(live).iloc[:-1]
    got = pd.Series(
        [pt.value for pt in points],
        index=pd.to_datetime([pt.ts for pt in points], unit="us", utc=True),
    )
    assert len(points) == len(live) - 1
    np.testing.assert_allclose(
        got.to_numpy(), batch["forecast"].to_numpy(), rtol=1e-9, atol=1e-12, equal_nan=True
    )
    base = np.array([pt.baseline for pt in points])
    np.testing.assert_allclose(
        base, batch["baseline"].to_numpy(), rtol=1e-9, atol=1e-12, equal_nan=True
    )
    # resolutions: the batch target of the same bars, and the batch losses
    t = make_target(live.iloc[:-1], target)
    ok = t.y.notna() & batch["forecast"].notna()
    want = t.y[ok]
    res = pd.DataFrame(
        [(r.ts, r.realised, r.loss, r.baseline_loss) for r in resolved],
        columns=["ts", "y", "loss", "bl"],
    )
    res.index = pd.to_datetime(res["ts"], unit="us", utc=True)
    res = res.loc[want.index.intersection(res.index)]
    assert len(res) >= len(want) - 5  # the last horizon is still open
    np.testing.assert_allclose(res["y"], want.loc[res.index], rtol=1e-9, atol=1e-15)
    lm = losses(res["y"].to_numpy(), batch.loc[res.index, "forecast"].to_numpy(), target)
    np.testing.assert_allclose(res["loss"], lm, rtol=1e-9)
    assert scorer.edge == pytest.approx(float(np.mean(res["bl"] - res["loss"])), rel=1e-9)


def test_warm_up_from_stored_bars_then_live_equals_batch_after_the_warm_up():
    spec = FeatureSpec(garch=True, garch_fit=300)
    bars = ar1(2500, 0.2, seed=6)
    m = train_model(bars.iloc[:1500], target=TargetSpec(), features=spec, model="linear")
    scorer = LiveScorer(m)
    warm = spec.warmup(m.params)
    start = 2500 - 300 - warm
    scorer.warm_up(bars.iloc[start:2200])
    pts = []
    for i in range(2200, 2500):
        row = bars.iloc[i]
        pts += [
            e
            for e in scorer.close_bar(
                int(row["ts"]),
                float(row["close"]),
                trades=float(row["trades"]),
                buy_volume=float(row["buy_volume"]),
                sell_volume=float(row["sell_volume"]),
            )
            if isinstance(e, ForecastPoint)
        ]
    batch = m.score(bars).iloc[2200:]
    np.testing.assert_allclose([p.value for p in pts], batch["forecast"], rtol=1e-9)
    assert scorer.n_resolved > 250 and math.isfinite(scorer.edge)


@pytest.mark.parametrize("kind", ["sign", "return", "volatility"])
@pytest.mark.parametrize("model", ["linear", "boosted", "lightgbm"])
def test_fast_row_predictors_equal_the_estimators(kind, model):
    if model == "lightgbm":
        pytest.importorskip("lightgbm")
    bars = ar1(1500, 0.2, seed=1)
    m = train_model(bars, target=TargetSpec(kind=kind, horizon=3), model=model)
    from lq.forecast import build_features

    X = build_features(bars, m.features).X.dropna()
    f = m.estimator.row_predictor()
    fast = np.array([f(r) for r in X.to_numpy()[:300]])
    np.testing.assert_allclose(fast, m.estimator.predict(X.iloc[:300]), rtol=1e-12, atol=1e-15)
    b = m.baseline_estimator.row_predictor()
    np.testing.assert_allclose(
        [b(r) for r in X.to_numpy()[:50]], m.baseline_estimator.predict(X.iloc[:50]), rtol=1e-12
    )
