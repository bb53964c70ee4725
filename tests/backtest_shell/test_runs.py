"""lq.backtest.runs: bars in from the store, run rows out (control-plane writes)."""

from __future__ import annotations

import math
import sqlite3
import threading
import time

import numpy as np
import pandas as pd
import pytest

from lq.backtest import Costs, run_backtest, sweep
from lq.backtest.runs import (
    RUN_COLUMNS,
    get_run,
    list_runs,
    load_bars,
    new_run_id,
    record_backtest,
    record_sweep,
    store_run,
)
from lq.errors import BacktestError, ValidationError
from lq.store import Writer

PAIR = ["BTCUSDT", "ETHUSDT"]
SMALL = {"lookback": 30, "entry": 1.5, "exit": 0.3}


def test_load_bars_returns_the_stored_bars_per_symbol_in_order(store_db):
    data = load_bars(store_db, "ethusdt,btcusdt", interval="1s")
    assert list(data) == ["ETHUSDT", "BTCUSDT"]
    # reference: the bars_1s rows themselves, read with plain SQL
    conn = sqlite3.connect(store_db)
    for sym, frame in data.items():
        rows = conn.execute(
            "SELECT ts, open, close FROM bars_1s WHERE symbol = ? ORDER BY ts", (sym,)
        ).fetchall()
        assert len(frame) == len(rows)
        assert frame["ts"].tolist() == [r[0] for r in rows]
        assert frame["close"].tolist() == [r[2] for r in rows]  # exact: same float64
        assert frame.attrs["symbol"] == sym
    one = load_bars(store_db, ["BTCUSDT"], interval="1s")
    assert isinstance(one, pd.DataFrame) and one.attrs["symbol"] == "BTCUSDT"


def test_last_quote_is_the_book_ticker_standing_at_each_bar_close(store_db):
    bars = load_bars(store_db, "BTCUSDT", interval="15s", quotes="last")
    conn = sqlite3.connect(store_db)
    for ts, bid, ask in zip(bars["ts"], bars["bid"], bars["ask"], strict=True):
        # independent reference: the newest book ticker before the bar's end (ts + 15 s)
        ref = conn.execute(
            "SELECT bid, ask FROM book_tickers WHERE symbol = 'BTCUSDT' AND ts < ?"
            " ORDER BY ts DESC, update_id DESC LIMIT 1",
            (int(ts) + 15_000_000,),
        ).fetchone()
        assert (bid, ask) == ref
    assert (bars["ask"] >= bars["bid"]).all()


def test_last_window_ends_at_the_newest_stored_bar(store_db):
    bars = load_bars(store_db, "BTCUSDT", interval="1s", last="60s")
    # the newest BTCUSDT 1 s bar opens at 2024-08-09 00:00:01 (README of the recordings:
    # the recording ends at 00:00), so the 60 s window is [23:59:02, 00:00:02)
    assert bars.index[-1] == pd.Timestamp("2024-08-09 00:00:01", tz="UTC")
    assert bars.index[0] >= pd.Timestamp("2024-08-08 23:59:02", tz="UTC")
    assert len(bars) <= 60


def test_no_data_for_a_symbol_fails_with_a_clear_message(store_db):
    with pytest.raises(BacktestError) as err:
        load_bars(store_db, ["BTCUSDT", "XRPUSDT"], interval="1s")
    msg = str(err.value)
    assert "XRPUSDT" in msg and "no 1s bars" in msg and "'BTCUSDT', 'ETHUSDT'" in msg
    with pytest.raises(BacktestError, match="between 2025-01-01"):
        load_bars(store_db, "BTCUSDT", start="2025-01-01")
    with pytest.raises(ValidationError, match="duplicate"):
        load_bars(store_db, ["BTCUSDT", "btcusdt"])


