from __future__ import annotations

import lq.alerts


def test_public_names_exist():
    for name in lq.alerts.__all__:
        assert hasattr(lq.alerts, name), name
    assert sorted(lq.alerts.__all__) == lq.alerts.__all__
