"""Features: each against an independent reference, the streaming twin on every row, and
the causality check (built-ins pass, deliberately leaky features are caught)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from _sim import ar1

from lq.errors import ValidationError
from lq.forecast import FeatureParams, FeatureSpec, FeatureState, build_features, check_causality

FULL = FeatureSpec(
    lags=3,
    vol_windows=(5, 20),
    ewma_lam=0.9,
    garch=True,
    garch_fit=300,
    rsi_window=6,
    zscore_windows=(10,),
    flow_windows=(8,),
    intensity_windows=(8,),
    pair="PAIRUSDT",
    pair_window=15,
    book=True,
    ofi_window=6,
)


def _pair_of(bars: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(bars), size=int(0.7 * len(bars)), replace=False))
    p = bars.iloc[keep][["ts", "open", "close"]].copy()
    p["close"] = p["close"] ** 0.8 * np.exp(rng.normal(0, 1e-4, len(p)))
    p["open"] = p["close"]
    return p


def _two_pass_z(c: pd.Series, w: int) -> pd.Series:
    # reference: numpy two-pass mean/std over each window (pandas' online rolling std loses
    # ~1e-8 relative on prices near 100 with 1e-4 moves)
    win = np.lib.stride_tricks.sliding_window_view(c.to_numpy(), w)
    z = (win[:, -1] - win.mean(axis=1)) / win.std(axis=1, ddof=1)
    return pd.Series(np.r_[np.full(w - 1, np.nan), z], index=c.index)


def _wilder_rsi(c: np.ndarray, n: int) -> np.ndarray:
    # reference: Wilder's RSI written out as in his book (a plain loop)
    out = np.full(c.size, np.nan)
    d = np.diff(c)
    ag = np.mean(np.maximum(d[:n], 0))
    al = np.mean(np.maximum(-d[:n], 0))
    out[n] = 100 * ag / (ag + al) if ag + al > 0 else 50.0
    for t in range(n + 1, c.size):
        g, lo = max(d[t - 1], 0.0), max(-d[t - 1], 0.0)
        ag = (ag * (n - 1) + g) / n
        al = (al * (n - 1) + lo) / n
        out[t] = 100 * ag / (ag + al) if ag + al > 0 else 50.0
    return out


def test_each_feature_matches_an_independent_reference():
    bars = ar1(2000, 0.2, seed=5)
    pair = _pair_of(bars, 5)
    F = build_features(bars, FULL, pair_bars=pair)
    X = F.X
    c = bars["close"]
    r = np.log(c).diff()
    ref = {
        "ret_0": r,
        "ret_2": r.shift(2),
        "rv_5": np.sqrt((r**2).rolling(5).mean()),  # pandas rolling mean of r^2
        "rv_20": np.sqrt((r**2).rolling(20).mean()),
        "ewma_vol": np.sqrt((r**2).iloc[1:].ewm(alpha=0.1, adjust=False).mean()),
        "z_10": _two_pass_z(c, 10),
        "intensity_8": np.log1p(bars["trades"].rolling(8).mean()),
    }
    b8, s8 = bars["buy_volume"].rolling(8).sum(), bars["sell_volume"].rolling(8).sum()
    ref["flow_8"] = (b8 - s8) / (b8 + s8)
    bq, aq, bid, ask = bars["bid_qty"], bars["ask_qty"], bars["bid"], bars["ask"]
    ref["book_imbalance"] = (bq - aq) / (bq + aq)
    mid = (bid + ask) / 2
    ref["microprice_offset"] = ((ask * bq + bid * aq) / (bq + aq) - mid) / mid
    # OFI (Cont, Kukanov & Stoikov 2014), bar-level, written with pandas shifts
    e = (
        np.where(bid >= bid.shift(), bq, 0.0)
        - np.where(bid <= bid.shift(), bq.shift(), 0.0)
        - np.where(ask <= ask.shift(), aq, 0.0)
        + np.where(ask >= ask.shift(), aq.shift(), 0.0)
    )
    e = pd.Series(e, index=bars.index)
    e.iloc[0] = np.nan
    ref["ofi_6"] = e.rolling(6).mean() / ((bq + aq) / 2).rolling(6).mean()
    for name, v in ref.items():
        np.testing.assert_allclose(
            X[name].to_numpy(),
            v.reindex(X.index).to_numpy(),
            rtol=1e-9,
            atol=1e-14,
            equal_nan=True,
            err_msg=name,
        )
    np.testing.assert_allclose(X["rsi_6"], _wilder_rsi(c.to_numpy(), 6), rtol=1e-9, equal_nan=True)
    # spread z: pair close as of each bar (asof join), rolling OLS beta via pandas cov/var
    px = pd.merge_asof(bars[["ts"]], pair[["ts", "close"]], on="ts", direction="backward")[
        "close"
    ].to_numpy()
    ly, lx = np.log(c.to_numpy()), np.log(px)
    first = int(np.argmax(np.isfinite(lx)))  # the pair has traded from here on
    ly, lx = ly[first:], lx[first:]
    beta = np.full(ly.size, np.nan)
    for t in range(14, ly.size):  # two-pass OLS slope on each window (numpy)
        wy, wx = ly[t - 14 : t + 1], lx[t - 14 : t + 1]
        beta[t] = ((wx - wx.mean()) @ (wy - wy.mean())) / ((wx - wx.mean()) @ (wx - wx.mean()))
    sp = pd.Series(ly - beta * lx)
    ok = sp.notna().to_numpy()
    z = np.full(sp.size, np.nan)
    z[ok] = _two_pass_z(sp[ok], 15).to_numpy()
    got = X["spread_z"].to_numpy()[first:]
    np.testing.assert_allclose(got, z, rtol=1e-7, atol=1e-10, equal_nan=True)
    # GARCH: the recursion written out, with the calibrated parameters; NaN while calibrating
    mu, omega, alpha, beta_g, var0 = F.params.garch
    s, g = var0, np.full(len(c), np.nan)
    for t in range(1, len(c)):
        s = omega + alpha * (r.iloc[t] - mu) ** 2 + beta_g * s
        g[t] = math.sqrt(s)
    assert X["garch_vol"].iloc[:300].isna().all()
    np.testing.assert_allclose(X["garch_vol"].iloc[300:], g[300:], rtol=1e-12)
    # arch's constraints: these returns have no volatility clustering, so alpha at its
    # bound 0 is the MLE (arch 8 / scipy 1.17 returns exactly 0.0; earlier ones ~1e-9)
    assert omega > 0 and alpha >= 0 and beta_g >= 0 and alpha + beta_g < 1


def test_streaming_twin_equals_batch_on_every_row():
    bars = ar1(1500, -0.1, seed=9)
    rng = np.random.default_rng(9)
    holes = rng.random(len(bars)) < 0.05  # ticks purged: no flow for those bars
    bars.loc[holes, ["buy_volume", "sell_volume"]] = np.nan
    bars.loc[bars.index[:40], ["bid", "ask", "bid_qty", "ask_qty"]] = np.nan  # no quote yet
    pair = _pair_of(bars, 9)
    params = FeatureParams(garch=(1e-6, 2e-10, 0.08, 0.9, 1e-8))
    X = build_features(bars, FULL, pair_bars=pair, params=params).X
    from lq.forecast.features import align_pair

    px = align_pair(bars, pair)
    state = FeatureState(FULL, params)
    cols = {c: bars[c].to_numpy() for c in FULL.columns}
    rows = []
    for i in range(len(bars)):
        kw = {c: float(cols[c][i]) for c in FULL.columns if c != "close"}
        rows.append(state.update(float(cols["close"][i]), pair_close=float(px[i]), **kw))
    np.testing.assert_allclose(np.array(rows), X.to_numpy(), rtol=1e-9, atol=1e-13, equal_nan=True)


def test_every_builtin_feature_passes_the_causality_check():
    bars = ar1(1200, 0.1, seed=2)
    pair = _pair_of(bars, 2)
    rep = check_causality(
        lambda b, p: build_features(b, FULL, pair_bars=p).X, bars, pair_bars=pair, cuts=4
    )
    assert rep.passed, rep.details
    assert rep.leaky == ()


def test_a_centred_window_and_a_future_return_are_caught_and_named():
    bars = ar1(600, 0.1, seed=4)

    def leaky(b: pd.DataFrame) -> pd.DataFrame:
        X = build_features(b, FeatureSpec(flow_windows=(), intensity_windows=())).X
        X["centred_mean"] = b["close"].rolling(9, center=True).mean()
        X["next_return"] = np.log(b["close"]).diff().shift(-1)
        X["flow_fwd"] = b["buy_volume"].rolling(5).sum().shift(-3)  # a volume leak
        return X

    rep = check_causality(leaky, bars)
    assert not rep.passed
    assert rep.leaky == ("centred_mean", "flow_fwd", "next_return")
    assert rep.first_difference is not None and rep.first_difference <= rep.cuts[-1]


def test_missing_columns_are_named_with_the_way_out():
    bars = ar1(100, 0.0).drop(columns=["buy_volume", "sell_volume"])
    with pytest.raises(ValidationError, match=r"buy_volume.*load_bars"):
        build_features(bars)
    X = build_features(bars, FeatureSpec(flow_windows=())).X
    assert "flow_30" not in X.columns
    with pytest.raises(ValidationError, match="garch_fit"):
        build_features(ar1(150, 0.0), FeatureSpec(garch=True, garch_fit=500))
    with pytest.raises(ValidationError, match=r"FeatureSpec\.vol_windows"):
        FeatureSpec(vol_windows=(1,))


def test_spec_round_trips_through_json_and_names_its_columns():
    s = FeatureSpec.from_json(FULL.to_json())
    assert s == FULL and s.id == FULL.id
    assert s.names[:3] == ("ret_0", "ret_1", "ret_2")
    assert "spread_z" in s.names and "garch_vol" in s.names
    assert FULL.warmup(FeatureParams(garch=(0, 1e-9, 0.05, 0.9, 1e-8))) > 30
