"""Pure, injectable reconnect policy: delay schedule and connection-attempt budget.

Modelled on ``websockets``' ``backoff()`` generator: the schedule is data, so tests pass a
fast one and production code never hard-codes a sleep. Nothing here sleeps or reads a clock
by itself; callers pass ``now``.

* :class:`Backoff` - jittered exponential delays (``initial * factor**n``, capped at
  ``max_delay``), restarted after a connection stayed healthy for ``healthy_after`` seconds.
* :class:`AttemptBudget` - at most ``attempts`` connection attempts in any rolling ``period``
  (Binance: 300 per 5 minutes per IP, reference §1.3). It tells how long to wait; it never
  refuses.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from typing import Literal

import msgspec

from lq.errors import ValidationError

__all__ = ["AttemptBudget", "Backoff", "Jitter"]

Jitter = Literal["full", "equal", "none"]


class Backoff(msgspec.Struct, frozen=True, kw_only=True):
    """Reconnect delay policy.

    Parameters
    ----------
    initial
        First delay, seconds.
    factor
        Growth per consecutive failure.
    max_delay
        Cap on the un-jittered delay, seconds.
    jitter
        ``"full"``: uniform in ``[0, d]``; ``"equal"``: uniform in ``[d/2, d]``; ``"none"``.
    healthy_after
        A connection that lived this long (seconds) resets the schedule.
    policy_violation_delay
        Minimum wait after a 1008 close ("Too many requests"): Binance's penalty window.
    seed
        Seed of the jitter's random generator (``None``: not reproducible).
    """

    initial: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    jitter: Jitter = "equal"
    healthy_after: float = 60.0
    policy_violation_delay: float = 5.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("initial", "max_delay", "healthy_after", "policy_violation_delay"):
            v = getattr(self, name)
            if not v >= 0:
                raise ValidationError(name, v, "must be >= 0")
        if not self.factor >= 1:
            raise ValidationError("factor", self.factor, "must be >= 1")
        if self.jitter not in ("full", "equal", "none"):
            raise ValidationError("jitter", self.jitter, "expected 'full', 'equal' or 'none'")

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """Yield the delay before each reconnect attempt, forever.

        Parameters
        ----------
        rng
            Random generator for the jitter; default ``random.Random(self.seed)``.
        """
        r = rng if rng is not None else random.Random(self.seed)
        d = self.initial
        while True:
            base = min(d, self.max_delay)
            if self.jitter == "full":
                yield r.uniform(0.0, base)
            elif self.jitter == "equal":
                yield r.uniform(base / 2, base)
            else:
                yield base
            d = d * self.factor


class AttemptBudget:
    """At most ``attempts`` connection attempts in any rolling window of ``period`` seconds.

    Parameters
    ----------
    attempts
        Budget per window (Binance: 300).
    period
        Window length, seconds (Binance: 300).
    """

    def __init__(self, *, attempts: int = 300, period: float = 300.0) -> None:
        if attempts < 1:
            raise ValidationError("attempts", attempts, "must be >= 1")
        if not period > 0:
            raise ValidationError("period", period, "must be > 0")
        self.attempts = attempts
        self.period = period
        self._times: deque[float] = deque()

    def wait_needed(self, now: float) -> float:
        """Seconds to wait from ``now`` before the next attempt keeps within the budget."""
        self._expire(now)
        if len(self._times) < self.attempts:
            return 0.0
        return max(0.0, self._times[0] + self.period - now)

    def record(self, now: float) -> None:
        """Count one attempt made at ``now``."""
        self._expire(now)
        self._times.append(now)

    def used(self, now: float) -> int:
        """Attempts counted in the window ending at ``now``."""
        self._expire(now)
        return len(self._times)

    def _expire(self, now: float) -> None:
        t = self._times
        while t and t[0] <= now - self.period:
            t.popleft()
