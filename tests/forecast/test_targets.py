"""Targets: hand-computed cases for bar and time horizons, and a pandas reference."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lq.errors import ValidationError
from lq.forecast import TargetSpec, make_target


def _bars(close, seconds=None):
    seconds = list(range(len(close))) if seconds is None else seconds
    idx = pd.to_datetime(np.array(seconds) * 1_000_000, unit="us", utc=True)
    b = pd.DataFrame({"close": np.asarray(close, dtype=float)}, index=idx)
    b.attrs["interval_us"] = 1_000_000
    return b


def test_sign_of_the_next_bar_drops_zero_moves_by_default():
    t = make_target(_bars([1.0, 2.0, 2.0, 1.0]), kind="sign")
    assert t.y.tolist()[:3] == [1.0, pytest.approx(float("nan"), nan_ok=True), 0.0]
    assert math.isnan(t.y.iloc[1]) and math.isnan(t.y.iloc[3])
    assert t.end.tolist() == [1, 2, 3, -1]
    d = make_target(_bars([1.0, 2.0, 2.0, 1.0]), kind="sign", zero="down")
    assert d.y.tolist()[:3] == [1.0, 0.0, 0.0]


def test_return_over_h_bars_is_the_log_ratio_of_closes():
    c = [100.0, 101.0, 99.0, 102.0, 103.0]
    t = make_target(_bars(c), kind="return", horizon=2)
    # hand-computed: log(99/100), log(102/101), log(103/99), then unknown
    assert t.y.iloc[0] == pytest.approx(math.log(99 / 100), abs=1e-15)
    assert t.y.iloc[1] == pytest.approx(math.log(102 / 101), abs=1e-15)
    assert t.y.iloc[2] == pytest.approx(math.log(103 / 99), abs=1e-15)
    assert t.y.iloc[3:].isna().all()
    assert t.end_ts[0] == 3_000_000  # bar 2 closes at 3 s


def test_time_horizon_on_sparse_bars_uses_the_last_bar_within_the_horizon():
    # bars at seconds 0, 1, 4, 5, 9; horizon 3 s: bar 0 -> last bar opening <= 3 s is bar 1
    c = [10.0, 11.0, 12.0, 13.0, 14.0]
    t = make_target(_bars(c, [0, 1, 4, 5, 9]), kind="return", horizon="3s")
    assert t.end.tolist() == [1, 2, 3, 3, -1]
    assert t.y.iloc[0] == pytest.approx(math.log(11 / 10))
    assert t.y.iloc[1] == pytest.approx(math.log(12 / 11))  # second 4 <= 1 + 3
    assert t.y.iloc[3] == pytest.approx(0.0)  # nothing traded in (5, 8]: no move, known
    assert math.isnan(t.y.iloc[4])  # 9 + 3 is beyond the data


def test_realised_volatility_matches_a_pandas_forward_rolling_sum():
    rng = np.random.default_rng(3)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 500)))
    t = make_target(_bars(c), kind="volatility", horizon=7)
    r = pd.Series(np.log(c)).diff()
    # reference: pandas rolling sum of squared returns, shifted back by the horizon
    ref = np.sqrt((r**2).rolling(7).sum().shift(-7))
    np.testing.assert_allclose(t.y.to_numpy(), ref.to_numpy(), rtol=1e-12, equal_nan=True)


def test_bad_specs_are_refused_with_the_field_named():
    with pytest.raises(ValidationError, match=r"TargetSpec\.horizon"):
        TargetSpec(horizon=0)
    with pytest.raises(ValidationError, match=r"TargetSpec\.horizon"):
        TargetSpec(horizon="soon")
    with pytest.raises(ValidationError, match=r"TargetSpec\.kind"):
        TargetSpec(kind="price")
    assert TargetSpec(horizon="30s").horizon_bars(1_000_000) == 30.0
    assert TargetSpec.from_json(TargetSpec(kind="return", horizon="5m").to_json()).horizon == "5m"
