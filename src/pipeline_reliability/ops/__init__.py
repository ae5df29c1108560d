"""
Operators' visibility over the capabilities (DESIGN §2 "ops"), read through
their public status APIs:

- ``watch`` evaluates every configured phase (and breakers and locks) and
  reports each problem as an :class:`Alert` with a stable id, remembering in
  the store what it sent so a persisting alert is sent once and a resolved one
  is reported once;
- ``read_day`` / ``build_report`` give the day at a glance (every phase of a
  date, processors, times, trigger history) and the dates x phases grid that
  ``pipeline-reliability day`` and ``report --html`` render.

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
from ._day import CELL_STATES, DayView, PhaseDay, ProcessorDay, TriggerStep, read_day
from ._report import DayReport, build_report
from ._rules import WATCH_RULES, PhaseRules
from ._watch import WatchConfig, watch

__all__ = [
    "Alert",
    "CELL_STATES",
    "DayReport",
    "DayView",
    "PhaseDay",
    "PhaseRules",
    "ProcessorDay",
    "TriggerStep",
    "WATCH_RULES",
    "WatchConfig",
    "WatchReport",
    "alert_id",
    "build_report",
    "read_day",
    "watch",
]
