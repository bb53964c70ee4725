"""A sweep's Deflated Sharpe Ratio from a short sample is kept but flagged by the same rule as
the annualised figures (:mod:`lq.analytics.reliability`: 1 day of bars, 30 trades), in its own
words, and greyed in the CLI line and the dashboard's runs table."""

from __future__ import annotations

import math

from lq.analytics.reliability import MIN_TRADES, sample_caveat
from lq.backtest import sweep
from lq.backtest.charts import GREY_CSS
from lq.backtest.cli import _summary_line
from lq.backtest.runs import list_runs, record_sweep
from lq.dashboard.backtest_tab import runs_html
from lq.store import Writer

from ._data import random_bars

AXES = {"fast": [3, 5], "slow": [8, 13]}


def test_the_dsr_rule_is_the_annualised_rule_in_its_own_words():
    assert sample_caveat("DSR", span_seconds=359 * 60.0, trades=12) == (
        "DSR from 6.0 h of bars (under 1 day) and 12 trades (under 30)"
    )
    assert sample_caveat("DSR", span_seconds=86_400.0, trades=MIN_TRADES) is None
    assert sample_caveat("DSR", span_seconds=2 * 86_400.0, trades=29) == (
        "DSR from 29 trades (under 30)"
    )


def test_a_short_sweep_flags_its_dsr_and_every_display_greys_it(tmp_path):
    table = sweep(random_bars(360, seed=5), "ma_crossover", AXES, workers=1, progress="off")
    for row in table.itertuples():
        assert row.dsr_caveat.startswith("DSR from 6.0 h of bars (under 1 day)"), (
            row.dsr_caveat
        )  # 359 min
        assert math.isfinite(row.dsr)  # the raw value is kept
    db = tmp_path / "runs.sqlite"
    with Writer(db):
        pass
    run = record_sweep(db, table, strategy="ma_crossover", grid=AXES)
    runs = list_runs(db)
    [reason] = runs["dsr_caveat"].tolist()
    assert reason == table.iloc[0]["dsr_caveat"]
    line = _summary_line(db, run.run_id, None)
    assert f"(not meaningful: {reason})" in line and "DSR " in line
    out = runs_html(runs)
    assert GREY_CSS.split(";")[0] in out and reason in out
    assert "Greyed Sharpe and DSR: from too short a sample" in out
    assert table["dsr"].is_monotonic_decreasing  # still ranked by the raw DSR


def test_a_long_sweep_with_many_trades_shows_its_dsr_plainly(tmp_path):
    table = sweep(random_bars(4000, seed=5), "ma_crossover", AXES, workers=1, progress="off")
    enough = table[table["number_of_trades"] >= MIN_TRADES]
    assert len(enough) > 0
    assert (enough["dsr_caveat"] == "").all()
    db = tmp_path / "runs.sqlite"
    with Writer(db):
        pass
    run = record_sweep(db, enough.reset_index(drop=True), strategy="ma_crossover", grid=AXES)
    assert "not meaningful" not in _summary_line(db, run.run_id, None)
