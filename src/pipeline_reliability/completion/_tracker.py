"""``CompletionTracker``: the public class and its scheduled work (sweep, replay, reconcile)."""

from __future__ import annotations

import copy
import dataclasses
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import date as date_type
from datetime import datetime
from typing import Any

from .._telemetry import log_failure, span
from ..errors import ConfigurationError, InvalidInputError
from ..stores._protocol import Snapshot
from ._checks import check_publish
from ._core import STORE_FAILURES, Publish, count_claim, describe, logger
from ._decide import gate_due, reconcile_step, sweep_step
from ._doc import done_set, ensure_doc
from ._expected import resolve
from ._gates import GateVerdict, evaluate_gates
from ._history import RunHistory
from ._listeners import TrackerListener
from ._outcomes import observe_sweep
from ._replay import ReplayingTracker
from ._results import (
    ReconcileReport,
    SweepOutcome,
    SweepReport,
)
from ._spec import PhaseSpec, normalise_date, show
from ._sweep import decide_sweep

__all__ = ["CompletionTracker", "Evidence"]

#: Per processor: does its output for the date exist?
Evidence = Mapping[str, bool] | Callable[[str], bool]


class CompletionTracker(ReplayingTracker):
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
        retry: Retry policy for store operations (default: 4 attempts within
            ``store_deadline``).
        store_deadline: Time budget (seconds or ``timedelta``) of one store
            operation, retries included: no attempt starts after it, and the
            retry policy's deadline is capped by it. Default: the ``retry``
            policy's deadline, else 10 s. When the store is down, a completion
            degrades to the ledger after at most ``store_deadline`` plus the
            store call in flight (bounded by the store's own timeout, e.g.
            ``FirestoreStore(timeout=)``), then spends at most the ledger's
            own deadline there.
        history: A :class:`RunHistory` that receives a :class:`RunHistoryRow`
            for every completion report (after the store decided it; never
            able to fail or block the report: see ``BufferedRunHistory``).

    Raises:
        ConfigurationError: no phases, a phase or collection twice, bad
            owner, retry, store_deadline or history.

    .. versionadded:: 0.1.0
    """

    def sweep(
        self,
        phase: str,
        dates: Iterable[str | date_type],
        now: datetime | None = None,
        *,
        dry_run: bool = False,
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
            dry_run: Decide exactly as the real sweep would on the current
                state (the same decision function, on a read of each date's
                document), but write nothing, claim nothing and log no
                execution-log row. Outcomes carry no ``claim``.

        .. versionadded:: 0.1.0
        """
        spec = self._spec(phase)
        days = self._days(dates)
        when: object = now  # checked as given: callers may pass anything
        if when is not None and not (isinstance(when, datetime) and when.tzinfo is not None):
            raise InvalidInputError(f"now must be a timezone-aware datetime, got {show(now)}")
        flag: object = dry_run
        if not isinstance(flag, bool):
            raise InvalidInputError(f"dry_run must be a bool, got {dry_run!r}")
        attrs = {"phase": spec.name, "dates": len(days), "dry_run": dry_run}
        with span("tracker", "sweep", attrs):
            outcomes = tuple(self._sweep_one(spec, day, now, dry_run=dry_run) for day in days)
        return SweepReport(spec.name, outcomes, dry_run=dry_run)

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

    def reconcile(
        self, phase: str, date: str | date_type, evidence: Evidence, *, trigger: bool = True
    ) -> ReconcileReport:
        """
        Record as ``reconciled`` every missing processor whose output exists.

        ``trigger=False`` (a backfill) records without ever triggering, as in
        :meth:`record_completion`. With gates, the gates are asked first.

        ``evidence`` is asked only about processors that are not done, before
        anything is written (so its errors propagate with nothing changed).
        Reconciled records count. If that completes the date, the trigger is
        claimed (reason ``reconciled``) and returned in ``claim``: publish it
        and confirm or release it, or use :meth:`reconcile_and_trigger`.

        .. versionadded:: 0.1.0
        """
        spec = self._spec(phase)
        day = normalise_date(date)
        flag: object = trigger
        if not isinstance(flag, bool):
            raise InvalidInputError(f"trigger must be a bool, got {show(trigger)}")
        given: object = evidence  # checked as given: callers may pass anything
        if not (isinstance(given, Mapping) or callable(given)):
            raise InvalidInputError("evidence must be a mapping or a callable")
        with span("tracker", "reconcile", {"phase": spec.name, "date": day}):
            snap = self._read(spec, day)
            rspec = resolve(snap.data, spec, day)
            checked = rspec.expected - done_set(snap.data, rspec)
            found = frozenset(p for p in sorted(checked) if _has_output(evidence, p))
            run = f"reconcile-{self._clock.now():%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
            reported_at = self._clock.now()
            verdict = None
            if trigger and spec.gates:
                verdict = evaluate_gates(spec.gates, spec.name, day)
            decide = reconcile_step(
                spec, day, found, run=run, reported_at=reported_at, owner=self.owner,
                trigger=trigger, verdict=verdict,
            )
            recorded, done, claim, expected = self._transact(spec, day, decide)
            if claim is not None:
                count_claim(claim)
                self._observers.claim(claim)
            return ReconcileReport(
                spec.name, day, checked, recorded, expected - done, done, len(done), claim
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

    def _sweep_one(
        self, spec: PhaseSpec, day: str, now: datetime | None, *, dry_run: bool = False
    ) -> SweepOutcome:
        def decide_on(doc: dict[str, Any], snap: Snapshot, gate: GateVerdict | None) -> Any:
            return decide_sweep(
                doc, spec, day, store_now=snap.now, judged_now=now or snap.now,
                owner=self.owner, gate=gate,
            )

        def read() -> tuple[Snapshot, GateVerdict | None]:
            # Gates do I/O: they are asked on a read, outside any transaction,
            # and only when a first claim waits for them. The dry run and the
            # real sweep both take this path, then the same decision.
            snap = self._read(spec, day)
            if gate_due(spec, day, snap, now):
                return snap, evaluate_gates(spec.gates, spec.name, day)
            return snap, None

        fields = {"phase": spec.name, "date": day}
        outcome: SweepOutcome
        with span("tracker", "sweep_date", {**fields, "dry_run": dry_run}):
            try:
                gate: GateVerdict | None = None
                if spec.gates or dry_run:
                    snap, gate = read()
                if dry_run:
                    # The same decision on a private copy of the document: nothing is written.
                    doc = ensure_doc(copy.deepcopy(snap.data), spec.name, day)
                    predicted: SweepOutcome = decide_on(doc, snap, gate).outcome
                    return dataclasses.replace(predicted, claim=None)
                decide = sweep_step(spec, day, now, owner=self.owner, gate=gate)
                outcome, row = self._transact(spec, day, decide)
            except STORE_FAILURES as exc:
                log_failure(logger, "sweep could not check a date", exc, **fields)
                return SweepOutcome(day, "error", error=describe(exc))
            except ConfigurationError as exc:  # the schedule failed for this date
                log_failure(logger, "sweep could not resolve a date's schedule", exc, **fields)
                return SweepOutcome(day, "error", error=describe(exc))
            self._observe_sweep(spec, day, outcome, newly=row is not None)
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

    def _observe_sweep(
        self, spec: PhaseSpec, day: str, outcome: SweepOutcome, *, newly: bool
    ) -> None:
        """Count and tell what one date's (real) sweep decided."""
        observe_sweep(self._observers, spec.name, day, outcome, newly=newly)

    def add_listener(self, listener: TrackerListener) -> None:
        """
        Call ``listener(event)`` with a :class:`TrackerEvent` for everything the tracker does.

        Events are delivered on the calling thread, after the store decided
        (so a listener sees each decision once); a listener that raises is
        logged with its traceback and skipped: it never breaks the call.

        .. versionadded:: 0.2.0
        """
        self._observers.add(listener)

    def remove_listener(self, listener: TrackerListener) -> None:
        """Stop calling ``listener`` (no error if it was not added).

        .. versionadded:: 0.2.0
        """
        self._observers.remove(listener)

    @property
    def history(self) -> RunHistory | None:
        """The run history this tracker sends a row per completion report to, if any."""
        return self._observers.history


def _has_output(evidence: Evidence, processor: str) -> bool:
    if isinstance(evidence, Mapping):
        return bool(evidence.get(processor, False))
    if callable(evidence):
        return bool(evidence(processor))
    raise InvalidInputError("evidence must be a mapping or a callable")
