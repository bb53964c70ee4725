"""Portfolio statistics: one pure function per statistic.

Conventions
-----------
* ``equity`` is a Series of account value indexed by bar time; ``returns`` are simple bar
  returns ``(equity[t] - equity[t-1]) / |equity[t-1]|`` (:func:`returns_from_equity`; the
  same as ``pct_change`` while equity is positive, and a loss stays a loss when it is not,
  as in vectorbt's ``get_return_nb``). NaNs are dropped before computing.
* **Ruin.** A run whose equity reaches zero or less at some close is *ruined*
  (:func:`ruin_position`); the engine liquidates it at the next open and it trades no more.
  No metric of a ruined run may look good: :func:`compute_metrics` sets its Sharpe, Sortino
  and Calmar to ``-inf``, its CAGR to -100 % and its PSR to 0, whatever the bars before the
  ruin did (an arithmetic mean of returns can be positive on a path that ends bankrupt).
* **Short samples.** Annualised figures from less than a day of bars, or from fewer than 30
  trades, are kept as computed but listed in ``Metrics.caveats`` with the reason
  (:mod:`lq.analytics.reliability`); every display greys them.
* Annualisation uses the bar interval on a 24 x 365 calendar (crypto trades every hour of
  every day): ``periods_per_year = 365 * 86400 / bar_seconds``.
* Empty or all-NaN input gives ``nan`` (counts give 0, sums give 0.0), never an exception.
* Drawdowns are negative fractions (``-0.25`` = 25 % below the running peak).
* Probabilistic and Deflated Sharpe follow Bailey & López de Prado, "The Sharpe Ratio
  Efficient Frontier" (2012) and "The Deflated Sharpe Ratio" (2014); they use the
  *per-bar* (non-annualised) Sharpe ratio and the sample skewness and (non-excess) kurtosis.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from lq.analytics.reliability import ANNUALISED_METRICS, annualised_caveat, sample_caveat

__all__ = [
    "EULER_GAMMA",
    "Metrics",
    "average_holding_time",
    "cagr",
    "calmar_ratio",
    "compute_metrics",
    "deflated_sharpe_ratio",
    "drawdown_series",
    "expected_max_sharpe",
    "exposure",
    "fees_paid",
    "max_drawdown",
    "max_drawdown_duration",
    "number_of_trades",
    "periods_per_year",
    "probabilistic_sharpe_ratio",
    "profit_factor",
    "returns_from_equity",
    "ruin_position",
    "sharpe_moments",
    "sharpe_ratio",
    "sortino_ratio",
    "total_return",
    "turnover",
    "win_rate",
]

EULER_GAMMA = 0.5772156649015329
_YEAR = pd.Timedelta(days=365)


def _clean(x: pd.Series | np.ndarray | Sequence[float]) -> np.ndarray:
    a = np.asarray(x, dtype=float).ravel()
    return a[np.isfinite(a)]


def periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per 365-day year from the median spacing of ``index`` (nan if < 2 bars)."""
    if len(index) < 2:
        return math.nan
    t = index.tz_convert(None) if index.tz is not None else index
    ns = t.to_numpy().astype("datetime64[ns]").astype(np.int64)
    seconds = float(np.median(np.diff(ns))) / 1e9
    return 365 * 86400 / seconds if seconds > 0 else math.nan


