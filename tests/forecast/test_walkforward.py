"""Walk-forward: purge and embargo, fresh models per block, the refit schedule, and the
causality check catching a scaler fitted on all rows."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest
from _sim import ar1

from lq.errors import ValidationError
from lq.forecast import (
    FeatureSpec,
    TargetSpec,
    WalkForwardConfig,
    build_features,
    check_causality,
    make_folds,
    make_model,
    make_target,
    walk_forward,
)
from lq.forecast.walkforward import usable_rows

SPEC = FeatureSpec(
    lags=3, vol_windows=(10,), zscore_windows=(20,), flow_windows=(), intensity_windows=()
)


@pytest.mark.parametrize("horizon", [1, 5, "7s"])
@pytest.mark.parametrize("embargo", [0, 3])
def test_training_labels_end_before_the_test_block_minus_the_embargo(horizon, embargo):
    bars = ar1(800, 0.2, seed=1)
    # drop some seconds: sparse bars, so time horizons and bar positions differ
    bars = bars.iloc[np.sort(np.random.default_rng(1).choice(800, 700, replace=False))]
    X = build_features(bars, SPEC).X
    t = make_target(bars, TargetSpec(kind="return", horizon=horizon))
    rows = usable_rows(X, t.y, t.end)
    folds = make_folds(rows, t.end[rows], WalkForwardConfig(folds=4, embargo=embargo))
    assert len(folds) == 4
    for f in folds:
        first_test_bar = rows[f.test_start]
        assert f.train.size > 0 and f.train.max() < f.test_start
        assert t.end[rows[f.train]].max() < first_test_bar - embargo  # purged + embargoed
        # and nothing that could have been kept was dropped
        kept = set(f.train.tolist())
        for i in range(f.test_start):
            if t.end[rows[i]] < first_test_bar - embargo:
                assert i in kept
    assert sum(f.test_stop - f.test_start for f in folds) == rows.size - folds[0].test_start


def test_refit_schedule_and_rolling_window():
    end = np.arange(100) + 1
    bar_pos = np.arange(100)
    folds = make_folds(bar_pos, end, WalkForwardConfig(refit_every=15, min_train=40))
    assert [(f.test_start, f.test_stop) for f in folds] == [(40, 55), (55, 70), (70, 85), (85, 100)]
    roll = make_folds(
        bar_pos,
        end,
        WalkForwardConfig(refit_every=15, min_train=40, window="rolling", train_rows=20),
    )
    assert all(f.train.size <= 20 for f in roll)
    assert roll[1].train.max() == 53  # row 54's label ends at bar 55 = the block's first bar
    with pytest.raises(ValidationError, match="train_rows"):
        WalkForwardConfig(window="rolling")


def test_every_block_fits_a_fresh_model_on_its_training_rows_only():
    seen = []

    class Spy:
        kind = "baseline"
        name = "spy"

        def fit(self, X, y):
            seen.append((self, X.index[0], X.index[-1]))  # keeps it alive: ids stay unique
            return self

        def predict(self, X):
            return np.zeros(len(X))

    bars = ar1(400, 0.1)
    X = build_features(bars, SPEC).X
    t = make_target(bars, TargetSpec(kind="return"))
    out = walk_forward(X, t.y, t.end, {"spy": Spy}, WalkForwardConfig(folds=3))
    assert len({id(s[0]) for s in seen}) == 3
    tests = out["spy"].folds
    for (_, _lo, hi), (_, row) in zip(seen, tests.iterrows(), strict=True):
        assert hi < row["test_start"]


class BareLogistic:
    """A user's model without its own scaler (regularised, so the scale matters)."""

    kind = "learned"
    name = "bare"

    def fit(self, X, y):
        from sklearn.linear_model import LogisticRegression

        self.m = LogisticRegression(C=0.05, max_iter=5000).fit(X.to_numpy(), y.astype(int))
        return self

    def predict(self, X):
        return self.m.predict_proba(X.to_numpy())[:, 1]


def _pipeline(bars: pd.DataFrame, *, leak: bool) -> pd.Series:
    X = build_features(bars, SPEC).X
    if leak:  # the classic mistake: standardise with every row before splitting
        X = (X - X.mean()) / X.std()
    tg = TargetSpec(kind="sign")
    t = make_target(bars, tg)
    preds = walk_forward(X, t.y, t.end, {"bare": BareLogistic}, WalkForwardConfig(folds=3))
    return preds["bare"].frame["pred"].reindex(bars.index)


def test_a_scaler_fitted_on_all_rows_is_caught_and_the_honest_pipeline_passes():
    bars = ar1(900, 0.2, seed=3)
    assert check_causality(lambda b: _pipeline(b, leak=False), bars, cuts=3).passed
    rep = check_causality(lambda b: _pipeline(b, leak=True), bars, cuts=3)
    assert not rep.passed and rep.first_difference is not None


def test_parallel_blocks_give_the_same_forecasts():
    bars = ar1(1500, 0.2, seed=2)
    X = build_features(bars, SPEC).X
    tg = TargetSpec(kind="sign")
    t = make_target(bars, tg)
    ms = {
        "linear": partial(make_model, "linear", tg),
        "boosted": partial(make_model, "boosted", tg, max_iter=20),
    }
    a = walk_forward(X, t.y, t.end, ms, WalkForwardConfig(folds=3))
    b = walk_forward(X, t.y, t.end, ms, WalkForwardConfig(folds=3), workers=2)
    for k in ms:
        pd.testing.assert_frame_equal(a[k].frame, b[k].frame)
