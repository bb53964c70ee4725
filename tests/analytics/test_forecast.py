import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import TimeSeriesSplit, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lq.analytics import direction_features, forecast_direction


def _ar1(n, phi, seed):
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(n)
    r = np.zeros(n)
    for t in range(1, n):
        r[t] = phi * r[t - 1] + e[t]
    return r


def test_predictable_returns_beat_the_naive_baseline():
    # AR(1) phi=0.5: P(sign persists) = 1/2 + asin(0.5)/pi = 0.667, so edge ~0.17
    f = forecast_direction(_ar1(4000, 0.5, 0))
    assert f.edge > 0.1 and 0.6 < f.accuracy < 0.72
    assert 0.0 <= f.next_up_probability <= 1.0


def test_unpredictable_returns_show_no_edge_so_there_is_no_look_ahead():
    # iid returns: any leak of r[t+1] into the features would push accuracy towards 1
    f = forecast_direction(np.random.default_rng(1).standard_normal(4000))
    assert abs(f.edge) < 0.04 and f.accuracy < 0.55


def test_walk_forward_accuracy_equals_sklearn_cross_val_score():
    r = _ar1(3000, 0.3, 2)
    X, y = direction_features(r, lags=5)
    ok = X.notna().all(axis=1) & y.notna()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    # reference: scikit-learn cross_val_score over the same TimeSeriesSplit (equal test sizes)
    ref = cross_val_score(model, X[ok], y[ok].astype(int), cv=TimeSeriesSplit(5))
    f = forecast_direction(r, lags=5, n_splits=5)
    np.testing.assert_allclose(f.fold_accuracy, ref, rtol=1e-12)


def test_random_forest_runs_walk_forward():
    f = forecast_direction(_ar1(1500, 0.5, 3), model="random_forest")
    assert len(f.fold_accuracy) == 5 and f.accuracy > f.baseline_accuracy
