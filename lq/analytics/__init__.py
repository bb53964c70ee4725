"""lq.analytics: pure statistics over pandas/numpy, and O(1) streaming twins.

No I/O, no globals. Conventions (see docs/analytics.md): times are int64 µs UTC, bars are
indexed by a tz-aware UTC DatetimeIndex; NaN inputs are skipped by windowed/recursive
statistics; std uses ddof=1 (Bollinger: ddof=0); volatility is annualised on 24x365.
"""

from __future__ import annotations

from . import streaming
from .bars import BAR_COLUMNS, align_prices, interval_us, resample_bars, returns
from .correlation import (
    ClusterResult,
    cluster_symbols,
    correlation_distance,
    correlation_matrix,
    rolling_correlation,
)
from .forecast import DirectionForecast, direction_features, forecast_direction
from .indicators import bollinger, ema, rsi, sma
from .pairs import (
    ADFResult,
    CointegrationResult,
    HedgeRatio,
    JohansenResult,
    adf,
    cointegration,
    half_life,
    hedge_ratio,
    hurst,
    johansen,
    kalman_hedge_ratio,
    rolling_hedge_ratio,
    scan_pairs,
    spread,
)
from .rolling import rolling_mean, rolling_std, zscore
from .snapshot import DashboardSnapshot, PairPanel, SymbolPanel, dashboard_snapshot
from .volatility import GarchForecast, ewma_vol, garch_forecast, periods_per_year, realized_vol

__all__ = [
    "BAR_COLUMNS",
    "ADFResult",
    "ClusterResult",
    "CointegrationResult",
    "DashboardSnapshot",
    "DirectionForecast",
    "GarchForecast",
    "HedgeRatio",
    "JohansenResult",
    "PairPanel",
    "SymbolPanel",
    "adf",
    "align_prices",
    "bollinger",
    "cluster_symbols",
    "cointegration",
    "correlation_distance",
    "correlation_matrix",
    "dashboard_snapshot",
    "direction_features",
    "ema",
    "ewma_vol",
    "forecast_direction",
    "garch_forecast",
    "half_life",
    "hedge_ratio",
    "hurst",
    "interval_us",
    "johansen",
    "kalman_hedge_ratio",
    "periods_per_year",
    "realized_vol",
    "resample_bars",
    "returns",
    "rolling_correlation",
    "rolling_hedge_ratio",
    "rolling_mean",
    "rolling_std",
    "rsi",
    "scan_pairs",
    "sma",
    "spread",
    "streaming",
    "zscore",
]
