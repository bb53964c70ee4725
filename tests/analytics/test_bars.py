import numpy as np
import pandas as pd
import pytest

from lq.analytics import align_prices, interval_us, resample_bars, returns
from lq.errors import ValidationError


def _ticks(n=20_000, seed=0):
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, 3_600_000_000, n))  # one hour of µs
    price = 100.0 + np.cumsum(rng.normal(0, 0.01, n))
    return pd.DataFrame({"ts": ts, "price": price, "qty": rng.uniform(0.001, 2.0, n)})


def test_ticks_to_bars_hand_computed():
    # hand-computed: bar 0 has 10@1, 12@1 -> O10 H12 L10 C12 V2 quote 22 vwap 11
    ticks = pd.DataFrame(
        {"ts": [1_200_000, 0, 400_000], "price": [11.0, 10.0, 12.0], "qty": [2.0, 1.0, 1.0]}
    )
    bars = resample_bars(ticks, "1s")
    assert bars.index.tz is not None and str(bars.index.tz) == "UTC"
    assert bars["ts"].tolist() == [0, 1_000_000]
    assert bars.iloc[0][["open", "high", "low", "close", "volume"]].tolist() == [10, 12, 10, 12, 2]
    assert bars.iloc[0]["quote_volume"] == 22.0 and bars.iloc[0]["vwap"] == 11.0
    assert bars["trades"].tolist() == [2, 1]


def test_tick_bars_match_pandas_resample():
    # reference: pandas resample().agg on a DatetimeIndex; exact for OHLC/counts, 1e-12 sums
    ticks = _ticks()
    bars = resample_bars(ticks, "1m")
    idx = pd.to_datetime(ticks["ts"], unit="us", utc=True)
    t = ticks.set_index(idx)
    t["quote"] = t["price"] * t["qty"]
    ref = t.resample("1min").agg(
        {"price": ["first", "max", "min", "last", "count"], "qty": "sum", "quote": "sum"}
    )
    ref = ref[ref[("price", "count")] > 0]
    np.testing.assert_array_equal(bars.index, ref.index)
    np.testing.assert_array_equal(bars["open"], ref[("price", "first")])
    np.testing.assert_array_equal(bars["high"], ref[("price", "max")])
    np.testing.assert_array_equal(bars["low"], ref[("price", "min")])
    np.testing.assert_array_equal(bars["close"], ref[("price", "last")])
    np.testing.assert_array_equal(bars["trades"], ref[("price", "count")])
    np.testing.assert_allclose(bars["volume"], ref[("qty", "sum")], rtol=1e-12)
    np.testing.assert_allclose(
        bars["vwap"], ref[("quote", "sum")] / ref[("qty", "sum")], rtol=1e-12
    )


def test_one_second_bars_resample_to_the_same_minute_bars_as_ticks():
    ticks = _ticks(seed=1)
    direct = resample_bars(ticks, "5m")
    via = resample_bars(resample_bars(ticks, "1s"), "5m")
    pd.testing.assert_frame_equal(direct, via, check_exact=False, rtol=1e-12)


def test_unsorted_input_is_sorted_and_columns_are_kept():
    ticks = _ticks(2000, seed=2)
    bars1s = resample_bars(ticks, "1s")
    shuffled = bars1s.sample(frac=1.0, random_state=3).drop(columns=["quote_volume"])
    out = resample_bars(shuffled, "1m")
    assert list(out.columns) == list(shuffled.columns)
    ref = resample_bars(bars1s, "1m")
    np.testing.assert_allclose(out["vwap"], ref["vwap"], rtol=1e-12)


def test_non_positive_price_is_a_clear_error():
    ticks = pd.DataFrame({"ts": [0, 1], "price": [1.0, 0.0], "qty": [1.0, 1.0]})
    with pytest.raises(ValidationError, match=r"price=0\.0.*position 1"):
        resample_bars(ticks, "1s")
    with pytest.raises(ValidationError, match=r"prices=-1\.0"):
        returns(np.array([1.0, -1.0]))


def test_interval_parsing():
    assert interval_us("1s") == 1_000_000 and interval_us("5m") == 300_000_000
    assert interval_us(pd.Timedelta(hours=1)) == 3_600_000_000
    with pytest.raises(ValidationError, match="interval='1x'"):
        interval_us("1x")


def test_returns_match_numpy():
    p = np.array([100.0, 101.0, np.nan, 99.0, 98.0])
    # reference: numpy on consecutive positions; NaN next to a missing price
    np.testing.assert_allclose(returns(p, kind="log")[[1, 4]], np.log([1.01, 98 / 99]), rtol=1e-15)
    s = returns(pd.Series(p), kind="simple")
    assert np.isnan(s.iloc[[0, 2, 3]]).all()
    assert s.iloc[1] == pytest.approx(0.01, rel=1e-12)


def test_two_symbols_with_different_bar_times_are_aligned_by_ffill_or_drop():
    t = pd.to_datetime([0, 1, 2, 3], unit="s", utc=True)
    a = pd.Series([1.0, 2.0, 3.0], index=t[[1, 2, 3]])
    b = pd.Series([10.0, 30.0], index=t[[0, 2]])
    ff = align_prices({"A": a, "B": b})
    assert ff.index.tolist() == list(t[1:]) and ff["B"].tolist() == [10.0, 30.0, 30.0]
    inner = align_prices({"A": a, "B": b}, fill="drop")
    assert inner.index.tolist() == [t[2]] and inner.iloc[0].tolist() == [2.0, 30.0]
