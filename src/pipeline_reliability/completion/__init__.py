"""
The fan-in completion barrier (DESIGN §2 CompletionTracker): record processor
completions per (phase, date) and trigger the next phase exactly once.

Example::

    from pipeline_reliability import MemoryStore
    from pipeline_reliability.completion import CompletionTracker, PhaseSpec

    tracker = CompletionTracker(MemoryStore(), [PhaseSpec("phase3", {"a", "b"})])
    tracker.record_and_trigger("phase3", "2026-01-31", "a", execution_id="r1", publish=print)
"""

from __future__ import annotations

from ._async_tracker import AsyncCompletionTracker
from ._calendar import LocalDeadline, Schedule
from ._events import TriggerClaim, TriggerEvent
from ._gates import Gate, GateResult
from ._history import Deployment, MemoryRunHistory, RunHistory, RunHistoryRow
from ._history_buffer import BufferedRunHistory
from ._ledger import (
    CompletionLedger,
    ExecutionLog,
    ExecutionLogRow,
    LedgerRow,
    MemoryExecutionLog,
    MemoryLedger,
)
from ._listeners import TrackerEvent, TrackerEventKind, TrackerListener
from ._results import (
    AuditEntry,
    CompletionResult,
    PhaseStatus,
    ProcessorRecord,
    QuarantinedRow,
    ReconcileReport,
    ReplayReport,
    SweepOutcome,
    SweepReport,
    TriggerConfirmation,
)
from ._spec import PhaseSpec
from ._tracker import CompletionTracker, Evidence

__all__ = [
    "AsyncCompletionTracker",
    "AuditEntry",
    "BufferedRunHistory",
    "CompletionLedger",
    "CompletionResult",
    "CompletionTracker",
    "Deployment",
    "Evidence",
    "ExecutionLog",
    "ExecutionLogRow",
    "Gate",
    "GateResult",
    "LedgerRow",
    "LocalDeadline",
    "MemoryExecutionLog",
    "MemoryLedger",
    "MemoryRunHistory",
    "PhaseSpec",
    "PhaseStatus",
    "ProcessorRecord",
    "QuarantinedRow",
    "ReconcileReport",
    "ReplayReport",
    "RunHistory",
    "RunHistoryRow",
    "Schedule",
    "SweepOutcome",
    "SweepReport",
    "TrackerEvent",
    "TrackerEventKind",
    "TrackerListener",
    "TriggerClaim",
    "TriggerConfirmation",
    "TriggerEvent",
]
