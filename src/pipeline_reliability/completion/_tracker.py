"""``CompletionTracker``: the public class and its scheduled work (sweep, replay, reconcile)."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date as date_type
from datetime import datetime
from typing import Any

from .._telemetry import log_failure, span
from ..errors import ConfigurationError, InvalidInputError
from ..stores._protocol import Snapshot
from ._checks import check_publish
from ._claims import CLAIMED, CONFIRMED, trigger_of, try_claim
from ._core import STORE_FAILURES, Publish, count_claim, describe, logger
from ._doc import Completion, apply_completion, deadline_at, deadline_passed, done_set, recount
from ._doc import first_completion_at as first_at
from ._events import TriggerClaim
from ._ledger import ExecutionLogRow, LedgerRow
from ._record import RecordingTracker, count_result
from ._results import (
    ReconcileReport,
    ReplayReport,
    SweepOutcome,
    SweepReport,
    TriggerConfirmation,
)
from ._spec import RECONCILED, PhaseSpec, normalise_date, show

__all__ = ["CompletionTracker", "Evidence"]

#: Per processor: does its output for the date exist?
Evidence = Mapping[str, bool] | Callable[[str], bool]


class CompletionTracker(RecordingTracker):
    """
    A fan-in barrier per (phase, date) that triggers the next phase exactly once.

    Processors report with :meth:`record_completion` (or
    :meth:`record_and_trigger`); the transaction that records a completion
    recounts the done set from the stored records and, when the rule is met,
    claims the trigger under a lease. Exactly one caller receives the claim;
    it publishes and then confirms (or releases) it. A scheduler runs
    :meth:`sweep` for deadlines and stale claims, :meth:`replay_ledger` after
    a store outage, and :meth:`reconcile` against the output tables.

    The tracker must be the only writer of its documents (one collection per
    phase, one document per date): anything else writing there is exactly the
    drift DESIGN F1 describes.

    Args:
        store: Where the documents live (``MemoryStore``, ``FirestoreStore``).
        phases: The :class:`PhaseSpec` of every phase this tracker serves.
        ledger: The fallback ledger for completions the store cannot take.
        clock: Time source for report times and ledger rows (leases and
            deadlines use the store's time).
        execution_log: Where confirmed triggers (and overdue dates) are logged.
        owner: This instance's id in trigger claims (default: host:pid:random).
        retry: Retry policy for store operations.

    Raises:
        ConfigurationError: no phases, a phase or collection twice, bad owner.

    .. versionadded:: 0.1.0
    """

    def sweep(
        self,
        phase: str,
        dates: Iterable[str | date_type],
        now: datetime | None = None,
    ) -> SweepReport:
        """
        Evaluate deadlines and stale claims for ``dates``, with no message needed (DESIGN F5).

        Per date: a due trigger (rule met but never claimed, released, or a
        claim whose lease expired) is claimed and returned for publishing;
        overdue with the partial rule met claims with ``deadline_partial``;
        overdue without it is marked ``deadline_exceeded`` (written once,
        logged to the execution log once) and reported, also for dates where
        nothing ever reported. A store failure on one date is logged and
        reported as that date's ``error``; the others are still swept.

        Args:
            phase: The phase.
            dates: The dates to check (e.g. the last few days).
            now: Judge deadlines as of this time instead of the store's time
                (leases are always judged by the store's time).

        .. versionadded:: 0.1.0
        """
        spec = self._spec(phase)
        days = self._days(dates)
        when: object = now  # checked as given: callers may pass anything
        if when is not None and not (isinstance(when, datetime) and when.tzinfo is not None):
            raise InvalidInputError(f"now must be a timezone-aware datetime, got {show(now)}")
        with span("tracker", "sweep", {"phase": spec.name, "dates": len(days)}):
            outcomes = tuple(self._sweep_one(spec, day, now) for day in days)
        return SweepReport(spec.name, outcomes)

    def sweep_and_trigger(
        self,
        phase: str,
        dates: Iterable[str | date_type],
        publish: Publish,
        now: datetime | None = None,
    ) -> SweepReport:
        """
        :meth:`sweep`, then publish and confirm every claim it took.

        A failed publish releases its claim and is reported in
        ``publish_errors``; the other dates are still published.

        .. versionadded:: 0.1.0
        """
        check_publish(publish)
        report = self.sweep(phase, dates, now)
        published, errors = self._publish_all(report.claims, publish)
        return dataclasses.replace(report, published=published, publish_errors=errors)

    def replay_ledger(self, phase: str, dates: Iterable[str | date_type]) -> ReplayReport:
        """
        Bring the store to the ledger's state for ``dates`` (DESIGN F2).

        Every ledger row is recorded as the completion it stands for, with its
        original report time, so deduplication makes replay idempotent (a
        second replay applies nothing) and an older run never overwrites a
        newer one. Claims for dates that replay completes are returned.

        Raises:
            ConfigurationError: no ledger is configured.
            StoreError, RetryExhaustedError: the store is still failing.

        .. versionadded:: 0.1.0
        """
        spec = self._spec(phase)
        days = self._days(dates)
        if self._ledger is None:
            raise ConfigurationError("replay_ledger needs a tracker with a ledger")
        with span("tracker", "replay_ledger", {"phase": spec.name, "dates": len(days)}):
            rows = sorted(self._ledger.read(spec.name, days), key=lambda r: r.event_time)
            applied = duplicates = 0
            claims: dict[str, TriggerClaim] = {}
            for row in rows:
                result = self._record(spec, row.date, self._from_row(spec, row))
                count_result(result)
                if result.duplicate or result.stale:  # stale: changed nothing either
                    duplicates += 1
                else:
                    applied += 1
                if result.trigger is not None:
                    claims[row.date] = result.trigger
            return ReplayReport(
                spec.name, days, len(rows), applied, duplicates, tuple(claims.values())
            )

    def replay_and_trigger(
        self, phase: str, dates: Iterable[str | date_type], publish: Publish
    ) -> ReplayReport:
        """:meth:`replay_ledger`, then publish and confirm the claims it took.

        .. versionadded:: 0.1.0
        """
        check_publish(publish)
        report = self.replay_ledger(phase, dates)
        published, errors = self._publish_all(report.claims, publish)
        return dataclasses.replace(report, published=published, publish_errors=errors)

    def reconcile(self, phase: str, date: str | date_type, evidence: Evidence) -> ReconcileReport:
        """
        Record as ``reconciled`` every missing processor whose output exists.

        ``evidence`` is asked only about processors that are not done, before
        anything is written (so its errors propagate with nothing changed).
        Reconciled records count. If that completes the date, the trigger is
        claimed (reason ``reconciled``) and returned in ``claim``: publish it
        and confirm or release it, or use :meth:`reconcile_and_trigger`.

        .. versionadded:: 0.1.0
        """
        spec = self._spec(phase)
        day = normalise_date(date)
        given: object = evidence  # checked as given: callers may pass anything
        if not (isinstance(given, Mapping) or callable(given)):
            raise InvalidInputError("evidence must be a mapping or a callable")
        with span("tracker", "reconcile", {"phase": spec.name, "date": day}):
            snap = self._retry.call(self._store.get, spec.collection, day)
            checked = spec.expected - done_set(snap.data, spec)
            found = frozenset(p for p in sorted(checked) if _has_output(evidence, p))
            run = f"reconcile-{self._clock.now():%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
            reported_at = self._clock.now()

            def decide(doc: dict[str, Any], snap: Snapshot) -> tuple[Any, bool]:
                recorded = set()
                for name in sorted(found - done_set(doc, spec)):
                    c = Completion(name, run, RECONCILED, reported_at)
                    if apply_completion(doc, spec, c, snap.now).changed:
                        recorded.add(name)
                claim = try_claim(
                    doc,
                    spec,
                    day,
                    now=snap.now,
                    deadline_now=snap.now,
                    owner=self.owner,
                    reason_hint="reconciled" if recorded else None,
                )
                write = bool(recorded) or claim is not None
                done = recount(doc, spec, snap.now) if write else done_set(doc, spec)
                return (frozenset(recorded), done, claim), write

            recorded, done, claim = self._transact(spec, day, decide)
            if claim is not None:
                count_claim(claim)
            return ReconcileReport(
                spec.name, day, checked, recorded, spec.expected - done, done, len(done), claim
            )

    def reconcile_and_trigger(
        self, phase: str, date: str | date_type, evidence: Evidence, publish: Publish
    ) -> ReconcileReport:
        """
        :meth:`reconcile`, then publish and confirm its claim, if any.

        A failing ``publish`` releases the claim and raises, as in
        :meth:`record_and_trigger`.

        .. versionadded:: 0.1.0
        """
        check_publish(publish)
        report = self.reconcile(phase, date, evidence)
        if report.claim is None:
            return report
        confirmation, error = self._publish_claim(report.claim, publish)
        return dataclasses.replace(report, confirmation=confirmation, publish_error=error)

    def _sweep_one(self, spec: PhaseSpec, day: str, now: datetime | None) -> SweepOutcome:
        def decide(doc: dict[str, Any], snap: Snapshot) -> tuple[Any, bool]:
            judged = now or snap.now
            claim = try_claim(doc, spec, day, now=snap.now, deadline_now=judged, owner=self.owner)
            missing = spec.expected - done_set(doc, spec)
            if claim is not None:
                recount(doc, spec, snap.now)
                return (SweepOutcome(day, "claimed", claim, missing), None), True
            state = (trigger_of(doc) or {}).get("state")
            if state in {CONFIRMED, CLAIMED}:
                action = "triggered" if state == CONFIRMED else "in_flight"
                return (SweepOutcome(day, action, missing=missing), None), False
            if not deadline_passed(doc, spec, day, judged):
                return (SweepOutcome(day, "waiting", missing=missing), None), False
            meta = doc["meta"]
            newly = meta.get("deadline_exceeded_at") is None
            row = None
            if newly:
                row = self._overdue_row(spec, day, doc, snap.now, missing)
                meta.update(deadline_exceeded_at=snap.now, missing_at_deadline=sorted(missing))
                recount(doc, spec, snap.now)
            outcome = SweepOutcome(day, "deadline_exceeded", missing=missing, newly_marked=newly)
            return (outcome, row), newly

        fields = {"phase": spec.name, "date": day}
        outcome: SweepOutcome
        with span("tracker", "sweep_date", fields):
            try:
                outcome, row = self._transact(spec, day, decide)
            except STORE_FAILURES as exc:
                log_failure(logger, "sweep could not check a date", exc, **fields)
                return SweepOutcome(day, "error", error=describe(exc))
            if outcome.claim is not None:
                count_claim(outcome.claim)
            if row is not None:
                logger.warning(
                    "date overdue without a trigger; missing %s",
                    sorted(outcome.missing),
                    extra={"pipeline_reliability": fields},
                )
                if self._execution_log is not None:
                    _, error = self._write_execution_row(row, fields)
                    outcome = dataclasses.replace(outcome, execution_log_error=error)
            return outcome

    def _overdue_row(
        self,
        spec: PhaseSpec,
        day: str,
        doc: dict[str, Any],
        now: datetime,
        missing: frozenset[str],
    ) -> ExecutionLogRow:
        due = deadline_at(doc, spec, day)
        start = first_at(doc) or due - spec.deadline
        return ExecutionLogRow(
            execution_timestamp=now,
            phase_name=spec.name,
            game_date=day,
            start_time=start,
            duration_seconds=max((now - start).total_seconds(), 0.0),
            status="deadline_exceeded",
            metadata={
                "completed_processors": sorted(spec.expected - missing),
                "missing_processors": sorted(missing),
                "deadline_at": due.isoformat(),
                "deadline_minutes": spec.deadline.total_seconds() / 60,
            },
        )

    def _from_row(self, spec: PhaseSpec, row: LedgerRow) -> Completion:
        # Rows were validated when they were written; re-check the parts that
        # become keys, so a hand-edited ledger cannot put junk in the store.
        c = self._completion(
            spec,
            processor=row.processor,
            execution_id=row.execution_id,
            message_id=row.message_id,
            status=row.status,
            record_count=row.record_count,
            metadata=row.metadata,
            correlation_id=row.correlation_id,
            # A degraded report without a completion time was never seen by
            # the store: the tracker's time when it took it is the only one known.
            completed_at=row.completed_at or row.event_time,
        )
        normalise_date(row.date)
        return dataclasses.replace(c, reported_at=row.event_time)

    def _publish_all(
        self, claims: Sequence[TriggerClaim], publish: Publish
    ) -> tuple[tuple[TriggerConfirmation, ...], dict[str, str]]:
        published: list[TriggerConfirmation] = []
        errors: dict[str, str] = {}
        for claim in claims:
            try:
                confirmation, error = self._publish_claim(claim, publish)
            except Exception as exc:  # noqa: BLE001 - released and logged; reported per date
                errors[claim.date] = describe(exc)
                continue
            if confirmation is not None:
                published.append(confirmation)
            if error is not None:
                errors[claim.date] = error
        return tuple(published), errors


def _has_output(evidence: Evidence, processor: str) -> bool:
    if isinstance(evidence, Mapping):
        return bool(evidence.get(processor, False))
    if callable(evidence):
        return bool(evidence(processor))
    raise InvalidInputError("evidence must be a mapping or a callable")
