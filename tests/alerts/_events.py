from __future__ import annotations

from lq.alerts.rules import Rule
from lq.alerts.store import AlertEvent

RULE = Rule(
    name="eth-btc-z",
    metric="spread_zscore",
    symbol="ETHUSDT/BTCUSDT",
    condition="crosses_above",
    threshold=2.0,
    window=30,
    channels=("email", "webhook", "telegram", "dashboard"),
)
TS = 1_723_161_600_000_000  # 2024-08-09T00:00:00Z


def event(
    *, rule: Rule = RULE, value: float = 2.25, ts: int = TS, id: int | None = 7
) -> AlertEvent:
    return AlertEvent(
        rule_id=3, rule=rule, value=value, ts=ts, local_ts=ts + 1500, severity=rule.severity,
        message=f"{rule.name}: {rule.describe()} — value {value:.6g}", fired_key=f"3:{ts}", id=id,
    )  # fmt: skip
