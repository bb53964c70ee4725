"""A stop asked for while a long-running command is still starting.

Python's default SIGTERM disposition kills the process (exit 143) until the command's event
loop installs its own handler, which takes a moment of imports and opening files. The console
script holds SIGTERM from its first line instead: the request is kept here, and the command
honours it as soon as its loop runs (an orderly stop, exit 0 when nothing was lost).
"""

from __future__ import annotations

import signal
from types import FrameType

__all__ = ["hold_early_stop", "stop_requested"]

_requested: list[int] = []


def _keep(signum: int, frame: FrameType | None) -> None:
    _requested.append(signum)


def hold_early_stop() -> None:
    """Keep a SIGTERM until the command installs its own handler (call once, at start)."""
    signal.signal(signal.SIGTERM, _keep)


def stop_requested() -> bool:
    """Whether a SIGTERM arrived before the command's own handler was installed."""
    return bool(_requested)
