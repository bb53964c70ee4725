"""Walk-forward evaluation: train on the past, forecast the next block, never the reverse.

Rows (bars whose features and target are all known) are split in time: the first
``min_train`` rows only train; the rest is cut into test blocks (``folds`` equal blocks, or
blocks of ``refit_every`` rows: the refit schedule). Each block's model is a **fresh**
model (:func:`lq.forecast.make_model`) fitted on rows before the block only, so its
scaler and estimator never see test data, and

* **purged**: a training row whose target reaches into the block (its label ends at or
  after the block's first bar) is dropped, since its label contains test-period prices;
* **embargoed**: so is every training row whose label ends within ``embargo`` bars before
  the block (López de Prado's embargo, for features and labels that overlap in time).

``window="rolling"`` trains on the last ``train_rows`` rows before the block instead of all
of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Literal

import numpy as np
import pandas as pd

from lq.backtest._config import Config, check_choice
from lq.errors import ValidationError
from lq.forecast.models import Forecaster

__all__ = ["Fold", "Predictions", "WalkForwardConfig", "make_folds", "usable_rows", "walk_forward"]

Window = Literal["expanding", "rolling"]


def _opt_int(owner: str, name: str, v: object, minimum: int) -> None:
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValidationError(f"{owner}.{name}", v, f"must be an integer >= {minimum} or None")


@dataclasses.dataclass(frozen=True, kw_only=True)
class WalkForwardConfig(Config):
    """How to split time.

    Parameters
    ----------
    folds
        Number of equal test blocks after ``min_train`` (ignored when ``refit_every`` is set).
    refit_every
        Test rows per block: the model is refitted every ``refit_every`` rows.
    min_train
        Rows before the first test block (default: one block's worth, ``n / (folds + 1)``).
    embargo
        Extra bars between the end of a training label and the test block (the purge of
        overlapping labels always applies).
    window
        ``"expanding"`` (all earlier rows) or ``"rolling"`` (the last ``train_rows``).
    train_rows
        Training rows of a rolling window.
    """

    folds: int = 5
    refit_every: int | None = None
    min_train: int | None = None
    embargo: int = 0
    window: Window = "expanding"
    train_rows: int | None = None

    def _validate(self) -> None:
        o = "WalkForwardConfig"
        _opt_int(o, "folds", self.folds, 1)
        _opt_int(o, "refit_every", self.refit_every, 1)
        _opt_int(o, "min_train", self.min_train, 2)
        _opt_int(o, "embargo", self.embargo, 0)
        _opt_int(o, "train_rows", self.train_rows, 2)
        check_choice(o, "window", self.window, ("expanding", "rolling"))
        if self.window == "rolling" and self.train_rows is None:
            raise ValidationError(f"{o}.train_rows", None, 'window="rolling" needs train_rows')


@dataclasses.dataclass(frozen=True)
class Fold:
    """One block: training row positions and the test rows ``[test_start, test_stop)``
    (positions in the usable rows), with what the purge removed."""

    fold: int
    train: np.ndarray
    test_start: int
    test_stop: int
    purged: int


def usable_rows(X: pd.DataFrame, y: pd.Series | np.ndarray, end: np.ndarray) -> np.ndarray:
    """Bar positions whose features are all finite and whose target is known."""
    yv = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(X.to_numpy(dtype=np.float64)).all(axis=1) & np.isfinite(yv) & (end >= 0)
    return np.flatnonzero(ok)


def make_folds(bar_pos: np.ndarray, end: np.ndarray, config: WalkForwardConfig) -> list[Fold]:
    """The blocks of a walk-forward over usable rows at bar positions ``bar_pos``.

    ``end[i]`` is the bar position resolving row ``i``'s target (:attr:`Target.end` of the
    usable rows).
    """
    n = int(bar_pos.size)
    if n < 4:
        raise ValidationError("rows", n, "too few usable rows for a walk-forward (need >= 4)")
    c = config
    if c.refit_every is not None:
        start = c.min_train if c.min_train is not None else max(2, n // 5)
        bounds = [*list(range(start, n, c.refit_every)), n]
    else:
        k = c.folds
        start = c.min_train if c.min_train is not None else n // (k + 1)
        if start < 2 or start >= n:
            raise ValidationError("min_train", start, f"must leave test rows (usable rows: {n})")
        bounds = [round(start + (n - start) * i / k) for i in range(k + 1)]
    folds: list[Fold] = []
    for i in range(len(bounds) - 1):
        lo, hi = bounds[i], bounds[i + 1]
        if hi <= lo:
            continue
        first_test_bar = int(bar_pos[lo])
        cand = np.arange(lo)
        if c.window == "rolling" and c.train_rows is not None:
            cand = cand[-c.train_rows :] if cand.size > c.train_rows else cand
        keep = end[cand] < first_test_bar - c.embargo
        train = cand[keep]
        folds.append(Fold(len(folds), train, lo, hi, int((~keep).sum())))
    if not folds:
        raise ValidationError("folds", c.folds, "no test block could be formed")
    return folds


@dataclasses.dataclass(frozen=True)
class Predictions:
    """Out-of-sample forecasts of one model.

    ``frame`` is indexed by bar time with columns ``y`` (target), ``pred`` and ``fold``;
    ``folds`` has one row per block: ``fold``, ``train_rows``, ``train_start``,
    ``train_end``, ``test_start``, ``test_end``, ``test_rows``, ``purged``.
    """

    model: str
    kind: str
    frame: pd.DataFrame
    folds: pd.DataFrame


# state of a worker process (fork start: inherited, set before the pool starts)
_JOB: dict[str, object] = {}


def _run_block(name: str, i: int) -> tuple[str, int, np.ndarray, str]:
    Xu = _JOB["X"]
    yu = _JOB["y"]
    f = _JOB["folds"][i]  # type: ignore[index]
    m = _JOB["models"][name]()  # type: ignore[index]
    assert isinstance(Xu, pd.DataFrame) and isinstance(yu, np.ndarray)
    m.fit(Xu.iloc[f.train], yu[f.train])
    return name, i, np.asarray(m.predict(Xu.iloc[f.test_start : f.test_stop])), m.kind


def walk_forward(
    X: pd.DataFrame,
    y: pd.Series | np.ndarray,
    end: np.ndarray,
    models: Mapping[str, Callable[[], Forecaster]],
    config: WalkForwardConfig | None = None,
    *,
    workers: int = 1,
) -> dict[str, Predictions]:
    """Out-of-sample forecasts of every model on the same blocks.

    Parameters
    ----------
    X, y, end
        Features, target and :attr:`Target.end` of every bar (rows with missing values are
        left out, the same rows for every model).
    models
        ``{name: factory}``; each factory returns a fresh, unfitted model (one per block).
    config
        The split (default :class:`WalkForwardConfig`).
    workers
        Processes fitting blocks in parallel (fork start; each model on one thread).
    """
    config = WalkForwardConfig() if config is None else config
    yv = np.asarray(y, dtype=np.float64)
    end = np.asarray(end, dtype=np.int64)
    if len(X) != yv.size or yv.size != end.size:
        raise ValidationError("y", yv.size, f"features have {len(X)} rows, end {end.size}")
    rows = usable_rows(X, yv, end)
    Xu = X.iloc[rows]
    yu = yv[rows]
    eu = end[rows]
    folds = make_folds(rows, eu, config)
    index = X.index[rows]
    for f in folds:
        if f.train.size < 2:
            raise ValidationError(
                "folds", f.fold, f"block {f.fold} has {f.train.size} training rows after the purge"
            )
    tasks = [(name, i) for name in models for i in range(len(folds))]
    _JOB.update(X=Xu, y=yu, folds=folds, models=dict(models))
    results: dict[tuple[str, int], tuple[np.ndarray, str]] = {}
    try:
        if workers > 1 and len(tasks) > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                futs = [pool.submit(_run_block, n, i) for n, i in tasks]
                for fut in futs:
                    n, i, p, kind = fut.result()
                    results[(n, i)] = (p, kind)
        else:
            for n, i in tasks:
                _, _, p, kind = _run_block(n, i)
                results[(n, i)] = (p, kind)
    finally:
        _JOB.clear()
    out: dict[str, Predictions] = {}
    for name in models:
        pred = np.full(rows.size, np.nan)
        fold_of = np.full(rows.size, -1, dtype=np.int64)
        info = []
        kind = "learned"
        for i, f in enumerate(folds):
            p, kind = results[(name, i)]
            sl = slice(f.test_start, f.test_stop)
            pred[sl] = p
            fold_of[sl] = f.fold
            info.append(
                {
                    "fold": f.fold,
                    "train_rows": int(f.train.size),
                    "train_start": index[int(f.train[0])],
                    "train_end": index[int(f.train[-1])],
                    "test_start": index[f.test_start],
                    "test_end": index[f.test_stop - 1],
                    "test_rows": f.test_stop - f.test_start,
                    "purged": f.purged,
                }
            )
        tested = fold_of >= 0
        frame = pd.DataFrame(
            {"y": yu[tested], "pred": pred[tested], "fold": fold_of[tested]}, index=index[tested]
        )
        out[name] = Predictions(name, kind, frame, pd.DataFrame(info))
    return out