def test_a_backtest_is_stored_and_listed_with_its_metrics(store_db):
    data = load_bars(store_db, PAIR, interval="1s")
    res = run_backtest(data, "pairs_zscore", SMALL, costs=Costs(fee_bps=5, slippage_bps=1))
    run = record_backtest(store_db, res, extra={"interval": "1s"})
    assert run.run_id.startswith("bt-") and run.kind == "backtest"
    table = list_runs(store_db)
    assert list(table.columns) == RUN_COLUMNS
    assert len(table) == 1
    row = table.iloc[0]
    assert row["run_id"] == run.run_id
    assert row["strategy"] == "pairs_zscore" and row["symbols"] == "BTCUSDT,ETHUSDT"
    assert row["interval"] == "1s" and not row["scheduled"]
    assert row["params"] == res.config.params  # the full, validated parameter set
    # JSON keeps float64 exactly (repr round trip): equal, no tolerance
    assert row["total_return"] == res.metrics.total_return
    assert row["sharpe"] == res.metrics.sharpe
    assert row["number_of_trades"] == res.metrics.number_of_trades
    assert math.isnan(row["dsr"])
    stored = get_run(store_db, run.run_id)
    assert stored.metrics["result_id"] == res.id
    assert stored.metrics["config"]["costs"] == {
        "fee_bps": 5.0,
        "slippage": "fixed_bps",
        "slippage_bps": 1.0,
    }


def test_storing_the_same_run_id_again_replaces_the_row(store_db):
    store_run(store_db, run_id="r1", strategy="s", params={"a": 1}, metrics={"kind": "backtest"})
    store_run(store_db, run_id="r1", strategy="s", params={"a": 2}, metrics={}, scheduled=True)
    table = list_runs(store_db)
    assert len(table) == 1 and table.iloc[0]["params"] == {"a": 2} and table.iloc[0]["scheduled"]
    with pytest.raises(ValidationError, match="run_id"):
        store_run(store_db, run_id="a/b", strategy="s", params={}, metrics={})


def test_a_run_is_stored_while_the_collector_holds_the_writer_and_a_transaction(store_db):
    with Writer(store_db, source="feed") as w:  # the collector's lock is held
        w.conn.execute("BEGIN IMMEDIATE")  # ...and so is SQLite's write lock, for 0.3 s
        release = threading.Timer(0.3, lambda: w.conn.execute("COMMIT"))
        t0 = time.monotonic()
        release.start()
        run = store_run(store_db, strategy="s", params={}, metrics={"kind": "backtest"})
        waited = time.monotonic() - t0
        release.join()
    assert waited >= 0.25  # it waited for the transaction (busy timeout) instead of failing
    assert get_run(store_db, run.run_id).strategy == "s"


def test_list_runs_filters_scheduled_runs_and_kinds_newest_first(store_db):
    for i, (sched, kind) in enumerate([(False, "backtest"), (True, "backtest"), (True, "sweep")]):
        store_run(
            store_db,
            run_id=f"r{i}",
            strategy="s",
            params={},
            metrics={"kind": kind},
            scheduled=sched,
            created_ts=1_000_000 * (i + 1),
        )
    assert list_runs(store_db)["run_id"].tolist() == ["r2", "r1", "r0"]
    assert list_runs(store_db, scheduled=True)["run_id"].tolist() == ["r2", "r1"]
    assert list_runs(store_db, scheduled=False)["run_id"].tolist() == ["r0"]
    assert list_runs(store_db, kind="sweep")["run_id"].tolist() == ["r2"]
    assert list_runs(store_db, limit=1)["run_id"].tolist() == ["r2"]
    assert list_runs(store_db)["time"].iloc[-1] == pd.Timestamp(1_000_000, unit="us", tz="UTC")


