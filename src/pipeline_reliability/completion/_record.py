"""
Recording one completion: validate, transact (recount + claim), and fall back
to the ledger when the store is down (DESIGN F1, F2, F3, F4).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import date as date_type
from datetime import datetime
from typing import Any

from .._telemetry import log_failure, span
from ..errors import InvalidInputError
from ..stores._protocol import Snapshot
from ._checks import check_publish
from ._core import (
    STORE_FAILURES,
    Publish,
    TrackerCore,
    describe,
    logger,
)
from ._decide_record import (
    completion_of,
    degraded_result,
    gated_step,
    ledger_row,
    not_recorded,
    proven_duplicate,
    record_step,
)
from ._doc import Completion
from ._events import TriggerClaim
from ._expected import resolve
from ._gates import evaluate_gates
from ._ledger import check_ledger_row
from ._metadata import read_metadata, write_metadata
from ._outcomes import count_result
from ._results import CompletionResult, PhaseStatus
from ._spec import (
    PhaseSpec,
    normalise_date,
    show,
)
from ._status import status_from_doc, status_from_ledger

__all__ = ["RecordingTracker", "count_result"]  # count_result: re-exported


class RecordingTracker(TrackerCore):
    """``record_completion``, ``record_and_trigger`` and ``status`` (not public)."""

    def record_completion(
        self,
        phase: str,
        date: str | date_type,
        processor: str,
        *,
        execution_id: str,
        message_id: str | None = None,
        status: str = "success",
        record_count: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        completed_at: datetime | None = None,
        trigger: bool = True,
    ) -> CompletionResult:
        """
        Record that ``processor`` finished ``date`` of ``phase``.

        In one transaction on the (phase, date) document: deduplicate (same
        ``(processor, execution_id)`` or ``message_id``), store the record
        (the run that finished last wins, whatever order the reports arrive
        in), recompute the done set from the records, and claim the trigger
        if it is due. Duplicates and stale runs write nothing unless they
        claim a trigger whose earlier claim was released or expired (the
        redelivery path of DESIGN F3).

        Runs of one processor are ordered by ``completed_at``, then by
        ``execution_id`` (string order) when two runs finished at the same
        instant; a run older than the stored one is ``stale`` and changes
        nothing. No decision uses this process's clock.

        When the store fails after retries, the completion is appended to the
        fallback ledger and the result says ``degraded=True``.

        Args:
            phase: A configured phase name.
            date: ``YYYY-MM-DD`` or a ``datetime.date``.
            processor: The processor name; names not in ``expected`` are
                recorded as ignored and never count.
            execution_id: The run's id; one run counts once.
            message_id: The Pub/Sub message id, deduplicated as well.
            status: ``success``, ``partial``, ``no_data``, ``failed``,
                ``skipped``, ``reconciled`` or a status the spec configures.
            record_count: Rows written (>= 0).
            metadata: JSON-serialisable mapping, at most 64 KiB as JSON,
                nested at most 64 deep, integers within int64.
            correlation_id: Traced into the trigger event.
            completed_at: When the run finished, by the processor (a
                timezone-aware datetime). ``None``: the store's time when it
                receives this report (for a degraded completion, when replay
                delivers it). ``CompletionMessage.completion_kwargs()`` takes
                it from the message's ``timestamp``, else its publish time.
            trigger: ``False`` for a backfill: record, but never trigger the
                next phase. If this completion makes the date due, the date
                is settled as ``skipped`` (reason ``backfill``) and no later
                delivery or sweep triggers it (only :meth:`rearm_trigger`
                does). A backfill the store cannot take raises
                :class:`CompletionNotRecordedError` instead of going to the
                ledger (whose rows replay as ordinary completions).

        Returns:
            A :class:`CompletionResult`; if its ``trigger`` is set, publish
            and then :meth:`confirm_trigger` or :meth:`release_trigger` it
            (or use :meth:`record_and_trigger`).

        Raises:
            InvalidInputError: bad input; nothing was written.
            CompletionNotRecordedError: neither the store nor the ledger took
                the completion (the cause is chained).

        .. versionadded:: 0.1.0
        """
        spec = self._spec(phase)
        day = normalise_date(date)
        c = completion_of(
            spec,
            self._clock,
            processor=processor,
            execution_id=execution_id,
            message_id=message_id,
            status=status,
            record_count=record_count,
            metadata=metadata,
            correlation_id=correlation_id,
            completed_at=completed_at,
        )
        flag: object = trigger
        if not isinstance(flag, bool):
            raise InvalidInputError(f"trigger must be a bool, got {show(trigger)}")
        attrs = {"phase": spec.name, "date": day, "processor": c.processor}
        with span("tracker", "record_completion", lambda: {**attrs, "execution_id": execution_id}):
            try:
                result = self._record(spec, day, c, trigger=trigger)
            except STORE_FAILURES as exc:
                result = self._degrade(spec, day, c, exc, backfill=not trigger)
            count_result(result)
        self._observers.completion(c, result, backfill=not trigger)
        return result

    def record_and_trigger(
        self,
        phase: str,
        date: str | date_type,
        processor: str,
        *,
        execution_id: str,
        publish: Publish,
        message_id: str | None = None,
        status: str = "success",
        record_count: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        completed_at: datetime | None = None,
        trigger: bool = True,
    ) -> CompletionResult:
        """
        :meth:`record_completion`, then, if this call claimed the trigger:
        ``publish(TriggerEvent)`` and :meth:`confirm_trigger`.

        If ``publish`` raises, the claim is released (so a redelivery or the
        sweep claims it again) and the exception propagates. If confirming
        fails after a successful publish, the result carries
        ``trigger_error`` and the claim expires; the sweep finishes it.

        .. versionadded:: 0.1.0
        """
        check_publish(publish)
        result = self.record_completion(
            phase,
            date,
            processor,
            execution_id=execution_id,
            message_id=message_id,
            status=status,
            record_count=record_count,
            metadata=metadata,
            correlation_id=correlation_id,
            completed_at=completed_at,
            trigger=trigger,
        )
        if result.trigger is None:
            return result
        confirmation, error = self._publish_claim(result.trigger, publish)
        return dataclasses.replace(
            result,
            published=True,
            confirmation=confirmation,
            triggered=confirmation is not None or result.triggered,
            trigger_error=error,
        )

    def status(self, phase: str, date: str | date_type) -> PhaseStatus:
        """
        The state of one (phase, date).

        When the store cannot be read and a ledger is configured, a
        best-effort status is rebuilt from the ledger and marked
        ``degraded``/``from_ledger`` (the failure is logged).

        Raises:
            InvalidInputError: unknown phase or bad date.
            StoreError, RetryExhaustedError: the store failed and there is no ledger.

        .. versionadded:: 0.1.0
        """
        spec = self._spec(phase)
        day = normalise_date(date)
        with span("tracker", "status", {"phase": spec.name, "date": day}):
            try:
                snap = self._read(spec, day)
            except STORE_FAILURES as exc:
                if self._ledger is None:
                    raise
                log_failure(
                    logger,
                    "store unreadable; status from the ledger",
                    exc,
                    phase=spec.name,
                    date=day,
                )
                rspec = spec.with_expected(spec.expected_for(day))
                return status_from_ledger(rspec, day, self._ledger.read(spec.name, [day]))
            rspec = resolve(snap.data, spec, day)
            large = read_metadata(self._store, self._retry, rspec, snap.data)
            return status_from_doc(rspec, day, snap.data, large)

    def _record(
        self, spec: PhaseSpec, day: str, c: Completion, *, trigger: bool = True
    ) -> CompletionResult:
        """
        Apply ``c`` in one retried transaction; store failures propagate.

        When the completion makes a first claim due and the phase has gates,
        the gates are asked outside the transaction and a second transaction
        claims (gates open) or records the date as gated (closed).
        """
        if not c.metadata_inline and (spec.schedule is not None or c.processor in spec.expected):
            write_metadata(self._store, self._retry, spec, day, c)  # ignored names keep none

        decide = record_step(spec, day, c, owner=self.owner, trigger=trigger)
        result: CompletionResult
        # The read and the transaction share one budget (the degraded path's
        # latency bound in docs/how-to/completion.md).
        end = self._budget_end()
        known, first = self._duplicate_by_read(spec, day, c, decide, end)
        if known is not None:
            return known
        result, gated = self._transact(spec, day, decide, end=end, first=first)
        if not gated:
            return result
        verdict = evaluate_gates(spec.gates, spec.name, day)
        decide_gated = gated_step(
            spec, day, owner=self.owner, verdict=verdict, correlation_id=c.correlation_id
        )
        claim: TriggerClaim | None = self._transact(spec, day, decide_gated)
        return dataclasses.replace(
            result,
            trigger=claim,
            trigger_state="claimed" if claim is not None else result.trigger_state,
            gate_reason=None if verdict.open else verdict.reason,
        )

    def _duplicate_by_read(
        self,
        spec: PhaseSpec,
        day: str,
        c: Completion,
        decide: Callable[[dict[str, Any], Snapshot], tuple[Any, bool]],
        end: float,
    ) -> tuple[CompletionResult | None, Snapshot | None]:
        """
        The result of a delivery that a plain read proves to be a duplicate.

        A duplicate is decided on a committed version of the document without
        a transaction, so it never holds the document's lock against real
        completions. Only when the very decision of the transaction, run on
        that version, says "duplicate, nothing to write"; anything else (a
        new run, a trigger to claim again, a document to repair, a read that
        fails) takes the transaction path. Why this is safe:
        docs/explanation/barrier.md, "Duplicates without a transaction".

        Returns:
            The result for a proven duplicate, else ``None`` (take the
            transaction); and the snapshot read when it is still as read (the
            delivery is not a duplicate): the transaction's first attempt
            decides on it (``TrackerCore._transact``'s ``first``).

        Raises:
            StoreError: the read failed and left no time for the transaction.
        """
        try:
            # One attempt, within the shared budget: the transaction retries.
            snap = self._store.get(spec.collection, day,
                                   timeout=max(end - self._budget_clock.monotonic(), 1e-3))
        except STORE_FAILURES:
            if end - self._budget_clock.monotonic() <= 0:
                raise
            return None, None
        return proven_duplicate(spec, day, c, decide, snap)

    def _degrade(
        self, spec: PhaseSpec, day: str, c: Completion, exc: Exception, *, backfill: bool = False
    ) -> CompletionResult:
        """The store failed: append ``c`` to the ledger (or raise) and report degraded."""
        fields = {
            "phase": spec.name,
            "date": day,
            "processor": c.processor,
            "execution_id": c.execution_id,
        }
        log_failure(logger, "completion not written to the state store", exc, **fields)
        if self._ledger is None or backfill:
            why = "a backfill is never written to the ledger" if backfill else (
                "no fallback ledger is configured"
            )
            raise not_recorded(spec, day, c, f"the store failed and {why}") from exc
        row = ledger_row(spec, day, c, self._clock.now())
        try:
            # Every field fits every sink (the input checks guarantee it): the
            # row can always be replayed later (issue 10, item 3).
            self._ledger.append(check_ledger_row(row))
        except Exception as ledger_exc:
            log_failure(
                logger, "completion not written to the fallback ledger", ledger_exc, **fields
            )
            why = f"store failed ({describe(exc)}) and ledger failed ({describe(ledger_exc)})"
            raise not_recorded(spec, day, c, why) from ledger_exc
        logger.warning(
            "completion written to the fallback ledger (degraded)",
            extra={"pipeline_reliability": fields},
        )
        return degraded_result(spec, day, c, describe(exc))
