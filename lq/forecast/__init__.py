"""The forecasting lab: short-term forecasts that are evaluated honestly (issue 14).

Pure parts (no I/O): :mod:`~lq.forecast.targets`, :mod:`~lq.forecast.features`,
:mod:`~lq.forecast.causality`, :mod:`~lq.forecast.models`, :mod:`~lq.forecast.walkforward`,
:mod:`~lq.forecast.evaluate`. See ``docs/forecast.md``.
"""

from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names, for type checkers and editors
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

# Imported on first use: the collector's forecast hook needs only lq.forecast.live, and the
# lab's modules pull in scipy, statsmodels, arch and scikit-learn (300 MB of a collector's RSS).
_LAZY: dict[str, str] = {
    "CausalityReport": "causality",
    "check_causality": "causality",
    "DMResult": "evaluate",
    "Evaluation": "evaluate",
    "TradingEvaluation": "evaluate",
    "calibration_curve": "evaluate",
    "diebold_mariano": "evaluate",
    "evaluate": "evaluate",
    "losses": "evaluate",
    "scores": "evaluate",
    "trading_evaluation": "evaluate",
    "FEATURE_VERSION": "features",
    "FeatureParams": "features",
    "Features": "features",
    "FeatureSpec": "features",
    "FeatureState": "features",
    "build_features": "features",
    "Forecaster": "models",
    "available_models": "models",
    "default_baselines": "models",
    "make_model": "models",
    "Target": "targets",
    "TargetSpec": "targets",
    "make_target": "targets",
    "Predictions": "walkforward",
    "WalkForwardConfig": "walkforward",
    "make_folds": "walkforward",
    "walk_forward": "walkforward",
}

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


class _Package(types.ModuleType):
    """Keeps a public name when a submodule of the same name is first imported later
    (``lq.forecast.evaluate`` the function, not the module), as the eager imports did."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'lq.forecast' has no attribute {name!r}")
    value = getattr(import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value
