"""Everything the dashboard shows for two symbols and their pair, in one pure call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lq.errors import ValidationError

from ._common import check_positive_prices
from ._typing import FillPolicy
from .bars import align_prices, returns
from .indicators import bollinger, ema, rsi, sma
from .pairs import ADFResult, HedgeRatio, adf, half_life, hedge_ratio, spread
from .rolling import rolling_correlation, zscore
from .volatility import ewma_vol, realized_vol

__all__ = ["DashboardSnapshot", "PairPanel", "SymbolPanel", "dashboard_snapshot"]


@dataclass(frozen=True, slots=True)
class SymbolPanel:
    """One symbol's series on its own bar times (log returns; vols annualised)."""

    name: str
    close: pd.Series
    sma: pd.Series
    ema: pd.Series
    bollinger: pd.DataFrame
    rsi: pd.Series
    zscore: pd.Series
    log_returns: pd.Series
    realized_vol: dict[int, pd.Series]
    ewma_vol: pd.Series


@dataclass(frozen=True, slots=True)
class PairPanel:
    """The pair on aligned bar times, in log prices: ``log(a) = alpha + beta * log(b)``."""

    y: str
    x: str
    prices: pd.DataFrame
    hedge: HedgeRatio
    spread: pd.Series
    spread_zscore: pd.Series
    adf: ADFResult | None
    half_life: float
    correlation: pd.Series


@dataclass(frozen=True, slots=True)
class DashboardSnapshot:
    """Result of :func:`dashboard_snapshot`."""

    a: SymbolPanel
    b: SymbolPanel
    pair: PairPanel
    interval: str


def _close(bars: pd.DataFrame | pd.Series, name: str) -> pd.Series:
    s = bars["close"] if isinstance(bars, pd.DataFrame) else bars
    if not isinstance(s, pd.Series):
        raise ValidationError(name, type(bars).__name__, "expected bars DataFrame or Series")
    s = s.astype(np.float64)
    check_positive_prices(s.to_numpy(), f"{name}.close")
    return s.rename(name)


def _panel(
    close: pd.Series,
    *,
    interval: str,
    window: int,
    ema_span: int,
    rsi_window: int,
    vol_windows: Sequence[int],
    ewma_lambda: float,
) -> SymbolPanel:
    r = returns(close, kind="log")
    return SymbolPanel(
        name=str(close.name),
        close=close,
        sma=sma(close, window),
        ema=ema(close, ema_span),
        bollinger=bollinger(close, window),
        rsi=rsi(close, rsi_window),
        zscore=zscore(close, window),
        log_returns=r,
        realized_vol={w: realized_vol(r, interval=interval, window=w) for w in vol_windows},
        ewma_vol=ewma_vol(r, interval=interval, lam=ewma_lambda),
    )


def dashboard_snapshot(
    bars_a: pd.DataFrame | pd.Series,
    bars_b: pd.DataFrame | pd.Series,
    *,
    names: tuple[str, str] = ("a", "b"),
    interval: str = "1s",
    window: int = 300,
    ema_span: int = 60,
    rsi_window: int = 14,
    vol_windows: Sequence[int] = (60, 300, 3600),
    ewma_lambda: float = 0.94,
    correlation_window: int = 300,
    adf_maxlag: int = 1,
    fill: FillPolicy = "ffill",
) -> DashboardSnapshot:
    """Compute every statistic the dashboard shows for symbols ``a``, ``b`` and the pair.

    Per symbol (on its own bars): SMA, EMA, Bollinger (ddof=0), RSI, z-score (ddof=1),
    log returns, realised volatility at each of ``vol_windows`` and EWMA volatility, both
    annualised for ``interval``. For the pair (bars aligned with ``fill``, see
    :func:`align_prices`; log prices): OLS hedge ratio of a on b, spread, spread z-score,
    ADF on the spread with exactly ``adf_maxlag`` lags (no lag search: fast on 86,400
    bars; None when the spread is constant or too short), half-life and the rolling
    correlation of log returns. GARCH is not included (see :func:`garch_forecast`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> t = pd.date_range("2024-01-01", periods=2000, freq="s", tz="UTC")
    >>> b = pd.Series(np.exp(4 + np.cumsum(1e-3 * rng.standard_normal(2000))), index=t)
    >>> a = b * np.exp(1e-3 * rng.standard_normal(2000))
    >>> snap = dashboard_snapshot(a, b, names=("A", "B"), window=100, vol_windows=(60,))
    >>> round(snap.pair.hedge.beta, 1)
    1.0
    """
    ca, cb = _close(bars_a, names[0]), _close(bars_b, names[1])
    opts = {
        "interval": interval,
        "window": window,
        "ema_span": ema_span,
        "rsi_window": rsi_window,
        "vol_windows": tuple(vol_windows),
        "ewma_lambda": ewma_lambda,
    }
    pa, pb = _panel(ca, **opts), _panel(cb, **opts)  # type: ignore[arg-type]
    prices = align_prices({names[0]: ca, names[1]: cb}, fill=fill)
    ly, lx = np.log(prices[names[0]]), np.log(prices[names[1]])
    hedge = hedge_ratio(ly, lx)
    spr = spread(ly, lx, hedge.beta, alpha=hedge.alpha).rename("spread")
    try:
        adf_res: ADFResult | None = adf(spr, maxlag=adf_maxlag, autolag=None)
        hl = half_life(spr)
    except ValidationError:
        adf_res, hl = None, float("nan")
    corr = rolling_correlation(ly.diff(), lx.diff(), correlation_window).rename("correlation")
    pair = PairPanel(
        y=names[0],
        x=names[1],
        prices=prices,
        hedge=hedge,
        spread=spr,
        spread_zscore=zscore(spr, window).rename("spread_zscore"),
        adf=adf_res,
        half_life=hl,
        correlation=corr,
    )
    return DashboardSnapshot(a=pa, b=pb, pair=pair, interval=interval)
