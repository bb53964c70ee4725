from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "binance"


@pytest.fixture
def shared_data() -> Path:
    """The real Binance recordings beside the repo (never copied into it)."""
    if not (SHARED_DATA / "spot_btcusdt_20240808.gz").exists():
        pytest.skip(
            f"real recordings not found at {SHARED_DATA} (the shared/ folder beside the repo)"
        )
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test reads the developer's own ~/.config/lq or writes to their data dir."""
    home = tmp_path_factory.mktemp("home")
    conf = home / "config.toml"
    conf.write_text("")  # a real, empty file: a named config that is missing is an error
    monkeypatch.setenv("LQ_CONFIG", str(conf))
    monkeypatch.setenv("LQ_DB", str(home / "lq.sqlite"))
    for key in list(os.environ):
        if key.startswith("LQ_") and key not in ("LQ_CONFIG", "LQ_DB"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def zip_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4 MB zip whose one CSV inflates to 1.1 GB (a valid trade row repeated; built once)."""
    from import_files import write_zip_bomb

    f = tmp_path_factory.mktemp("bomb") / "BTCUSDT-trades-2024-08-08.zip"
    write_zip_bomb(f, 1100)
    assert f.stat().st_size < 5 * 2**20
    return f


# The slowest modules first (with `--no-loadscope-reorder`, xdist hands out whole modules in
# collection order; its default order, most tests first, left the heaviest few-test modules
# for the end of the run, on one worker while the others idled). Browser modules alternate
# with others: they queue for the browser slots (tests/dashboard/conftest.py).
HEAVY_FIRST = (  # the slowest files of a CI run (artifacts/timeline), longest first
    "tests/dashboard/test_dashboard_browser.py",
    "tests/dashboard/test_server_robustness.py",
    "tests/archive/test_archive.py",
    "tests/notebooks/test_notebooks.py",
    "tests/dashboard/test_forecast_browser.py",
    "tests/collector/test_multi_venue_process.py",
    "tests/test_cli_truth.py",
    "tests/backtest_shell/test_cli.py",
    "tests/collector/test_faults_process.py",
    "tests/venues/test_venues_over_sockets.py",
    "tests/dashboard/test_server.py",
    "tests/distributed/test_ray_cli.py",
    "tests/test_importer_limits.py",
    "tests/collector/test_collector.py",
    "tests/forecast_shell/test_cli.py",
    "tests/distributed/test_ray_multinode.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {m: i for i, m in enumerate(HEAVY_FIRST)}
    last = len(HEAVY_FIRST)
    items.sort(key=lambda it: rank.get(it.nodeid.split("::", 1)[0], last))  # stable


# Which tests ran beside which: one line per test and worker (start, end, node id) in
# artifacts/timeline/, so a test starved on a loaded CI machine can be traced to its company.
_TIMELINE = REPO / "artifacts" / "timeline"
_started: dict[str, float] = {}


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    import time

    _started[nodeid] = time.time()


def pytest_runtest_logfinish(nodeid: str, location: object) -> None:
    import time

    start = _started.pop(nodeid, None)
    if start is None:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    try:
        _TIMELINE.mkdir(parents=True, exist_ok=True)
        with open(_TIMELINE / f"{worker}.tsv", "a") as f:
            f.write(f"{start:.3f}\t{time.time():.3f}\t{nodeid}\n")
    except OSError:
        pass  # a full or read-only disk (the disk-full tests) must not fail a test here
