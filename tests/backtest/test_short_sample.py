"""Annualised figures from a short sample are kept, flagged with the reason, and greyed.

The rule is :mod:`lq.analytics.reliability` (1 day of bars, 30 trades); these tests put a
backtest on each side of both thresholds and check the flag, the raw value and the display.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lq.analytics.reliability import ANNUALISED_METRICS
from lq.backtest import Costs, Sizing, run_backtest
from lq.backtest.charts import GREY_CSS, RUINED_CSS, metrics_frame, metrics_table, metrics_text
from lq.backtest.metrics import returns_from_equity, sharpe_ratio

from ._data import make_bars, random_bars


def trades(k: int):
    """A strategy with exactly ``k`` round trips: long 10 bars, flat 10 bars, ``k`` times."""

    def strategy(data: pd.DataFrame, params: dict) -> pd.Series:
        w = np.zeros(len(data))
        for i in range(k):
            w[20 * i : 20 * i + 10] = 1.0
        return pd.Series(w, index=data.index)

    return strategy


def _bars(n: int) -> pd.DataFrame:
    return random_bars(n, seed=2)  # one-minute bars: n bars span n - 1 minutes


def test_under_one_day_of_bars_the_annualised_figures_are_flagged_but_kept():
    res = run_backtest(_bars(1440), trades(40), costs=Costs(fee_bps=1))  # 1439 min
    m = res.metrics
    assert m.span_seconds == 1439 * 60
    assert m.number_of_trades == 40
    assert set(m.caveats) == {*ANNUALISED_METRICS, "psr"}  # PSR: the same rule
    assert m.caveats["sharpe"] == "annualised from 24.0 h of bars (under 1 day)"
    # the raw value is still there, and still what the formula gives
    r = returns_from_equity(res.equity)
    assert m.sharpe == pytest.approx(sharpe_ratio(r, periods_per_year=525_600), rel=1e-12)
    # buy-and-hold is judged on its span alone
    assert res.benchmark_metrics.caveats["sharpe"] == m.caveats["sharpe"]


def test_one_day_of_bars_and_thirty_trades_pass():
    res = run_backtest(_bars(1441), trades(30), costs=Costs(fee_bps=1))  # exactly 1 day
    assert res.metrics.span_seconds == 86_400 and res.metrics.number_of_trades == 30
    assert res.metrics.caveats == {} and res.benchmark_metrics.caveats == {}


def test_fewer_than_thirty_trades_are_flagged_whatever_the_span():
    res = run_backtest(_bars(1441), trades(29), costs=Costs(fee_bps=1))
    assert res.metrics.caveats["sharpe"] == "annualised from 29 trades (under 30)"
    assert res.benchmark_metrics.caveats == {}  # one trade, but buy-and-hold has no count rule


def test_the_issue_case_six_minutes_gives_absurd_figures_that_are_greyed():
    # six minutes of one-second bars: the annualised Sharpe is some wild number (the issue
    # saw -649 and CAGR -100 % on the demo); here it is shown greyed with the reason
    bars = random_bars(360, seed=4).set_axis(
        pd.date_range("2024-08-08 23:54", periods=360, freq="1s", tz="UTC")
    )
    res = run_backtest(bars, "zscore_reversion", {"lookback": 20, "entry": 1.0})
    assert abs(res.metrics.sharpe) > 10  # meaningless, and flagged as such
    reason = res.metrics.caveats["sharpe"]
    assert reason.startswith("annualised from 6.0 min of bars (under 1 day)")
    text = metrics_text(res)
    assert text.loc["Sharpe", "note"] == reason
    assert text.loc["total return", "note"] == ""  # not annualised: not greyed
    html = metrics_table(res).to_html()
    assert GREY_CSS.split(";")[0] in html and reason in html
    assert metrics_frame is metrics_table  # the notebook's call renders the styled table
    # the stored summary keeps both the raw value and the reason
    d = res.to_dict()["metrics"]
    assert d["sharpe"] == res.metrics.sharpe and d["caveats"]["sharpe"] == reason


def test_a_ruined_run_reads_ruined_in_the_table():
    bars = make_bars([100, 100, 100, 95, 88, 85])
    res = run_backtest(
        bars,
        lambda d, p: pd.Series(1.0, index=d.index),
        costs=Costs(fee_bps=0),
        sizing=Sizing(notional=10_000),
        capital=1000,
    )
    text = metrics_text(res)
    assert text.loc["Sharpe", "strategy"] == "ruined" and text.loc["CAGR", "strategy"] == "ruined"
    assert text.loc["total return", "strategy"] == "-120.00%"
    html = metrics_table(res).to_html()
    assert RUINED_CSS.split(";")[0] in html
    assert "ruined: equity reached zero at 2024-01-01 00:04:00 UTC" in html
    assert math.isinf(res.summary().loc["sharpe", "strategy"])
