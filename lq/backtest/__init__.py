"""Honest, vectorised backtests: strategies, costs, sizing, stops, metrics, validation, sweeps.

Signals decided at a bar's close fill at the next bar's open (always). See ``docs/backtest.md``.

>>> from lq.backtest import run_backtest, Costs
>>> result = run_backtest(bars, "zscore_reversion", {"lookback": 50}, costs=Costs(fee_bps=10))  # doctest: +SKIP
>>> result.metrics.sharpe, result.equity, result.trades  # doctest: +SKIP
"""

from __future__ import annotations

from lq.backtest.costs import Costs
from lq.backtest.data import Bars
from lq.backtest.engine import BacktestConfig, BacktestResult, run_backtest
from lq.backtest.metrics import (
    Metrics,
    average_holding_time,
    cagr,
    calmar_ratio,
    deflated_sharpe_ratio,
    drawdown_series,
    expected_max_sharpe,
    exposure,
    fees_paid,
    max_drawdown,
    max_drawdown_duration,
    number_of_trades,
    probabilistic_sharpe_ratio,
    profit_factor,
    sharpe_ratio,
    sortino_ratio,
    total_return,
    turnover,
    win_rate,
)
from lq.backtest.sizing import Sizing
from lq.backtest.stops import Stops
from lq.backtest.strategies import (
    STRATEGIES,
    MACrossoverParams,
    PairsZScoreParams,
    RSIReversionParams,
    ZScoreReversionParams,
    available_strategies,
    crossover_positions,
    threshold_positions,
)
from lq.backtest.sweep import grid, sweep, sweep_heatmap
from lq.backtest.validation import (
    LookaheadReport,
    WalkForwardResult,
    check_lookahead,
    walk_forward,
)

__all__ = [
    "STRATEGIES",
    "BacktestConfig",
    "BacktestResult",
    "Bars",
    "Costs",
    "LookaheadReport",
    "MACrossoverParams",
    "Metrics",
    "PairsZScoreParams",
    "RSIReversionParams",
    "Sizing",
    "Stops",
    "WalkForwardResult",
    "ZScoreReversionParams",
    "available_strategies",
    "average_holding_time",
    "cagr",
    "calmar_ratio",
    "check_lookahead",
    "crossover_positions",
    "deflated_sharpe_ratio",
    "drawdown_series",
    "expected_max_sharpe",
    "exposure",
    "fees_paid",
    "grid",
    "max_drawdown",
    "max_drawdown_duration",
    "number_of_trades",
    "probabilistic_sharpe_ratio",
    "profit_factor",
    "run_backtest",
    "sharpe_ratio",
    "sortino_ratio",
    "sweep",
    "sweep_heatmap",
    "threshold_positions",
    "total_return",
    "turnover",
    "walk_forward",
    "win_rate",
]
