"""
The tracker's observers: its listeners and its run history.

Everything here runs after the store decided (never inside a transaction
callback, which may run more than once) and nothing here may fail the call
that observed it: a listener's exception is logged by :func:`notify`, a
history's is logged here.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from .._clock import Clock
from .._telemetry import log_failure, package_version
from ..errors import ConfigurationError
from ._doc import Completion
from ._events import TriggerClaim
from ._history import Deployment, RunHistory, RunHistoryRow, deployment_from_env
from ._listeners import TrackerEvent, TrackerEventKind, TrackerListener, notify
from ._results import CompletionResult

__all__ = ["Observers", "check_history", "outcome_of"]

K = TrackerEventKind
logger = logging.getLogger("pipeline_reliability.completion")


def check_history(history: object) -> RunHistory | None:
    """Return ``history`` if it is ``None`` or a :class:`RunHistory`, else raise."""
    if history is not None and not isinstance(history, RunHistory):
        raise ConfigurationError(
            f"history must be a RunHistory (record, flush, close), got {type(history).__name__}"
        )
    return history


def outcome_of(result: CompletionResult) -> str:
    """The outcome of one report: ``counted``, ``duplicate``, ``degraded``, ... (one word)."""
    # In order of precedence: a degraded report is nothing else, an ignored
    # duplicate is a duplicate, ...
    flags = (
        ("degraded", result.degraded),
        ("duplicate", result.duplicate),
        ("ignored", result.ignored),
        ("counted", result.counted),
        ("updated", result.updated),
        ("stale", result.stale),
    )
    return next((name for name, flag in flags if flag), "recorded")


class Observers:
    """A tracker's listeners and history (not public)."""

    def __init__(self, history: RunHistory | None, clock: Clock, owner: str) -> None:
        self.history = history
        self._clock = clock
        self._owner = owner
        self._lock = threading.Lock()
        self._deployment: Deployment | None = None
        #: Replaced whole under the lock, read without it (a tuple is immutable).
        self.listeners: tuple[TrackerListener, ...] = ()

    def add(self, listener: TrackerListener) -> None:
        if not callable(listener):
            raise ConfigurationError(f"listener must be callable, got {type(listener).__name__}")
        with self._lock:
            self.listeners = (*self.listeners, listener)

    def remove(self, listener: TrackerListener) -> None:
        with self._lock:
            self.listeners = tuple(x for x in self.listeners if x is not listener)

    def emit(self, kind: TrackerEventKind, phase: str, date: str, **fields: Any) -> None:
        """Deliver one event, built only when someone listens."""
        listeners = self.listeners
        if listeners:
            notify(listeners, TrackerEvent(kind, phase, date, self._clock.now(), **fields))

    def claim(self, claim: TriggerClaim) -> None:
        """A claim was taken: first, taken over, or rearmed."""
        if claim.reason == "rearmed":
            kind = K.TRIGGER_REARMED
        else:
            kind = K.TRIGGER_CLAIMED if claim.attempt == 1 else K.TRIGGER_TAKEN_OVER
        self.trigger(kind, claim)

    def trigger(
        self, kind: TrackerEventKind, claim: TriggerClaim, error: str | None = None
    ) -> None:
        if self.listeners:
            self.emit(
                kind, claim.phase, claim.date, trigger_id=claim.trigger_id,
                attempt=claim.attempt, reason=claim.reason,
                correlation_id=claim.correlation_id, missing=claim.missing, error=error,
            )  # fmt: skip

    def completion(
        self, c: Completion, result: CompletionResult, *, backfill: bool, replayed: bool = False
    ) -> None:
        """One completion report was decided: tell the listeners and the history."""
        outcome = self.notify_completion(c, result, backfill=backfill, replayed=replayed)
        if self.history is not None:
            self._record(c, result, outcome, backfill=backfill, replayed=replayed)

    def notify_completion(
        self, c: Completion, result: CompletionResult, *, backfill: bool, replayed: bool
    ) -> str:
        """Tell the listeners about one decided report; return its outcome word."""
        outcome = outcome_of(result)
        if self.listeners:
            kind = K.LEDGER_REPLAYED if replayed else K(outcome)
            self.emit(
                kind, result.phase, result.date, processor=c.processor,
                execution_id=c.execution_id, status=c.status, correlation_id=c.correlation_id,
                count=None if result.degraded else result.count,
                missing=frozenset() if result.degraded else result.missing,
                outcome=outcome, backfill=backfill, error=result.error,
            )  # fmt: skip
            if result.gate_reason is not None:
                self.emit(K.GATED, result.phase, result.date, reason=result.gate_reason)
            if result.trigger is not None:
                self.claim(result.trigger)
        return outcome

    def _record(
        self, c: Completion, result: CompletionResult, outcome: str, *, backfill: bool,
        replayed: bool,
    ) -> None:  # fmt: skip
        assert self.history is not None
        try:
            self.history.record(
                self.history_row(c, result, outcome, backfill=backfill, replayed=replayed)
            )
        except Exception as exc:  # noqa: BLE001 - history is observability: it never fails a call
            self.history_failed(result, c, exc)

    def history_failed(self, result: CompletionResult, c: Completion, exc: Exception) -> None:
        """Log a row the history did not take (it never fails the report)."""
        log_failure(
            logger, "run history did not take a row", exc,
            phase=result.phase, date=result.date, processor=c.processor,
        )  # fmt: skip

    def history_row(
        self, c: Completion, result: CompletionResult, outcome: str, *, backfill: bool,
        replayed: bool,
    ) -> RunHistoryRow:  # fmt: skip
        """The run-history row of one decided report."""
        if self._deployment is None:
            self._deployment = deployment_from_env()  # lazily: never at import
        known = not result.degraded
        return RunHistoryRow(
            phase=result.phase,
            date=result.date,
            processor=c.processor,
            execution_id=c.execution_id,
            status=c.status,
            outcome=outcome,
            received_at=c.reported_at,
            completed_at=c.completed_at,
            record_count=c.record_count,
            message_id=c.message_id,
            correlation_id=c.correlation_id,
            done_count=result.count if known else None,
            expected_count=len(result.completed | result.missing) if known else None,
            trigger_state=result.trigger_state if known else None,
            replayed=replayed,
            backfill=backfill,
            error=None if result.error is None else result.error[:1000],
            tracker_owner=self._owner,
            library_version=package_version(),
            deployment=self._deployment,
        )
