"""argparse ``type=`` functions shared by several sub-commands: a bad value is one line that
names it and what is expected (argparse prints it with the usage, exit 2), never a traceback."""

from __future__ import annotations

import argparse
import math

__all__ = ["port_arg", "seconds_arg", "speed_arg"]


def speed_arg(text: str) -> float | None:
    """``--speed``: a positive factor of real time, or ``max`` (also ``none`` or ``0``) for
    as fast as the client reads; ``None`` means max. An argparse ``type``."""
    if str(text).lower() in ("max", "none", "0"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a positive number (1 = real time, 10 = ten times faster) or 'max'"
        )
    return value


def port_arg(text: str) -> int:
    """``--port``: 0..65535 (0 picks a free port). An argparse ``type``."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a port 1..65535, or 0 for a free one")
    return value


def seconds_arg(text: str) -> float:
    """A positive duration: seconds (``90``, ``0.5``) or with a unit (``90s``, ``10m``,
    ``2h``, ``1d``). An argparse ``type``."""
    from lq.config import parse_duration

    try:
        value = float(text)
    except ValueError:
        try:
            value = float(parse_duration(text, field="duration"))
        except Exception:
            value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a positive duration in seconds (90) or with a unit (90s, 10m, 2h)"
        )
    return value
