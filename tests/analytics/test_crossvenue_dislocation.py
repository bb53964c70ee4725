"""Price dislocation between venues, against pandas ``merge_asof`` sampling and pandas stats.

Reference: each venue sampled on the grid with ``pd.merge_asof(direction="backward",
tolerance=max_age)`` (the last price at or before the grid time, the last of equal times),
bps computed in pandas, summary with ``Series.mean/median/quantile(0.95, linear)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lq.analytics as A
from lq.errors import ValidationError

T0 = 1_700_000_000_000_000
QUOTES = {"coinbase": "USD", "okx": "USDT", "binance": "USDT"}


def venue_trades(seed, n, *, level, span_s=600):
    rng = np.random.default_rng(seed)
    ts = T0 + np.sort(rng.integers(0, span_s * 1_000_000, n))
    ts[5] = ts[4]  # two trades in the same µs: the later one is the price
    price = np.round(level * np.exp(np.cumsum(rng.normal(0, 2e-4, n))), 2)
    return pd.DataFrame({"ts": ts, "trade_id": np.arange(n), "price": price, "qty": 0.1})


@pytest.fixture
def market():
    return {
        "coinbase": venue_trades(1, 3_000, level=60_000),
        "okx": venue_trades(2, 2_000, level=60_030),
        "binance": venue_trades(3, 4_000, level=60_010),
    }


@pytest.fixture
def usdt_usd():
    rng = np.random.default_rng(4)
    ts = T0 - 5_000_000 + np.arange(0, 620_000_000, 7_000_000)
    return pd.Series(
        0.9995 + 1e-4 * rng.standard_normal(ts.size),
        index=pd.to_datetime(ts, unit="us", utc=True),
    )


def asof_reference(frame, grid, tolerance_us):
    """pandas reference: previous-tick price on ``grid`` (int µs) within ``tolerance_us``."""
    left = pd.DataFrame({"ts": grid})
    right = frame[["ts", "price"]].sort_values("ts", kind="stable")
    tol = None if tolerance_us is None else tolerance_us
    return pd.merge_asof(left, right, on="ts", direction="backward", tolerance=tol)[
        "price"
    ].to_numpy()


def test_dislocation_equals_pandas_asof_sampling_raw_and_adjusted(market, usdt_usd):
    d = A.dislocation(market, quotes=QUOTES, interval="1s", rates={"USDT/USD": usdt_usd})
    lo = min(int(f["ts"].min()) for f in market.values())
    hi = max(int(f["ts"].max()) for f in market.values())
    grid = np.arange(-(-lo // 1_000_000) * 1_000_000, hi // 1_000_000 * 1_000_000 + 1, 1_000_000)
    assert d.bps.index.equals(pd.DatetimeIndex(pd.to_datetime(grid, unit="us", utc=True)))
    assert d.bps.index.name == "time" and str(d.bps.index.tz) == "UTC"
    ref = asof_reference(market["coinbase"], grid, 1_000_000)
    rate = pd.merge_asof(
        pd.DataFrame({"time": pd.to_datetime(grid, unit="us", utc=True)}),
        usdt_usd.rename("r").rename_axis("time").reset_index(),
        on="time",
    )["r"].to_numpy()
    for v in ("okx", "binance"):
        p = asof_reference(market[v], grid, 1_000_000)
        np.testing.assert_allclose(d.prices[v], p, rtol=0, atol=0)
        np.testing.assert_allclose(d.bps[v], (p / ref - 1) * 1e4, rtol=1e-12)
        np.testing.assert_allclose(d.adjusted[v], (p * rate / ref - 1) * 1e4, rtol=1e-12)
    assert d.reference == "coinbase" and list(d.bps.columns) == ["okx", "binance"]
    assert d.quotes == QUOTES
    assert d.conversion["okx"] == "USDT -> USD via USDT/USD series"


def test_summary_statistics_equal_pandas(market, usdt_usd):
    d = A.dislocation(market, quotes=QUOTES, rates={"USDT/USD": usdt_usd}, threshold_bps=5.0)
    for v in ("okx", "binance"):
        for basis, frame in (("raw", d.bps), ("adjusted", d.adjusted)):
            s = frame[v]
            row = d.summary.loc[(v, basis)]
            valid = s.dropna()
            assert row["n"] == valid.size
            assert row["coverage"] == pytest.approx(valid.size / s.size)
            assert row["mean_bps"] == pytest.approx(valid.mean(), rel=1e-12)
            assert row["median_bps"] == pytest.approx(valid.median(), rel=1e-12)
            assert row["std_bps"] == pytest.approx(valid.std(), rel=1e-10)  # ddof=1
            assert row["p95_abs_bps"] == pytest.approx(valid.abs().quantile(0.95), rel=1e-12)
            assert row["max_abs_bps"] == pytest.approx(valid.abs().max(), rel=1e-12)
            assert row["share_above"] == pytest.approx((valid.abs() > 5.0).mean())
    assert d.summary.loc[("okx", "raw"), "compared"] == "okx (USDT) vs coinbase (USD)"
    assert d.summary.loc[("okx", "adjusted"), "compared"] == (
        "okx (USDT -> USD via USDT/USD series) vs coinbase (USD)"
    )
    assert d.summary.index.names == ["venue", "basis"]


def test_the_quote_difference_is_stated_never_hidden(market):
    # no rate: the raw numbers are there, adjusted is NaN for the USDT venue and says why
    d = A.dislocation(market, quotes=QUOTES)
    assert d.adjusted["okx"].isna().all()
    assert d.conversion["okx"] == "not converted: no USDT/USD rate"
    assert d.summary.loc[("okx", "adjusted"), "n"] == 0
    assert "no USDT/USD rate" in d.summary.loc[("okx", "adjusted"), "compared"]
    assert d.summary.loc[("okx", "raw"), "n"] > 0
    # same quote: adjusted is the raw series, and labelled so
    same = A.dislocation(
        {"okx": market["okx"], "binance": market["binance"]},
        quotes={"okx": "usdt", "binance": "USDT "},
    )
    pd.testing.assert_frame_equal(same.adjusted, same.bps)
    assert same.conversion["binance"] == "same quote (USDT)"
    assert same.summary.loc[("binance", "adjusted"), "compared"].endswith("same quote, as raw")


def test_rate_is_used_in_either_direction(market, usdt_usd):
    # reference in USDT: a USD price is converted into USDT by dividing by USDT/USD
    d = A.dislocation(market, quotes=QUOTES, reference="okx", rates={"USDT/USD": usdt_usd})
    inverse = 1.0 / usdt_usd
    e = A.dislocation(market, quotes=QUOTES, reference="okx", rates={"USD/USDT": inverse})
    np.testing.assert_allclose(d.adjusted["coinbase"], e.adjusted["coinbase"], rtol=1e-12)
    assert d.conversion["coinbase"] == "USD -> USDT via USDT/USD series"
    assert e.conversion["coinbase"] == "USD -> USDT via USD/USDT series"
    assert d.conversion["binance"] == "same quote (USDT)"


def test_a_constant_rate_is_shown_as_a_stated_constant(market):
    d = A.dislocation(market, quotes=QUOTES, rates={"USDT/USD": 1.0})
    np.testing.assert_array_equal(d.adjusted["okx"].to_numpy(), d.bps["okx"].to_numpy())
    assert d.conversion["okx"] == "USDT -> USD via USDT/USD = 1 (constant)"


def test_stale_prices_are_not_compared_unless_asked():
    cb = (np.array([T0, T0 + 10_000_000]), np.array([100.0, 100.0]))
    okx = (np.array([T0 + 500_000]), np.array([101.0]))  # okx trades once, then is silent
    d = A.dislocation({"cb": cb, "okx": okx}, quotes={"cb": "USD", "okx": "USD"}, interval="1s")
    # grid T0 .. T0+10 s: okx's price is fresh only at T0+1 s (0.5 s old); later it is stale
    assert d.bps["okx"].notna().tolist() == [False, True] + [False] * 9
    assert d.bps["okx"].iloc[1] == pytest.approx(100.0)
    # the reference is stale too between its two trades (exactly max_age old still counts)
    assert d.prices["cb"].notna().tolist() == [True, True] + [False] * 8 + [True]
    carried = A.dislocation(
        {"cb": cb, "okx": okx}, quotes={"cb": "USD", "okx": "USD"}, max_age=None
    )
    assert carried.bps["okx"].notna().sum() == 10
    three = A.dislocation({"cb": cb, "okx": okx}, quotes={"cb": "USD", "okx": "USD"}, max_age="3s")
    assert three.max_age_us == 3_000_000 and three.bps["okx"].notna().sum() == 3


def test_log_bps_and_mid_quotes():
    ts = T0 + np.arange(0, 5_000_000, 1_000_000)
    a = pd.DataFrame({"ts": ts, "bid": [99.0, 99.5, 100.0, 100.5, 101.0], "ask": 1.0 + np.array(
        [99.0, 99.5, 100.0, 100.5, 101.0])})  # fmt: skip
    b = pd.DataFrame({"ts": ts, "bid": [100.0] * 5, "ask": [100.2] * 5})
    d = A.dislocation({"b": b, "a": a}, quotes={"a": "USD", "b": "USD"}, price="mid", kind="log")
    mid_a = (a["bid"] + a["ask"]) / 2
    np.testing.assert_allclose(d.bps["a"], np.log(mid_a / 100.1) * 1e4, rtol=1e-12)
    assert d.price == "mid" and d.kind == "log"
    with pytest.raises(ValidationError, match="price='last' needs a 'price' column"):
        A.dislocation({"b": b, "a": a}, quotes={"a": "USD", "b": "USD"})


def test_event_rows_at_every_observation_time():
    a = (np.array([10, 30, 30]), np.array([100.0, 101.0, 102.0]))
    b = (np.array([20, 40]), np.array([100.0, 100.0]))
    d = A.dislocation({"b": b, "a": a}, quotes={"a": "USD", "b": "USD"}, interval=None)
    assert d.bps.index.asi8.tolist() == [10, 20, 30, 40]  # µs-resolution index
    np.testing.assert_allclose(d.bps["a"].to_numpy(), [np.nan, 0.0, 200.0, 200.0])
    assert d.interval_us is None and d.max_age_us is None


def test_bad_input_is_refused_with_the_way_out(market):
    with pytest.raises(ValidationError, match="no quote currency for 'binance'"):
        A.dislocation(market, quotes={"coinbase": "USD", "okx": "USDT"})
    with pytest.raises(ValidationError, match="reference"):
        A.dislocation(market, quotes=QUOTES, reference="kraken")
    with pytest.raises(ValidationError, match="at least 2 venues"):
        A.dislocation({"okx": market["okx"]}, quotes=QUOTES)
    with pytest.raises(ValidationError, match="BASE/QUOTE"):
        A.dislocation(market, quotes=QUOTES, rates={"USDTUSD": 1.0})
    with pytest.raises(ValidationError, match="finite and > 0"):
        A.dislocation(market, quotes=QUOTES, rates={"USDT/USD": 0.0})
    bad = market["okx"].copy()
    bad.loc[3, "price"] = -1.0
    with pytest.raises(ValidationError, match="prices must be > 0"):
        A.dislocation({**market, "okx": bad}, quotes=QUOTES)
    with pytest.raises(ValidationError, match="kind"):
        A.dislocation(market, quotes=QUOTES, kind="pct")


def test_nan_prices_are_skipped(market):
    holed = market["okx"].copy()
    holed.loc[holed.index[::3], "price"] = np.nan
    d = A.dislocation({**market, "okx": holed}, quotes=QUOTES)
    e = A.dislocation({**market, "okx": holed.dropna()}, quotes=QUOTES)
    pd.testing.assert_frame_equal(d.bps, e.bps)
