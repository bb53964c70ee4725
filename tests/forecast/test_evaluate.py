"""Scores against scikit-learn, the Diebold-Mariano test against a hand-computed case and
statsmodels' HAC t-test (and the dieboldmariano package when installed), calibration."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lq.errors import ValidationError
from lq.forecast import TargetSpec, calibration_curve, diebold_mariano, losses, scores
from lq.forecast.evaluate import forecast_positions


def test_dm_hand_computed_case():
    # d = a - b = [-1, 0, -2, -1]; mean -1; gamma0 = mean((d + 1)^2) = 0.5
    # DM = -1 / sqrt(0.5 / 4) = -2.828427; HLN factor sqrt((4 + 1 - 2) / 4) = 0.866025
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([2.0, 2.0, 5.0, 5.0])
    raw = diebold_mariano(a, b, correction=False)
    assert raw.statistic == pytest.approx(-2.8284271247, rel=1e-10)
    assert raw.p_value == pytest.approx(2 * stats.norm.sf(2.8284271247), rel=1e-9)
    hln = diebold_mariano(a, b)
    assert hln.statistic == pytest.approx(-2.8284271247 * math.sqrt(0.75), rel=1e-10)
    assert hln.p_value == pytest.approx(2 * stats.t(3).sf(2.8284271247 * math.sqrt(0.75)), rel=1e-9)
    less = diebold_mariano(a, b, alternative="less")
    assert less.p_value == pytest.approx(hln.p_value / 2, rel=1e-9)


@pytest.mark.parametrize("h", [1, 3])
def test_dm_equals_statsmodels_hac_t_test(h):
    import statsmodels.api as sm

    rng = np.random.default_rng(h)
    e = rng.normal(size=600)
    d = e + 0.5 * np.r_[0.0, e[:-1]] + 0.05  # an MA(1) loss differential
    a, b = d + 1.0, np.ones_like(d)
    ours = diebold_mariano(a, b, h=h, correction=False)
    # reference: OLS of d on a constant, HAC covariance with the rectangular (uniform)
    # kernel over h - 1 lags and no small-sample correction = the DM statistic
    fit = sm.OLS(d, np.ones_like(d)).fit(
        cov_type="HAC", cov_kwds={"maxlags": h - 1, "kernel": "uniform", "use_correction": False}
    )
    assert ours.statistic == pytest.approx(float(fit.tvalues[0]), rel=1e-10)


def test_dm_equals_the_dieboldmariano_package():
    dm = pytest.importorskip("dieboldmariano")
    rng = np.random.default_rng(0)
    y = rng.normal(size=300)
    p1 = y + rng.normal(scale=1.0, size=300)
    p2 = y + rng.normal(scale=1.1, size=300)
    for h in (1, 2, 4):
        stat, p = dm.dm_test(list(y), list(p1), list(p2), h=h, one_sided=True)
        ours = diebold_mariano((y - p1) ** 2, (y - p2) ** 2, h=h, alternative="less")
        assert ours.statistic == pytest.approx(stat, rel=1e-9)
        assert ours.p_value == pytest.approx(p, rel=1e-6)


def test_dm_refuses_bad_input():
    with pytest.raises(ValidationError, match="loss_b"):
        diebold_mariano(np.ones(5), np.ones(4))
    with pytest.raises(ValidationError, match="h="):
        diebold_mariano(np.ones(5), np.ones(5), h=0)
    same = diebold_mariano(np.arange(5.0), np.arange(5.0))
    assert same.statistic == 0.0 and same.p_value == 1.0


def test_scores_equal_scikit_learn():
    from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, roc_auc_score

    rng = np.random.default_rng(1)
    y = (rng.random(400) < 0.4).astype(float)
    p = np.clip(0.4 + 0.2 * (y - 0.4) + rng.normal(0, 0.1, 400), 0.01, 0.99)
    s = scores(y, p, TargetSpec(kind="sign"))
    assert s["accuracy"] == pytest.approx(accuracy_score(y, p > 0.5))
    assert s["auc"] == pytest.approx(roc_auc_score(y, p))
    assert s["log_loss"] == pytest.approx(log_loss(y, p), rel=1e-12)
    assert s["brier"] == pytest.approx(brier_score_loss(y, p), rel=1e-12)
    r = rng.normal(size=50)
    f = r + rng.normal(size=50)
    sr = scores(r, f, TargetSpec(kind="return"))
    assert sr["rmse"] == pytest.approx(math.sqrt(np.mean((r - f) ** 2)))
    assert sr["mae"] == pytest.approx(np.mean(np.abs(r - f)))


def test_qlike_hand_computed_and_finite_at_zero_realised_volatility():
    v = losses(np.array([0.0, 2.0]), np.array([1.0, 2.0]), TargetSpec(kind="volatility"))
    # log(f^2) + y^2 / f^2: log 1 + 0 = 0; log 4 + 4 / 4 = 1 + log 4
    assert v.tolist() == pytest.approx([0.0, 1.0 + math.log(4.0)])


def test_calibration_curve_equals_scikit_learn_quantile_bins():
    from sklearn.calibration import calibration_curve as sk

    rng = np.random.default_rng(2)
    p = rng.random(1000)
    y = (rng.random(1000) < p).astype(float)
    ours = calibration_curve(y, p, bins=8)
    freq, mean = sk(y, p, n_bins=8, strategy="quantile")
    np.testing.assert_allclose(ours["frequency"], freq, rtol=1e-12)
    np.testing.assert_allclose(ours["p_mean"], mean, rtol=1e-12)
    assert ours["count"].sum() == 1000


def test_positions_follow_the_forecast_and_respect_the_threshold():
    sign = TargetSpec(kind="sign")
    w = forecast_positions(np.array([0.7, 0.52, 0.3, np.nan]), sign, 0.05)
    assert w.tolist() == [1.0, 0.0, -1.0, 0.0]
    with pytest.raises(ValidationError, match="no direction"):
        forecast_positions(np.ones(3), TargetSpec(kind="volatility"), 0.0)


def test_trading_evaluation_pays_fees_on_every_fill():
    from lq.backtest import Costs
    from lq.forecast import trading_evaluation
    from lq.forecast.walkforward import Predictions

    idx = pd.date_range("2024-01-01", periods=6, freq="1s", tz="UTC")
    c = np.array([100.0, 101, 102, 101, 100, 101])
    bars = pd.DataFrame({"open": c, "close": c}, index=idx)
    frame = pd.DataFrame({"y": 1.0, "pred": [0.9, 0.9, 0.1, 0.1, 0.9, 0.9], "fold": 0}, index=idx)
    p = {"m": Predictions("m", "learned", frame, pd.DataFrame())}
    te = trading_evaluation(bars, p, TargetSpec(kind="sign"), costs=Costs(fee_bps=10))
    res = te.results["m"]
    # long from bar 1's open (101), short from bar 3's open (101), long from bar 5's open
    assert res.trades["side"].tolist()[:2] == [1, -1]
    assert res.fees.sum() > 0 and te.table.loc["m", "fees_paid"] == pytest.approx(res.fees.sum())
    assert "buy_and_hold" in te.table.index
