"""Causal features: every row uses bars up to and including its own bar only.

Each feature is built from what :mod:`lq.analytics` already computes, so the batch values
(:func:`build_features`) and the live, one-bar-at-a-time values (:class:`FeatureState`,
built on :mod:`lq.analytics.streaming`) are the same numbers; a test checks them against
each other on every row, and :func:`lq.forecast.check_causality` proves each row ignores
the future by perturbing it (the same check the backtests use).

======================  ==========================================  =======================
feature                 value at bar ``t``                           needs columns
======================  ==========================================  =======================
``ret_k``               log return of bar ``t - k`` (k < ``lags``)   close
``rv_w``                ``sqrt(mean(r**2))`` over the last w returns  close
``ewma_vol``            RiskMetrics EWMA volatility (``ewma_lam``)   close
``garch_vol``           GARCH(1,1) one-step volatility (see below)   close
``rsi_w``               Wilder's RSI over w changes                  close
``z_w``                 z-score of the close over w bars (ddof 1)    close
``flow_w``              ``(buy - sell) / (buy + sell)`` taker volume  buy_volume, sell_volume
                        over w bars (trade-flow imbalance)
``intensity_w``         ``log(1 + mean trades per bar)`` over w      trades
``spread_z``            z-score over ``pair_window`` of the log       the pair's close
                        spread ``log y - beta log x`` (rolling OLS
                        ``beta`` over the same window)
``book_imbalance``      ``(bid_qty - ask_qty) / (bid_qty + ask_qty)``  bid, ask, bid_qty, ask_qty
``microprice_offset``   ``(microprice - mid) / mid``                 bid, ask, bid_qty, ask_qty
``ofi_w``               order-flow imbalance of the best quotes      bid, ask, bid_qty, ask_qty
                        (Cont, Kukanov & Stoikov 2014) summed over w
                        bars, divided by the mean depth
======================  ==========================================  =======================

Returns are per bar (not annualised); volatilities are per bar too. Missing inputs follow
the package NaN policy (skipped; the output repeats the last one).

GARCH parameters are *fitted*, so they must come from the past: with ``params=None``,
:func:`build_features` fits GARCH(1,1) on the first ``garch_fit`` returns (with ``arch``)
and leaves ``garch_vol`` NaN on those calibration bars; a trained model stores the fitted
parameters (:class:`FeatureParams`) and uses them for every later bar.

Book features read the best bid/ask standing at each bar's close (``bookTicker``); the
depth-based features of the coming order-book work plug in the same way: a name in
:attr:`FeatureSpec.names`, a batch function here and an ``update`` in :class:`FeatureState`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from lq.analytics import ewma_vol, rolling_hedge_ratio, rolling_mean, rsi, zscore
from lq.analytics import streaming as st
from lq.backtest._config import Config
from lq.errors import ValidationError
from lq.forecast._common import bar_times_us, check_bars

__all__ = [
    "FEATURE_VERSION",
    "FeatureParams",
    "FeatureSpec",
    "FeatureState",
    "Features",
    "align_pair",
    "build_features",
    "fit_feature_params",
]

#: Bumped whenever a feature's definition changes: a model saved with another version is
#: refused (its features would not mean what it learned).
FEATURE_VERSION = 1

_YEAR_US = 31_536_000_000_000  # one bar per year: lq's volatilities without annualisation
_TUPLES = ("vol_windows", "zscore_windows", "flow_windows", "intensity_windows")
BOOK_COLUMNS = ("bid", "ask", "bid_qty", "ask_qty")
FLOW_COLUMNS = ("buy_volume", "sell_volume")


def _window(owner: str, name: str, v: Any, minimum: int = 2) -> None:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < minimum:
        raise ValidationError(f"{owner}.{name}", v, f"must be an integer >= {minimum}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FeatureSpec(Config):
    """Which features to build (see the module docstring for each one).

    Empty tuples / None switch a family off. The defaults need ``close``, ``trades``,
    ``buy_volume`` and ``sell_volume`` (what :func:`lq.forecast.load_bars` returns).
    """

    lags: int = 5
    vol_windows: tuple[int, ...] = (30,)
    ewma_lam: float | None = 0.94
    garch: bool = False
    garch_fit: int = 2000
    rsi_window: int | None = 14
    zscore_windows: tuple[int, ...] = (60,)
    flow_windows: tuple[int, ...] = (30,)
    intensity_windows: tuple[int, ...] = (30,)
    pair: str | None = None
    pair_window: int = 120
    book: bool = False
    ofi_window: int = 30

    @classmethod
    def _coerce(cls, data: dict[str, Any]) -> dict[str, Any]:
        d = dict(data)
        for k in _TUPLES:
            if isinstance(d.get(k), list):
                d[k] = tuple(d[k])
        return d

    def _validate(self) -> None:
        o = "FeatureSpec"
        _window(o, "lags", self.lags, 0)
        for k in _TUPLES:
            v = getattr(self, k)
            if not isinstance(v, tuple):
                raise ValidationError(f"{o}.{k}", v, "expected a tuple of windows, e.g. (30,)")
            for w in v:
                _window(o, k, w)
            if len(set(v)) != len(v):
                raise ValidationError(f"{o}.{k}", v, "duplicate window")
        if self.ewma_lam is not None and not 0.0 < float(self.ewma_lam) < 1.0:
            raise ValidationError(f"{o}.ewma_lam", self.ewma_lam, "must be in (0, 1) or None")
        if self.rsi_window is not None:
            _window(o, "rsi_window", self.rsi_window, 1)
        _window(o, "garch_fit", self.garch_fit, 100)
        _window(o, "pair_window", self.pair_window, 3)
        _window(o, "ofi_window", self.ofi_window, 1)
        if self.pair is not None and (not isinstance(self.pair, str) or not self.pair.strip()):
            raise ValidationError(f"{o}.pair", self.pair, "expected a symbol such as 'ETHUSDT'")
        if not isinstance(self.garch, bool) or not isinstance(self.book, bool):
            raise ValidationError(f"{o}.garch/book", (self.garch, self.book), "expected booleans")
        if not self.names:
            raise ValidationError(o, self.to_dict(), "no features selected")

    @property
    def names(self) -> tuple[str, ...]:
        """Feature column names, in order."""
        out = [f"ret_{k}" for k in range(self.lags)]
        out += [f"rv_{w}" for w in self.vol_windows]
        if self.ewma_lam is not None:
            out.append("ewma_vol")
        if self.garch:
            out.append("garch_vol")
        if self.rsi_window is not None:
            out.append(f"rsi_{self.rsi_window}")
        out += [f"z_{w}" for w in self.zscore_windows]
        out += [f"flow_{w}" for w in self.flow_windows]
        out += [f"intensity_{w}" for w in self.intensity_windows]
        if self.pair is not None:
            out.append("spread_z")
        if self.book:
            out += ["book_imbalance", "microprice_offset", f"ofi_{self.ofi_window}"]
        return tuple(out)

    @property
    def columns(self) -> tuple[str, ...]:
        """Bar columns the features read (besides the pair's close)."""
        cols = ["close"]
        if self.intensity_windows:
            cols.append("trades")
        if self.flow_windows:
            cols += FLOW_COLUMNS
        if self.book:
            cols += BOOK_COLUMNS
        return tuple(cols)

    def warmup(self, params: FeatureParams | None = None) -> int:
        """Bars after which every feature is defined and recursive ones (EWMA, RSI, GARCH)
        have forgotten their start to ~1e-12: how much history live scoring loads."""
        need = [self.lags + 1, 2]
        need += [w + 1 for w in (*self.vol_windows, *self.zscore_windows)]
        need += [w for w in (*self.flow_windows, *self.intensity_windows)]
        if self.pair is not None:
            need.append(2 * self.pair_window + 1)
        if self.book:
            need.append(self.ofi_window + 1)
        if self.rsi_window is not None:
            need.append(self.rsi_window + 1 + math.ceil(28.0 / -math.log1p(-1 / self.rsi_window)))
        if self.ewma_lam is not None:
            need.append(1 + math.ceil(28.0 / -math.log(float(self.ewma_lam))))
        if self.garch:
            beta = params.garch[3] if params is not None and params.garch else 0.99
            need.append(1 + min(50_000, math.ceil(28.0 / -math.log(max(beta, 1e-9)))))
        return int(max(need))


@dataclasses.dataclass(frozen=True)
class FeatureParams:
    """Parameters a feature learns from data: GARCH(1,1) ``(mu, omega, alpha, beta, var0)``
    in return units (``var0`` seeds the recursion), and the bar of the last return used."""

    garch: tuple[float, float, float, float, float] | None = None
    fitted_until: int | None = None  # µs, open time of the last calibration bar

    def to_dict(self) -> dict[str, Any]:
        return {
            "garch": None if self.garch is None else list(self.garch),
            "fitted_until": self.fitted_until,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureParams:
        g = d.get("garch")
        fu = d.get("fitted_until")
        return cls(
            garch=None if g is None else tuple(float(v) for v in g),  # type: ignore[arg-type]
            fitted_until=None if fu is None else int(fu),
        )


@dataclasses.dataclass(frozen=True)
class Features:
    """Output of :func:`build_features`: the feature frame and the parameters it used."""

    X: pd.DataFrame
    spec: FeatureSpec
    params: FeatureParams


def _log_returns(close: np.ndarray) -> np.ndarray:
    r = np.empty(close.size)
    if close.size:
        r[0] = np.nan
        r[1:] = np.diff(np.log(close))
    return r


def fit_feature_params(
    close: np.ndarray, spec: FeatureSpec, ts: np.ndarray | None = None
) -> tuple[FeatureParams, int]:
    """Fit the learned feature parameters on the first ``garch_fit`` returns of ``close``.

    Returns the parameters and the position of the last bar used (-1 if nothing was fit).
    """
    if not spec.garch:
        return FeatureParams(), -1
    from lq.analytics import garch_forecast

    r = _log_returns(np.asarray(close, dtype=np.float64))
    valid = np.flatnonzero(np.isfinite(r))
    if valid.size < spec.garch_fit:
        raise ValidationError(
            "FeatureSpec.garch_fit",
            spec.garch_fit,
            f"GARCH calibration needs {spec.garch_fit} returns, the bars have {valid.size} "
            "(lower garch_fit or load more bars)",
        )
    last = int(valid[spec.garch_fit - 1])
    f = garch_forecast(r[valid[: spec.garch_fit]], horizon=1, mean="constant")
    s = f.scale
    mu = f.params.get("mu", 0.0) / s
    omega = f.params["omega"] / s**2
    alpha = f.params["alpha[1]"]
    beta = f.params["beta[1]"]
    cal = r[valid[: spec.garch_fit]]
    var0 = omega / (1.0 - alpha - beta) if alpha + beta < 0.999 else float(np.var(cal))
    until = None if ts is None else int(ts[last])
    return FeatureParams(garch=(mu, omega, alpha, beta, var0), fitted_until=until), last


def _garch_vol(r: np.ndarray, g: tuple[float, float, float, float, float]) -> np.ndarray:
    from scipy.signal import lfilter

    mu, omega, alpha, beta, var0 = g
    ok = np.isfinite(r)
    out = np.full(r.size, np.nan)
    v = r[ok]
    if v.size == 0:
        return out
    e = v - mu
    u = omega + alpha * (e * e)
    s = lfilter([1.0], [1.0, -beta], u, zi=[beta * var0])[0]
    vol = np.sqrt(np.maximum(s, 0.0))
    from lq.analytics._common import scatter

    return scatter(vol, ok)


def align_pair(bars: pd.DataFrame, pair_bars: pd.DataFrame) -> np.ndarray:
    """The pair's close standing at each bar's close: its last bar opening at or before the
    bar's open (same second = closed at the same time). NaN before its first bar."""
    ts = bar_times_us(bars)
    pts = bar_times_us(pair_bars)
    pc = pair_bars["close"].to_numpy(dtype=np.float64)
    j = np.searchsorted(pts, ts, side="right") - 1
    out = np.full(ts.size, np.nan)
    ok = j >= 0
    out[ok] = pc[j[ok]]
    return out


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b != 0, a / b, np.nan)


def _ofi_terms(bid: np.ndarray, ask: np.ndarray, bq: np.ndarray, aq: np.ndarray) -> np.ndarray:
    e = np.full(bid.size, np.nan)
    if bid.size < 2:
        return e
    b0, b1, a0, a1 = bid[:-1], bid[1:], ask[:-1], ask[1:]
    q0, q1, p0, p1 = bq[:-1], bq[1:], aq[:-1], aq[1:]
    e[1:] = (
        np.where(b1 >= b0, q1, 0.0)
        - np.where(b1 <= b0, q0, 0.0)
        - np.where(a1 <= a0, p1, 0.0)
        + np.where(a1 >= a0, p0, 0.0)
    )
    bad = ~(np.isfinite(b0) & np.isfinite(b1) & np.isfinite(a0) & np.isfinite(a1))
    e[1:][bad] = np.nan
    return e


class _Columns:
    """Writes named columns into a preallocated block."""

    def __init__(self, block: np.ndarray, names: tuple[str, ...]) -> None:
        self.block = block
        self.pos = {k: i for i, k in enumerate(names)}

    def __setitem__(self, name: str, values: np.ndarray) -> None:
        self.block[:, self.pos[name]] = values


def build_features(
    bars: pd.DataFrame,
    spec: FeatureSpec | None = None,
    *,
    pair_bars: pd.DataFrame | None = None,
    params: FeatureParams | None = None,
) -> Features:
    """The feature frame of ``bars`` (one row per bar, on the bars' index).

    Parameters
    ----------
    bars
        Bars indexed by open time (UTC), with the columns :attr:`FeatureSpec.columns` names
        (:func:`lq.forecast.load_bars` returns them all).
    spec
        Which features (default :class:`FeatureSpec`).
    pair_bars
        The other leg's bars for ``spread_z`` (or a ``pair_close`` column in ``bars``).
    params
        Learned feature parameters from a trained model; None fits them on the first bars
        (see the module docstring).

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=6, freq="1s", tz="UTC")
    >>> bars = pd.DataFrame({"close": [1.0, 1.1, 1.0, 1.2, 1.1, 1.3]}, index=idx)
    >>> spec = FeatureSpec(lags=2, vol_windows=(2,), ewma_lam=None, rsi_window=None,
    ...                    zscore_windows=(), flow_windows=(), intensity_windows=())
    >>> build_features(bars, spec).X.round(4).columns.tolist()
    ['ret_0', 'ret_1', 'rv_2']
    """
    spec = FeatureSpec() if spec is None else spec
    if not isinstance(spec, FeatureSpec):
        raise ValidationError("spec", type(spec).__name__, "expected a FeatureSpec")
    missing = (
        [c for c in spec.columns if c not in bars.columns] if isinstance(bars, pd.DataFrame) else []
    )
    if missing:
        hint = (
            " (lq.forecast.load_bars(..., flow=True) adds buy_volume/sell_volume from the ticks)"
            if set(missing) & set(FLOW_COLUMNS)
            else " (lq.forecast.load_bars(..., book=True) adds the best bid/ask)"
            if set(missing) & set(BOOK_COLUMNS)
            else ""
        )
        raise ValidationError(
            "bars.columns",
            list(bars.columns),
            f"the features {spec.names} need {missing}{hint}; or switch those features off "
            "in the FeatureSpec",
        )
    check_bars(bars, spec.columns, what="these features")
    close = bars["close"].to_numpy(dtype=np.float64)
    if close.size and not bool(np.all(np.isfinite(close) & (close > 0))):
        raise ValidationError("bars.close", "non-positive", "closes must be finite and > 0")
    ts = bar_times_us(bars)
    n = close.size
    r = _log_returns(close)
    names = spec.names
    # one Fortran-ordered block: each column is written once and the frame wraps it uncopied
    block = np.empty((n, len(names)), order="F")
    cols = _Columns(block, names)
    for k in range(spec.lags):
        col = block[:, k]
        col[: min(k, n)] = np.nan
        col[k:] = r[: n - k] if k else r
    if spec.vol_windows:
        r2 = r * r
        for w in spec.vol_windows:
            cols[f"rv_{w}"] = np.sqrt(np.maximum(np.asarray(rolling_mean(r2, w)), 0.0))
    if spec.ewma_lam is not None:
        cols["ewma_vol"] = np.asarray(ewma_vol(r, interval=_YEAR_US, lam=float(spec.ewma_lam)))
    used = params
    if spec.garch:
        calib_end = -1
        if params is None or params.garch is None:
            used, calib_end = fit_feature_params(close, spec, ts)
        assert used is not None and used.garch is not None
        g = _garch_vol(r, used.garch)
        if calib_end >= 0:
            g[:calib_end] = np.nan  # those bars' parameters saw their own future
        cols["garch_vol"] = g
    if spec.rsi_window is not None:
        cols[f"rsi_{spec.rsi_window}"] = np.asarray(rsi(close, spec.rsi_window))
    for w in spec.zscore_windows:
        cols[f"z_{w}"] = np.asarray(zscore(close, w))
    if spec.flow_windows:
        buy = bars["buy_volume"].to_numpy(dtype=np.float64)
        sell = bars["sell_volume"].to_numpy(dtype=np.float64)
        for w in spec.flow_windows:
            mb = np.asarray(rolling_mean(buy, w))
            ms = np.asarray(rolling_mean(sell, w))
            cols[f"flow_{w}"] = _ratio(mb - ms, mb + ms)
    if spec.intensity_windows:
        tr = bars["trades"].to_numpy(dtype=np.float64)
        for w in spec.intensity_windows:
            cols[f"intensity_{w}"] = np.log1p(np.asarray(rolling_mean(tr, w)))
    if spec.pair is not None:
        if pair_bars is not None:
            px = align_pair(bars, pair_bars)
        elif "pair_close" in bars.columns:
            px = bars["pair_close"].to_numpy(dtype=np.float64)
        else:
            raise ValidationError(
                "pair_bars", None, f"spread_z needs the bars of {spec.pair} (pair_bars=...)"
            )
        with np.errstate(invalid="ignore", divide="ignore"):
            ly, lx = np.log(close), np.log(px)
        beta = np.asarray(rolling_hedge_ratio(ly, lx, spec.pair_window))
        cols["spread_z"] = np.asarray(zscore(ly - beta * lx, spec.pair_window))
    if spec.book:
        bid, ask, bq, aq = (bars[c].to_numpy(dtype=np.float64) for c in BOOK_COLUMNS)
        depth = bq + aq
        mid = 0.5 * (bid + ask)
        cols["book_imbalance"] = _ratio(bq - aq, depth)
        micro = _ratio(ask * bq + bid * aq, depth)
        cols["microprice_offset"] = _ratio(micro - mid, mid)
        e = _ofi_terms(bid, ask, bq, aq)
        w = spec.ofi_window
        cols[f"ofi_{w}"] = _ratio(
            np.asarray(rolling_mean(e, w)), np.asarray(rolling_mean(0.5 * depth, w))
        )
    X = pd.DataFrame(block, index=bars.index, columns=list(names), copy=False)
    return Features(X=X, spec=spec, params=used if used is not None else FeatureParams())


# ----------------------------------------------------------------------------- streaming
class _Ratio:
    """``(mean a - mean b) / (mean a + mean b)`` over a window: the flow imbalance."""

    __slots__ = ("_a", "_b")

    def __init__(self, w: int) -> None:
        self._a = st.RollingMean(w)
        self._b = st.RollingMean(w)

    def update(self, a: float, b: float) -> float:
        self._a.update(a)
        self._b.update(b)
        ma, mb = self._a.value, self._b.value
        s = ma + mb
        return (ma - mb) / s if s != 0 else math.nan


class FeatureState:
    """The features of one bar at a time, O(1) per bar: the live twin of
    :func:`build_features` (same numbers on every row, tested).

    ``update(close, trades=, buy_volume=, sell_volume=, bid=, ask=, bid_qty=, ask_qty=,
    pair_close=)`` takes the bar that just closed and returns its feature row (a float64
    array in :attr:`FeatureSpec.names` order).
    """

    def __init__(self, spec: FeatureSpec, params: FeatureParams | None = None) -> None:
        if spec.garch and (params is None or params.garch is None):
            raise ValidationError(
                "params", params, "garch_vol needs the GARCH parameters of a trained model"
            )
        self.spec = spec
        self.params = params or FeatureParams()
        self.names = spec.names
        self.bars = 0
        self._prev_close = math.nan
        self._lags: list[float] = [math.nan] * spec.lags
        self._rv = [st.RollingMean(w) for w in spec.vol_windows]
        self._ewma = (
            st.EWMAVol(interval=_YEAR_US, lam=float(spec.ewma_lam))
            if spec.ewma_lam is not None
            else None
        )
        self._garch_s = self.params.garch[4] if self.params.garch else math.nan
        self._garch_v = math.nan
        self._rsi = st.RSI(spec.rsi_window) if spec.rsi_window is not None else None
        self._z = [st.ZScore(w) for w in spec.zscore_windows]
        self._flow = [_Ratio(w) for w in spec.flow_windows]
        self._int = [st.RollingMean(w) for w in spec.intensity_windows]
        if spec.pair is not None:
            self._hedge = st.RollingHedgeRatio(spec.pair_window)
            self._sz = st.ZScore(spec.pair_window)
        if spec.book:
            self._quote = (math.nan, math.nan, math.nan, math.nan)
            self._ofi = st.RollingMean(spec.ofi_window)
            self._depth = st.RollingMean(spec.ofi_window)
        self._row = np.empty(len(self.names))

    def update(
        self,
        close: float,
        *,
        trades: float = math.nan,
        buy_volume: float = math.nan,
        sell_volume: float = math.nan,
        bid: float = math.nan,
        ask: float = math.nan,
        bid_qty: float = math.nan,
        ask_qty: float = math.nan,
        pair_close: float = math.nan,
    ) -> np.ndarray:
        spec = self.spec
        out: list[float] = []
        prev = self._prev_close
        r = math.log(close / prev) if prev == prev else math.nan
        self._prev_close = close
        self.bars += 1
        lags = self._lags
        if lags:
            lags.pop()
            lags.insert(0, r)
            out += lags
        if self._rv:
            r2 = r * r
            for m in self._rv:
                m.update(r2)
                v = m.value
                out.append(math.sqrt(v) if v > 0.0 else (math.nan if v != v else 0.0))
        if self._ewma is not None:
            self._ewma.update(r)
            out.append(self._ewma.value)
        if spec.garch:
            if r == r:
                mu, omega, alpha, beta, _ = self.params.garch  # type: ignore[misc]
                e = r - mu
                self._garch_s = (omega + alpha * (e * e)) + beta * self._garch_s
                self._garch_v = math.sqrt(self._garch_s) if self._garch_s > 0 else 0.0
            out.append(self._garch_v)
        if self._rsi is not None:
            self._rsi.update(close)
            out.append(self._rsi.value)
        for z in self._z:
            z.update(close)
            out.append(z.value)
        for f in self._flow:
            out.append(f.update(buy_volume, sell_volume))
        for m in self._int:
            m.update(trades)
            v = m.value
            out.append(math.log1p(v))
        if spec.pair is not None:
            ly = math.log(close)
            lx = math.log(pair_close) if pair_close > 0 else math.nan
            self._hedge.update(ly, lx)
            b = self._hedge.value
            self._sz.update(ly - b * lx)
            out.append(self._sz.value)
        if spec.book:
            depth = bid_qty + ask_qty
            mid = 0.5 * (bid + ask)
            out.append((bid_qty - ask_qty) / depth if depth != 0 else math.nan)
            micro = (ask * bid_qty + bid * ask_qty) / depth if depth != 0 else math.nan
            out.append((micro - mid) / mid if mid != 0 else math.nan)
            b0, a0, q0, p0 = self._quote
            ok = b0 - b0 == 0 and bid - bid == 0 and a0 - a0 == 0 and ask - ask == 0
            if ok:
                e = (
                    (bid_qty if bid >= b0 else 0.0)
                    - (q0 if bid <= b0 else 0.0)
                    - (ask_qty if ask <= a0 else 0.0)
                    + (p0 if ask >= a0 else 0.0)
                )
            else:
                e = math.nan
            self._quote = (bid, ask, bid_qty, ask_qty)
            self._ofi.update(e)
            self._depth.update(0.5 * depth)
            dm = self._depth.value
            out.append(self._ofi.value / dm if dm != 0 else math.nan)
        row = self._row
        row[:] = out
        return row.copy()
