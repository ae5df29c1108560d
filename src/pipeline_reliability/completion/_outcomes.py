"""What one completion report did: its result value and the counters it moves."""

from __future__ import annotations

from typing import Any

from .._telemetry import counter
from ..errors import ConfigurationError
from ._claims import CONFIRMED, trigger_of
from ._core import count_claim
from ._doc import Applied, Completion
from ._events import TriggerClaim
from ._listeners import TrackerEventKind
from ._observe import Observers, outcome_of
from ._results import CompletionResult, SweepOutcome
from ._spec import PhaseSpec

__all__ = ["completion_result", "count_result", "expected_or_nothing", "observe_sweep"]


def count_result(result: CompletionResult) -> None:
    """Count one completion report (and the claim it took) in the tracker's counters."""
    attrs = {"phase": result.phase}
    if result.degraded:
        counter("tracker.degraded", "Completions written to the fallback ledger").add(1, attrs)
    elif result.duplicate:
        counter("tracker.duplicates", "Duplicate completion deliveries").add(1, attrs)
    elif result.ignored:
        counter("tracker.ignored", "Completions of processors the phase does not expect").add(
            1, {**attrs, "processor": result.processor}
        )
    outcome = outcome_of(result)
    counter("tracker.completions", "Completion reports by outcome").add(
        1, {**attrs, "outcome": outcome}
    )
    if result.trigger is not None:
        count_claim(result.trigger)


def observe_sweep(
    observers: Observers, phase: str, day: str, outcome: SweepOutcome, *, newly: bool
) -> None:
    """Count and tell what one date's (real) sweep decided."""
    if outcome.claim is not None:
        count_claim(outcome.claim)
        observers.claim(outcome.claim)
    elif outcome.action == "gated" and outcome.reason is not None:
        observers.emit(TrackerEventKind.GATED, phase, day, reason=outcome.reason)
    if newly:
        counter("tracker.deadlines_exceeded", "Dates found overdue without a trigger").add(
            1, {"phase": phase}
        )
        observers.emit(TrackerEventKind.DEADLINE_PASSED, phase, day, missing=outcome.missing)


def completion_result(
    doc: dict[str, Any],
    spec: PhaseSpec,
    day: str,
    c: Completion,
    applied: Applied,
    *,
    claim: TriggerClaim | None,
    done: frozenset[str],
) -> CompletionResult:
    trigger = trigger_of(doc)
    return CompletionResult(
        phase=spec.name,
        date=day,
        processor=c.processor,
        execution_id=c.execution_id,
        status=c.status,
        counted=applied is Applied.COUNTED,
        duplicate=applied in {Applied.DUPLICATE, Applied.IGNORED_DUPLICATE},
        ignored=applied in {Applied.IGNORED, Applied.IGNORED_DUPLICATE},
        updated=applied is Applied.UPDATED,
        stale=applied is Applied.STALE,
        completed=done,
        missing=spec.expected - done,
        count=len(done),
        trigger=claim,
        triggered=trigger is not None and trigger.get("state") == CONFIRMED,
        trigger_state=str((trigger or {}).get("state", "none")),
    )


def expected_or_nothing(spec: PhaseSpec, day: str) -> frozenset[str]:
    """The configured set of ``day`` (empty when the schedule itself fails: unknown)."""
    try:
        return spec.expected_for(day)
    except ConfigurationError:
        return frozenset()
