"""A walk-forward sweep on a two-node Ray cluster on this machine
(``ray.cluster_utils.Cluster``) equals the serial one, bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster  # noqa: E402

from lq.backtest import walk_forward  # noqa: E402
from lq.backtest.runs import load_bars  # noqa: E402
from lq.backtest.source import StoreSlice  # noqa: E402

from ._store import archived_store  # noqa: E402

GRID = {"fast": [3, 5, 8], "slow": [20, 40]}


def test_a_two_node_cluster_equals_the_serial_walk_forward(tmp_path: Path) -> None:
    db, _ = archived_store(tmp_path / "lq.sqlite")
    mp = pytest.MonkeyPatch()
    mp.setenv("RAY_AUTH_MODE", "disabled")  # a loopback test cluster: no token in ~/.ray
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": 80 * 2**20},
    )
    try:
        cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20)
        assert len(cluster.list_all_nodes()) == 2
        kw = {"train_bars": 120, "test_bars": 60, "objective": "sharpe"}
        where = StoreSlice(db=str(db), symbols=("BTCUSDT",), interval="1m")
        distributed = walk_forward(
            where, "ma_crossover", GRID, engine="ray", address=cluster.address, **kw
        )
        serial = walk_forward(load_bars(db, "BTCUSDT", interval="1m"), "ma_crossover", GRID, **kw)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        mp.undo()
    assert (serial.equity.to_numpy() == distributed.equity.to_numpy()).all()
    assert serial.equity.index.equals(distributed.equity.index)
    assert serial.windows.astype({"params": str}).equals(
        distributed.windows.astype({"params": str})
    )
