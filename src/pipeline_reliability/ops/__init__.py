"""
Operators' visibility over the capabilities (DESIGN §2 "ops"): ``watch``
evaluates every configured phase (and breakers and locks) through their
public status APIs and reports each problem as an :class:`Alert` with a
stable id, remembering in the store what it sent so a persisting alert is
sent once and a resolved one is reported once.

Example::

    from pipeline_reliability import MemoryStore
    from pipeline_reliability.completion import CompletionTracker, PhaseSpec
    from pipeline_reliability.ops import watch

    store = MemoryStore()
    tracker = CompletionTracker(store, [PhaseSpec("phase3", {"a", "b"})])
    report = watch(store, tracker)
    for alert in report.new:
        print(alert.severity, alert.message, "->", alert.action)
"""

from __future__ import annotations

from ._alerts import Alert, WatchReport, alert_id
from ._rules import RULES, PhaseRules
from ._watch import WatchConfig, watch

__all__ = [
    "RULES",
    "Alert",
    "PhaseRules",
    "WatchConfig",
    "WatchReport",
    "alert_id",
    "watch",
]
