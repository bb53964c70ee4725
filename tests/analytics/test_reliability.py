"""The short-sample rule, on both sides of each threshold (values chosen by hand)."""

from __future__ import annotations

import math

import pytest

from lq.analytics.reliability import (
    MIN_SPAN_ANNUALISED,
    MIN_SPAN_PER_DAY,
    MIN_TRADES,
    annualised_caveat,
    format_span,
    per_day_caveat,
)

DAY = 86_400.0


def test_the_rule_is_one_day_and_thirty_trades():
    assert MIN_SPAN_ANNUALISED == DAY and MIN_SPAN_PER_DAY == DAY and MIN_TRADES == 30


@pytest.mark.parametrize(
    ("span", "trades", "expected"),
    [
        (DAY - 1, None, "annualised from 24.0 h of bars (under 1 day)"),
        (DAY, None, None),
        (DAY, 29, "annualised from 29 trades (under 30)"),
        (DAY, 30, None),
        (348.0, 1, "annualised from 5.8 min of bars (under 1 day) and 1 trade (under 30)"),
        (math.nan, None, "annualised from an unknown span of bars (under 1 day)"),
    ],
)
def test_annualised_figures_need_a_day_of_bars_and_thirty_trades(span, trades, expected):
    assert annualised_caveat(span_seconds=span, trades=trades) == expected


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        (DAY - 0.5, "per-day rate from 24.0 h of data (under 1 day)"),
        (DAY, None),
        (348.0, "per-day rate from 5.8 min of data (under 1 day)"),
        (0.0, "per-day rate from 0 s of data (under 1 day)"),
    ],
)
def test_per_day_rates_need_a_day_of_data(span, expected):
    assert per_day_caveat(span_seconds=span) == expected


def test_spans_read_in_the_unit_that_fits():
    assert [format_span(s) for s in (42, 348, 3 * 3600 + 1800, 2 * DAY)] == [
        "42 s",
        "5.8 min",
        "3.5 h",
        "2.0 d",
    ]
