"""The lab in one call: features, target, walk-forward of models and baselines, the
evaluation, the cost-aware trading evaluation and the causality check.

>>> lab = run_lab(bars, target=TargetSpec(kind="sign", horizon=1))   # doctest: +SKIP
>>> lab.evaluation.verdict()                                          # doctest: +SKIP
'boosted does not beat the best baseline majority: log_loss 0.6934 vs 0.6931, ...'
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import pandas as pd

from lq.backtest._config import content_hash
from lq.errors import ValidationError
from lq.forecast._common import infer_interval_us
from lq.forecast.causality import CausalityReport, check_causality
from lq.forecast.evaluate import Evaluation, TradingEvaluation, evaluate, trading_evaluation
from lq.forecast.features import FeatureParams, FeatureSpec, build_features
from lq.forecast.models import BASELINES, default_baselines, make_model
from lq.forecast.targets import Target, TargetSpec, make_target
from lq.forecast.trained import TrainedModel, train_model
from lq.forecast.walkforward import Predictions, WalkForwardConfig, walk_forward

__all__ = ["LabResult", "run_lab"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LabResult:
    """Everything a lab run found (see :func:`run_lab`)."""

    symbol: str
    interval_us: int
    target: TargetSpec
    features: FeatureSpec
    walk: WalkForwardConfig
    models: tuple[str, ...]
    baselines: tuple[str, ...]
    X: pd.DataFrame
    y: Target
    params: FeatureParams
    predictions: dict[str, Predictions]
    evaluation: Evaluation
    trading: TradingEvaluation | None
    causality: CausalityReport | None
    costs: Any
    model_params: dict[str, dict[str, Any]]

    @property
    def id(self) -> str:
        """Content hash of the settings and the data range."""
        idx = self.X.index
        return content_hash(
            {
                "symbol": self.symbol,
                "interval_us": self.interval_us,
                "target": self.target.to_dict(),
                "features": self.features.to_dict(),
                "walk": self.walk.to_dict(),
                "models": list(self.models),
                "baselines": list(self.baselines),
                "model_params": self.model_params,
                "start": str(idx[0]) if len(idx) else None,
                "end": str(idx[-1]) if len(idx) else None,
                "rows": len(idx),
            }
        )

    def summary(self) -> pd.DataFrame:
        """Pooled scores, the DM test against the best baseline and, when the target can be
        traded, the trading metrics after costs: one row per model."""
        out = self.evaluation.pooled.copy()
        dm = self.evaluation.dm
        if not dm.empty:
            out = out.join(dm[["statistic", "p_value", "beats_baseline"]].add_prefix("dm_"))
        if self.trading is not None:
            t = self.trading.table.drop(columns=["kind"])
            out = out.join(t.add_prefix("trade_"), how="outer")
        return out

    def train(
        self,
        model: str | None = None,
        *,
        bars: pd.DataFrame,
        pair_bars: pd.DataFrame | None = None,
        name: str | None = None,
    ) -> TrainedModel:
        """Fit ``model`` (default the best learned model) on all of ``bars``, with the
        best baseline of this run as its live comparison."""
        m = model or self.evaluation.best_model
        if m in BASELINES:
            raise ValidationError("model", m, "is a baseline: nothing to deploy (no model beat it)")
        return train_model(
            bars,
            target=self.target,
            features=self.features,
            model=m,
            baseline=self.evaluation.best_baseline,
            pair_bars=pair_bars,
            name=name,
            symbol=self.symbol,
            evaluation={**self.evaluation.to_dict(), "lab_id": self.id},
            **self.model_params.get(m, {}),
        )

    def record(self) -> dict[str, Any]:
        """The JSON object stored for this run (see :func:`lq.forecast.runs.record_lab`)."""
        trade = None
        if self.trading is not None:
            best = self.evaluation.best_model
            row = self.trading.table.loc[best] if best in self.trading.table.index else None
            trade = None if row is None else {k: _f(v) for k, v in row.items() if k != "kind"}
        return {
            "kind": "forecast",
            "result_id": self.id,
            "symbol": self.symbol,
            "interval_us": self.interval_us,
            "target": self.target.to_dict(),
            "features": self.features.to_dict(),
            "walk": self.walk.to_dict(),
            "models": list(self.models),
            "baselines": list(self.baselines),
            "evaluation": self.evaluation.to_dict(),
            "trading": None
            if self.trading is None
            else {
                str(i): {k: _f(v) for k, v in r.items() if k != "kind"}
                for i, r in self.trading.table.iterrows()
            },
            "metrics": trade or {},
            "costs": None if self.costs is None else self.costs.to_dict(),
            "causality_passed": None if self.causality is None else self.causality.passed,
            "start": str(self.X.index[0]) if len(self.X) else None,
            "end": str(self.X.index[-1]) if len(self.X) else None,
            "config": {"symbols": [self.symbol]},
        }


def _f(v: Any) -> Any:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return v
    return x if x == x and abs(x) != float("inf") else None


def run_lab(
    bars: pd.DataFrame,
    *,
    target: TargetSpec | None = None,
    features: FeatureSpec | None = None,
    models: Sequence[str] = ("linear", "boosted"),
    baselines: Sequence[str] | None = None,
    walk: WalkForwardConfig | None = None,
    pair_bars: pd.DataFrame | None = None,
    costs: Any = None,
    threshold: float = 0.0,
    check: bool = True,
    alpha: float = 0.05,
    seed: int = 0,
    model_params: Mapping[str, Mapping[str, Any]] | None = None,
    symbol: str | None = None,
    workers: int = 1,
) -> LabResult:
    """Run the whole lab on ``bars`` (see the module docstring).

    ``baselines`` default to every baseline that applies (:func:`default_baselines`);
    ``model_params`` maps a model name to its estimator parameters; ``check`` runs the
    causality check on the features; ``costs`` (a :class:`lq.backtest.Costs`) are used by
    the trading evaluation, which is skipped for volatility targets; ``workers``
    processes fit the walk-forward blocks.
    """
    target = TargetSpec() if target is None else target
    features = FeatureSpec() if features is None else features
    walk = WalkForwardConfig() if walk is None else walk
    mp = {k: dict(v) for k, v in (model_params or {}).items()}
    F = build_features(bars, features, pair_bars=pair_bars)
    tg = make_target(bars, target)
    interval = infer_interval_us(bars)
    hb = target.horizon_bars(interval)
    bl = list(baselines) if baselines is not None else default_baselines(target, features.names)
    if not bl:
        raise ValidationError("baselines", bl, f"no baseline applies to a {target.kind} target")
    factories: dict[str, Any] = {}
    for name in [*bl, *models]:
        if name in factories:
            raise ValidationError("models", name, "listed twice")
        factories[name] = partial(
            make_model,
            name,
            target,
            horizon_bars=hb,
            params=F.params,
            seed=seed,
            **mp.get(name, {}),
        )
        factories[name]()  # refuse a bad name or parameter before any fold runs
    preds = walk_forward(F.X, tg.y, tg.end, factories, walk, workers=workers)
    ev = evaluate(preds, target, h=target.overlap(interval), alpha=alpha)
    trading = None
    if target.kind != "volatility":
        trading = trading_evaluation(bars, preds, target, costs=costs, threshold=threshold)
    report = None
    if check:

        def feats(b: pd.DataFrame, p: pd.DataFrame | None = None) -> pd.DataFrame:
            return build_features(b, features, pair_bars=p).X

        report = check_causality(feats, bars, pair_bars=pair_bars)
        if not report.passed:
            log.error("features read the future: %s", report.leaky)
    return LabResult(
        symbol=(symbol or str(bars.attrs.get("symbol") or "asset")).upper(),
        interval_us=interval,
        target=target,
        features=features,
        walk=walk,
        models=tuple(models),
        baselines=tuple(bl),
        X=F.X,
        y=tg,
        params=F.params,
        predictions=preds,
        evaluation=ev,
        trading=trading,
        causality=report,
        costs=costs,
        model_params=mp,
    )
