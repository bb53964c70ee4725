"""lq.analytics: pure statistics over pandas/numpy, and O(1) streaming twins.

No I/O, no globals. Conventions (see docs/analytics.md): times are int64 µs UTC, bars are
indexed by a tz-aware UTC DatetimeIndex; NaN inputs are skipped by windowed/recursive
statistics; std uses ddof=1 (Bollinger: ddof=0); volatility is annualised on 24x365.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Submodules load on first use: the collector needs only ``streaming`` (numpy), and should not
# pay for statsmodels, arch and scikit-learn in memory and start-up time.
_LAZY = {
    "ADFResult": "pairs",
    "BookFeatures": "orderbook",
    "BAR_COLUMNS": "bars",
    "ClusterResult": "correlation",
    "CointegrationResult": "pairs",
    "DashboardSnapshot": "snapshot",
    "DirectionForecast": "forecast",
    "Dislocation": "crossvenue",
    "GarchForecast": "volatility",
    "HayashiYoshida": "leadlag",
    "HedgeRatio": "pairs",
    "JohansenResult": "pairs",
    "LeadLag": "leadlag",
    "PairPanel": "snapshot",
    "QUALITY_COLUMNS": "crossvenue",
    "SymbolPanel": "snapshot",
    "VolumeShare": "crossvenue",
    "adf": "pairs",
    "align_prices": "bars",
    "bollinger": "indicators",
    "book_features": "orderbook",
    "cluster_symbols": "correlation",
    "cointegration": "pairs",
    "correlation_distance": "correlation",
    "correlation_matrix": "correlation",
    "dashboard_snapshot": "snapshot",
    "data_quality": "crossvenue",
    "direction_features": "forecast",
    "dislocation": "crossvenue",
    "ema": "indicators",
    "ewma_vol": "volatility",
    "forecast_direction": "forecast",
    "garch_forecast": "volatility",
    "half_life": "pairs",
    "hayashi_yoshida": "leadlag",
    "hayashi_yoshida_contrast": "leadlag",
    "hedge_ratio": "pairs",
    "hurst": "pairs",
    "instrument_of": "crossvenue",
    "interval_us": "bars",
    "johansen": "pairs",
    "kalman_hedge_ratio": "pairs",
    "lagged_correlation": "leadlag",
    "lead_lag": "leadlag",
    "order_flow_imbalance": "orderbook",
    "periods_per_year": "volatility",
    "realized_vol": "volatility",
    "resample_bars": "bars",
    "returns": "bars",
    "rolling_correlation": "correlation",
    "rolling_hedge_ratio": "pairs",
    "rolling_mean": "rolling",
    "rolling_std": "rolling",
    "rsi": "indicators",
    "scan_pairs": "pairs",
    "sma": "indicators",
    "spread": "pairs",
    "volume_share": "crossvenue",
    "zscore": "rolling",
}

if TYPE_CHECKING:
    from . import streaming
    from .bars import BAR_COLUMNS, align_prices, interval_us, resample_bars, returns
    from .correlation import (
        ClusterResult,
        cluster_symbols,
        correlation_distance,
        correlation_matrix,
        rolling_correlation,
    )
    from .crossvenue import (
        QUALITY_COLUMNS,
        Dislocation,
        VolumeShare,
        data_quality,
        dislocation,
        instrument_of,
        volume_share,
    )
    from .forecast import DirectionForecast, direction_features, forecast_direction
    from .indicators import bollinger, ema, rsi, sma
    from .leadlag import (
        HayashiYoshida,
        LeadLag,
        hayashi_yoshida,
        hayashi_yoshida_contrast,
        lagged_correlation,
        lead_lag,
    )
    from .orderbook import BookFeatures, book_features, order_flow_imbalance
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
    "QUALITY_COLUMNS",
    "ADFResult",
    "BookFeatures",
    "ClusterResult",
    "CointegrationResult",
    "DashboardSnapshot",
    "DirectionForecast",
    "Dislocation",
    "GarchForecast",
    "HayashiYoshida",
    "HedgeRatio",
    "JohansenResult",
    "LeadLag",
    "PairPanel",
    "SymbolPanel",
    "VolumeShare",
    "adf",
    "align_prices",
    "bollinger",
    "book_features",
    "cluster_symbols",
    "cointegration",
    "correlation_distance",
    "correlation_matrix",
    "dashboard_snapshot",
    "data_quality",
    "direction_features",
    "dislocation",
    "ema",
    "ewma_vol",
    "forecast_direction",
    "garch_forecast",
    "half_life",
    "hayashi_yoshida",
    "hayashi_yoshida_contrast",
    "hedge_ratio",
    "hurst",
    "instrument_of",
    "interval_us",
    "johansen",
    "kalman_hedge_ratio",
    "lagged_correlation",
    "lead_lag",
    "order_flow_imbalance",
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
    "volume_share",
    "zscore",
]


def __getattr__(name: str) -> Any:
    if name == "streaming":
        return import_module(".streaming", __name__)
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'lq.analytics' has no attribute {name!r}")
    value = getattr(import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
