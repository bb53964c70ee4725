"""Shared helpers for the Kraken tests: the real recordings beside the repo."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "kraken"


@pytest.fixture
def kr_data():
    def path(name: str) -> Path:
        p = DATA / name
        if not p.exists():
            pytest.skip(f"real recording {p} not found (shared/data/kraken beside the repo)")
        return p

    return path
