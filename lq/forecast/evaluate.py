"""Does it beat doing nothing? Scores, the Diebold-Mariano test, calibration, and trading.

Scores per fold and pooled over all out-of-sample rows:

* sign targets: ``accuracy`` (up when ``p > 0.5``), ``auc``, ``log_loss`` and ``brier``;
* return targets: ``mae``, ``rmse`` and ``mse``;
* volatility targets: ``mae``, ``rmse`` and ``qlike`` (Patton's robust QLIKE on variances,
  ``log(f**2) + y**2 / f**2``, finite when the realised volatility is 0).

The *primary* loss (``log_loss``, ``mse``, ``qlike``) picks the best baseline, and every
other model's row-by-row loss is compared with it by the Diebold-Mariano test
(:func:`diebold_mariano`): a model **beats the baseline** only when its mean loss is lower
and the one-sided p-value is below ``alpha``.

:func:`trading_evaluation` turns forecasts into positions (long when the forecast says up,
short when it says down) and runs them through :func:`lq.backtest.run_backtest`, with fees
and slippage: a signal at a bar's close fills at the next bar's open.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from lq.errors import ValidationError
from lq.forecast.targets import TargetSpec
from lq.forecast.walkforward import Predictions

__all__ = [
    "DMResult",
    "Evaluation",
    "TradingEvaluation",
    "calibration_curve",
    "diebold_mariano",
    "evaluate",
    "losses",
    "primary_loss",
    "scores",
    "trading_evaluation",
]

Alternative = Literal["less", "greater", "two-sided"]
_EPS = 1e-15


# --------------------------------------------------------------------------- losses
def primary_loss(target: TargetSpec) -> str:
    """The loss that ranks models for ``target``."""
    return {"sign": "log_loss", "return": "mse", "volatility": "qlike"}[target.kind]


def losses(y: np.ndarray, pred: np.ndarray, target: TargetSpec) -> np.ndarray:
    """Row-by-row primary loss (what the Diebold-Mariano test compares)."""
    y = np.asarray(y, dtype=np.float64)
    f = np.asarray(pred, dtype=np.float64)
    if target.kind == "sign":
        p = np.clip(f, _EPS, 1.0 - _EPS)
        return -(y * np.log(p) + (1.0 - y) * np.log1p(-p))
    if target.kind == "return":
        return (y - f) ** 2
    v = np.maximum(f, 1e-300) ** 2
    return np.log(v) + (y * y) / v


def scores(y: np.ndarray, pred: np.ndarray, target: TargetSpec) -> dict[str, float]:
    """The scores of one set of forecasts (see the module docstring)."""
    y = np.asarray(y, dtype=np.float64)
    f = np.asarray(pred, dtype=np.float64)
    n = int(y.size)
    out: dict[str, float] = {"n": float(n)}
    if n == 0:
        return out
    if target.kind == "sign":
        from sklearn.metrics import roc_auc_score

        out["accuracy"] = float(np.mean((f > 0.5) == (y > 0.5)))
        out["auc"] = float(roc_auc_score(y, f)) if np.unique(y).size == 2 else math.nan
        out["log_loss"] = float(np.mean(losses(y, f, target)))
        out["brier"] = float(np.mean((f - y) ** 2))
        return out
    err = y - f
    out["mae"] = float(np.mean(np.abs(err)))
    out["rmse"] = float(math.sqrt(np.mean(err * err)))
    if target.kind == "return":
        out["mse"] = float(np.mean(err * err))
    else:
        out["qlike"] = float(np.mean(losses(y, f, target)))
    return out


# ------------------------------------------------------------------ Diebold-Mariano
@dataclasses.dataclass(frozen=True)
class DMResult:
    """Diebold-Mariano test of ``d = loss_a - loss_b``.

    ``statistic`` is HLN-corrected when ``correction`` was on (then compared with Student's
    t with ``n - 1`` degrees of freedom, else with the normal); ``mean_difference < 0``
    means ``a`` had the lower loss.
    """

    statistic: float
    p_value: float
    mean_difference: float
    n: int
    h: int
    alternative: str


def diebold_mariano(
    loss_a: np.ndarray,
    loss_b: np.ndarray,
    *,
    h: int = 1,
    alternative: Alternative = "two-sided",
    correction: bool = True,
) -> DMResult:
    """Diebold-Mariano (1995) test of equal predictive accuracy.

    ``d_t = loss_a[t] - loss_b[t]``; the long-run variance of ``d`` sums its
    autocovariances up to lag ``h - 1`` (forecasts ``h`` steps ahead overlap by ``h - 1``);
    if that sum is not positive, Bartlett weights are used instead. With ``correction``
    the statistic is multiplied by Harvey, Leybourne & Newbold's (1997) small-sample factor
    ``sqrt((n + 1 - 2h + h(h - 1)/n) / n)`` and compared with ``t(n - 1)``.

    ``alternative="less"``: ``a`` has lower expected loss (``a`` is better).

    Examples
    --------
    >>> r = diebold_mariano(np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 5.0, 5.0]))
    >>> round(r.statistic, 4), round(r.p_value, 4)
    (-2.4495, 0.0917)
    """
    a = np.asarray(loss_a, dtype=np.float64)
    b = np.asarray(loss_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValidationError("loss_b", b.shape, f"must match loss_a {a.shape} (1-D)")
    if isinstance(h, bool) or not isinstance(h, int) or h < 1:
        raise ValidationError("h", h, "must be an integer >= 1")
    if alternative not in ("less", "greater", "two-sided"):
        raise ValidationError("alternative", alternative, "less, greater or two-sided")
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    n = int(d.size)
    if n < max(3, h + 1):
        raise ValidationError("loss_a", n, f"need more than {max(2, h)} paired losses")
    dbar = float(d.mean())
    dc = d - dbar
    gam = [float(dc @ dc) / n] + [float(dc[k:] @ dc[:-k]) / n for k in range(1, h)]
    lrv = gam[0] + 2.0 * sum(gam[1:])
    if not lrv > 0:
        lrv = gam[0] + 2.0 * sum((1.0 - k / h) * g for k, g in enumerate(gam[1:], start=1))
    if not lrv > 0:
        stat = 0.0 if dbar == 0 else math.copysign(math.inf, dbar)
    else:
        stat = dbar / math.sqrt(lrv / n)
    if correction:
        stat *= math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
        dist: Any = stats.t(df=n - 1)
    else:
        dist = stats.norm()
    if alternative == "less":
        p = float(dist.cdf(stat))
    elif alternative == "greater":
        p = float(dist.sf(stat))
    else:
        p = float(2.0 * dist.sf(abs(stat)))
    return DMResult(float(stat), min(1.0, p), dbar, n, h, alternative)


# ---------------------------------------------------------------------- calibration
def calibration_curve(y: np.ndarray, p: np.ndarray, *, bins: int = 10) -> pd.DataFrame:
    """Reliability table of probability forecasts: equal-count bins of ``p``.

    Columns ``p_mean`` (mean forecast in the bin), ``frequency`` (observed up-rate) and
    ``count``; a calibrated forecast has ``frequency ≈ p_mean``. Same numbers as
    scikit-learn's ``calibration_curve(strategy="quantile")``.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.size == 0:
        return pd.DataFrame(columns=["p_mean", "frequency", "count"])
    edges = np.percentile(p, np.linspace(0, 100, bins + 1))
    ids = np.searchsorted(edges[1:-1], p, side="right")
    rows = []
    for k in range(bins):
        m = ids == k
        if m.any():
            rows.append(
                {
                    "p_mean": float(p[m].mean()),
                    "frequency": float(y[m].mean()),
                    "count": int(m.sum()),
                }
            )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------- evaluation
