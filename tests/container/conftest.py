"""The container tests build an image (minutes): they run only when asked for.

``make test-container`` asks (``LQ_CONTAINER_TESTS=1``), and so does ``-m container``; a plain
``make test`` skips them at collection, in no time, whether podman is installed or not.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    asked = os.environ.get("LQ_CONTAINER_TESTS") == "1" or "container" in (
        config.getoption("markexpr", "") or ""
    )
    if asked:
        return
    skip = pytest.mark.skip(
        reason="builds and runs the image with podman (minutes): run `make test-container`"
    )
    for item in items:
        if "container" in item.keywords:
            item.add_marker(skip)
