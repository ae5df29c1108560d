"""Build a :class:`PhaseStatus` from a stored document, or from ledger rows."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from ._claims import CONFIRMED, trigger_of
from ._doc import deadline_at, done_set, first_completion_at
from ._expected import fixed_expected
from ._ledger import LedgerRow
from ._results import AuditEntry, PhaseStatus, ProcessorRecord
from ._spec import PhaseSpec

__all__ = ["metadata_refs", "status_from_doc", "status_from_ledger"]


def _expected_records(spec: PhaseSpec, doc: dict[str, Any] | None) -> Iterator[tuple[str, Any]]:
    records = (doc or {}).get("processors")
    for name, rec in (records if isinstance(records, dict) else {}).items():
        if name in spec.expected and isinstance(rec, dict):
            yield name, rec


def metadata_refs(spec: PhaseSpec, doc: dict[str, Any] | None) -> list[str]:
    """Keys of the metadata documents the expected records refer to."""
    refs = (rec.get("metadata_ref") for _, rec in _expected_records(spec, doc))
    return [r["key"] for r in refs if isinstance(r, dict) and isinstance(r.get("key"), str)]


def status_from_doc(
    spec: PhaseSpec,
    day: str,
    doc: dict[str, Any] | None,
    large_metadata: Mapping[str, str] | None = None,
) -> PhaseStatus:
    """
    The status of ``(spec, day)`` as the stored document ``doc`` says.

    ``large_metadata`` maps metadata-document keys to their JSON text.
    """
    done = done_set(doc, spec)
    data = doc or {}
    records = {
        name: _record(name, rec, large_metadata or {})
        for name, rec in _expected_records(spec, doc)
    }
    trigger = trigger_of(doc) or {}
    meta = data.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    state = str(trigger.get("state", "none"))
    expires = trigger.get("lease_expires_at")
    found = data.get("gate")
    gate: dict[str, Any] = found if isinstance(found, dict) else {}
    gated = state == "none" and gate.get("state") == "closed"
    reason = trigger.get("reason")
    if not spec.expected and state == "none":
        reason = "nothing_scheduled"  # settled by the next delivery or sweep
    since = gate.get("since")
    return _status(
        spec,
        day,
        done,
        records,
        ignored=frozenset(data.get("ignored") or {}),
        trigger_state=state,
        triggered=state == CONFIRMED,
        trigger_reason=reason,
        trigger_attempt=int(trigger.get("attempt", 0)),
        trigger_owner=trigger.get("owner"),
        lease_expires_at=expires if isinstance(expires, datetime) else None,
        first_completion_at=first_completion_at(doc),
        deadline_at=deadline_at(doc, spec, day),
        deadline_exceeded=meta.get("deadline_exceeded_at") is not None,
        exists=doc is not None,
        expected_fixed=fixed_expected(doc) is not None,
        gated=gated,
        gate_reason=gate.get("reason") if gated else None,
        gate_since=since if gated and isinstance(since, datetime) else None,
        audit=_audit(data.get("audit")),
        **_trigger_times(trigger),
    )


def _trigger_times(trigger: dict[str, Any]) -> dict[str, Any]:
    """The trigger's history as the document keeps it (what the day report shows)."""
    def when(key: str) -> datetime | None:
        value = trigger.get(key)
        return value if isinstance(value, datetime) else None

    error = trigger.get("last_error")
    failures = trigger.get("failures", 0)
    return {
        "trigger_claimed_at": when("claimed_at"),
        "trigger_first_claimed_at": when("first_claimed_at"),
        "trigger_confirmed_at": when("confirmed_at"),
        "trigger_released_at": when("released_at"),
        "trigger_error": error if isinstance(error, str) else None,
        "trigger_failures": failures if isinstance(failures, int) else 0,
    }


def _audit(ring: object) -> tuple[AuditEntry, ...]:
    entries = []
    for item in ring if isinstance(ring, list) else []:
        if isinstance(item, dict):
            at = item.get("at")
            details = {k: v for k, v in item.items() if k not in {"op", "by", "at", "reason"}}
            entries.append(
                AuditEntry(
                    op=str(item.get("op")),
                    by=str(item.get("by")),
                    at=at if isinstance(at, datetime) else None,
                    reason=str(item.get("reason")),
                    details=details,
                )
            )
    return tuple(entries)


def _record(name: str, rec: dict[str, Any], large: Mapping[str, str]) -> ProcessorRecord:
    raw = rec.get("metadata")
    ref = rec.get("metadata_ref")
    digest = None
    if isinstance(ref, dict):
        raw = large.get(str(ref.get("key")))
        digest = ref.get("digest") if isinstance(ref.get("digest"), str) else None
    elif isinstance(raw, str):
        digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()
    reported = rec.get("reported_at")
    completed = rec.get("completed_at")
    return ProcessorRecord(
        processor=name,
        status=str(rec.get("status")),
        execution_id=str(rec.get("execution_id")),
        reported_at=reported if isinstance(reported, datetime) else None,
        runs=int(rec.get("runs", 1)),
        record_count=rec.get("record_count"),
        correlation_id=rec.get("correlation_id"),
        metadata=json.loads(raw) if isinstance(raw, str) else None,
        completed_at=completed if isinstance(completed, datetime) else None,
        metadata_digest=digest,
    )


def status_from_ledger(spec: PhaseSpec, day: str, rows: Sequence[LedgerRow]) -> PhaseStatus:
    """
    A best-effort status from the fallback ledger alone (the store is down).

    The ledger holds only the completions the store could not take, so this
    under-reports; it is marked ``degraded`` and ``from_ledger`` and its
    trigger state is ``"unknown"``.
    """
    latest: dict[str, LedgerRow] = {}
    # The run that finished last wins, as in the store (event_time when the
    # processor gave no completion time).
    for row in sorted(rows, key=lambda r: (r.completed_at or r.event_time, r.execution_id)):
        if row.date == day and row.phase == spec.name:
            latest[row.processor] = row
    records = {
        name: ProcessorRecord(
            processor=name,
            status=row.status,
            execution_id=row.execution_id,
            reported_at=row.event_time,
            record_count=row.record_count,
            metadata=row.metadata,
            completed_at=row.completed_at,
        )
        for name, row in latest.items()
        if name in spec.expected
    }
    done = frozenset(n for n, r in records.items() if r.status in spec.done_statuses)
    return _status(
        spec,
        day,
        done,
        records,
        ignored=frozenset(latest) - spec.expected,
        trigger_state="unknown",
        exists=bool(latest),
        degraded=True,
        from_ledger=True,
    )


def _status(
    spec: PhaseSpec,
    day: str,
    done: frozenset[str],
    records: dict[str, ProcessorRecord],
    **rest: Any,
) -> PhaseStatus:
    """A status whose ``missing``, ``count`` and ``done_empty`` all follow from ``done``."""
    return PhaseStatus(
        phase=spec.name,
        date=day,
        expected=spec.expected,
        completed=done,
        missing=spec.expected - done,
        count=len(done),
        done_empty=frozenset(n for n in done if records[n].status in spec.done_empty_statuses),
        records=records,
        nothing_scheduled=not spec.expected,
        timezone=spec.timezone,
        **rest,
    )