@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The answer to "does it beat doing nothing?" for a set of walk-forward forecasts.

    Attributes
    ----------
    pooled
        One row per model: its ``kind`` (baseline/learned) and scores over all test rows.
    per_fold
        One row per (model, fold).
    best_baseline
        The baseline with the lowest pooled primary loss.
    primary
        The primary loss' name.
    dm
        One row per other model: ``mean_difference`` (its loss minus the best baseline's),
        ``statistic``, ``p_value`` (one-sided: the model is better), ``p_two_sided``, and
        ``beats_baseline``.
    calibration
        ``{model: reliability table}`` for sign targets.
    """

    target: TargetSpec
    pooled: pd.DataFrame
    per_fold: pd.DataFrame
    best_baseline: str
    primary: str
    dm: pd.DataFrame
    calibration: dict[str, pd.DataFrame]
    alpha: float
    h: int

    def beats_baseline(self, model: str) -> bool:
        """True when ``model``'s loss is significantly below the best baseline's."""
        return bool(model in self.dm.index and self.dm.loc[model, "beats_baseline"])

    @property
    def best_model(self) -> str:
        """The learned model with the lowest pooled primary loss (or the best baseline)."""
        learned = self.pooled[self.pooled["kind"] == "learned"]
        if learned.empty:
            return self.best_baseline
        return str(learned[self.primary].idxmin())

    def verdict(self, model: str | None = None) -> str:
        """One sentence on whether ``model`` (default :attr:`best_model`) beats the baseline."""
        m = model or self.best_model
        pr, base = self.primary, self.best_baseline
        if m == base:
            return f"{m} is the best baseline ({pr} {self.pooled.loc[m, pr]:.6g})"
        r = self.dm.loc[m]
        word = "beats" if bool(r["beats_baseline"]) else "does not beat"
        return (
            f"{m} {word} the best baseline {base}: {pr} {self.pooled.loc[m, pr]:.6g} vs "
            f"{self.pooled.loc[base, pr]:.6g}, Diebold-Mariano {r['statistic']:.2f} "
            f"(p = {r['p_value']:.3g}, one-sided, h = {self.h}, n = {int(r['n'])})"
        )

    def to_dict(self) -> dict[str, Any]:
        def table(df: pd.DataFrame) -> dict[str, Any]:
            return {str(i): {str(k): _plain(v) for k, v in row.items()} for i, row in df.iterrows()}

        return {
            "target": self.target.to_dict(),
            "primary": self.primary,
            "best_baseline": self.best_baseline,
            "best_model": self.best_model,
            "alpha": self.alpha,
            "h": self.h,
            "pooled": table(self.pooled),
            "dm": table(self.dm),
            "verdict": self.verdict(),
        }


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def evaluate(
    predictions: Mapping[str, Predictions],
    target: TargetSpec,
    *,
    h: int = 1,
    alpha: float = 0.05,
    bins: int = 10,
) -> Evaluation:
    """Score walk-forward forecasts and test each model against the best baseline.

    ``predictions`` must come from one :func:`lq.forecast.walk_forward` call (the same rows
    for every model). ``h`` is the forecast overlap for the Diebold-Mariano test
    (:meth:`TargetSpec.overlap`).
    """
    if not predictions:
        raise ValidationError("predictions", {}, "no models to evaluate")
    names = list(predictions)
    ref = predictions[names[0]].frame.index
    for nm in names[1:]:
        if not predictions[nm].frame.index.equals(ref):
            raise ValidationError("predictions", nm, "models were not scored on the same rows")
    baselines = [nm for nm in names if predictions[nm].kind == "baseline"]
    if not baselines:
        raise ValidationError("predictions", names, "include at least one baseline model")
    pr = primary_loss(target)
    pooled_rows, fold_rows = [], []
    for nm in names:
        fr = predictions[nm].frame
        y, f = fr["y"].to_numpy(), fr["pred"].to_numpy()
        pooled_rows.append({"model": nm, "kind": predictions[nm].kind, **scores(y, f, target)})
        for k, g in fr.groupby("fold", sort=True):
            fold_rows.append(
                {
                    "model": nm,
                    "fold": int(k),
                    **scores(g["y"].to_numpy(), g["pred"].to_numpy(), target),
                }
            )
    pooled = pd.DataFrame(pooled_rows).set_index("model")
    per_fold = pd.DataFrame(fold_rows)
    best = str(pooled.loc[baselines, pr].idxmin())
    yb = predictions[best].frame["y"].to_numpy()
    lb = losses(yb, predictions[best].frame["pred"].to_numpy(), target)
    dm_rows = []
    for nm in names:
        if nm == best:
            continue
        la = losses(yb, predictions[nm].frame["pred"].to_numpy(), target)
        one = diebold_mariano(la, lb, h=h, alternative="less")
        two = diebold_mariano(la, lb, h=h, alternative="two-sided")
        dm_rows.append(
            {
                "model": nm,
                "mean_difference": one.mean_difference,
                "statistic": one.statistic,
                "p_value": one.p_value,
                "p_two_sided": two.p_value,
                "n": one.n,
                "beats_baseline": bool(one.mean_difference < 0 and one.p_value < alpha),
            }
        )
    dm = pd.DataFrame(dm_rows).set_index("model") if dm_rows else pd.DataFrame()
    cal = {}
    if target.kind == "sign":
        for nm in names:
            fr = predictions[nm].frame
            cal[nm] = calibration_curve(fr["y"].to_numpy(), fr["pred"].to_numpy(), bins=bins)
    return Evaluation(target, pooled, per_fold, best, pr, dm, cal, float(alpha), int(h))


# --------------------------------------------------------------------------- trading
@dataclasses.dataclass(frozen=True)
class TradingEvaluation:
    """Backtests of positions that follow each model's forecasts (after costs).

    ``table`` has one row per model plus ``buy_and_hold``: total return, Sharpe, max
    drawdown, trades, fees and exposure; ``results`` the :class:`~lq.backtest.BacktestResult`
    of each model.
    """

    table: pd.DataFrame
    results: dict[str, Any]
    threshold: float


def forecast_positions(pred: np.ndarray, target: TargetSpec, threshold: float) -> np.ndarray:
    """Target weights from forecasts: +1 when the forecast says up by more than
    ``threshold`` (probability above ``0.5 + threshold``, or predicted return above it),
    -1 when it says down, 0 otherwise or where there is no forecast."""
    f = np.asarray(pred, dtype=np.float64)
    w = np.zeros(f.size)
    if target.kind == "sign":
        w[f > 0.5 + threshold] = 1.0
        w[f < 0.5 - threshold] = -1.0
    elif target.kind == "return":
        w[f > threshold] = 1.0
        w[f < -threshold] = -1.0
    else:
        raise ValidationError(
            "target", target.kind, "a volatility forecast has no direction to trade"
        )
    w[~np.isfinite(f)] = 0.0
    return w


def trading_evaluation(
    bars: pd.DataFrame,
    predictions: Mapping[str, Predictions],
    target: TargetSpec,
    *,
    costs: Any = None,
    sizing: Any = None,
    threshold: float = 0.0,
    direction: Literal["long_short", "long_only"] = "long_short",
    capital: float = 10_000.0,
) -> TradingEvaluation:
    """Trade every model's forecasts through :func:`lq.backtest.run_backtest`.

    The backtest runs on the bars of the test period (first to last out-of-sample row);
    the position decided at a bar's close (from that bar's forecast) fills at the next
    bar's open, moved by the slippage, and pays ``costs.fee_bps``.
    """
    from lq.backtest import Costs, run_backtest

    costs = Costs() if costs is None else costs
    first = next(iter(predictions.values())).frame
    if first.empty:
        raise ValidationError("predictions", 0, "no out-of-sample rows to trade")
    window = bars.loc[first.index[0] : first.index[-1]]
    results: dict[str, Any] = {}
    rows = []
    for nm, p in predictions.items():
        pred = p.frame["pred"].reindex(window.index).to_numpy(dtype=np.float64)
        w = forecast_positions(pred, target, threshold)
        if direction == "long_only":
            w = np.maximum(w, 0.0)
        weights = pd.Series(w, index=window.index, name="target")

        def strategy(data: Any, params: Any, _w: pd.Series = weights) -> pd.Series:
            return _w

        strategy.__qualname__ = f"forecast[{nm}]"
        res = run_backtest(window, strategy, {}, costs=costs, sizing=sizing, capital=capital)
        results[nm] = res
        rows.append({"model": nm, "kind": p.kind, **_trade_metrics(res.metrics)})
    bench = next(iter(results.values())).benchmark_metrics
    rows.append({"model": "buy_and_hold", "kind": "benchmark", **_trade_metrics(bench)})
    return TradingEvaluation(pd.DataFrame(rows).set_index("model"), results, float(threshold))


def _trade_metrics(m: Any) -> dict[str, float]:
    d = m.to_dict()
    keys = ("total_return", "sharpe", "max_drawdown", "number_of_trades", "fees_paid", "exposure")
    out = {}
    for k in keys:
        v = d.get(k)
        try:
            out[k] = float(v) if v is not None else math.nan
        except (TypeError, ValueError):
            out[k] = math.nan
    return out
