"""A small store built from the real recordings, for the forecast lab's shell."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / ".." / "shared" / "data" / "binance"
FILES = ("spot_btcusdt_20240808.gz", "spot_ethusdt_20240808.gz")


@pytest.fixture(scope="session")
def _recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not all((SHARED / f).exists() for f in FILES):
        pytest.skip(f"real recordings not found in {SHARED.resolve()} (shared/ beside the repo)")
    from lq.importer import import_file
    from lq.store import Writer

    db = tmp_path_factory.mktemp("recorded") / "recorded.sqlite"
    with Writer(db, source="test") as w:
        for f in FILES:
            import_file(w, SHARED / f, progress=False)
    return db


@pytest.fixture
def store_db(_recorded: Path, tmp_path: Path) -> Path:
    """A private copy: real BTCUSDT/ETHUSDT trades, 1 s bars and book tickers (6 minutes)."""
    db = tmp_path / "lq.sqlite"
    shutil.copy(_recorded, db)
    return db
