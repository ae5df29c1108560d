"""What the tracker's operations return: frozen values, safe to log and compare."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._events import TriggerClaim

__all__ = [
    "AuditEntry",
    "CompletionResult",
    "PhaseStatus",
    "ProcessorRecord",
    "QuarantinedRow",
    "ReconcileReport",
    "ReplayReport",
    "SweepOutcome",
    "SweepReport",
    "TriggerConfirmation",
]


@dataclass(frozen=True, slots=True)
class TriggerConfirmation:
    """
    The result of :meth:`CompletionTracker.confirm_trigger`.

    Attributes:
        claim: The claim that was confirmed.
        confirmed_at: Store time of the confirmation.
        newly_confirmed: ``False`` when the claim had been confirmed before
            (confirming is idempotent).
        execution_logged: Whether a row was written to the execution log.
        execution_log_error: Why the execution-log write failed, if it did
            (the trigger stays confirmed; the failure is logged and counted).
    """

    claim: TriggerClaim
    confirmed_at: datetime
    newly_confirmed: bool
    execution_logged: bool = False
    execution_log_error: str | None = None


@dataclass(frozen=True, slots=True)
class CompletionResult:
    """
    What :meth:`CompletionTracker.record_completion` did.

    Attributes:
        phase, date, processor, execution_id, status: The report, normalised.
        counted: This call made the processor count as done (it did not before).
        duplicate: Same (processor, execution_id) or message id as before:
            nothing changed (the trigger may still be re-claimed, see ``trigger``).
        ignored: The processor is not expected by the phase; it never counts.
        updated: A new run replaced the record of an earlier run.
        stale: A run older than the stored one (by ``completed_at``, then
            ``execution_id``), delivered late: nothing changed, the newer
            record stays.
        completed: Expected processors done, after this call.
        missing: Expected processors not done, after this call.
        count: ``len(completed)``, recomputed from the records.
        degraded: The store failed; the completion went to the fallback
            ledger and must be replayed (``completed``/``missing``/``count``
            are then unknown and left empty/full/0).
        trigger: The trigger claim this caller holds, if any: publish, then
            confirm or release it. Exactly one caller receives each claim.
        triggered: The phase's trigger is confirmed (by anyone).
        error: The store error, when ``degraded``.
        published: ``record_and_trigger`` published the trigger event.
        confirmation: ``record_and_trigger``'s confirmation of the trigger.
        trigger_error: Why confirming a published trigger failed, if it did
            (the claim then expires and the sweep finishes the trigger).
        trigger_state: The trigger's state after this call (``"none"``,
            ``"claimed"``, ``"released"``, ``"confirmed"``, ``"skipped"``).
        gate_reason: The trigger was due but a gate is closed: why. The
            date stays ``gated``; later deliveries and the sweep ask again.
    """

    phase: str
    date: str
    processor: str
    execution_id: str
    status: str
    counted: bool = False
    duplicate: bool = False
    ignored: bool = False
    updated: bool = False
    stale: bool = False
    completed: frozenset[str] = frozenset()
    missing: frozenset[str] = frozenset()
    count: int = 0
    degraded: bool = False
    trigger: TriggerClaim | None = None
    triggered: bool = False
    error: str | None = None
    published: bool = False
    confirmation: TriggerConfirmation | None = None
    trigger_error: str | None = None
    trigger_state: str = "none"
    gate_reason: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """
    One operator action on a date (``rearm_trigger``, ``set_expected``), kept in its document.

    .. versionadded:: 0.2.0
    """

    op: str
    by: str
    at: datetime | None
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProcessorRecord:
    """
    The stored record of one processor's latest run for a date.

    Attributes:
        reported_at: When the tracker took the report (its own clock).
        completed_at: When the run finished, by the processor (or the
            store's time at receipt when it gave none): what orders runs.
        metadata: The run's metadata (large metadata is read from its own
            document); ``metadata_digest`` is its SHA-256 (hex).
    """

    processor: str
    status: str
    execution_id: str
    reported_at: datetime | None
    runs: int = 1
    record_count: int | None = None
    correlation_id: str | None = None
    metadata: Mapping[str, Any] | None = None
    completed_at: datetime | None = None
    metadata_digest: str | None = None


@dataclass(frozen=True, slots=True)
class PhaseStatus:
    """
    The state of one (phase, date), from :meth:`CompletionTracker.status`.

    Attributes:
        completed / missing / count: As in :class:`CompletionResult`.
        done_empty: Completed processors whose status is a done-empty one.
        ignored: Unknown processor names that reported (never counted).
        records: The latest record per expected processor.
        trigger_state: ``"none"``, ``"claimed"``, ``"released"``,
            ``"confirmed"``, ``"skipped"`` (settled without a trigger: reason
            ``nothing_scheduled`` or ``backfill``), or ``"unknown"`` when
            read from the ledger.
        triggered: ``trigger_state == "confirmed"``.
        trigger_reason / trigger_attempt / trigger_owner / lease_expires_at:
            The current (or last) claim.
        first_completion_at: Store time of the first record.
        deadline_at: When the date is overdue.
        deadline_exceeded: The sweep marked the date overdue without a trigger.
        exists: The document exists.
        nothing_scheduled: The date's expected set is empty.
        expected_fixed: The expected set is fixed in the date's document
            (else it is what the configuration says today).
        gated: A first trigger is due but a gate is closed (``gate_reason``
            says which and why; ``gate_since`` since when).
        timezone: The phase's time zone.
        audit: Recent operator actions on the date, oldest first.
        trigger_claimed_at / trigger_first_claimed_at / trigger_confirmed_at /
            trigger_released_at: Store times of the current claim, of the
            first claim of this trigger, of its confirmation and of its last
            release (``None`` when that did not happen).
        trigger_error / trigger_failures: The last failed publish's error
            (as given to ``release_trigger``) and how many publishes failed.
        degraded / from_ledger: The store could not be read; this status was
            rebuilt from the fallback ledger's rows (which hold only the
            completions the store missed) and the trigger state is unknown.
    """

    phase: str
    date: str
    expected: frozenset[str]
    completed: frozenset[str]
    missing: frozenset[str]
    count: int
    done_empty: frozenset[str] = frozenset()
    ignored: frozenset[str] = frozenset()
    records: Mapping[str, ProcessorRecord] = field(default_factory=dict)
    trigger_state: str = "none"
    triggered: bool = False
    trigger_reason: str | None = None
    trigger_attempt: int = 0
    trigger_owner: str | None = None
    lease_expires_at: datetime | None = None
    first_completion_at: datetime | None = None
    deadline_at: datetime | None = None
    deadline_exceeded: bool = False
    exists: bool = False
    degraded: bool = False
    from_ledger: bool = False
    nothing_scheduled: bool = False
    expected_fixed: bool = False
    gated: bool = False
    gate_reason: str | None = None
    gate_since: datetime | None = None
    timezone: str = "UTC"
    audit: tuple[AuditEntry, ...] = ()
    trigger_claimed_at: datetime | None = None
    trigger_first_claimed_at: datetime | None = None
    trigger_confirmed_at: datetime | None = None
    trigger_released_at: datetime | None = None
    trigger_error: str | None = None
    trigger_failures: int = 0


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    """
    What the sweep did for one date.

    ``action`` is one of ``"claimed"`` (a trigger claim is returned: publish
    it), ``"deadline_exceeded"`` (overdue, the partial rule does not hold),
    ``"waiting"`` (not due yet), ``"in_flight"`` (another claim's lease is
    live), ``"triggered"`` (already confirmed), ``"skipped"`` (settled
    without a trigger; ``reason`` is ``nothing_scheduled`` or ``backfill``),
    ``"gated"`` (due, but a gate is closed; ``reason`` says why) or
    ``"error"`` (the store failed for this date; see ``error``). ``newly_marked`` is set the first
    time a date is marked ``deadline_exceeded`` (the only sweep that writes
    the mark and logs it to the execution log; ``execution_log_error`` says
    why that row failed, if it did). ``reason`` is the trigger reason of a
    ``claimed`` date (``complete``, ``deadline_partial``, ...).

    In a dry run (``sweep(..., dry_run=True)``) the outcome is what the real
    sweep would do at the same store state, but ``claim`` is always ``None``:
    nothing was claimed, so there is nothing to publish.
    """

    date: str
    action: str
    claim: TriggerClaim | None = None
    missing: frozenset[str] = frozenset()
    newly_marked: bool = False
    error: str | None = None
    execution_log_error: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class SweepReport:
    """
    The result of :meth:`CompletionTracker.sweep` (and ``sweep_and_trigger``).

    ``published`` and ``publish_errors`` (date -> error) are filled by
    ``sweep_and_trigger`` only. ``dry_run`` is set by ``sweep(...,
    dry_run=True)``: the outcomes are predictions and nothing was written.
    """

    phase: str
    outcomes: tuple[SweepOutcome, ...]
    published: tuple[TriggerConfirmation, ...] = ()
    publish_errors: Mapping[str, str] = field(default_factory=dict)
    dry_run: bool = False

    @property
    def claims(self) -> tuple[TriggerClaim, ...]:
        """The claims the sweep took, to publish."""
        return tuple(o.claim for o in self.outcomes if o.claim is not None)

    @property
    def exceeded(self) -> tuple[str, ...]:
        """Dates overdue without a trigger."""
        return tuple(o.date for o in self.outcomes if o.action == "deadline_exceeded")

    @property
    def errors(self) -> Mapping[str, str]:
        """Dates the store failed for, with the error."""
        return {o.date: o.error for o in self.outcomes if o.error is not None}

    @property
    def ok(self) -> bool:
        """No store error and no publish error."""
        return not self.errors and not self.publish_errors


@dataclass(frozen=True, slots=True)
class QuarantinedRow:
    """
    A ledger row that replay skipped because it can never be applied.

    Attributes:
        date, processor, execution_id, message_id: The row's identity, as
            read (a value that is not text is shown by its ``repr``).
        reason: Why it cannot be applied (e.g. ``record_count must be an int
            within 0..2**63-1``).

    .. versionadded:: 0.1.0
    """

    date: str
    processor: str
    execution_id: str
    message_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """
    The result of :meth:`CompletionTracker.replay_ledger`.

    ``applied`` counts rows that changed the store; ``duplicates`` rows it
    already held (so a second replay reports ``applied == 0``);
    ``quarantined`` the rows skipped because no store can ever take them
    (each is also logged at ERROR and counted in
    ``pipeline_reliability.tracker.replay_quarantined``). ``rows`` is
    ``applied + duplicates + len(quarantined)``.
    """

    phase: str
    dates: tuple[str, ...]
    rows: int
    applied: int
    duplicates: int
    claims: tuple[TriggerClaim, ...] = ()
    published: tuple[TriggerConfirmation, ...] = ()
    publish_errors: Mapping[str, str] = field(default_factory=dict)
    quarantined: tuple[QuarantinedRow, ...] = ()


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """
    The result of :meth:`CompletionTracker.reconcile`.

    Attributes:
        checked: The processors whose evidence was asked (those not done).
        reconciled: Recorded as ``reconciled`` because their output exists.
        still_missing: Not done and without output.
        completed / count: The done set after reconciling.
        claim: A trigger claim, when reconciling completed the date (or the
            trigger was otherwise due): publish it, then confirm or release.
        confirmation / publish_error: Filled by ``reconcile_and_trigger``.
    """

    phase: str
    date: str
    checked: frozenset[str]
    reconciled: frozenset[str]
    still_missing: frozenset[str]
    completed: frozenset[str]
    count: int
    claim: TriggerClaim | None = None
    confirmation: TriggerConfirmation | None = None
    publish_error: str | None = None
