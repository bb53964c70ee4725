from __future__ import annotations

import numpy as np
import pytest
from analytics_data import cointegrated_pair


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    return cointegrated_pair()
