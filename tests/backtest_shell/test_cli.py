"""`lq backtest` as a real process: one run, a --grid sweep, --every until SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from lq.backtest import Costs, sweep
from lq.backtest.cli import (
    Schedule,
    notebook_parameters,
    parse_grid,
    parse_value,
    resolve_parameters,
)
from lq.backtest.runs import list_runs, load_bars
from lq.cli import main
from lq.errors import ValidationError

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "backtest.ipynb"


def lq(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lq.cli", "backtest", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
    )


def rows(db: Path) -> list[tuple]:
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute(
            "SELECT run_id, strategy, params, metrics, notebook_path, scheduled"
            " FROM backtest_runs ORDER BY id"
        ).fetchall()
    finally:
        conn.close()


# ---------------------------------------------------------------------- pure helpers
def test_values_are_read_as_json_then_python_literals_then_text():
    assert parse_value("1.5") == 1.5 and parse_value("30") == 30
    assert parse_value("true") is True and parse_value("None") is None
    assert parse_value('{"lookback": 60}') == {"lookback": 60}
    assert parse_value("BTCUSDT,ETHUSDT") == "BTCUSDT,ETHUSDT"
    assert parse_value("24h") == "24h"


def test_p_names_go_to_the_notebook_or_to_the_strategy_parameters():
    defaults = notebook_parameters(NOTEBOOK)
    assert defaults["strategy"] == "pairs_zscore" and isinstance(defaults["params"], dict)
    v = resolve_parameters(
        defaults,
        [["symbols", "BTCUSDT,ETHUSDT"], ["entry", "1.5"], ["fee_bps", "5"], ["interval", "1s"]],
    )
    assert v["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert v["fee_bps"] == 5.0 and isinstance(v["fee_bps"], float)
    assert v["params"] == {**defaults["params"], "entry": 1.5}
    # another strategy starts from its own defaults, not the pairs parameters
    w = resolve_parameters(defaults, [["strategy", "ma_crossover"], ["fast", "5"]])
    assert w["params"] == {"fast": 5}
    with pytest.raises(ValidationError, match="-p foo"):
        resolve_parameters(defaults, [["foo", "1"]])
    with pytest.raises(ValidationError, match="-p store_result"):
        resolve_parameters(defaults, [["store_result", "maybe"]])


def test_grid_specs_become_axes():
    assert parse_grid(["entry=1.5,2", "lookback=60, 120"]) == {
        "entry": [1.5, 2],
        "lookback": [60, 120],
    }
    for bad in (["entry"], ["=1,2"], ["entry=1", "entry=2"]):
        with pytest.raises(ValidationError, match="--grid"):
            parse_grid(bad)


def test_schedule_skips_missed_slots_instead_of_bunching():
    now = [100.0]
    sched = Schedule(0.02, clock=lambda: now[0])
    seen = []
    for slot in sched.ticks():
        seen.append(slot)
        if slot == 0:
            now[0] += 0.05  # the first run took 2.5 periods: slots 1 and 2 are missed
        else:
            now[0] += 0.001
        if len(seen) == 3:
            sched.stop()
    assert seen == [0, 3, 4]


def test_unknown_parameter_is_refused_naming_it(store_db, capsys):
    assert main(["backtest", "--db", str(store_db), "-p", "foo", "1"]) == 2
    assert "-p foo=1: not a notebook parameter" in capsys.readouterr().err


# --------------------------------------------------------------------- real processes
@pytest.mark.notebooks
def test_lq_backtest_stores_its_run_and_keeps_the_executed_notebook(store_db, tmp_path):
    proc = lq(
        "--db",
        str(store_db),
        "-p",
        "interval",
        "1s",
        "-p",
        "lookback",
        "30",
        "-p",
        "entry",
        "1.5",
        "-p",
        "fee_bps",
        "7.5",
        "-p",
        "lookahead_cuts",
        "2",
        "--out",
        "runs",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    [(run_id, strategy, params, metrics, nb_path, scheduled)] = rows(store_db)
    assert strategy == "pairs_zscore" and scheduled == 0
    assert json.loads(params)["lookback"] == 30 and json.loads(params)["entry"] == 1.5
    assert Path(nb_path) == (tmp_path / "runs" / f"{run_id}.ipynb").resolve()
    assert f"run {run_id} stored" in proc.stdout
    nb = nbformat.read(nb_path, as_version=4)
    injected = nb.metadata.papermill.parameters
    assert injected["run_id"] == run_id and injected["notebook_path"] == nb_path
    assert injected["params"]["lookback"] == 30
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    m = json.loads(metrics)
    assert m["lookahead_passed"] is True
    assert m["config"]["costs"]["fee_bps"] == 7.5


@pytest.mark.notebooks
def test_grid_stores_one_sweep_row_with_the_best_params_and_dsr(store_db, tmp_path):
    proc = lq(
        "--db",
        str(store_db),
        "-p",
        "interval",
        "1s",
        "-p",
        "exit",
        "0.3",
        "--grid",
        "entry=1.5,2",
        "--grid",
        "lookback=20,40",
        "--workers",
        "2",
        "--out",
        "runs",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sweep pairs_zscore" in proc.stderr  # the tqdm progress bar
    [row] = rows(store_db)
    run_id, strategy, params, metrics = row[:4]
    assert strategy == "pairs_zscore"
    m = json.loads(metrics)
    assert m["kind"] == "sweep" and m["n_trials"] == 4
    # independent reference: the same sweep in this process, one worker
    data = load_bars(store_db, ["BTCUSDT", "ETHUSDT"], interval="1s")
    ref = sweep(
        data,
        "pairs_zscore",
        {"entry": [1.5, 2], "lookback": [20, 40]},
        base_params={**notebook_parameters(NOTEBOOK)["params"], "exit": 0.3},
        costs=Costs(fee_bps=10.0, slippage_bps=1.0),
        workers=1,
        progress="off",
    )
    best = ref.iloc[0]  # sorted by DSR, best first
    assert json.loads(params)["entry"] == best["entry"]
    assert json.loads(params)["lookback"] == best["lookback"]
    assert m["dsr"] == pytest.approx(best["dsr"], rel=1e-9, abs=1e-300)
    assert (tmp_path / "runs" / f"{run_id}.csv").exists()


@pytest.mark.notebooks
@pytest.mark.slow
def test_every_1s_stores_scheduled_runs_until_sigterm(store_db, tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lq.cli",
            "backtest",
            "--db",
            str(store_db),
            "--every",
            "1s",
            "-p",
            "interval",
            "1s",
            "-p",
            "lookback",
            "30",
            "-p",
            "lookahead_cuts",
            "0",
            "--out",
            "runs",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if store_db.exists() and len(rows(store_db)) >= 2:
                break
            time.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    stored = rows(store_db)
    assert len(stored) >= 2
    assert all(r[5] == 1 for r in stored)  # every row marked scheduled
    assert all(Path(r[4]).exists() for r in stored)
    assert f"scheduled runs: {len(stored)} stored, 0 failed" in out
    listed = list_runs(store_db, scheduled=True)
    assert len(listed) == len(stored)


def test_scheduled_grid_stops_after_max_runs_with_every_row_scheduled(store_db, tmp_path):
    proc = lq(
        "--db",
        str(store_db),
        "-p",
        "interval",
        "1s",
        "--grid",
        "entry=1.5,2",
        "--workers",
        "1",
        "--every",
        "100ms",
        "--max-runs",
        "2",
        "--out",
        "runs",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    stored = rows(store_db)
    assert len(stored) == 2 and all(r[5] == 1 for r in stored)
    assert all(json.loads(r[3])["kind"] == "sweep" for r in stored)
    assert "scheduled runs: 2 stored, 0 failed" in proc.stdout


# ------------------------------------------------------------ honest numbers, real CLI
@pytest.mark.notebooks
def test_the_readme_command_runs_on_six_minutes_and_greys_its_sharpe(store_db, tmp_path):
    # the issue: `lq backtest -p strategy pairs_zscore -p last 24h` failed on the demo with
    # "need at least 10 bars"; with the shared 1 s default it runs, and its Sharpe from
    # 5.8 minutes is shown with the reason it means nothing
    proc = lq("--db", str(store_db), "-p", "strategy", "pairs_zscore", "-p", "last", "24h",
              "-p", "lookahead_cuts", "0", "--out", str(tmp_path / "runs"), cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "(not meaningful: annualised from 5.8 min of bars (under 1 day)" in proc.stdout
    assert "\x1b[" not in proc.stdout  # no terminal, no escape codes
    [(_rid, _s, _p, metrics, _nb, _sch)] = rows(store_db)
    m = json.loads(metrics)["metrics"]
    assert m["caveats"]["sharpe"].startswith("annualised from 5.8 min")
    assert isinstance(m["sharpe"], float)  # the raw value is stored too


@pytest.mark.notebooks
def test_too_few_bars_says_which_interval_and_which_has_data(store_db, tmp_path):
    proc = lq("--db", str(store_db), "-p", "interval", "1m", "-p", "last", "24h",
              "--out", str(tmp_path / "runs"), cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    # INFO progress lines may come first; the refusal is the one, last, error line
    errors = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1 and proc.stderr.strip().splitlines()[-1] == errors[0]
    assert errors[0].startswith("lq backtest: error: ")
    assert "only 7 bars of 1m for BTCUSDT in the last 24h" in errors[0]
    assert "use a finer interval (`-p interval 1s`" in errors[0]


def test_summary_line_names_ruined_sets_of_a_sweep(store_db):
    from lq.backtest import Sizing
    from lq.backtest.cli import _summary_line
    from lq.backtest.runs import record_sweep

    data = load_bars(store_db, ["BTCUSDT", "ETHUSDT"], interval="1s")
    axes = {"entry": [1.0, 2.0], "lookback": [20, 40]}
    table = sweep(data, "pairs_zscore", axes, costs=Costs(fee_bps=30), progress="off",
                  sizing=Sizing(notional=1e6), workers=1)  # fmt: skip
    n_ruined = int(table["ruined"].sum())
    assert n_ruined > 0
    run = record_sweep(store_db, table, strategy="pairs_zscore", grid=axes)
    line = _summary_line(store_db, run.run_id, None)
    assert f"{n_ruined} of 4 sets ruined (ranked last)" in line
