"""On simulated data with a known predictable component the models beat the baselines by
the expected margin; on a pure random walk none does, and the evaluation says so.

Seeded, several seeds each, and samples large enough (20,000 bars, ~16,000 scored) that
the margins hold for seeds nobody picked: the expected margins are many standard errors
wide, and the random-walk check uses the DM test's own 5 % level.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _sim import activity_vol, ar1, random_walk
from scipy import stats

from lq.backtest import Costs
from lq.forecast import FeatureSpec, TargetSpec, losses
from lq.forecast.lab import run_lab

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_ar1_sign_forecasts_reach_the_theoretical_accuracy_and_beat_the_baselines(seed):
    phi = 0.3
    bars = ar1(20_000, phi, seed=seed)
    lab = run_lab(
        bars,
        target=TargetSpec(kind="sign"),
        check=False,
        workers=2,
        seed=seed,
        costs=Costs(fee_bps=0.0),
    )
    ev = lab.evaluation
    # the Bayes classifier of a Gaussian AR(1) is sign(phi r_t): hit rate 1/2 + asin(phi)/pi
    # (Sheppard's formula for P(xy > 0) of a bivariate normal with correlation phi) = 0.5970
    bayes = 0.5 + math.asin(phi) / math.pi
    n = ev.pooled.loc["linear", "n"]
    se = math.sqrt(bayes * (1 - bayes) / n)  # ~0.0038
    assert abs(ev.pooled.loc["linear", "accuracy"] - bayes) < 4 * se + 0.005
    # log-loss close to the oracle's, P(up | r_t) = Phi(phi r_t / sigma_e), on the same rows
    fr = lab.predictions["linear"].frame
    r0 = lab.X.loc[fr.index, "ret_0"].to_numpy()
    oracle = stats.norm.cdf(phi * r0 / 1e-4)
    ll_oracle = losses(fr["y"].to_numpy(), oracle, lab.target).mean()
    assert ev.pooled.loc["linear", "log_loss"] - ll_oracle < 0.003
    # both learned models beat the best baseline, significantly
    assert ev.best_baseline in ("last_sign", "majority")
    for m in ("linear", "boosted"):
        assert ev.beats_baseline(m), ev.verdict(m)
        assert ev.dm.loc[m, "p_value"] < 0.01
    # log-loss edge over always-majority (ln 2): the oracle's edge is ~0.027 here
    assert ev.pooled.loc["majority", "log_loss"] - ev.pooled.loc["linear", "log_loss"] > 0.015
    # before costs a long/short on the forecast makes money; at Binance's 10 bps taker fee
    # on a 1e-4 per-bar move it cannot, and the trading evaluation says so
    assert lab.trading.table.loc["linear", "total_return"] > 0
    from lq.forecast import trading_evaluation

    costly = trading_evaluation(bars, lab.predictions, lab.target, costs=Costs(fee_bps=10.0))
    assert costly.table.loc["linear", "total_return"] < 0


@pytest.mark.parametrize("seed", [21, 22])
def test_volatility_driven_by_activity_is_forecast_better_than_ewma_and_garch(seed):
    bars, sig = activity_vol(20_000, seed=seed)
    lab = run_lab(
        bars,
        target=TargetSpec(kind="volatility", horizon=10),
        features=FeatureSpec(garch=True, intensity_windows=(5, 30)),
        check=False,
        workers=2,
        seed=seed,
    )
    ev = lab.evaluation
    assert ev.best_baseline in ("ewma", "garch")
    fr = lab.predictions[ev.best_baseline].frame
    pos = bars.index.get_indexer(fr.index)
    # the oracle knows the present volatility exactly: sqrt(10) sigma_t
    q_oracle = losses(fr["y"].to_numpy(), sig[pos] * math.sqrt(10), lab.target).mean()
    q_base = ev.pooled.loc[ev.best_baseline, "qlike"]
    assert q_base > q_oracle  # the baselines see activity through returns only, noisily
    for m in ("linear", "boosted"):
        assert ev.beats_baseline(m), ev.verdict(m)
        # a fifth or more of the gap between the best baseline and the oracle is closed
        assert q_base - ev.pooled.loc[m, "qlike"] >= 0.2 * (q_base - q_oracle)
    assert lab.trading is None  # a volatility forecast is not traded


@pytest.mark.parametrize("seed", [31, 32, 33])
def test_on_a_random_walk_no_model_beats_the_baseline_and_the_verdict_says_so(seed):
    bars = random_walk(20_000, seed=seed)
    lab = run_lab(bars, target=TargetSpec(kind="sign"), check=False, workers=2, seed=seed)
    ev = lab.evaluation
    for m in ("linear", "boosted"):
        assert not ev.beats_baseline(m), ev.verdict(m)
        assert "does not beat" in ev.verdict(m)
        # nothing to learn: the loss is within noise of the baseline's (ln 2 = 0.6931)
        assert abs(ev.pooled.loc[m, "log_loss"] - math.log(2)) < 0.01
    assert abs(ev.pooled.loc["linear", "accuracy"] - 0.5) < 0.02
    r = lab.target
    assert r.kind == "sign"
    ret = run_lab(bars, target=TargetSpec(kind="return"), check=False, workers=2, seed=seed)
    for m in ("linear", "boosted"):
        assert not ret.evaluation.beats_baseline(m), ret.evaluation.verdict(m)
    assert np.isfinite(ret.evaluation.dm["p_value"]).all()
