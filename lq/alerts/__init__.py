"""lq.alerts: rules on live statistics, evaluated in the collector, with history and delivery.

Pure parts: :mod:`~lq.alerts.rules` (specs), :mod:`~lq.alerts.metrics` (streaming metric
state), :mod:`~lq.alerts.evaluate` (``evaluate(rules, snapshot, state)``). I/O parts:
:mod:`~lq.alerts.store` (rules CRUD, events), :mod:`~lq.alerts.channels` (Telegram, SMTP,
webhook, dashboard), :mod:`~lq.alerts.delivery` (queues, retries, rate limits),
:mod:`~lq.alerts.engine` (the collector hook), :mod:`~lq.alerts.history` (a rule over the
past). See docs/alerts.md.
"""

from __future__ import annotations

from lq.alerts.channels import (
    DashboardChannel,
    EmailChannel,
    TelegramChannel,
    WebhookChannel,
    channels_from_settings,
)
from lq.alerts.delivery import Delivery, RetryPolicy
from lq.alerts.engine import AlertEngine
from lq.alerts.evaluate import Firing, RuleState, evaluate, step
from lq.alerts.history import HistoryResult, rule_history
from lq.alerts.rules import Rule, rule_from_dict, rule_from_json, rule_to_dict, rule_to_json
from lq.alerts.store import AlertEvent, AlertStore, StoredRule

__all__ = [
    "AlertEngine",
    "AlertEvent",
    "AlertStore",
    "DashboardChannel",
    "Delivery",
    "EmailChannel",
    "Firing",
    "HistoryResult",
    "RetryPolicy",
    "Rule",
    "RuleState",
    "StoredRule",
    "TelegramChannel",
    "WebhookChannel",
    "channels_from_settings",
    "evaluate",
    "rule_from_dict",
    "rule_from_json",
    "rule_history",
    "rule_to_dict",
    "rule_to_json",
    "step",
]
