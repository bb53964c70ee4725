"""The one number formatter (lq.formatting): a percentage from an annualised figure on
minutes of data (CAGR 5e100) stays one short cell, in scientific notation."""

from __future__ import annotations

import pytest

from lq.formatting import fmt


@pytest.mark.parametrize(
    ("value", "kind", "text"),
    [
        (0.0123, "pct", "1.23%"),
        (-0.5, "pct1", "-50.0%"),
        (123.4, "pct", "12340.00%"),
        (9_999.0, "pct", "999900.00%"),
        (5.24e100, "pct", "5.24e+102%"),
        (-2.0e4, "pct1", "-2.00e+06%"),
        (float("inf"), "pct", "∞"),
        (None, "pct", "–"),
    ],
)
def test_percentages_stay_short(value, kind, text):
    assert fmt(value, kind) == text
