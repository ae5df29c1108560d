"""
Recording one completion from asyncio: ``RecordingTracker``'s steps, awaited,
on the same decisions (``_decide_record``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date as date_type
from datetime import datetime
from typing import Any

from .._telemetry import log_failure, span
from ..errors import InvalidInputError
from ..stores._protocol import Snapshot
from ._async_core import AsyncPublish, AsyncTrackerCore, offload
from ._checks import check_publish
from ._core import STORE_FAILURES, describe, logger
from ._decide import Decide
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
from ._ledger import check_ledger_row
from ._metadata import metadata_collection, metadata_write
from ._outcomes import count_result
from ._results import CompletionResult, PhaseStatus
from ._spec import PhaseSpec, normalise_date, show
from ._status import metadata_refs, status_from_doc, status_from_ledger

__all__ = ["AsyncRecordingTracker"]


class AsyncRecordingTracker(AsyncTrackerCore):
    """``record_completion``, ``record_and_trigger`` and ``status`` (not public)."""

    async def record_completion(
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
        Record that ``processor`` finished ``date`` of ``phase``
        (see :meth:`CompletionTracker.record_completion`: same arguments, result and errors).

        Raises:
            InvalidInputError: bad input; nothing was written.
            CompletionNotRecordedError: neither the store nor the ledger took it.
        """
        spec = self._spec(phase)
        day = normalise_date(date)
        c = completion_of(
            spec, self._clock, processor=processor, execution_id=execution_id,
            message_id=message_id, status=status, record_count=record_count, metadata=metadata,
            correlation_id=correlation_id, completed_at=completed_at,
        )  # fmt: skip
        flag: object = trigger
        if not isinstance(flag, bool):
            raise InvalidInputError(f"trigger must be a bool, got {show(trigger)}")
        attrs = {"phase": spec.name, "date": day, "processor": c.processor}
        with span("tracker", "record_completion", lambda: {**attrs, "execution_id": execution_id}):
            try:
                result = await self._record(spec, day, c, trigger=trigger)
            except STORE_FAILURES as exc:
                result = await self._degrade(spec, day, c, exc, backfill=not trigger)
            count_result(result)
        await self._observe_completion(c, result, backfill=not trigger)
        return result

    async def record_and_trigger(
        self,
        phase: str,
        date: str | date_type,
        processor: str,
        *,
        execution_id: str,
        publish: AsyncPublish,
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
        ``publish(TriggerEvent)`` (awaited when it returns an awaitable, e.g.
        a coroutine function) and :meth:`confirm_trigger`.

        If ``publish`` raises, the claim is released and the exception
        propagates; a failed confirmation after a successful publish is
        returned in ``trigger_error``.
        """
        check_publish(publish)
        result = await self.record_completion(
            phase, date, processor, execution_id=execution_id, message_id=message_id,
            status=status, record_count=record_count, metadata=metadata,
            correlation_id=correlation_id, completed_at=completed_at, trigger=trigger,
        )  # fmt: skip
        if result.trigger is None:
            return result
        confirmation, error = await self._publish_claim(result.trigger, publish)
        return dataclasses.replace(
            result,
            published=True,
            confirmation=confirmation,
            triggered=confirmation is not None or result.triggered,
            trigger_error=error,
        )

    async def status(self, phase: str, date: str | date_type) -> PhaseStatus:
        """
        The state of one (phase, date) (see :meth:`CompletionTracker.status`).

        Raises:
            InvalidInputError: unknown phase or bad date.
            StoreError, RetryExhaustedError: the store failed and there is no ledger.
        """
        spec = self._spec(phase)
        day = normalise_date(date)
        with span("tracker", "status", {"phase": spec.name, "date": day}):
            try:
                snap = await self._read(spec, day)
            except STORE_FAILURES as exc:
                if self._ledger is None:
                    raise
                log_failure(
                    logger, "store unreadable; status from the ledger", exc,
                    phase=spec.name, date=day,
                )  # fmt: skip
                rspec = spec.with_expected(spec.expected_for(day))
                rows = await offload(self._ledger.read, spec.name, [day])
                return status_from_ledger(rspec, day, rows)
            rspec = resolve(snap.data, spec, day)
            large: dict[str, str] = {}
            for key in metadata_refs(rspec, snap.data):
                meta = await self._retry.acall(
                    self._store.get, metadata_collection(rspec), key
                )
                text = (meta.data or {}).get("metadata")
                if isinstance(text, str):
                    large[key] = text
            return status_from_doc(rspec, day, snap.data, large)

    async def _record(
        self, spec: PhaseSpec, day: str, c: Completion, *, trigger: bool = True
    ) -> CompletionResult:
        """``RecordingTracker._record``, awaited; store failures propagate."""
        if not c.metadata_inline and (spec.schedule is not None or c.processor in spec.expected):
            collection, key, fn = metadata_write(spec, day, c)  # ignored names keep none
            await self._retry.acall(self._store.transact, collection, key, fn)
        decide = record_step(spec, day, c, owner=self.owner, trigger=trigger)
        # The read and the transaction share one budget, as in the sync tracker.
        end = self._budget_end()
        known, first = await self._duplicate_by_read(spec, day, c, decide, end)
        if known is not None:
            return known
        result: CompletionResult
        result, gated = await self._transact(spec, day, decide, end=end, first=first)
        if not gated:
            return result
        verdict = await self._gates(spec, day)
        decide_gated = gated_step(
            spec, day, owner=self.owner, verdict=verdict, correlation_id=c.correlation_id
        )
        claim: TriggerClaim | None = await self._transact(spec, day, decide_gated)
        return dataclasses.replace(
            result,
            trigger=claim,
            trigger_state="claimed" if claim is not None else result.trigger_state,
            gate_reason=None if verdict.open else verdict.reason,
        )

    async def _duplicate_by_read(
        self, spec: PhaseSpec, day: str, c: Completion, decide: Decide, end: float
    ) -> tuple[CompletionResult | None, Snapshot | None]:
        """A duplicate proven by one plain read (``RecordingTracker._duplicate_by_read``)."""
        try:
            left = max(end - self._budget_clock.monotonic(), 1e-3)
            snap = await self._store.get(spec.collection, day, timeout=left)
        except STORE_FAILURES:
            if end - self._budget_clock.monotonic() <= 0:
                raise
            return None, None
        return proven_duplicate(spec, day, c, decide, snap)

    async def _degrade(
        self, spec: PhaseSpec, day: str, c: Completion, exc: Exception, *, backfill: bool = False
    ) -> CompletionResult:
        """The store failed: append ``c`` to the ledger (in a thread, bounded) or raise."""
        fields = {
            "phase": spec.name, "date": day, "processor": c.processor,
            "execution_id": c.execution_id,
        }  # fmt: skip
        log_failure(logger, "completion not written to the state store", exc, **fields)
        if self._ledger is None or backfill:
            why = "a backfill is never written to the ledger" if backfill else (
                "no fallback ledger is configured"
            )
            raise not_recorded(spec, day, c, f"the store failed and {why}") from exc
        row = ledger_row(spec, day, c, self._clock.now())
        try:
            await offload(self._ledger.append, check_ledger_row(row))
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

