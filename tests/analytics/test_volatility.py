import math

import numpy as np
import pandas as pd
import pytest
from arch import arch_model
from arch.univariate import Normal

from lq.analytics import ewma_vol, garch_forecast, periods_per_year, realized_vol
from lq.errors import ValidationError


def _garch_returns(n=2000, seed=2, scale=1e-3):
    am = arch_model(None, vol="GARCH", p=1, q=1)
    am.distribution = Normal(seed=np.random.default_rng(seed))
    # true per-unit parameters: mu 0, omega 0.05, alpha 0.08, beta 0.9
    return am.simulate([0.0, 0.05, 0.08, 0.9], n)["data"].to_numpy() * scale


def test_annualisation_is_24x365():
    assert periods_per_year("1s") == 31_536_000.0
    assert periods_per_year("1m") == 525_600.0
    assert periods_per_year("1h") == 8_760.0


def test_realized_vol_hand_computed_and_rolling_matches_pandas():
    # hand: r = ±0.001 -> mean r^2 = 1e-6 -> sqrt(1e-6 * 525600) = 0.72498
    assert realized_vol(np.array([0.001, -0.001]), interval="1m") == pytest.approx(
        math.sqrt(1e-6 * 525_600), rel=1e-12
    )
    r = pd.Series(np.random.default_rng(0).normal(0, 1e-4, 1000))
    ref = np.sqrt((r**2).rolling(60).mean() * 31_536_000)  # reference: pandas rolling
    np.testing.assert_allclose(realized_vol(r, interval="1s", window=60), ref, rtol=1e-10)


def test_ewma_vol_matches_the_riskmetrics_recursion():
    r = np.random.default_rng(1).normal(0, 1e-3, 300)
    var = np.empty(300)
    var[0] = r[0] ** 2
    for t in range(1, 300):  # reference: the recursion written out by hand
        var[t] = 0.94 * var[t - 1] + 0.06 * r[t] ** 2
    np.testing.assert_allclose(ewma_vol(r, interval="1h"), np.sqrt(var * 8760), rtol=1e-12)


def test_garch_matches_arch_fitted_directly_and_the_forecast_recursion():
    y = _garch_returns()
    f = garch_forecast(y, horizon=10)
    assert f.scale == 1000.0 and f.converged
    # reference 1: arch fitted on the same rescaled data; parameters to 1e-6 relative
    ref = arch_model(y * 1000.0, vol="GARCH", p=1, q=1, rescale=False).fit(disp="off")
    for k, v in ref.params.items():
        assert f.params[k] == pytest.approx(v, rel=1e-6, abs=1e-9)
    # reference 2: GARCH(1,1) h-step recursion by hand,
    # s2[h] = omega + (alpha + beta) * s2[h-1], from arch's 1-step forecast, in original units
    om, a, b = f.params["omega"], f.params["alpha[1]"], f.params["beta[1]"]
    s2 = [f.variance[0] * 1e6]
    for _ in range(9):
        s2.append(om + (a + b) * s2[-1])
    np.testing.assert_allclose(f.variance, np.array(s2) / 1e6, rtol=1e-10)
    # and the fit recovers the simulated parameters (alpha 0.08, beta 0.9) within 0.05
    assert (a, b) == (pytest.approx(0.08, abs=0.05), pytest.approx(0.9, abs=0.05))


def test_garch_rescaling_makes_the_forecast_scale_free():
    y = _garch_returns()
    small = garch_forecast(y * 1e-3, horizon=5)  # std ~1e-5: arch alone would warn
    base = garch_forecast(y, horizon=5)
    np.testing.assert_allclose(small.variance, base.variance * 1e-6, rtol=1e-6)


@pytest.mark.parametrize("model", ["garch", "gjr", "egarch"])
@pytest.mark.parametrize("dist", ["normal", "t"])
def test_every_model_and_distribution_gives_finite_positive_forecasts(model, dist):
    f = garch_forecast(_garch_returns(800), model=model, dist=dist, horizon=4, interval="1m")
    assert f.variance.shape == (4,) and np.isfinite(f.variance).all() and (f.variance > 0).all()
    assert f.annualized_volatility is not None
    np.testing.assert_allclose(f.annualized_volatility, f.volatility * math.sqrt(525_600))


def test_garch_refuses_short_or_constant_input():
    with pytest.raises(ValidationError, match="returns=50"):
        garch_forecast(np.ones(50))
    with pytest.raises(ValidationError, match="zero or undefined variance"):
        garch_forecast(np.zeros(200))
