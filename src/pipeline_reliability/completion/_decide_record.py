"""
The decisions of recording one completion, as pure functions shared by the
sync and async trackers (see ``_decide``): the transaction's decision, the
duplicate proven by a plain read, and what a degraded completion becomes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .._clock import Clock
from ..errors import CompletionNotRecordedError, InvalidInputError
from ..stores._protocol import Snapshot
from ._claims import claim_step, suppress
from ._decide import Decide
from ._doc import Completion, apply_completion, done_set, ensure_doc, recount, seen
from ._expected import fix_expected
from ._gates import GateVerdict
from ._ledger import LedgerRow, check_ledger_row
from ._outcomes import completion_result, expected_or_nothing
from ._results import CompletionResult
from ._spec import (
    PhaseSpec,
    encode_metadata,
    validate_completed_at,
    validate_count,
    validate_name,
    validate_text,
)

__all__ = [
    "completion_of",
    "completion_of_row",
    "degraded_result",
    "gated_step",
    "ledger_row",
    "not_recorded",
    "proven_duplicate",
    "record_step",
]


def completion_of(
    spec: PhaseSpec,
    clock: Clock,
    *,
    processor: object,
    execution_id: object,
    message_id: object,
    status: object,
    record_count: object,
    metadata: Mapping[str, Any] | None,
    correlation_id: object,
    completed_at: object = None,
) -> Completion:
    """Check one report's fields and make the :class:`Completion` it stands for."""
    name = validate_name(processor, "processor")
    status_ = validate_name(status, "status")
    if status_ not in spec.statuses:
        known = sorted(spec.statuses)
        raise InvalidInputError(f"unknown status {status_!r} in {spec.name!r}; known: {known}")
    return Completion(
        processor=name,
        execution_id=str(validate_text(execution_id, "execution_id")),
        status=status_,
        reported_at=clock.now(),
        message_id=validate_text(message_id, "message_id", optional=True),
        record_count=validate_count(record_count),
        metadata_json=encode_metadata(metadata),
        correlation_id=validate_text(correlation_id, "correlation_id", optional=True),
        completed_at=validate_completed_at(completed_at),
    )


def completion_of_row(spec: PhaseSpec, clock: Clock, row: LedgerRow) -> Completion:
    """The completion a ledger row stands for, with its original report time."""
    # Rows written by this version were checked before they were written;
    # older versions (or hand edits) may have written rows no store can
    # hold, so check every field again: a bad row is quarantined, not raised.
    check_ledger_row(row)
    if row.phase != spec.name:
        raise InvalidInputError(f"row of phase {row.phase!r} read for {spec.name!r}")
    c = completion_of(
        spec,
        clock,
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
    return dataclasses.replace(c, reported_at=row.event_time)


def record_step(
    spec: PhaseSpec, day: str, c: Completion, *, owner: str, trigger: bool
) -> Decide:
    """Record ``c``, recount, and claim (or suppress, for a backfill) the trigger."""

    def decide(doc: dict[str, Any], snap: Snapshot) -> tuple[Any, bool]:
        rspec, fixed = fix_expected(doc, spec, day, snap.now)
        applied = apply_completion(doc, rspec, c, snap.now)
        claim, gated, changed = None, False, False
        if trigger:
            claim, changed, gated = claim_step(
                doc, rspec, day, now=snap.now, deadline_now=snap.now, owner=owner,
                gate=None, correlation_id=c.correlation_id,
            )
        else:
            changed = suppress(doc, rspec, day, snap.now, snap.now)
        write = fixed or applied.changed or changed
        done = recount(doc, rspec, snap.now) if write else done_set(doc, rspec)
        result = completion_result(doc, rspec, day, c, applied, claim=claim, done=done)
        return (result, gated), write

    return decide


def gated_step(
    spec: PhaseSpec, day: str, *, owner: str, verdict: GateVerdict, correlation_id: str | None
) -> Decide:
    """Claim the trigger now that the gates answered ``verdict`` (or note them closed)."""

    def decide(doc: dict[str, Any], snap: Snapshot) -> tuple[Any, bool]:
        rspec, fixed = fix_expected(doc, spec, day, snap.now)
        claim, changed, _ = claim_step(
            doc, rspec, day, now=snap.now, deadline_now=snap.now, owner=owner,
            gate=verdict, correlation_id=correlation_id,
        )
        if changed or fixed:
            recount(doc, rspec, snap.now)
        return claim, changed or fixed

    return decide


def proven_duplicate(
    spec: PhaseSpec, day: str, c: Completion, decide: Decide, snap: Snapshot
) -> tuple[CompletionResult | None, Snapshot | None]:
    """
    What a plain read (``snap``) of the date's document says about ``c``.

    Returns ``(result, None)`` when the read proves ``c`` a duplicate: only
    when the very decision of the transaction, run on that committed version,
    says "duplicate, nothing to write" (docs/explanation/barrier.md,
    "Duplicates without a transaction"). Returns ``(None, snap)`` when the
    read shows ``c`` unseen and the snapshot is untouched, so the
    transaction's first attempt may decide on it (``transact_from``); else
    ``(None, None)``: a plain transaction.
    """
    if snap.data is None or not seen(snap.data, c):
        return None, snap
    doc = ensure_doc(snap.data, spec.name, day)  # ``data`` is the caller's own copy
    (result, gated), write = decide(doc, snap)
    if write or gated or not result.duplicate:
        return None, None
    assert isinstance(result, CompletionResult)
    return result, None


def ledger_row(spec: PhaseSpec, day: str, c: Completion, now: datetime) -> LedgerRow:
    """The fallback-ledger row that stands for ``c`` (the store failed)."""
    return LedgerRow(
        phase=spec.name,
        date=day,
        processor=c.processor,
        execution_id=c.execution_id,
        status=c.status,
        event_time=c.reported_at,
        recorded_time=now,
        primary_ok=False,
        message_id=c.message_id,
        record_count=c.record_count,
        metadata=None if c.metadata_json is None else json.loads(c.metadata_json),
        correlation_id=c.correlation_id,
        completed_at=c.completed_at,
    )


def not_recorded(spec: PhaseSpec, day: str, c: Completion, why: str) -> CompletionNotRecordedError:
    """The error of a completion neither the store nor the ledger took."""
    return CompletionNotRecordedError(
        f"completion of {c.processor} for {spec.name} {day} was not recorded: {why}",
        phase=spec.name,
        date=day,
        processor=c.processor,
    )


def degraded_result(spec: PhaseSpec, day: str, c: Completion, error: str) -> CompletionResult:
    """The result of a completion written to the fallback ledger."""
    return CompletionResult(
        phase=spec.name,
        date=day,
        processor=c.processor,
        execution_id=c.execution_id,
        status=c.status,
        ignored=spec.schedule is None and c.processor not in spec.expected,
        missing=expected_or_nothing(spec, day),
        degraded=True,
        error=error,
    )
