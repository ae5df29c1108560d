"""
One pipeline date at a glance: every phase's processors, times, trigger and
degraded completions, read through :meth:`CompletionTracker.status` (and,
when given, the fallback ledger's ``read``) only.

The model is plain frozen values; the ``day`` command prints it as a table or
JSON and the ``report`` command lays many of them out as an HTML grid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from .._validate import iso_date
from ..errors import InvalidInputError, ReliabilityError

if TYPE_CHECKING:
    from ..completion import CompletionTracker, LedgerRow, PhaseStatus

__all__ = [
    "CELL_STATES",
    "DayView",
    "LedgerReader",
    "PhaseDay",
    "ProcessorDay",
    "TriggerStep",
    "cell_state",
    "phase_day",
    "read_day",
    "trigger_history",
]

#: Every state a (phase, date) cell can be in, from settled to broken. The
#: report colours cells by it; the text says what each means to an operator.
CELL_STATES: Mapping[str, str] = {
    "triggered": "complete and the next phase was triggered (confirmed)",
    "skipped": "settled without a trigger (nothing scheduled, or a backfill)",
    "claimed": "a trigger is being published (claim held under a lease)",
    "complete": "every expected processor is done; no trigger claimed yet",
    "partial": "some expected processors have not reported yet",
    "no_data": "no processor has reported for this date",
    "gated": "due, but a gate is closed",
    "released": "a trigger publish failed; a delivery or the sweep retries it",
    "overdue": "past its deadline without a trigger",
    "degraded": "the store could not be read: rebuilt from the fallback ledger",
    "error": "the status could not be read",
}


class LedgerReader(Protocol):
    """The part of a fallback ledger the day view reads."""

    def read(self, phase: str, dates: Sequence[str]) -> list[LedgerRow]:
        """Rows of ``phase`` for ``dates``."""
        ...


@dataclass(frozen=True, slots=True)
class ProcessorDay:
    """
    One processor of one (phase, date).

    ``state`` is ``"done"``, ``"done_empty"`` (done with no data), ``"not_done"``
    (reported, with a status that does not count, e.g. ``failed``),
    ``"missing"`` (expected, never reported), ``"ignored"`` (reported but not
    expected: a typo in a deployment?) or ``"in_ledger"`` (only in the
    fallback ledger, waiting to be replayed).
    """

    name: str
    state: str
    status: str | None = None
    execution_id: str | None = None
    runs: int = 0
    record_count: int | None = None
    completed_at: datetime | None = None
    reported_at: datetime | None = None
    correlation_id: str | None = None
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TriggerStep:
    """One thing that happened to a date's trigger: ``what`` at ``at`` (``detail`` for people)."""

    at: datetime | None
    what: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PhaseDay:
    """
    One phase of one date, as the day table and the report grid show it.

    ``state`` is one of :data:`CELL_STATES`. ``in_ledger`` counts the ledger
    rows not yet in the store (degraded completions waiting for a replay);
    ``error`` says why the status could not be read (``state == "error"``).
    """

    phase: str
    date: str
    state: str
    expected: int = 0
    count: int = 0
    processors: tuple[ProcessorDay, ...] = ()
    trigger_state: str = "none"
    trigger_reason: str | None = None
    trigger_attempt: int = 0
    history: tuple[TriggerStep, ...] = ()
    deadline_at: datetime | None = None
    timezone: str = "UTC"
    in_ledger: int = 0
    error: str | None = None

    @property
    def degraded(self) -> bool:
        """Completions went to the fallback ledger (or the status came from it)."""
        return self.in_ledger > 0 or self.state == "degraded"


@dataclass(frozen=True, slots=True)
class DayView:
    """Every phase of one date, in the tracker's phase order."""

    date: str
    phases: tuple[PhaseDay, ...]

    @property
    def errors(self) -> tuple[PhaseDay, ...]:
        """The phases whose status could not be read."""
        return tuple(p for p in self.phases if p.state == "error")


def read_day(
    tracker: CompletionTracker,
    date: str,
    *,
    phases: Iterable[str] | None = None,
    ledger: LedgerReader | None = None,
) -> DayView:
    """
    Read every phase of ``date`` (or only ``phases``) through ``tracker.status``.

    A phase whose status cannot be read (the store failed) is reported with
    state ``"error"`` and the error's text, so one broken phase does not hide
    the others; the caller decides what that means (the CLI exits 1).

    Raises:
        InvalidInputError: a bad date or an unknown phase.
    """
    day = iso_date(date)
    names = list(tracker.phases) if phases is None else list(phases)
    unknown = sorted(set(names) - set(tracker.phases))
    if unknown:
        configured = sorted(tracker.phases)
        raise InvalidInputError(f"unknown phase(s) {unknown}; configured: {configured}")
    return DayView(day, tuple(_phase_day(tracker, name, day, ledger) for name in names))


