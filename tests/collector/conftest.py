from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test():
    """Processes a test started (procs.Proc) are killed if the test ended without stopping
    them (a failed assertion, a timeout)."""
    yield
    from procs import RUNNING

    while RUNNING:
        p = RUNNING.pop()
        if p.alive():
            p.p.kill()
            p.p.wait(30)
