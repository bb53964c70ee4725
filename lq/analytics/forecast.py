"""Short-term direction forecast: will the next bar's return be positive?

A scikit-learn classifier on lagged returns, evaluated walk-forward with
``TimeSeriesSplit`` (train on the past, test on the next block, never the reverse) and
reported against the naive baseline (always predict the training fold's majority class).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import TimeSeriesSplit
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from lq.errors import ValidationError

from ._common import as_array, check_choice, check_int
from ._typing import ArrayLike1D, ForecastModel

__all__ = ["DirectionForecast", "direction_features", "forecast_direction"]


@dataclass(frozen=True, slots=True)
class DirectionForecast:
    """Walk-forward evaluation of a next-return-sign classifier.

    ``accuracy``/``baseline_accuracy`` are pooled over all test rows; ``fold_*`` per split.
    ``edge`` = accuracy - baseline_accuracy. ``next_up_probability`` is the model refit on
    all rows, applied to the latest features.
    """

    model: str
    lags: int
    accuracy: float
    baseline_accuracy: float
    edge: float
    fold_accuracy: tuple[float, ...]
    fold_baseline: tuple[float, ...]
    n_train_first: int
    n_test: int
    next_up_probability: float


def direction_features(returns: ArrayLike1D, *, lags: int = 5) -> tuple[pd.DataFrame, pd.Series]:
    """Features known at the close of bar ``t`` and the target ``r[t+1] > 0``.

    Features: ``r[t], r[t-1], ..., r[t-lags+1]`` and the mean absolute return over the same
    lags. The last row (whose target is unknown) is kept with target NaN.

    Examples
    --------
    >>> X, y = direction_features(np.array([0.1, -0.2, 0.3, 0.1]), lags=2)
    >>> X.columns.tolist(), y.tolist()
    (['lag0', 'lag1', 'absmean'], [0.0, 1.0, 1.0, nan])
    """
    lags = check_int(lags, "lags")
    v, _, _ = as_array(returns, "returns")
    r = pd.Series(v)
    cols = {f"lag{k}": r.shift(k) for k in range(lags)}
    X = pd.DataFrame(cols)
    X["absmean"] = r.abs().rolling(lags).mean()
    nxt = r.shift(-1)
    y = (nxt > 0).astype(np.float64).where(nxt.notna())
    return X, y


def _estimator(model: str, seed: int) -> Pipeline:
    if model == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    from sklearn.ensemble import RandomForestClassifier

    return make_pipeline(
        StandardScaler(),
        RandomForestClassifier(n_estimators=100, min_samples_leaf=20, random_state=seed, n_jobs=1),
    )


def forecast_direction(
    returns: ArrayLike1D,
    *,
    lags: int = 5,
    n_splits: int = 5,
    model: ForecastModel = "logistic",
    seed: int = 0,
) -> DirectionForecast:
    """Walk-forward accuracy of predicting the sign of the next return.

    Parameters
    ----------
    returns : Series or ndarray
        Per-bar returns (rows with missing features or target are dropped).
    lags : int
        Lagged returns used as features.
    n_splits : int
        ``TimeSeriesSplit`` folds: each trains on everything before its test block.
    model : {"logistic", "random_forest"}
    seed : int
        Random-forest seed.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> e = rng.standard_normal(3000)
    >>> r = np.zeros(3000)
    >>> for t in range(1, 3000):
    ...     r[t] = 0.6 * r[t - 1] + e[t]
    >>> forecast_direction(r).edge > 0.1
    True
    """
    check_choice(model, "model", ("logistic", "random_forest"))
    n_splits = check_int(n_splits, "n_splits", minimum=2)
    X, y = direction_features(returns, lags=lags)
    ok = X.notna().all(axis=1) & y.notna()
    Xv, yv = X[ok].to_numpy(), y[ok].to_numpy().astype(int)
    if yv.size < 10 * (n_splits + 1):
        raise ValidationError("returns", yv.size, f"too few usable rows for {n_splits} splits")
    accs, bases, n_test = [], [], 0
    splits = list(TimeSeriesSplit(n_splits=n_splits).split(Xv))
    for train, test in splits:
        ytr = yv[train]
        majority = int(ytr.mean() >= 0.5)
        if np.unique(ytr).size < 2:
            pred = np.full(test.size, majority)
        else:
            pred = _estimator(model, seed).fit(Xv[train], ytr).predict(Xv[test])
        accs.append(float((pred == yv[test]).mean()))
        bases.append(float((yv[test] == majority).mean()))
        n_test += test.size
    weights = np.array([t.size for _, t in splits], dtype=np.float64)
    acc = float(np.average(accs, weights=weights))
    base = float(np.average(bases, weights=weights))
    last = X.iloc[[-1]].to_numpy()
    prob = float("nan")
    if np.unique(yv).size == 2 and np.isfinite(last).all():
        prob = float(_estimator(model, seed).fit(Xv, yv).predict_proba(last)[0, 1])
    return DirectionForecast(
        model=model,
        lags=lags,
        accuracy=acc,
        baseline_accuracy=base,
        edge=acc - base,
        fold_accuracy=tuple(accs),
        fold_baseline=tuple(bases),
        n_train_first=int(splits[0][0].size),
        n_test=n_test,
        next_up_probability=prob,
    )
