"""notebooks/backtest.ipynb under papermill and nbval, on the real recordings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from lq.backtest import Costs, Sizing, run_backtest
from lq.backtest.runs import DEFAULT_INTERVAL, get_run, load_bars

pytestmark = pytest.mark.notebooks

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "backtest.ipynb"
SMALL = {
    "interval": "1s",
    "params": {"lookback": 30, "entry": 1.5, "exit": 0.3},
    "fee_bps": 7.5,
    "slippage_bps": 1.0,
    "lookahead_cuts": 2,
}


def test_notebook_runs_under_papermill_and_stores_its_result(store_db, tmp_path):
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(out),
        # the notebook only reads its database unless asked to store (lq backtest asks)
        parameters={"db": str(store_db), "run_id": "nb-run", "store_result": True, **SMALL},
        progress_bar=False,
    )
    nb = nbformat.read(out, as_version=4)
    assert nb.metadata.papermill.parameters["run_id"] == "nb-run"
    figures = [
        o["data"]["application/vnd.plotly.v1+json"]
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "application/vnd.plotly.v1+json" in o.get("data", {})
    ]
    assert len(figures) == 1
    names = [t["name"] for t in figures[0]["data"]]
    assert names[:2] == ["BTCUSDT (rebased to 100)", "ETHUSDT (rebased to 100)"]
    assert names[5:] == ["equity", "buy and hold", "drawdown"]

    run = get_run(store_db, "nb-run")
    assert run.strategy == "pairs_zscore" and not run.scheduled
    assert run.metrics["lookahead_passed"] is True
    assert run.metrics["interval"] == "1s"
    # independent reference: the same backtest in this process, on the same stored bars
    ref = run_backtest(
        load_bars(store_db, ["BTCUSDT", "ETHUSDT"], interval="1s"),
        "pairs_zscore",
        SMALL["params"],
        costs=Costs(fee_bps=7.5, slippage_bps=1.0),
        sizing=Sizing(notional=10_000.0),
        capital=10_000.0,
    )
    assert run.metrics["result_id"] == ref.id  # same settings and data hash
    assert run.metrics["metrics"]["total_return"] == pytest.approx(
        ref.metrics.total_return, rel=1e-12, abs=1e-15
    )
    assert run.metrics["metrics"]["number_of_trades"] == ref.metrics.number_of_trades > 0
    assert run.metrics["metrics"]["fees_paid"] == pytest.approx(ref.metrics.fees_paid, rel=1e-12)


def test_notebook_fails_clearly_when_the_db_has_no_data_for_the_symbols(store_db, tmp_path):
    with pytest.raises(PapermillExecutionError) as err:
        papermill.execute_notebook(
            str(NOTEBOOK),
            str(tmp_path / "out.ipynb"),
            parameters={
                "db": str(store_db),
                "symbols": ["XRPUSDT"],
                "strategy": "ma_crossover",
                "params": {},
            },
            progress_bar=False,
        )
    assert err.value.ename == "BacktestError"
    assert f"no {DEFAULT_INTERVAL} bars of XRPUSDT" in err.value.evalue  # the default
    assert "stored symbols: ['BTCUSDT', 'ETHUSDT']" in err.value.evalue


def test_notebook_passes_nbval_on_a_prepared_copy(store_db, tmp_path):
    # voila-notes section 5: papermill --prepare-only, then pytest --nbval-lax on the copy
    copy = tmp_path / "backtest_under_test.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(copy),
        parameters={
            "db": str(store_db),
            "strategy": "rsi_reversion",
            "symbols": ["ETHUSDT"],
            "params": {"window": 10},
            "interval": "1s",
            "lookahead_cuts": 2,
        },
        prepare_only=True,
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "--nbval-cell-timeout=120",
            "-p",
            "no:cacheprovider",
            "-q",
            str(copy),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
