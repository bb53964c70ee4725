"""Pure rule evaluation: ``evaluate(rules, snapshot, state) -> (firings, state)``.

No I/O, no clocks: the caller passes each rule's fresh metric value with its exchange time,
and the previous evaluation state; it gets the firings and the next state. The engine (live)
and :mod:`lq.alerts.history` (past data) call the same :func:`step`, so a rule fires on the
same samples live and in history.

Semantics, per rule (see :class:`~lq.alerts.rules.Rule`):

* ``above``: value > threshold; ``below``: value < threshold;
  ``crosses_above``: previous value <= threshold < value; ``crosses_below`` mirrors it;
  ``outside``: value < low or value > high.
* **Hysteresis**: a firing disarms the rule; it re-arms once the value goes strictly past the
  re-arm level (below ``rearm`` for above/crosses_above, above it for below/crosses_below,
  strictly inside ``rearm_band`` for outside). The default re-arm level is the threshold
  (the band). A disarmed rule never fires.
* **Cooldown**: no firing while ``ts < last_fired_ts + cooldown`` (exchange time). A trigger
  suppressed by the cooldown does not disarm the rule.
* NaN/inf values (warm-up) are skipped: the state does not change.
* Firings with ``ts <= last_fired_ts`` are never produced (a restart that re-evaluates past
  samples cannot fire the same event twice); such a trigger disarms the rule as the original
  firing did, so re-evaluation ends in the state live evaluation had.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import msgspec

from lq.alerts.rules import Rule

__all__ = ["Firing", "RuleState", "evaluate", "quiet_interval", "step"]


class RuleState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What evaluation remembers about one rule between samples.

    ``last_value`` is what a crossing condition needs: the latest value that was on a
    different side of the threshold than the one before (for other conditions, the value at
    the last change of state). ``last_fired_ts`` is the exchange time of the last firing.
    """

    armed: bool = True
    last_value: float = math.nan
    last_fired_ts: int | None = None


class Firing(msgspec.Struct, frozen=True, kw_only=True):
    """A rule fired on a value at exchange time ``ts`` (µs)."""

    rule_id: int
    rule: Rule
    value: float
    ts: int
    message: str

    @property
    def fired_key(self) -> str:
        """Rule + exchange time: unique in ``alert_events``."""
        return f"{self.rule_id}:{self.ts}"


_FRESH = RuleState()


def _triggered(rule: Rule, prev: float, v: float) -> bool:
    c = rule.condition
    if c == "outside":
        lo, hi = rule.band  # type: ignore[misc]
        return v < lo or v > hi
    t = rule.threshold
    assert t is not None
    if c == "above":
        return v > t
    if c == "below":
        return v < t
    if c == "crosses_above":
        return prev == prev and prev <= t < v
    return prev == prev and prev >= t > v  # crosses_below


def _rearmed(rule: Rule, v: float) -> bool:
    c = rule.condition
    if c == "outside":
        lo, hi = rule.rearm_band or rule.band  # type: ignore[misc]
        return lo < v < hi
    level = rule.rearm if rule.rearm is not None else rule.threshold
    assert level is not None
    if c in ("above", "crosses_above"):
        return v < level
    return v > level


def _message(rule: Rule, value: float) -> str:
    return f"{rule.name}: {rule.describe()} — value {value:.6g}"


def step(
    rule_id: int, rule: Rule, value: float, ts: int, state: RuleState | None
) -> tuple[Firing | None, RuleState]:
    """Evaluate one rule on one fresh value; returns (firing or None, next state).

    The live engine calls this once per rule per sample, so it returns the same state
    object when nothing changed (no allocation on the common path).
    """
    st = state or _FRESH
    if value - value != 0.0:  # NaN or inf: warm-up, nothing changes
        return None, st
    armed = st.armed or _rearmed(rule, value)
    c = rule.condition
    prev = st.last_value
    if armed and _triggered(rule, prev, value):
        last = st.last_fired_ts
        if last is not None and ts <= last:
            # re-evaluating samples that were already evaluated (a restart's warm-up, a
            # replay): this trigger fired then, so it disarms now, without a second firing
            return None, RuleState(armed=False, last_value=value, last_fired_ts=last)
        if last is None or ts >= last + round(rule.cooldown * 1_000_000):
            f = Firing(
                rule_id=rule_id, rule=rule, value=value, ts=ts, message=_message(rule, value)
            )
            return f, RuleState(armed=False, last_value=value, last_fired_ts=ts)
    if armed == st.armed:
        # only the side of the threshold matters for a crossing: keep the state object
        if c == "crosses_above":
            t = rule.threshold
            if (prev <= t) == (value <= t):  # type: ignore[operator]
                return None, st
        elif c == "crosses_below":
            t = rule.threshold
            if (prev >= t) == (value >= t):  # type: ignore[operator]
                return None, st
        else:
            return None, st
    return None, RuleState(armed=armed, last_value=value, last_fired_ts=st.last_fired_ts)


_INF = math.inf
_EMPTY = (_INF, -_INF)


def quiet_interval(rule: Rule, state: RuleState | None) -> tuple[float, float]:
    """An open interval ``(lo, hi)`` of values on which :func:`step` neither fires nor
    changes ``state`` (it returns the same object). Conservative: endpoints excluded, and
    empty when the quiet set is not an interval (a disarmed ``outside`` rule).

    The engine skips evaluating every rule of a metric while the value stays inside the
    intersection of their intervals, so a hundred quiet rules cost one comparison.
    """
    st = state or _FRESH
    c = rule.condition
    if c == "outside":
        if not st.armed:
            return _EMPTY
        lo, hi = rule.band  # type: ignore[misc]
        return lo, hi
    t = rule.threshold
    assert t is not None
    level = rule.rearm if rule.rearm is not None else t
    if c == "above":
        return (-_INF, t) if st.armed else (level, _INF)
    if c == "below":
        return (t, _INF) if st.armed else (-_INF, level)
    prev = st.last_value
    if c == "crosses_above":
        if prev <= t:
            return (-_INF, t) if st.armed else (level, t)
        return (t, _INF)  # above (or no previous value): armed or not, nothing happens
    if prev >= t:  # crosses_below
        return (t, _INF) if st.armed else (t, level)
    return (-_INF, t)


def evaluate(
    rules: Mapping[int, Rule],
    snapshot: Mapping[int, tuple[float, int]],
    state: Mapping[int, RuleState],
) -> tuple[list[Firing], dict[int, RuleState]]:
    """Evaluate every rule that has a fresh value in ``snapshot``.

    Parameters
    ----------
    rules
        Rule id -> rule.
    snapshot
        Rule id -> ``(value, ts)``: the metric value of that rule now and its exchange time
        (µs). Rules absent from the snapshot keep their state.
    state
        Rule id -> previous :class:`RuleState` (missing: a fresh, armed state).

    Returns
    -------
    (firings, state)
        Firings in rule-id order, and the complete next state (a new dict).

    Examples
    --------
    >>> r = Rule(name="hot", metric="price", symbol="BTCUSDT", threshold=100.0, rearm=90.0)
    >>> ev, st = evaluate({1: r}, {1: (101.0, 1)}, {})
    >>> [e.value for e in ev], st[1].armed
    ([101.0], False)
    """
    out = dict(state)
    firings: list[Firing] = []
    for rid in sorted(snapshot):
        rule = rules.get(rid)
        if rule is None:
            continue
        value, ts = snapshot[rid]
        f, out[rid] = step(rid, rule, value, ts, state.get(rid))
        if f is not None:
            firings.append(f)
    return firings, out
