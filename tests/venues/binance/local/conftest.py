from __future__ import annotations

from pathlib import Path

import pytest

# the shared/ folder beside the repository (never copied into it)
RECORDINGS = Path(__file__).resolve().parents[4] / ".." / "shared" / "data" / "binance"
BTC_FILE = "spot_btcusdt_20240808.gz"
ETH_FILE = "spot_ethusdt_20240808.gz"


@pytest.fixture
def recordings() -> Path:
    """The real Binance recordings (skip when the shared folder is absent)."""
    if not (RECORDINGS / BTC_FILE).exists() or not (RECORDINGS / ETH_FILE).exists():
        pytest.skip(f"real recordings not found at {RECORDINGS.resolve()} (shared/ beside repo)")
    return RECORDINGS
