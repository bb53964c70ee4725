"""One-row predictors compiled from fitted estimators, for live scoring (<= 1 ms a bar).

scikit-learn's ``predict_proba`` validates its input and may start a thread pool on every
call: milliseconds for one row. Live scoring evaluates the fitted model directly instead:
a scaled dot product for the linear pipelines, a walk down each tree for the gradient
boosted models (in the order scikit-learn adds them, so the sums are the same). Anything
else falls back to the estimator itself on one thread. Tests check these against
``predict``/``predict_proba`` on many rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["compile_estimator"]


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _linear(est: Any) -> Callable[[np.ndarray], float] | None:
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not isinstance(est, Pipeline) or len(est.steps) != 2:
        return None
    sc, lm = est.steps[0][1], est.steps[1][1]
    if not isinstance(sc, StandardScaler):
        return None
    mean = np.asarray(sc.mean_, dtype=np.float64)
    scale = np.asarray(sc.scale_, dtype=np.float64)
    if isinstance(lm, LogisticRegression):
        if lm.coef_.shape[0] != 1:
            return None
        coef = np.asarray(lm.coef_[0], dtype=np.float64)
        b = float(lm.intercept_[0])
        return lambda row: _sigmoid(float(((row - mean) / scale) @ coef) + b)
    if isinstance(lm, Ridge):
        coef = np.asarray(lm.coef_, dtype=np.float64).ravel()
        b = float(np.asarray(lm.intercept_).ravel()[0])
        return lambda row: float(((row - mean) / scale) @ coef) + b
    return None


def _trees(est: Any) -> Callable[[np.ndarray], float] | None:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    if isinstance(est, HistGradientBoostingClassifier):
        if len(est.classes_) != 2:
            return None
        link: Callable[[float], float] = _sigmoid
    elif isinstance(est, HistGradientBoostingRegressor):
        if est.loss in ("squared_error", "absolute_error", "quantile"):
            link = float
        elif est.loss in ("gamma", "poisson"):
            link = math.exp
        else:
            return None
    else:
        return None
    trees = []
    for it in est._predictors:
        if len(it) != 1:
            return None
        nodes = it[0].nodes
        if bool(np.any(nodes["is_categorical"])):
            return None
        trees.append(
            (
                nodes["feature_idx"].tolist(),
                nodes["num_threshold"].tolist(),
                nodes["left"].tolist(),
                nodes["right"].tolist(),
                nodes["is_leaf"].tolist(),
                nodes["value"].tolist(),
                nodes["missing_go_to_left"].tolist(),
            )
        )
    base = float(np.asarray(est._baseline_prediction).ravel()[0])

    def raw(row: np.ndarray) -> float:
        x = row.tolist()
        total = base
        for f, t, left, right, leaf, val, miss in trees:
            i = 0
            while not leaf[i]:
                v = x[f[i]]
                if v != v:
                    i = left[i] if miss[i] else right[i]
                elif v <= t[i]:
                    i = left[i]
                else:
                    i = right[i]
            total += val[i]
        return link(total)

    return raw


def _fallback(est: Any) -> Callable[[np.ndarray], float]:
    from threadpoolctl import threadpool_limits

    proba = hasattr(est, "predict_proba")

    def f(row: np.ndarray) -> float:
        with threadpool_limits(1):
            if proba:
                return float(est.predict_proba(row[None, :])[0, 1])
            return float(est.predict(row[None, :])[0])

    return f


def compile_estimator(est: Any) -> Callable[[np.ndarray], float]:
    """``f(row) -> P(up)`` for a binary classifier, the prediction for a regressor."""
    return _linear(est) or _trees(est) or _fallback(est)
