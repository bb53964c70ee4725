"""Fixtures of the backtest tests: the real recordings (read in place, never copied)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._data import DATA


@pytest.fixture
def recordings() -> Path:
    """The real Binance recordings beside the repo."""
    if not (DATA / "spot_btcusdt_20240808.gz").exists():
        pytest.skip(f"real recordings not found at {DATA} (the shared/ folder beside the repo)")
    return DATA
