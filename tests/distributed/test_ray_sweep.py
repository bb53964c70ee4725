"""Sweeps and walk-forward on a real local Ray cluster (one per module): the same table as
the serial run, bit for bit, over bars from the archive and the SQLite tail; retries; a set
that always fails is named; a worker killed mid-run is retried."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from lq.backtest import sweep, walk_forward  # noqa: E402
from lq.backtest.runs import load_bars  # noqa: E402
from lq.backtest.source import StoreSlice  # noqa: E402
from lq.errors import BacktestError  # noqa: E402
from lq.store import Store  # noqa: E402

from ._store import archived_store  # noqa: E402

GRID = {"fast": [3, 5, 8], "slow": [20, 40]}  # 6 parameter sets


@pytest.fixture(scope="module", autouse=True)
def cluster():
    mp = pytest.MonkeyPatch()
    mp.setenv("RAY_AUTH_MODE", "disabled")  # a loopback test cluster: no token in ~/.ray
    # the test strategies live here, a module Ray's workers cannot import: ship them by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=100 * 2**20,
        log_to_driver=False,
    )
    yield
    ray.shutdown()
    mp.undo()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _midnight = archived_store(tmp_path_factory.mktemp("ray") / "lq.sqlite")
    with Store(path, archive=False) as tail, Store(path) as both:
        n_tail = len(tail.bars("BTCUSDT", "1m"))
        n_all = len(both.bars("BTCUSDT", "1m"))
    assert 0 < n_tail < n_all  # the bars really come from both places
    return path


def where(db: Path) -> StoreSlice:
    return StoreSlice(db=str(db), symbols=("BTCUSDT",), interval="1m")


def same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert a.shape == b.shape
    for col in a.columns:  # == on every value, NaN only where the other is NaN
        x, y = a[col].to_numpy(), b[col].to_numpy()
        both_nan = pd.isna(x) & pd.isna(y)
        assert ((x == y) | both_nan).all(), col


def test_ray_sweep_equals_the_serial_sweep_bit_for_bit(db: Path) -> None:
    serial = sweep(
        load_bars(db, "BTCUSDT", interval="1m"), "ma_crossover", GRID, workers=1, progress="off"
    )
    distributed = sweep(where(db), "ma_crossover", GRID, engine="ray", progress="off")
    assert len(serial) == 6
    same(serial, distributed)
    assert serial.attrs == distributed.attrs


def test_ray_walk_forward_runs_every_set_and_fold_and_equals_serial(db: Path) -> None:
    kw = {"train_bars": 120, "test_bars": 60, "objective": "sharpe"}
    serial = walk_forward(load_bars(db, "BTCUSDT", interval="1m"), "ma_crossover", GRID, **kw)
    distributed = walk_forward(where(db), "ma_crossover", GRID, engine="ray", **kw)
    assert len(serial.windows) == 2  # 6 sets x 2 folds
    assert (serial.equity.to_numpy() == distributed.equity.to_numpy()).all()
    assert serial.equity.index.equals(distributed.equity.index)
    same(serial.windows.astype({"params": str}), distributed.windows.astype({"params": str}))


def _crossover(bars: pd.DataFrame, params: dict) -> pd.Series:
    c = bars["close"]
    fast = c.rolling(int(params["fast"])).mean()
    slow = c.rolling(int(params["slow"])).mean()
    return pd.Series(np.where(fast > slow, 1.0, 0.0), index=bars.index)


def test_a_task_that_fails_once_is_retried_and_the_table_is_complete(
    db: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "failed-once"

    def flaky(bars: pd.DataFrame, params: dict) -> pd.Series:
        if params["fast"] == 5 and params["slow"] == 40:
            with open(params["log"], "a") as f:
                f.write("attempt\n")
            if not Path(params["marker"]).exists():
                Path(params["marker"]).write_text("failed")
                raise RuntimeError("first attempt fails")
        return _crossover(bars, params)

    base = {"marker": str(marker), "log": str(tmp_path / "attempts")}
    distributed = sweep(
        where(db), flaky, GRID, base_params=base, engine="ray", max_retries=2, progress="off"
    )
    assert marker.exists()
    assert (tmp_path / "attempts").read_text().count("attempt") == 2  # failed, then retried
    serial = sweep(
        load_bars(db, "BTCUSDT", interval="1m"),
        flaky,
        GRID,
        base_params=base,
        workers=1,
        progress="off",
    )
    same(serial, distributed)
    assert len(distributed) == 6


def test_a_task_that_always_fails_is_named_by_its_parameters(db: Path, tmp_path: Path) -> None:
    log = tmp_path / "attempts"

    def broken(bars: pd.DataFrame, params: dict) -> pd.Series:
        if params["fast"] == 8 and params["slow"] == 20:
            with open(params["log"], "a") as f:
                f.write("attempt\n")
            raise ValueError("fast 8 with slow 20 is refused")
        return _crossover(bars, params)

    with pytest.raises(BacktestError) as info:
        sweep(
            where(db),
            broken,
            GRID,
            base_params={"log": str(log)},
            engine="ray",
            max_retries=1,
            progress="off",
        )
    msg = str(info.value)
    assert "\n" not in msg
    assert "'fast': 8" in msg and "'slow': 20" in msg
    assert "after 1 retries" in msg and "ValueError: fast 8 with slow 20 is refused" in msg
    assert log.read_text().count("attempt") == 2  # the first try and one retry


def test_a_worker_killed_mid_run_is_retried(db: Path, tmp_path: Path) -> None:
    marker = tmp_path / "killed-once"

    def dies_once(bars: pd.DataFrame, params: dict) -> pd.Series:
        if params["fast"] == 3 and params["slow"] == 40 and not Path(params["marker"]).exists():
            Path(params["marker"]).write_text("killed")
            os._exit(1)  # the worker process dies mid-task
        return _crossover(bars, params)

    base = {"marker": str(marker)}
    distributed = sweep(where(db), dies_once, GRID, base_params=base, engine="ray", progress="off")
    assert marker.exists()
    serial = sweep(
        load_bars(db, "BTCUSDT", interval="1m"),
        dies_once,
        GRID,
        base_params=base,
        workers=1,
        progress="off",
    )
    same(serial, distributed)


def test_the_default_engine_imports_no_ray() -> None:
    code = (
        "import sys, lq.backtest, lq.backtest.sweep, lq.backtest.validation, lq.backtest.cli;"
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