def test_a_sweep_is_one_row_with_the_best_dsr_set(store_db):
    data = load_bars(store_db, PAIR, interval="1s")
    axes = {"entry": [1.5, 2.0], "lookback": [20, 40]}
    table = sweep(data, "pairs_zscore", axes, base_params={"exit": 0.3}, workers=1, progress="off")
    run = record_sweep(
        store_db, table, strategy="pairs_zscore", grid=axes, base_params={"exit": 0.3}
    )
    best = table.loc[table["dsr"].idxmax()]  # reference: the row with the largest DSR
    assert run.run_id.startswith("sw-")
    assert run.params == {"exit": 0.3, "entry": best["entry"], "lookback": best["lookback"]}
    row = list_runs(store_db).iloc[0]
    assert row["kind"] == "sweep" and row["n_trials"] == 4
    assert row["dsr"] == best["dsr"] and row["sharpe"] == best["sharpe"]
    assert run.metrics["grid"] == axes and run.metrics["result_id"] == best["id"]


def test_new_run_ids_are_unique_and_sortable_by_time():
    ids = {new_run_id(now=0.0) for _ in range(200)}
    assert len(ids) == 200 and all(i.startswith("bt-19700101T000000Z-") for i in ids)
    assert new_run_id("sweep", now=86400.0).startswith("sw-19700102T000000Z-")
    assert sorted([new_run_id(now=2.0), new_run_id(now=1.0)])[0].startswith("bt-19700101T000001Z")
    np.testing.assert_equal(len(new_run_id()), len("bt-20240809T000001Z-1a2b3c"))


def test_too_few_bars_names_the_interval_used_and_suggests_one_with_data(store_db):
    # the recordings hold 6 minutes: 7 one-minute bars of BTCUSDT (counted below with SQL)
    conn = sqlite3.connect(store_db)
    (n_1m,) = conn.execute(
        "SELECT count(DISTINCT ts / 60000000) FROM bars_1s WHERE symbol = 'BTCUSDT'"
    ).fetchone()
    (n_1s,) = conn.execute("SELECT count(*) FROM bars_1s WHERE symbol = 'BTCUSDT'").fetchone()
    assert n_1m < 10 <= n_1s
    with pytest.raises(BacktestError) as err:
        load_bars(store_db, ["BTCUSDT", "ETHUSDT"], interval="1m", last="24h")
    msg = str(err.value)
    assert msg.startswith(f"only {n_1m} bars of 1m for BTCUSDT in the last 24h")
    assert "a backtest needs at least 10" in msg
    assert f"{n_1s:,} bars of 1s" in msg and "use a finer interval (`-p interval 1s`" in msg
    # one more bar than needed passes; the threshold is the parameter
    assert len(load_bars(store_db, "BTCUSDT", interval="1m", min_bars=n_1m)) == n_1m
    with pytest.raises(BacktestError, match=f"only {n_1m} bars"):
        load_bars(store_db, "BTCUSDT", interval="1m", min_bars=n_1m + 1)


def test_stored_runs_carry_the_short_sample_reason_and_ruin(store_db):
    from lq.backtest import Sizing

    data = load_bars(store_db, PAIR, interval="1s")
    res = run_backtest(data, "pairs_zscore", SMALL, costs=Costs(fee_bps=7.5))
    run = record_backtest(store_db, res)
    assert run.metrics["metrics"]["caveats"]["sharpe"].startswith(
        "annualised from 5.8 min of bars (under 1 day)"
    )
    bust = run_backtest(
        data, "pairs_zscore", SMALL, costs=Costs(fee_bps=50), sizing=Sizing(notional=2e6)
    )
    assert bust.ruined
    record_backtest(store_db, bust)
    runs = list_runs(store_db)
    assert list(runs.columns) == RUN_COLUMNS
    by_id = runs.set_index("result_id")
    assert by_id.loc[res.id, "caveat"].startswith("annualised from 5.8 min")
    assert not by_id.loc[res.id, "ruined"]
    assert by_id.loc[bust.id, "ruined"] and by_id.loc[bust.id, "caveat"] == ""
    assert by_id.loc[bust.id, "sharpe"] == -math.inf
