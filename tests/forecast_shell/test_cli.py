"""`lq forecast`: the notebook run by papermill on the real recordings, stored, deployed,
listed; --every; clear refusals."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lq.cli import main

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]


def lq(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lq.cli", "forecast", *args],
        cwd=cwd, capture_output=True, text=True, timeout=480,
    )  # fmt: skip


def test_train_runs_the_notebook_stores_the_run_and_deploys_on_real_data(store_db, tmp_path):
    proc = lq(
        "--db", str(store_db), "train", "-p", "folds", "3", "-p", "pair", "ETHUSDT",
        "-p", "book", "true", "-p", "fee_bps", "7.5", "-p", "deploy", "btc",
        "-p", "deploy_if", "always", "--out", "runs", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    conn = sqlite3.connect(store_db)
    [(run_id, strategy, metrics, nb_path, scheduled)] = conn.execute(
        "SELECT run_id, strategy, metrics, notebook_path, scheduled FROM backtest_runs"
    ).fetchall()
    deployed = conn.execute("SELECT name, symbol FROM forecast_models").fetchall()
    conn.close()
    m = json.loads(metrics)
    assert m["kind"] == "forecast" and strategy.startswith("forecast:") and scheduled == 0
    assert m["causality_passed"] is True
    assert m["costs"]["fee_bps"] == 7.5
    assert "spread_z" in json.dumps(m["features"]) or m["features"]["pair"] == "ETHUSDT"
    assert m["evaluation"]["best_baseline"] in ("majority", "last_sign")
    assert m["deployed"] == "btc" and deployed == [("btc", "BTCUSDT")]
    assert f"run {run_id} stored" in proc.stdout and "the best baseline" in proc.stdout
    nb = nbformat.read(nb_path, as_version=4)
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    assert Path(nb_path) == (tmp_path / "runs" / f"{run_id}.ipynb").resolve()
    out = lq("--db", str(store_db), "models", cwd=tmp_path)
    assert out.returncode == 0 and "btc: " in out.stdout and "scoring" in out.stdout
    runs = lq("--db", str(store_db), "runs", cwd=tmp_path)
    assert run_id in runs.stdout
    cmp_ = lq("--db", str(store_db), "runs", "--compare", run_id, cwd=tmp_path)
    assert "best_baseline" in cmp_.stdout
    # it is listed with the backtests, as a forecast run
    from lq.backtest.runs import list_runs

    assert list_runs(store_db)["kind"].tolist() == ["forecast"]


def test_every_stores_a_scheduled_run_then_stops_after_max_runs(store_db, tmp_path):
    proc = lq(
        "--db", str(store_db), "train", "--every", "1s", "--max-runs", "1",
        "-p", "folds", "2", "-p", "models", "linear", "-p", "causality_check", "false",
        "-p", "deploy", "btc2", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "scheduled forecast runs: 1 stored, 0 failed" in proc.stdout
    conn = sqlite3.connect(store_db)
    rows = conn.execute("SELECT scheduled, metrics FROM backtest_runs").fetchall()
    conn.close()
    assert [r[0] for r in rows] == [1]
    rec = json.loads(rows[0][1])
    # deployed only when the model beats its baseline, and the reason is stored otherwise
    assert ("deployed" in rec) != ("deploy_skipped" in rec)


def test_bad_parameters_and_files_are_refused_in_one_line(store_db, tmp_path, capsys):
    assert main(["forecast", "--db", str(store_db), "train", "-p", "nonsense", "1"]) == 2
    assert "not a notebook parameter" in capsys.readouterr().err
    junk = tmp_path / "junk.lqm"
    junk.write_text("nope")
    assert main(["forecast", "--db", str(store_db), "deploy", str(junk)]) == 2
    err = capsys.readouterr().err
    assert "not an lq model file" in err and err.count("\n") == 1
    assert main(["forecast", "--db", str(store_db), "undeploy", "ghost"]) == 2
    assert "no deployed forecast model" in capsys.readouterr().err
