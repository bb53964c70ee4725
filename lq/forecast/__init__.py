"""The forecasting lab: short-term forecasts that are evaluated honestly (issue 14).

Pure parts (no I/O): :mod:`~lq.forecast.targets`, :mod:`~lq.forecast.features`,
:mod:`~lq.forecast.causality`, :mod:`~lq.forecast.models`, :mod:`~lq.forecast.walkforward`,
:mod:`~lq.forecast.evaluate`. See ``docs/forecast.md``.
"""

from __future__ import annotations

from lq.forecast.causality import CausalityReport, check_causality
from lq.forecast.evaluate import (
    DMResult,
    Evaluation,
    TradingEvaluation,
    calibration_curve,
    diebold_mariano,
    evaluate,
    losses,
    scores,
    trading_evaluation,
)
from lq.forecast.features import (
    FEATURE_VERSION,
    FeatureParams,
    Features,
    FeatureSpec,
    FeatureState,
    build_features,
)
from lq.forecast.models import Forecaster, available_models, default_baselines, make_model
from lq.forecast.targets import Target, TargetSpec, make_target
from lq.forecast.walkforward import Predictions, WalkForwardConfig, make_folds, walk_forward

__all__ = [
    "FEATURE_VERSION",
    "CausalityReport",
    "DMResult",
    "Evaluation",
    "FeatureParams",
    "FeatureSpec",
    "FeatureState",
    "Features",
    "Forecaster",
    "Predictions",
    "Target",
    "TargetSpec",
    "TradingEvaluation",
    "WalkForwardConfig",
    "available_models",
    "build_features",
    "calibration_curve",
    "check_causality",
    "default_baselines",
    "diebold_mariano",
    "evaluate",
    "losses",
    "make_folds",
    "make_model",
    "make_target",
    "scores",
    "trading_evaluation",
    "walk_forward",
]