def _phase_day(
    tracker: CompletionTracker, phase: str, day: str, ledger: LedgerReader | None
) -> PhaseDay:
    try:
        status = tracker.status(phase, day)
        rows = ledger.read(phase, [day]) if ledger is not None else []
    except InvalidInputError:
        raise
    except ReliabilityError as exc:
        return PhaseDay(phase, day, "error", error=f"{type(exc).__name__}: {exc}")
    return phase_day(status, rows)


def phase_day(status: PhaseStatus, ledger_rows: Sequence[LedgerRow] = ()) -> PhaseDay:
    """The :class:`PhaseDay` of one status (and the ledger's rows of its date)."""
    waiting = [] if status.from_ledger else _waiting(status, ledger_rows)
    processors = _processors(status, waiting)
    return PhaseDay(
        phase=status.phase,
        date=status.date,
        state=cell_state(status),
        expected=len(status.expected),
        count=status.count,
        processors=processors,
        trigger_state=status.trigger_state,
        trigger_reason=status.trigger_reason,
        trigger_attempt=status.trigger_attempt,
        history=trigger_history(status),
        deadline_at=None if status.nothing_scheduled else status.deadline_at,
        timezone=status.timezone,
        in_ledger=len(waiting),
    )


def cell_state(status: PhaseStatus) -> str:
    """Which of :data:`CELL_STATES` a status is in (the first that applies, in this order)."""
    if status.from_ledger:
        return "degraded"
    settled = {"confirmed": "triggered", "skipped": "skipped", "claimed": "claimed",
               "released": "released"}
    if status.trigger_state in settled:
        return settled[status.trigger_state]
    if status.gated:
        return "gated"
    if status.deadline_exceeded:
        return "overdue"
    if not status.exists:
        return "no_data"
    return "complete" if not status.missing else "partial"


def _waiting(status: PhaseStatus, rows: Sequence[LedgerRow]) -> list[LedgerRow]:
    """Ledger rows of this date the store does not hold (same run, or a newer one)."""
    waiting = []
    for row in rows:
        if row.phase != status.phase or row.date != status.date:
            continue
        record = status.records.get(row.processor)
        if record is None:
            waiting.append(row)
            continue
        if record.execution_id == row.execution_id:
            continue
        row_at, record_at = row.completed_at or row.event_time, record.completed_at
        if record_at is None or row_at > record_at:
            waiting.append(row)
    return waiting


def _processors(status: PhaseStatus, waiting: Sequence[LedgerRow]) -> tuple[ProcessorDay, ...]:
    out: list[ProcessorDay] = []
    for name in sorted(status.expected):
        record = status.records.get(name)
        if record is None:
            out.append(ProcessorDay(name, "missing"))
            continue
        if name in status.done_empty:
            state = "done_empty"
        elif name in status.completed:
            state = "done"
        else:
            state = "not_done"
        out.append(ProcessorDay(
            name, state, record.status, record.execution_id, record.runs,
            record.record_count, record.completed_at, record.reported_at,
            record.correlation_id, record.metadata,
        ))
    out.extend(ProcessorDay(name, "ignored") for name in sorted(status.ignored))
    for row in sorted(waiting, key=lambda r: (r.processor, r.event_time)):
        out.append(ProcessorDay(
            row.processor, "in_ledger", row.status, row.execution_id, 0, row.record_count,
            row.completed_at, row.event_time, row.correlation_id, row.metadata,
        ))
    return tuple(out)


def trigger_history(status: PhaseStatus) -> tuple[TriggerStep, ...]:
    """What happened to the date's trigger, oldest first (steps without a time last)."""
    steps = []
    if status.first_completion_at is not None:
        steps.append(TriggerStep(status.first_completion_at, "first completion"))
    if status.trigger_first_claimed_at is not None:
        steps.append(TriggerStep(status.trigger_first_claimed_at, "claimed",
                                 f"reason {status.trigger_reason}"))
    if status.trigger_attempt > 1 and status.trigger_claimed_at is not None:
        steps.append(TriggerStep(status.trigger_claimed_at, "claimed again",
                                 f"attempt {status.trigger_attempt} by {status.trigger_owner}"))
    if status.trigger_released_at is not None:
        steps.append(TriggerStep(status.trigger_released_at, "released",
                                 f"{status.trigger_failures} failed publish(es); last error: "
                                 f"{status.trigger_error}"))
    if status.trigger_state == "claimed" and status.lease_expires_at is not None:
        steps.append(TriggerStep(status.lease_expires_at, "lease expires",
                                 f"held by {status.trigger_owner}"))
    if status.trigger_confirmed_at is not None:
        steps.append(TriggerStep(status.trigger_confirmed_at, "confirmed"))
    if status.trigger_state == "skipped":
        steps.append(TriggerStep(None, "skipped", f"reason {status.trigger_reason}"))
    if status.gated:
        steps.append(TriggerStep(status.gate_since, "gated", str(status.gate_reason)))
    if status.deadline_exceeded:
        steps.append(TriggerStep(status.deadline_at, "deadline passed", "no trigger"))
    steps += [TriggerStep(a.at, a.op, f"by {a.by}: {a.reason}") for a in status.audit]
    steps.sort(key=lambda s: (s.at is None, s.at or datetime.min))
    return tuple(steps)