def returns_from_equity(equity: pd.Series) -> pd.Series:
    """Simple bar returns of an equity curve (first bar dropped).

    ``(e[t] - e[t-1]) / |e[t-1]|``: equal to ``pct_change`` while equity is positive; on a
    negative base a further loss is still negative (``pct_change`` would call it a gain). From
    a zero base: 0 if equity stays 0, else ``+-inf``. This is vectorbt's convention
    (``vectorbt.returns.nb.get_return_nb``).
    """
    e = equity.dropna()
    v = e.to_numpy(dtype=float)
    if v.size < 2:
        return pd.Series([], index=e.index[:0], dtype=float, name=e.name)
    prev, cur = v[:-1], v[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (cur - prev) / np.abs(prev)
    zero = prev == 0
    c0 = cur[zero]
    r[zero] = np.where(c0 == 0, 0.0, np.where(c0 > 0, np.inf, -np.inf))
    return pd.Series(r, index=e.index[1:], name=e.name)


def ruin_position(equity: pd.Series | np.ndarray) -> int:
    """Position of the first bar whose equity is zero or less (-1: never ruined)."""
    v = np.asarray(equity, dtype=float)
    hit = np.flatnonzero(v <= 0.0)
    return int(hit[0]) if hit.size else -1


def total_return(equity: pd.Series) -> float:
    """``last / first - 1`` of the equity curve."""
    e = equity.dropna()
    if len(e) < 1:
        return math.nan
    return float(e.iloc[-1] / e.iloc[0] - 1.0)


def cagr(equity: pd.Series) -> float:
    """Compound annual growth rate on a 365-day year: ``(last/first) ** (1/years) - 1``.

    ``years`` is the time between the first and last bar divided by 365 days.
    """
    e = equity.dropna()
    if len(e) < 2:
        return math.nan
    years = (e.index[-1] - e.index[0]) / _YEAR
    ratio = e.iloc[-1] / e.iloc[0]
    if years <= 0 or ratio <= 0:
        return math.nan if ratio > 0 or years <= 0 else -1.0
    with np.errstate(over="ignore"):
        return float(np.exp(np.log(ratio) / years) - 1.0)


def sharpe_ratio(returns: pd.Series | np.ndarray, *, periods_per_year: float = 1.0) -> float:
    """Annualised Sharpe ratio ``mean / std * sqrt(periods_per_year)`` (std with ddof=1).

    The risk-free rate is 0. With ``periods_per_year=1`` this is the per-bar Sharpe.
    """
    r = _clean(returns)
    if r.size < 2:
        return math.nan
    sd = r.std(ddof=1)
    if not sd > 0:
        return math.nan
    return float(r.mean() / sd * math.sqrt(periods_per_year))


def sortino_ratio(returns: pd.Series | np.ndarray, *, periods_per_year: float = 1.0) -> float:
    """Annualised Sortino ratio ``mean / downside deviation * sqrt(periods_per_year)``.

    Downside deviation is ``sqrt(mean(min(r, 0) ** 2))`` over all bars (target 0).
    ``nan`` when there is no losing bar.
    """
    r = _clean(returns)
    if r.size < 1:
        return math.nan
    dd = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if not dd > 0:
        return math.nan
    return float(r.mean() / dd * math.sqrt(periods_per_year))


def drawdown_series(equity: pd.Series) -> pd.Series:
    """``equity / running peak - 1`` (0 at new highs, negative below them)."""
    e = equity.dropna()
    return e / e.cummax() - 1.0


def max_drawdown(equity: pd.Series) -> float:
    """Largest peak-to-trough fall as a negative fraction (0.0 if equity never falls)."""
    dd = drawdown_series(equity)
    if dd.empty:
        return math.nan
    return float(dd.min())


def max_drawdown_duration(equity: pd.Series) -> pd.Timedelta:
    """Longest time from a peak until equity first gets back to it (or to the last bar).

    ``NaT`` for empty input; ``Timedelta(0)`` when equity never falls.
    """
    e = equity.dropna()
    if e.empty:
        return pd.NaT
    v = e.to_numpy(dtype=float)
    t = e.index
    peak = np.maximum.accumulate(v)
    under = v < peak
    if not under.any():
        return pd.Timedelta(0)
    # index of the most recent peak for each bar
    is_peak = ~under
    last_peak = np.maximum.accumulate(np.where(is_peak, np.arange(v.size), 0))
    n = v.size
    next_peak = np.minimum.accumulate(np.where(is_peak, np.arange(n), n)[::-1])[::-1]
    # a spell under water starts after a peak and ends at the next peak bar (recovery) or at
    # the last bar
    starts = np.flatnonzero(under & ~np.concatenate([[False], under[:-1]]))
    ends = np.where(next_peak[starts] < n, next_peak[starts], n - 1)
    if isinstance(t, pd.DatetimeIndex):
        tv = (t.tz_convert(None) if t.tz is not None else t).to_numpy()
    else:
        tv = np.asarray(t)
    spans = tv[ends] - tv[last_peak[starts]]
    return pd.Timedelta(spans.max())


def calmar_ratio(equity: pd.Series) -> float:
    """CAGR divided by the absolute maximum drawdown (nan without a drawdown)."""
    mdd = max_drawdown(equity)
    if not mdd < 0:
        return math.nan
    return float(cagr(equity) / abs(mdd))


def _closed(trades: pd.DataFrame) -> pd.DataFrame:
    if trades is None or len(trades) == 0:
        return pd.DataFrame({"pnl": pd.Series(dtype=float)})
    t = trades
    if "open" in t.columns:
        t = t[~t["open"].astype(bool)]
    return t[np.isfinite(t["pnl"].to_numpy(dtype=float))]


def win_rate(trades: pd.DataFrame) -> float:
    """Fraction of closed trades with ``pnl > 0``."""
    t = _closed(trades)
    if len(t) == 0:
        return math.nan
    return float((t["pnl"] > 0).mean())


def profit_factor(trades: pd.DataFrame) -> float:
    """Gross profit / gross loss of closed trades (``inf`` if no losing trade, nan if none)."""
    t = _closed(trades)
    if len(t) == 0:
        return math.nan
    pnl = t["pnl"].to_numpy(dtype=float)
    gain = pnl[pnl > 0].sum()
    loss = -pnl[pnl < 0].sum()
    if loss == 0:
        return math.inf if gain > 0 else math.nan
    return float(gain / loss)


def number_of_trades(trades: pd.DataFrame) -> int:
    """Number of trades (round trips), open ones included."""
    return 0 if trades is None else len(trades)


def average_holding_time(trades: pd.DataFrame) -> pd.Timedelta:
    """Mean of ``exit_time - entry_time`` over trades (open ones up to the last bar)."""
    if trades is None or len(trades) == 0 or "holding_time" not in trades.columns:
        return pd.NaT
    h = pd.to_timedelta(trades["holding_time"]).dropna()
    if h.empty:
        return pd.NaT
    return pd.Timedelta(h.mean())


def exposure(positions: pd.DataFrame | pd.Series) -> float:
    """Fraction of bars with a non-zero position in any symbol."""
    p = np.asarray(positions, dtype=float)
    if p.size == 0:
        return math.nan
    if p.ndim == 1:
        p = p[:, None]
    valid = np.isfinite(p).any(axis=1)
    if not valid.any():
        return math.nan
    held = (np.where(np.isfinite(p), p, 0.0) != 0).any(axis=1)
    return float(held[valid].mean())


def turnover(traded_notional: pd.Series | np.ndarray, *, capital: float) -> float:
    """Total traded notional divided by the initial capital (times the book was traded)."""
    x = _clean(traded_notional)
    if not capital > 0:
        return math.nan
    return float(np.abs(x).sum() / capital)


def fees_paid(fees: pd.Series | np.ndarray) -> float:
    """Sum of fees (0.0 for empty input)."""
    return float(_clean(fees).sum())


def probabilistic_sharpe_ratio(
    returns: pd.Series | np.ndarray, *, benchmark_sharpe: float = 0.0
) -> float:
    r"""Probability that the true per-bar Sharpe exceeds ``benchmark_sharpe``.

    .. math:: PSR = \Phi\left(\frac{(\hat{SR} - SR^*)\sqrt{T-1}}
              {\sqrt{1 - \gamma_3 \hat{SR} + \frac{\gamma_4 - 1}{4}\hat{SR}^2}}\right)

    with :math:`\hat{SR}` the per-bar Sharpe, :math:`\gamma_3` the skewness and
    :math:`\gamma_4` the (non-excess) kurtosis of the returns (Bailey & López de Prado 2012).
    """
    r = _clean(returns)
    if r.size < 3:
        return math.nan
    sr, skew, kurt = sharpe_moments(r)
    if not math.isfinite(sr):
        return math.nan
    return _psr(sr, benchmark_sharpe, r.size, skew, kurt)


def sharpe_moments(returns: pd.Series | np.ndarray) -> tuple[float, float, float]:
    """Per-bar Sharpe (ddof=1), skewness and non-excess kurtosis (both biased, as scipy's
    ``skew(bias=True)`` and ``kurtosis(fisher=False, bias=True)``); NaNs if undefined."""
    r = _clean(returns)
    if r.size < 3:
        return math.nan, math.nan, math.nan
    d = r - r.mean()
    d2 = d * d
    m2 = float(d2.mean())
    if not m2 > 0:
        return math.nan, math.nan, math.nan
    sr = float(r.mean() / math.sqrt(m2 * r.size / (r.size - 1)))
    return sr, float((d2 * d).mean() / m2**1.5), float((d2 * d2).mean() / m2**2)


def _psr(sr: float, sr_star: float, n: int, skew: float, kurt: float) -> float:
    denom = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr**2
    if not denom > 0 or n < 2:
        return math.nan
    return float(stats.norm.cdf((sr - sr_star) * math.sqrt(n - 1) / math.sqrt(denom)))


def expected_max_sharpe(*, n_trials: int, sharpe_variance: float) -> float:
    r"""Expected maximum of ``n_trials`` Sharpe estimates under the null of zero skill.

    .. math:: SR_0 = \sqrt{V}\left((1-\gamma)\Phi^{-1}(1 - 1/N) + \gamma\Phi^{-1}(1 - 1/(N e))
              \right)

    (Bailey & López de Prado 2014, eq. 2; :math:`\gamma` is Euler-Mascheroni).
    """
    if n_trials < 1 or not sharpe_variance >= 0:
        return math.nan
    if n_trials == 1:
        return 0.0
    z1 = stats.norm.ppf(1.0 - 1.0 / n_trials)
    z2 = stats.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(sharpe_variance) * ((1 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))


def deflated_sharpe_ratio(
    returns: pd.Series | np.ndarray,
    *,
    n_trials: int,
    sharpe_variance: float,
) -> float:
    """PSR against the Sharpe a best-of-``n_trials`` search would reach by luck.

    Parameters
    ----------
    returns
        Bar returns of the selected strategy.
    n_trials
        Number of parameter sets (independent trials) tried.
    sharpe_variance
        Variance of the *per-bar* Sharpe ratios across the trials.
    """
    sr0 = expected_max_sharpe(n_trials=n_trials, sharpe_variance=sharpe_variance)
    if not math.isfinite(sr0):
        return math.nan
    return probabilistic_sharpe_ratio(returns, benchmark_sharpe=sr0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Metrics:
    """The standard metric set of one backtest (see the module docstring for definitions)."""

    total_return: float
    cagr: float
    sharpe: float
    sortino: float
    max_drawdown: float
    max_drawdown_duration: pd.Timedelta
    calmar: float
    win_rate: float
    profit_factor: float
    number_of_trades: int
    average_holding_time: pd.Timedelta
    exposure: float
    turnover: float
    fees_paid: float
    psr: float
    bars: int
    periods_per_year: float
    span_seconds: float = math.nan
    ruined: bool = False
    ruined_at: str | None = None
    caveats: dict[str, str] = dataclasses.field(default_factory=dict)
    """Metric name -> why its value means little (short sample); see
    :mod:`lq.analytics.reliability`. The values themselves are kept as computed."""

    def to_dict(self) -> dict[str, Any]:
        """Plain values; durations as seconds (float, nan if undefined); ``caveats`` a dict."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, pd.Timedelta) or v is pd.NaT:
                v = math.nan if v is pd.NaT else v.total_seconds()
                out[f.name + "_seconds"] = v
            elif isinstance(v, dict):
                out[f.name] = dict(v)
            else:
                out[f.name] = v
        return out


def compute_metrics(
    *,
    equity: pd.Series,
    trades: pd.DataFrame,
    positions: pd.DataFrame,
    traded_notional: pd.Series,
    fees: pd.Series,
    capital: float,
    bars_per_year: float | None = None,
    count_trades: bool = True,
) -> Metrics:
    """All standard metrics of one run (``bars_per_year`` defaults to the index's).

    A ruined run (equity at or below zero at some close, :func:`ruin_position`) gets
    ``sharpe = sortino = calmar = -inf``, ``cagr = -1`` and ``psr = 0``: the worst values,
    so that no ranking can put it above a run that survived. ``caveats`` lists the annualised
    metrics computed from a short sample (``count_trades=False``: buy-and-hold, where the
    trade count is not part of the rule).
    """
    ppy = (
        periods_per_year(pd.DatetimeIndex(equity.index)) if bars_per_year is None else bars_per_year
    )
    rets = returns_from_equity(equity).to_numpy()
    growth = cagr(equity)
    mdd = max_drawdown(equity)
    n_trades = number_of_trades(trades)
    e = equity.dropna()
    span = (
        float((e.index[-1] - e.index[0]) / pd.Timedelta(seconds=1))
        if len(e) >= 2 and isinstance(e.index, pd.DatetimeIndex)
        else math.nan
    )
    sharpe = sharpe_ratio(rets, periods_per_year=ppy)
    sortino = sortino_ratio(rets, periods_per_year=ppy)
    calmar = growth / abs(mdd) if mdd < 0 else math.nan
    psr = probabilistic_sharpe_ratio(rets)
    ruin = ruin_position(e)
    ruined_at = None
    if ruin >= 0:
        sharpe = sortino = calmar = -math.inf
        growth, psr = -1.0, 0.0
        t = e.index[ruin]
        ruined_at = t.isoformat() if isinstance(t, pd.Timestamp) else str(t)
    reason = annualised_caveat(span_seconds=span, trades=n_trades if count_trades else None)
    caveats = {} if reason is None or ruin >= 0 else dict.fromkeys(ANNUALISED_METRICS, reason)
    if caveats:  # the same rule for the probability built on the Sharpe ratio, in its words
        trades_n = n_trades if count_trades else None
        caveats["psr"] = sample_caveat("PSR", span_seconds=span, trades=trades_n) or str(reason)
    return Metrics(
        total_return=total_return(equity),
        cagr=growth,
        sharpe=sharpe,
        sortino=sortino,
        max_drawdown=mdd,
        max_drawdown_duration=max_drawdown_duration(equity),
        calmar=calmar,
        win_rate=win_rate(trades),
        profit_factor=profit_factor(trades),
        number_of_trades=n_trades,
        average_holding_time=average_holding_time(trades),
        exposure=exposure(positions),
        turnover=turnover(traded_notional, capital=capital),
        fees_paid=fees_paid(fees),
        psr=psr,
        bars=len(equity),
        periods_per_year=ppy,
        span_seconds=span,
        ruined=ruin >= 0,
        ruined_at=ruined_at,
        caveats=caveats,
    )
