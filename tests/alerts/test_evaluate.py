"""Pure evaluation on scripted series: conditions, hysteresis, cooldown (hand-computed)."""

from __future__ import annotations

import math

from lq.alerts.evaluate import RuleState, evaluate, step
from lq.alerts.rules import Rule

S = 1_000_000  # one second in µs


def fire_times(rule: Rule, series: list[float], *, dt: int = S) -> list[int]:
    st: RuleState | None = None
    out = []
    for i, v in enumerate(series):
        f, st = step(1, rule, v, i * dt, st)
        if f is not None:
            out.append(i)
    return out


def test_above_fires_once_and_rearms_only_past_the_rearm_level():
    r = Rule(name="r", metric="zscore", symbol="BTCUSDT", condition="above",
             threshold=2.0, rearm=0.5)  # fmt: skip
    #          0    1    2    3    4    5    6    7    8    9
    series = [0.0, 2.5, 3.0, 1.0, 2.6, 0.6, 2.7, 0.4, 2.1, 2.2]
    # fires at 1; 2 is still above (disarmed); 3..6 never go below 0.5 -> silent;
    # 7 = 0.4 < 0.5 re-arms; 8 fires; 9 disarmed
    assert fire_times(r, series) == [1, 8]


def test_default_rearm_is_the_threshold():
    r = Rule(name="r", metric="price", symbol="BTCUSDT", condition="above", threshold=10.0)
    assert fire_times(r, [9, 11, 12, 10, 11, 9.99, 10.5]) == [1, 6]  # 10 is not < 10


def test_cooldown_silences_then_a_level_condition_fires_again():
    r = Rule(name="r", metric="price", symbol="BTCUSDT", condition="above", threshold=10.0,
             cooldown=5.0)  # fmt: skip
    # re-armed at 2 and above again at 3, but 3 s < 5 s cooldown -> silent; still above and
    # armed at 5 (5 s after 0) -> fires
    assert fire_times(r, [11, 11, 9, 11, 11, 11, 11]) == [0, 5]


def test_crosses_above_needs_a_previous_value_at_or_below():
    r = Rule(name="r", metric="zscore", symbol="BTCUSDT", condition="crosses_above",
             threshold=2.0, rearm=0.0)  # fmt: skip
    # 0: first value above, no previous -> no cross; 1..2 below; 3 crosses -> fire; 4 drops
    # to 1 (not below rearm 0); 5 crosses again but disarmed; 6 = -0.1 re-arms; 7 crosses
    assert fire_times(r, [3.0, 1.0, 2.0, 2.5, 1.0, 2.5, -0.1, 2.01]) == [3, 7]


def test_crosses_below_mirrors():
    r = Rule(name="r", metric="rsi", symbol="BTCUSDT", condition="crosses_below",
             threshold=30.0, rearm=40.0)  # fmt: skip
    assert fire_times(r, [50, 29, 35, 25, 45, 31, 29]) == [1, 6]


def test_outside_band_with_rearm_band():
    r = Rule(name="r", metric="zscore", symbol="BTCUSDT", condition="outside",
             band=(-2.0, 2.0), rearm_band=(-1.0, 1.0))  # fmt: skip
    # 1 fires (above); 2 inside band but not inside rearm band; 3 below band: disarmed;
    # 4 = 0 re-arms; 5 fires (below)
    assert fire_times(r, [0, 2.5, 1.5, -2.5, 0.0, -3.0]) == [1, 5]


def test_nan_values_are_skipped_without_changing_state():
    r = Rule(name="r", metric="zscore", symbol="BTCUSDT", condition="crosses_above",
             threshold=1.0)  # fmt: skip
    assert fire_times(r, [0.5, math.nan, math.inf, 1.5]) == [3]  # 0.5 -> 1.5 is the cross


def test_never_fires_at_or_before_the_last_stored_firing():
    r = Rule(name="r", metric="price", symbol="BTCUSDT", condition="above", threshold=1.0)
    f, _ = step(1, r, 2.0, 10 * S, RuleState(last_fired_ts=10 * S))
    assert f is None
    f, _ = step(1, r, 2.0, 11 * S, RuleState(last_fired_ts=10 * S))
    assert f is not None and f.fired_key == f"1:{11 * S}"


def test_evaluate_is_pure_and_covers_only_rules_in_the_snapshot():
    a = Rule(name="a", metric="price", symbol="BTCUSDT", condition="above", threshold=1.0)
    b = Rule(name="b", metric="price", symbol="BTCUSDT", condition="below", threshold=1.0)
    state0: dict[int, RuleState] = {}
    ev, st1 = evaluate({1: a, 2: b}, {1: (2.0, S)}, state0)
    assert [e.rule_id for e in ev] == [1] and state0 == {}
    assert set(st1) == {1} and st1[1].armed is False
    ev, _ = evaluate({1: a, 2: b}, {1: (2.0, 2 * S), 2: (0.5, 2 * S)}, st1)
    assert [e.rule_id for e in ev] == [2]  # rule 1 disarmed, rule 2 fires
    assert ev[0].value == 0.5 and ev[0].ts == 2 * S


# -- the engine's shortcut: values inside quiet_interval() never change anything ----------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as hs  # noqa: E402

from lq.alerts.evaluate import quiet_interval  # noqa: E402

_vals = hs.floats(-10, 10, allow_nan=False)


@hs.composite
def _rule_and_state(draw):
    cond = draw(hs.sampled_from(["above", "below", "crosses_above", "crosses_below", "outside"]))
    if cond == "outside":
        lo = draw(hs.floats(-5, 0))
        hi = draw(hs.floats(0.5, 5))
        rule = Rule(name="q", metric="zscore", symbol="BTCUSDT", condition=cond, band=(lo, hi))
    else:
        t = draw(hs.floats(-5, 5))
        d = draw(hs.floats(0, 3))
        rearm = t - d if cond in ("above", "crosses_above") else t + d
        rule = Rule(name="q", metric="zscore", symbol="BTCUSDT", condition=cond, threshold=t,
                    rearm=draw(hs.sampled_from([None, rearm])))  # fmt: skip
    state = RuleState(
        armed=draw(hs.booleans()),
        last_value=draw(hs.one_of(hs.just(math.nan), _vals)),
        last_fired_ts=draw(hs.sampled_from([None, 0])),
    )
    return rule, state


@settings(max_examples=400, deadline=None, derandomize=True)
@given(_rule_and_state(), hs.lists(hs.floats(0.001, 0.999), min_size=1, max_size=5))
def test_values_inside_the_quiet_interval_neither_fire_nor_change_state(rs, fractions):
    rule, state = rs
    lo, hi = quiet_interval(rule, state)
    if not lo < hi:
        return
    a, b = max(lo, -1e6), min(hi, 1e6)
    for k, frac in enumerate(fractions):
        v = a + (b - a) * frac
        if not lo < v < hi:
            continue
        f, st = step(1, rule, v, (k + 1) * S * 1000, state)
        assert f is None and st is state, (rule.condition, state, lo, hi, v)
