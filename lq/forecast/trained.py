"""A deployable model: fitted estimator + its baseline + everything needed to rebuild its
inputs (feature spec, learned feature parameters, target, symbol, bar interval).

:func:`train_model` fits on every usable row of the bars it is given (after a lab run has
shown, out of sample, whether the model is worth it). :meth:`TrainedModel.score` scores
bars in batch; :meth:`TrainedModel.live` returns a :class:`~lq.forecast.live.LiveScorer`
that scores bars one at a time as they close, with the same numbers.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from lq.errors import ValidationError
from lq.forecast._common import bar_times_us, infer_interval_us
from lq.forecast.features import FeatureParams, FeatureSpec, build_features
from lq.forecast.models import Forecaster, default_baselines, make_model
from lq.forecast.targets import TargetSpec, make_target
from lq.forecast.walkforward import usable_rows

__all__ = ["TrainedModel", "train_model"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainedModel:
    """A model fitted on all usable rows, with its baseline (the live comparison).

    Attributes
    ----------
    name
        Label used when deployed (``btcusdt-sign-1s``).
    model, baseline
        Names of the model and of the baseline it is compared with live.
    estimator, baseline_estimator
        The fitted :class:`~lq.forecast.models.Forecaster` objects.
    features, params, target
        What the inputs are, their learned parameters, and what is forecast.
    symbol, pair, interval_us
        The bars it reads.
    trained_from, trained_to, n_train
        The training rows (bar open times in µs).
    evaluation
        The out-of-sample summary it was deployed with (``Evaluation.to_dict()``), if any.
    """

    name: str
    model: str
    baseline: str
    estimator: Forecaster
    baseline_estimator: Forecaster
    features: FeatureSpec
    params: FeatureParams
    target: TargetSpec
    symbol: str
    pair: str | None
    interval_us: int
    trained_from: int
    trained_to: int
    n_train: int
    evaluation: Mapping[str, Any] | None = None
    created_ts: int = dataclasses.field(default_factory=lambda: time.time_ns() // 1000)

    def predict(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(forecast, baseline)`` for feature rows without missing values."""
        return self.estimator.predict(X), self.baseline_estimator.predict(X)

    def score(self, bars: pd.DataFrame, pair_bars: pd.DataFrame | None = None) -> pd.DataFrame:
        """Forecasts for every bar: columns ``forecast`` and ``baseline`` (NaN where a
        feature is not yet defined)."""
        X = build_features(bars, self.features, pair_bars=pair_bars, params=self.params).X
        ok = np.isfinite(X.to_numpy(dtype=np.float64)).all(axis=1)
        f = np.full(len(X), np.nan)
        b = np.full(len(X), np.nan)
        if ok.any():
            f[ok], b[ok] = self.predict(X[ok])
        return pd.DataFrame({"forecast": f, "baseline": b}, index=bars.index)

    def live(self, **kw: Any) -> Any:
        """A :class:`~lq.forecast.live.LiveScorer` for this model."""
        from lq.forecast.live import LiveScorer

        return LiveScorer(self, **kw)

    def describe(self) -> str:
        pair = f" vs {self.pair}" if self.pair else ""
        return (
            f"{self.name}: {self.model} forecasting {self.target.describe()} of "
            f"{self.symbol}{pair} on {self.interval_us / 1e6:g} s bars (baseline {self.baseline}, "
            f"{self.n_train:,} training rows)"
        )

    def save(self, path: Any) -> Any:
        """Save to ``path`` (see :func:`lq.forecast.persist.save_model`)."""
        from lq.forecast.persist import save_model

        return save_model(self, path)


def train_model(
    bars: pd.DataFrame,
    *,
    target: TargetSpec | None = None,
    features: FeatureSpec | None = None,
    model: str = "boosted",
    baseline: str | None = None,
    pair_bars: pd.DataFrame | None = None,
    params: FeatureParams | None = None,
    name: str | None = None,
    symbol: str | None = None,
    evaluation: Mapping[str, Any] | None = None,
    seed: int = 0,
    **estimator_params: Any,
) -> TrainedModel:
    """Fit ``model`` and ``baseline`` on every usable row of ``bars``.

    ``baseline`` defaults to ``evaluation["best_baseline"]`` when an evaluation is given,
    else the first applicable baseline.
    """
    target = TargetSpec() if target is None else target
    features = FeatureSpec() if features is None else features
    F = build_features(bars, features, pair_bars=pair_bars, params=params)
    tg = make_target(bars, target)
    rows = usable_rows(F.X, tg.y, tg.end)
    if rows.size < 10:
        raise ValidationError("bars", rows.size, "fewer than 10 usable rows to train on")
    X = F.X.iloc[rows]
    y = tg.y.to_numpy()[rows]
    interval = infer_interval_us(bars)
    hb = target.horizon_bars(interval)
    if baseline is None:
        if evaluation and evaluation.get("best_baseline"):
            baseline = str(evaluation["best_baseline"])
        else:
            choices = default_baselines(target, features.names)
            if not choices:
                raise ValidationError("baseline", None, f"no baseline applies to {target.kind}")
            baseline = choices[0]
    est = make_model(model, target, horizon_bars=hb, params=F.params, seed=seed, **estimator_params)
    base = make_model(baseline, target, horizon_bars=hb, params=F.params, seed=seed)
    est.fit(X, y)
    base.fit(X, y)
    sym = (symbol or str(bars.attrs.get("symbol") or "asset")).upper()
    ts = bar_times_us(bars)
    return TrainedModel(
        name=name or f"{sym.lower()}-{target.kind}-{model}",
        model=model,
        baseline=baseline,
        estimator=est,
        baseline_estimator=base,
        features=features,
        params=F.params,
        target=target,
        symbol=sym,
        pair=features.pair,
        interval_us=interval,
        trained_from=int(ts[rows[0]]),
        trained_to=int(ts[rows[-1]]),
        n_train=int(rows.size),
        evaluation=dict(evaluation) if evaluation else None,
    )
