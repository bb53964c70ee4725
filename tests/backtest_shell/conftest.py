"""Fixtures of the backtest lab's shell: a small store built from the real recordings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / ".." / "shared" / "data" / "binance"
FILES = ("spot_btcusdt_20240808.gz", "spot_ethusdt_20240808.gz")


@pytest.fixture(scope="session")
def _recorded_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not all((SHARED / f).exists() for f in FILES):
        pytest.skip(
            f"real recordings not found in {SHARED.resolve()} (the shared/ folder beside the repo)"
        )
    from lq.importer import import_file
    from lq.store import Writer

    db = tmp_path_factory.mktemp("recorded") / "recorded.sqlite"
    with Writer(db, source="test") as w:
        for f in FILES:
            import_file(w, SHARED / f, progress=False)
    return db


@pytest.fixture
def store_db(_recorded_store: Path, tmp_path: Path) -> Path:
    """A private copy of a store holding the real BTCUSDT/ETHUSDT recordings (2024-08-08
    23:54:15 to 2024-08-09 00:00:01 UTC: trades, 1 s bars and book tickers), no runs."""
    db = tmp_path / "lq.sqlite"
    shutil.copy(_recorded_store, db)
    return db
