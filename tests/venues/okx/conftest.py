"""Shared helpers for the OKX tests: the real recordings beside the repo."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "okx"


@pytest.fixture
def okx_data():
    def path(name: str) -> Path:
        p = DATA / name
        if not p.exists():
            pytest.skip(f"real recording {p} not found (shared/data/okx beside the repo)")
        return p

    return path
