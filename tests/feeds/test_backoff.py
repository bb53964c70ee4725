"""Backoff schedule and attempt budget (hand-computed values)."""

from __future__ import annotations

import itertools
import random

import pytest

from lq.errors import ValidationError
from lq.feeds.backoff import AttemptBudget, Backoff


def test_delays_double_up_to_the_cap_without_jitter():
    b = Backoff(initial=0.5, factor=2.0, max_delay=4.0, jitter="none")
    assert list(itertools.islice(b.delays(), 6)) == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


@pytest.mark.parametrize(("jitter", "low"), [("full", 0.0), ("equal", 0.5)])
def test_jittered_delays_stay_in_their_band_and_are_seeded(jitter, low):
    b = Backoff(initial=1.0, factor=2.0, max_delay=8.0, jitter=jitter, seed=3)
    got = list(itertools.islice(b.delays(), 200))
    caps = [min(2.0**k, 8.0) for k in range(200)]
    assert all(low * c <= d <= c for d, c in zip(got, caps, strict=True))
    assert got == list(itertools.islice(b.delays(), 200))  # same seed, same schedule
    assert got != list(itertools.islice(b.delays(random.Random(4)), 200))


def test_attempt_budget_waits_for_the_oldest_attempt_to_leave_the_window():
    budget = AttemptBudget(attempts=3, period=300.0)
    for t in (0.0, 10.0, 20.0):
        assert budget.wait_needed(t) == 0.0
        budget.record(t)
    assert budget.wait_needed(30.0) == 270.0  # the attempt at 0 expires at 300
    assert budget.wait_needed(300.0) == 0.0 and budget.used(300.0) == 2


def test_bad_settings_name_the_field():
    with pytest.raises(ValidationError, match=r"factor=0\.5"):
        Backoff(factor=0.5)
    with pytest.raises(ValidationError, match="jitter='some'"):
        Backoff(jitter="some")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="attempts=0"):
        AttemptBudget(attempts=0)
