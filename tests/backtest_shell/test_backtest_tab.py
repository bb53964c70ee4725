"""The dashboard's Backtest tab, in-process (widgets without a browser)."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from lq.backtest import Costs, Sizing, Stops, run_backtest
from lq.backtest.runs import list_runs, load_bars, store_run
from lq.dashboard.backtest_tab import TRACE_NAMES, BacktestTab, fill_figure, new_figure


def run_in_loop(tab: BacktestTab) -> int:
    """Press Run inside a running event loop; count the loop's ticks while it works."""

    async def go() -> int:
        fut = tab.run()
        assert fut is not None
        ticks = 0
        while not fut.done():
            await asyncio.sleep(0.002)
            ticks += 1
        await asyncio.sleep(0)  # let the done-callback draw
        return ticks

    return asyncio.run(go())


def test_tab_runs_a_pairs_backtest_without_blocking_and_draws_it(store_db):
    tab = BacktestTab(db=store_db)
    assert tab.title == "Backtest" and tab.symbols == ["BTCUSDT", "ETHUSDT"]
    tab.interval.value = "1s"
    tab.fee_bps.value = 7.5
    tab.stop_loss.value = 0.02
    tab.set_params(lookback=30, entry=1.5, exit=0.3)
    ticks = run_in_loop(tab)
    assert ticks >= 2  # the loop kept turning while the backtest ran on the executor
    assert tab.error is None, tab.error
    out = tab.outcome
    assert out is not None and out.lookahead is not None and out.lookahead.passed
    assert "look-ahead check passed" in tab.status.value and out.run.run_id in tab.status.value

    # independent reference: the same backtest run here, directly on the stored bars
    data = load_bars(store_db, ["BTCUSDT", "ETHUSDT"], interval="1s")
    ref = run_backtest(
        data,
        "pairs_zscore",
        {"lookback": 30, "entry": 1.5, "exit": 0.3},
        costs=Costs(fee_bps=7.5, slippage_bps=1.0),
        sizing=Sizing(notional=10_000.0),
        stops=Stops(stop_loss=0.02),
    )
    assert out.result.id == ref.id
    fig = tab.fig
    assert [t.name for t in fig.data][5:] == ["equity", "buy and hold", "drawdown"]
    np.testing.assert_allclose(fig.data[5].y, ref.equity.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(fig.data[6].y, ref.benchmark.to_numpy(), rtol=1e-12)
    sides = ref.trades["side"].to_numpy()
    assert len(fig.data[2].x) == (sides > 0).sum() and len(fig.data[3].x) == (sides < 0).sum()
    assert len(fig.data[4].x) == (~ref.trades["open"]).sum()
    # first leg rebased to 100 at the first bar: 100 * close / first close
    btc = data["BTCUSDT"]["close"].reindex(ref.equity.index).to_numpy()
    np.testing.assert_allclose(fig.data[0].y, 100 * btc / btc[0], rtol=1e-12)
    assert "total return" in tab.metrics.value and "buy and hold" in tab.metrics.value
    assert out.run.run_id in tab.history.value
    assert list_runs(store_db)["run_id"].tolist() == [out.run.run_id]


def test_single_asset_strategy_uses_the_first_symbol(store_db):
    tab = BacktestTab(db=store_db, symbols=["ETHUSDT", "BTCUSDT"])
    tab.strategy.value = "rsi_reversion"
    assert tab.symbol2.disabled and "window" in tab.param_widgets
    tab.interval.value = "1s"
    tab.set_params(window=10)
    tab.lookahead.value = False
    tab.save.value = False
    assert tab.run() is None  # no running loop: it runs inline
    assert tab.error is None, tab.error
    assert tab.outcome.result.config.symbols == ("ETHUSDT",)
    assert tab.outcome.run is None and not tab.fig.data[1].visible
    assert tab.fig.data[0].name == "ETHUSDT"


def test_history_shows_scheduled_runs_as_they_arrive(store_db):
    tab = BacktestTab(db=store_db)
    tab.refresh()
    assert "no stored runs yet" in tab.history.value
    store_run(
        store_db,
        run_id="bt-sched-1",
        strategy="pairs_zscore",
        params={},
        metrics={},
        scheduled=True,
    )
    tab.refresh()
    assert "bt-sched-1" in tab.history.value and "⏱ yes" in tab.history.value


def test_a_pair_with_one_symbol_is_refused_with_a_message(store_db):
    tab = BacktestTab(db=store_db)
    tab.symbol2.value = tab.symbol1.value
    assert tab.run() is None
    assert "a pair needs two different symbols" in tab.status.value
    tab.symbol2.value = "ETHUSDT"
    tab.set_params(stop="abc")
    tab.run()
    assert "stop" in tab.status.value and "abc" in tab.status.value
    with pytest.raises(Exception, match="not a parameter"):
        tab.set_params(nope=1)


def test_thinned_drawdown_keeps_its_deepest_point(store_db):
    data = load_bars(store_db, "BTCUSDT", interval="1s")
    res = run_backtest(data, "ma_crossover", {"fast": 5, "slow": 20})
    fig = fill_figure(new_figure(), res, data, max_points=50)
    assert len(fig.data) == len(TRACE_NAMES)
    assert len(fig.data[5].x) <= 51
    assert min(fig.data[7].y) == res.drawdown.min()  # block minima keep the trough exactly
    assert fig.data[5].y[-1] == res.equity.iloc[-1]  # and the last point


def test_the_dashboard_includes_the_backtest_tab(store_db):
    from lq.dashboard import Dashboard

    dash = Dashboard(db=store_db, symbols=["BTCUSDT", "ETHUSDT"], live=False)
    titles = [dash.tabs.get_title(i) for i in range(len(dash.tabs.children))]
    assert "Backtest" in titles
    tab = dash.panel(titles.index("Backtest"))
    assert isinstance(tab, BacktestTab) and tab.symbols == ["BTCUSDT", "ETHUSDT"]
    assert isinstance(tab.runs, pd.DataFrame)


def test_tab_cli_and_notebook_default_to_the_same_interval(store_db):
    from lq.backtest.cli import NOTEBOOK, notebook_parameters
    from lq.backtest.runs import DEFAULT_INTERVAL

    tab = BacktestTab(db=store_db)
    assert tab.interval.value == DEFAULT_INTERVAL == notebook_parameters(NOTEBOOK)["interval"]


def _cell(html: str, row: int, column: str) -> dict:
    """One cell of an lq table (a pandas Styler's HTML): its text, its own CSS declarations
    (spaces removed) and its tooltip."""
    import re

    tid = re.search(r'<table id="(T_\w+)"', html).group(1)
    heads = re.findall(rf'<th id="{tid}_level0_col(\d+)"[^>]*>(.*?)</th>', html)
    col = next(int(i) for i, h in heads if h == column)
    cid = f"{tid}_row{row}_col{col}"
    css = [
        d
        for sel, body in re.findall(r"(?m)^([^{}\n][^{}]*)\{([^{}]*)\}", html)
        if f"#{cid}" in [x.strip() for x in sel.split(",")]
        for d in body.replace(" ", "").replace("\n", "").split(";")
        if d
    ]
    tip = re.search(rf"#{cid} \.pd-t::after \{{\s*content: \"(.*?)\";", html, re.S)
    text = re.search(rf'id="{cid}"[^>]*>(.*?)(?:<span|</td>)', html, re.S)
    return {
        "text": text.group(1) if text else None,
        "css": css,
        "tip": tip.group(1) if tip else "",
    }


def test_tab_greys_a_short_sample_and_names_a_ruined_run(store_db):
    from lq.backtest.charts import GREY_CSS, RUINED_CSS
    from lq.backtest.runs import record_backtest
    from lq.dashboard.backtest_tab import runs_html

    tab = BacktestTab(db=store_db)
    tab.set_params(lookback=30, entry=1.5, exit=0.3)
    tab.lookahead.value = False
    run_in_loop(tab)
    assert tab.error is None, tab.error
    html = tab.metrics.value
    assert "annualised from 5.8 min of bars (under 1 day)" in html and "opacity: 0.45" in html
    # the history: the stored run's Sharpe greyed with its reason as a tooltip
    hist = tab.history.value
    sharpe = _cell(hist, 0, "Sharpe")
    assert sharpe["css"] == GREY_CSS.replace(" ", "").rstrip(";").split(";")
    assert sharpe["tip"].startswith("annualised from 5.8 min of bars")
    # a ruined run, stored and listed
    data = load_bars(store_db, ["BTCUSDT", "ETHUSDT"], interval="1s")
    bust = run_backtest(
        data,
        "pairs_zscore",
        {"lookback": 30, "entry": 1.5, "exit": 0.3},
        costs=Costs(fee_bps=50),
        sizing=Sizing(notional=2e6),
    )
    assert bust.ruined
    record_backtest(store_db, bust)
    out = runs_html(list_runs(store_db))
    row = next(
        i for i in range(len(list_runs(store_db))) if _cell(out, i, "Sharpe")["text"] == "ruined"
    )
    ruined = _cell(out, row, "Sharpe")
    assert ruined["css"] == RUINED_CSS.replace(" ", "").rstrip(";").split(";")
    assert ruined["tip"] == "equity reached zero"
