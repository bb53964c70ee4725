"""Forecasting models behind one small interface, naive baselines first.

A model is made unfitted by :func:`make_model` and used as ``model.fit(X, y)`` then
``model.predict(X)``: for a sign target the predicted probability that the move is up,
otherwise the predicted value (return, or volatility > 0). ``X`` is a feature frame of
:func:`lq.forecast.build_features` (no missing values: walk-forward drops those rows), ``y``
the target. Every model carries its own preprocessing: learned models are scikit-learn
``Pipeline`` objects (a ``StandardScaler`` inside), fitted on the training rows they are
given and nothing else, so a fresh model per fold can never see test data.

=================  ============  ======================================================
name               targets       what it predicts
=================  ============  ======================================================
``zero``           return        0 (the random walk's forecast)
``majority``       sign          the training up-rate, a constant probability
``last_sign``      sign          ``P(up | sign of the last return)`` from training counts
``ewma``           volatility    EWMA volatility (``ewma_vol``) times ``sqrt(horizon)``
``garch``          volatility    GARCH(1,1) forecast of the horizon's volatility
``linear``         all           logistic regression (L2, ``C``) or ridge (``alpha``)
``boosted``        all           scikit-learn ``HistGradientBoosting*``
``lightgbm``       all           LightGBM's ``LGBM*`` (when ``lightgbm`` is installed)
=================  ============  ======================================================

The volatility baselines are scaled on their training rows by one number (the ratio of
mean squared target to mean squared raw forecast), so their units match the target's:
a baseline is never handicapped by a units mismatch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from lq.errors import ValidationError
from lq.forecast.features import FeatureParams
from lq.forecast.targets import TargetSpec

__all__ = [
    "BASELINES",
    "LEARNED",
    "Forecaster",
    "available_models",
    "default_baselines",
    "make_model",
]

ModelKind = Literal["baseline", "learned"]

BASELINES: dict[str, tuple[str, ...]] = {
    "zero": ("return",),
    "majority": ("sign",),
    "last_sign": ("sign",),
    "ewma": ("volatility",),
    "garch": ("volatility",),
}
LEARNED: tuple[str, ...] = ("linear", "boosted", "lightgbm")


class Forecaster(Protocol):
    """The interface every model has."""

    name: str
    kind: ModelKind

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Forecaster: ...

    def predict(self, X: pd.DataFrame) -> np.ndarray: ...

    def row_predictor(self) -> Callable[[np.ndarray], float]: ...


def available_models(target: TargetSpec) -> list[str]:
    """Names usable for ``target`` (``lightgbm`` only when installed)."""
    out = [b for b, kinds in BASELINES.items() if target.kind in kinds]
    out += ["linear", "boosted"]
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        pass
    else:
        out.append("lightgbm")
    return out


def default_baselines(target: TargetSpec, features: list[str] | tuple[str, ...]) -> list[str]:
    """Every baseline that applies to ``target`` and whose input feature exists."""
    out = []
    for b, kinds in BASELINES.items():
        if target.kind not in kinds:
            continue
        if b == "ewma" and "ewma_vol" not in features:
            continue
        if b == "garch" and "garch_vol" not in features:
            continue
        if b == "last_sign" and "ret_0" not in features:
            continue
        out.append(b)
    return out


def _col(X: pd.DataFrame, name: str, model: str, hint: str) -> np.ndarray:
    if name not in X.columns:
        raise ValidationError("features", list(X.columns), f"model {model!r} needs {name} ({hint})")
    return X[name].to_numpy(dtype=np.float64)


# ------------------------------------------------------------------------------ baselines
class ZeroReturn:
    """Predicts a zero return."""

    kind: ModelKind = "baseline"

    def __init__(self) -> None:
        self.name = "zero"

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> ZeroReturn:
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(X))

    def row_predictor(self) -> Callable[[np.ndarray], float]:
        return lambda row: 0.0


class MajorityClass:
    """The training up-rate as a constant probability (its class is the majority)."""

    kind: ModelKind = "baseline"

    def __init__(self) -> None:
        self.name = "majority"
        self.p_up = math.nan

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> MajorityClass:
        y = np.asarray(y, dtype=np.float64)
        if y.size == 0:
            raise ValidationError("y", 0, "no training rows")
        self.p_up = float(y.mean())
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.full(len(X), self.p_up)

    def row_predictor(self) -> Callable[[np.ndarray], float]:
        p = self.p_up
        return lambda row: p


class LastSign:
    """``P(up | sign of the last return)``, counted on the training rows (+1 smoothing)."""

    kind: ModelKind = "baseline"

    def __init__(self) -> None:
        self.name = "last_sign"
        self.table = {-1: 0.5, 0: 0.5, 1: 0.5}

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> LastSign:
        self.columns = list(X.columns)
        s = np.sign(_col(X, "ret_0", self.name, "FeatureSpec.lags >= 1"))
        y = np.asarray(y, dtype=np.float64)
        self.table = {
            int(k): float((y[s == k].sum() + 1.0) / ((s == k).sum() + 2.0)) for k in (-1, 0, 1)
        }
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        s = np.sign(_col(X, "ret_0", self.name, "FeatureSpec.lags >= 1"))
        out = np.full(s.size, self.table[0])
        out[s > 0] = self.table[1]
        out[s < 0] = self.table[-1]
        return out

    def row_predictor(self) -> Callable[[np.ndarray], float]:
        i = self.columns.index("ret_0")
        up, flat, down = self.table[1], self.table[0], self.table[-1]

        def f(row: np.ndarray) -> float:
            v = row[i]
            return up if v > 0 else down if v < 0 else flat

        return f


class _ScaledVol:
    """A raw volatility forecast times one scale fitted on the training rows."""

    kind: ModelKind = "baseline"
    name = "vol"

    def __init__(self) -> None:
        self.scale = 1.0

    def raw(self, X: pd.DataFrame) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> _ScaledVol:
        self.columns = list(X.columns)
        raw = self.raw(X)
        y = np.asarray(y, dtype=np.float64)
        den = float(np.mean(raw * raw))
        self.scale = math.sqrt(float(np.mean(y * y)) / den) if den > 0 else 1.0
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.maximum(self.scale * self.raw(X), 1e-300)

    def row_predictor(self) -> Callable[[np.ndarray], float]:
        def f(row: np.ndarray) -> float:
            return max(self.scale * self.raw_row(row), 1e-300)

        return f

    def raw_row(self, row: np.ndarray) -> float:  # pragma: no cover - overridden
        raise NotImplementedError


class EWMAVolBaseline(_ScaledVol):
    """``ewma_vol * sqrt(h)`` (RiskMetrics' square-root-of-time rule)."""

    def __init__(self, horizon_bars: float) -> None:
        super().__init__()
        self.name = "ewma"
        self.h = float(horizon_bars)

    def raw(self, X: pd.DataFrame) -> np.ndarray:
        return _col(X, "ewma_vol", self.name, "FeatureSpec.ewma_lam") * math.sqrt(self.h)

    def raw_row(self, row: np.ndarray) -> float:
        return float(row[self.columns.index("ewma_vol")]) * math.sqrt(self.h)


class GARCHVolBaseline(_ScaledVol):
    """The GARCH(1,1) forecast of the variance summed over the next ``h`` bars:
    ``h * vbar + (s1 - vbar) * (1 - phi**h) / (1 - phi)``, ``phi = alpha + beta``."""

    def __init__(self, horizon_bars: float, params: FeatureParams | None) -> None:
        super().__init__()
        self.name = "garch"
        self.h = float(horizon_bars)
        if params is None or params.garch is None:
            raise ValidationError(
                "params", params, "the garch baseline needs FeatureSpec(garch=True)"
            )
        _, omega, alpha, beta, _ = params.garch
        self.phi = alpha + beta
        self.vbar = omega / (1.0 - self.phi) if self.phi < 0.999 else math.nan

    def raw(self, X: pd.DataFrame) -> np.ndarray:
        s1 = _col(X, "garch_vol", self.name, "FeatureSpec.garch") ** 2
        h, phi = self.h, self.phi
        if not math.isfinite(self.vbar):
            return np.sqrt(s1 * h)
        total = h * self.vbar + (s1 - self.vbar) * (1.0 - phi**h) / (1.0 - phi)
        return np.sqrt(np.maximum(total, 0.0))

    def raw_row(self, row: np.ndarray) -> float:
        s1 = float(row[self.columns.index("garch_vol")]) ** 2
        h, phi = self.h, self.phi
        if not math.isfinite(self.vbar):
            return math.sqrt(s1 * h)
        total = h * self.vbar + (s1 - self.vbar) * (1.0 - phi**h) / (1.0 - phi)
        return math.sqrt(max(total, 0.0))


# -------------------------------------------------------------------------------- learned
def _threads(n: int) -> Any:
    """Limit OpenMP/BLAS threads while fitting: gradient boosting's OpenMP workers spin
    while they wait, and on a machine already busy (another fit, a collector, a browser)
    that costs ~25x (measured: one HistGradientBoosting fit on 20k rows took 121 s with
    its default threads on a loaded 2-core machine, 4.5 s on one thread). Parallelism comes
    from fitting folds in separate processes instead (``walk_forward(workers=2)``)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n)


class Learned:
    """A scikit-learn (or LightGBM) estimator, fitted per call of :meth:`fit`."""

    kind: ModelKind = "learned"

    def __init__(
        self, name: str, target: TargetSpec, params: dict[str, Any], seed: int, threads: int = 1
    ) -> None:
        self.name = name
        self.threads = int(threads)
        self.target = target
        self.params = dict(params)
        self.seed = seed
        self.estimator: Any = None
        self.floor = 0.0
        self.smear = 1.0
        self.constant: float | None = None

    def _make(self) -> Any:
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        cls_task = self.target.task == "classification"
        p = dict(self.params)
        if self.name == "linear":
            if cls_task:
                from sklearn.linear_model import LogisticRegression

                return make_pipeline(
                    StandardScaler(), LogisticRegression(C=p.pop("C", 1.0), max_iter=2000, **p)
                )
            from sklearn.linear_model import Ridge

            return make_pipeline(StandardScaler(), Ridge(alpha=p.pop("alpha", 1.0), **p))
        if self.name == "boosted":
            from sklearn.ensemble import HistGradientBoostingClassifier as HGBC
            from sklearn.ensemble import HistGradientBoostingRegressor as HGBR

            defaults: dict[str, Any] = {
                "max_iter": 100,
                "learning_rate": 0.05,
                "max_leaf_nodes": 7,
                "min_samples_leaf": 200,
                "l2_regularization": 1.0,
                "early_stopping": False,
                "random_state": self.seed,
            }
            if self.target.kind == "volatility":
                defaults["loss"] = "gamma"  # fitted to the variance: QLIKE's own deviance
            defaults.update(p)
            return (HGBC if cls_task else HGBR)(**defaults)
        if self.name == "lightgbm":
            try:
                import lightgbm as lgb
            except ImportError:
                raise ValidationError(
                    "model", "lightgbm", "lightgbm is not installed (pip install lightgbm)"
                ) from None
            lgb_defaults: dict[str, Any] = {
                "n_estimators": 100,
                "learning_rate": 0.05,
                "num_leaves": 7,
                "min_child_samples": 200,
                "reg_lambda": 1.0,
                "random_state": self.seed,
                "n_jobs": self.threads,
                "verbose": -1,
                "deterministic": True,
                "force_row_wise": True,
            }
            if self.target.kind == "volatility":
                lgb_defaults["objective"] = "gamma"
            lgb_defaults.update(p)
            return (lgb.LGBMClassifier if cls_task else lgb.LGBMRegressor)(**lgb_defaults)
        raise ValidationError("model", self.name, f"unknown; learned models: {list(LEARNED)}")

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Learned:
        with _threads(self.threads):
            return self._fit(X, y)

    def _fit(self, X: pd.DataFrame, y: np.ndarray) -> Learned:
        y = np.asarray(y, dtype=np.float64)
        if y.size == 0:
            raise ValidationError("y", 0, f"model {self.name!r}: no training rows")
        Xv = X.to_numpy(dtype=np.float64)
        self.columns = list(X.columns)
        self.constant = None
        if self.target.task == "classification":
            yi = y.astype(np.int64)
            if np.unique(yi).size < 2:  # one class only: predict its rate
                self.constant = float(yi.mean())
                return self
            self.estimator = self._make().fit(Xv, yi)
        elif self.target.kind == "volatility":
            # volatility models learn the variance (QLIKE compares variances): boosted trees
            # with the gamma deviance, ridge on its log with Duan's smearing correction;
            # a tiny floor keeps a zero realised variance (no move in the horizon) finite
            v = y * y
            self.floor = 1e-6 * float(v.mean()) if v.mean() > 0 else 1e-30
            v = v + self.floor
            if self.name == "linear":
                lv = np.log(v)
                self.estimator = self._make().fit(Xv, lv)
                resid = lv - self.estimator.predict(Xv)
                self.smear = float(np.mean(np.exp(resid)))
            else:
                self.estimator = self._make().fit(Xv, v)
        else:
            self.estimator = self._make().fit(Xv, y)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        with _threads(self.threads):
            return self._predict(X)

    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.constant is not None:
            return np.full(len(X), self.constant)
        if self.estimator is None:
            raise ValidationError("model", self.name, "not fitted: call fit(X, y) first")
        Xv = X.to_numpy(dtype=np.float64)
        if self.target.task == "classification":
            p = self.estimator.predict_proba(Xv)
            return np.asarray(p[:, 1], dtype=np.float64)
        out = np.asarray(self.estimator.predict(Xv), dtype=np.float64)
        if self.target.kind == "volatility":
            var = np.exp(out) * self.smear if self.name == "linear" else out
            out = np.sqrt(np.maximum(var, self.floor))
        return out

    def row_predictor(self) -> Callable[[np.ndarray], float]:
        """A fast one-row predictor for live scoring: the fitted linear model or trees
        evaluated directly (the same numbers as :meth:`predict` to rounding; tested)."""
        if self.constant is not None:
            c = self.constant
            return lambda row: c
        from lq.forecast._fast import compile_estimator

        raw = compile_estimator(self.estimator)
        if self.target.kind != "volatility":
            return raw
        floor, smear, log = self.floor, self.smear, self.name == "linear"

        def f(row: np.ndarray) -> float:
            v = raw(row)
            return math.sqrt(max(math.exp(v) * smear if log else v, floor))

        return f


def make_model(
    name: str,
    target: TargetSpec,
    *,
    horizon_bars: float = 1.0,
    params: FeatureParams | None = None,
    seed: int = 0,
    threads: int = 1,
    **estimator_params: Any,
) -> Forecaster:
    """A fresh, unfitted model ``name`` for ``target`` (see the module docstring).

    ``horizon_bars`` (the horizon in bars) and ``params`` (learned feature parameters) are
    used by the volatility baselines; ``threads`` limits a learned model's OpenMP/BLAS
    threads while it fits and predicts; ``estimator_params`` go to the learned model's
    estimator (e.g. ``C=0.1`` for ``linear`` on a sign target, ``max_iter=300``).
    """
    if not isinstance(target, TargetSpec):
        raise ValidationError("target", type(target).__name__, "expected a TargetSpec")
    if name in BASELINES:
        if target.kind not in BASELINES[name]:
            raise ValidationError(
                "model",
                name,
                f"is a baseline for {list(BASELINES[name])} targets, not {target.kind}",
            )
        if estimator_params:
            raise ValidationError(
                "model", name, f"a baseline takes no parameters: {estimator_params}"
            )
        if name == "zero":
            return ZeroReturn()
        if name == "majority":
            return MajorityClass()
        if name == "last_sign":
            return LastSign()
        if name == "ewma":
            return EWMAVolBaseline(horizon_bars)
        return GARCHVolBaseline(horizon_bars, params)
    if name in LEARNED:
        m = Learned(name, target, estimator_params, seed, threads)
        m._make()  # refuse bad parameters now, not inside a fold
        return m
    raise ValidationError(
        "model", name, f"unknown; baselines {list(BASELINES)}, learned {list(LEARNED)}"
    )
