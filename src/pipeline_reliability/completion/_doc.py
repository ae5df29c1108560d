"""
The completion document of one (phase, date), as pure functions.

Nothing here does I/O: each function takes the document as a plain dict (the
snapshot's fresh copy), changes it in place, and says what it did. The tracker
runs them inside ``store.transact``, so every decision is taken on the state it
is written against. Layout::

    {
      "schema": 1, "phase": "phase3", "date": "2026-01-31",
      "processors": {name: {status, execution_id, executions[], message_id,
                            record_count, correlation_id, metadata (JSON text),
                            reported_at, recorded_at, runs}},
      "ignored":    {name: {status, execution_id, executions[], recorded_at, deliveries}},
      "messages":   [recent message ids],
      "ops":        [recent write tokens],
      "trigger":    {state, trigger_id, owner, attempt, reason, ...} or absent,
      "meta":       {first_completion_at, updated_at, count, completed[],
                     deadline_exceeded_at, ignored_dropped},
    }

``meta.count`` / ``meta.completed`` are written for people reading the
document; the code never reads them back (DESIGN F1): the done set is always
recomputed from ``processors``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from datetime import date as date_type
from typing import Any

from ._spec import PhaseSpec

__all__ = [
    "Applied",
    "Completion",
    "apply_completion",
    "deadline_at",
    "deadline_passed",
    "done_set",
    "first_completion_at",
    "new_doc",
    "recount",
    "remember_op",
    "rule_reason",
]

SCHEMA = 1
MAX_MESSAGES = 256  # message ids remembered for dedup, newest last
MAX_EXECUTIONS = 16  # execution ids remembered per processor
MAX_OPS = 32  # write tokens remembered (see CompletionTracker._transact)
MAX_IGNORED = 100  # distinct unknown names kept; beyond that only counted


@dataclass(frozen=True, slots=True)
class Completion:
    """One validated completion report (internal)."""

    processor: str
    execution_id: str
    status: str
    reported_at: datetime
    message_id: str | None = None
    record_count: int | None = None
    metadata_json: str | None = None
    correlation_id: str | None = None


class Applied(enum.Enum):
    """What :func:`apply_completion` did with one report."""

    COUNTED = "counted"  # the processor is now done and was not before
    UPDATED = "updated"  # a new run replaced the record of an earlier one
    RECORDED = "recorded"  # first record of the processor, with a status that does not count
    STALE = "stale"  # a run older than the stored one: remembered, not applied
    DUPLICATE = "duplicate"  # same (processor, execution_id) or same message id
    IGNORED = "ignored"  # not an expected processor (DESIGN F4)
    IGNORED_DUPLICATE = "ignored_duplicate"

    @property
    def changed(self) -> bool:
        """Whether the document must be written."""
        return self not in {Applied.DUPLICATE, Applied.IGNORED_DUPLICATE}


def new_doc(phase: str, date: str) -> dict[str, Any]:
    """Return the empty document of ``(phase, date)``."""
    return {
        "schema": SCHEMA,
        "phase": phase,
        "date": date,
        "processors": {},
        "ignored": {},
        "messages": [],
        "ops": [],
        "meta": {"first_completion_at": None, "count": 0, "completed": []},
    }


def ensure_doc(data: dict[str, Any] | None, phase: str, date: str) -> dict[str, Any]:
    """Return ``data`` with every part of the layout present (a fresh doc if ``None``)."""
    if data is None:
        return new_doc(phase, date)
    # Unknown top-level keys are kept as they are: the tracker never deletes
    # what it did not write, and never reads it either.
    for key, value in new_doc(phase, date).items():
        if not isinstance(data.get(key), type(value)):
            data[key] = value
    return data


def done_set(doc: dict[str, Any] | None, spec: PhaseSpec) -> frozenset[str]:
    """The expected processors whose latest record has a done status."""
    if not doc:
        return frozenset()
    records = doc.get("processors")
    if not isinstance(records, dict):
        return frozenset()
    done = spec.done_statuses
    return frozenset(
        name
        for name, rec in records.items()
        if name in spec.expected and isinstance(rec, dict) and rec.get("status") in done
    )


def recount(doc: dict[str, Any], spec: PhaseSpec, now: datetime) -> frozenset[str]:
    """Recompute the done set from the records and mirror it into ``meta``."""
    done = done_set(doc, spec)
    meta = doc["meta"]
    meta["count"] = len(done)
    meta["completed"] = sorted(done)
    meta["updated_at"] = now
    return done


def first_completion_at(doc: dict[str, Any] | None) -> datetime | None:
    """Store time of the first record of an expected processor, if any."""
    meta = (doc or {}).get("meta")
    value = meta.get("first_completion_at") if isinstance(meta, dict) else None
    return value if isinstance(value, datetime) else None


def deadline_at(doc: dict[str, Any] | None, spec: PhaseSpec, date: str) -> datetime:
    """
    When ``date`` becomes overdue: ``deadline`` after its first completion or,
    while nothing has reported, ``deadline`` after the end of that UTC day.
    """
    first = first_completion_at(doc)
    if first is not None:
        return first + spec.deadline
    day_end = datetime.combine(date_type.fromisoformat(date), time(), UTC)
    return day_end + timedelta(days=1) + spec.deadline


def deadline_passed(doc: dict[str, Any] | None, spec: PhaseSpec, date: str, now: datetime) -> bool:
    """Whether ``date`` is overdue at ``now`` (or was already marked so)."""
    meta = (doc or {}).get("meta")
    if isinstance(meta, dict) and meta.get("deadline_exceeded_at") is not None:
        return True
    return now >= deadline_at(doc, spec, date)


def rule_reason(spec: PhaseSpec, done: frozenset[str], overdue: bool) -> str | None:
    """
    The trigger rule: ``"complete"`` when every expected processor is done;
    ``"deadline_partial"`` when overdue and the partial rule holds; else ``None``.
    """
    if spec.expected <= done:
        return "complete"
    if (
        overdue
        and spec.min_to_trigger is not None
        and len(done) >= spec.min_to_trigger
        and spec.critical <= done
    ):
        return "deadline_partial"
    return None


def remember_op(doc: dict[str, Any], token: str) -> None:
    """Remember the write token of the write about to be made."""
    doc["ops"] = [*doc.get("ops", [])[-(MAX_OPS - 1) :], token]


def _remember(values: list[Any], value: str, limit: int) -> list[Any]:
    return [*values[-(limit - 1) :], value]


def apply_completion(
    doc: dict[str, Any], spec: PhaseSpec, c: Completion, now: datetime
) -> Applied:
    """
    Apply one report to ``doc`` (from :func:`ensure_doc`) and say what happened.

    Dedup by message id and by (processor, execution_id); unknown names go to
    ``ignored``; a new run of a known processor replaces its record unless it
    is older (by ``reported_at``) than the stored run. Does not recount.
    """
    if c.message_id is not None and c.message_id in doc["messages"]:
        known = c.processor in spec.expected
        return Applied.DUPLICATE if known else Applied.IGNORED_DUPLICATE
    if c.processor not in spec.expected:
        applied = _apply_ignored(doc, c, now)
    else:
        applied = _apply_expected(doc, spec, c, now)
        if doc["meta"].get("first_completion_at") is None and applied.changed:
            doc["meta"]["first_completion_at"] = now
    if applied.changed and c.message_id is not None:
        doc["messages"] = _remember(doc["messages"], c.message_id, MAX_MESSAGES)
    return applied


def _apply_ignored(doc: dict[str, Any], c: Completion, now: datetime) -> Applied:
    ignored: dict[str, Any] = doc["ignored"]
    rec = ignored.get(c.processor)
    if isinstance(rec, dict) and c.execution_id in rec.get("executions", []):
        return Applied.IGNORED_DUPLICATE
    if rec is None and len(ignored) >= MAX_IGNORED:
        # Bound the document: a flood of bad names must not push it past 1 MiB.
        doc["meta"]["ignored_dropped"] = int(doc["meta"].get("ignored_dropped", 0)) + 1
        return Applied.IGNORED
    rec = rec if isinstance(rec, dict) else {"executions": [], "deliveries": 0}
    rec.update(
        status=c.status,
        execution_id=c.execution_id,
        executions=_remember(rec.get("executions", []), c.execution_id, MAX_EXECUTIONS),
        recorded_at=now,
        deliveries=int(rec.get("deliveries", 0)) + 1,
    )
    ignored[c.processor] = rec
    return Applied.IGNORED


def _apply_expected(doc: dict[str, Any], spec: PhaseSpec, c: Completion, now: datetime) -> Applied:
    records: dict[str, Any] = doc["processors"]
    rec = records.get(c.processor)
    done = spec.done_statuses
    if not isinstance(rec, dict):
        records[c.processor] = _record(c, now, executions=[c.execution_id], runs=1)
        return Applied.COUNTED if c.status in done else Applied.RECORDED
    executions = list(rec.get("executions", []))
    if c.execution_id in executions or c.execution_id == rec.get("execution_id"):
        return Applied.DUPLICATE
    executions = _remember(executions, c.execution_id, MAX_EXECUTIONS)
    stored_at = rec.get("reported_at")
    if isinstance(stored_at, datetime) and c.reported_at < stored_at:
        # An older run delivered late (or replayed from the ledger after a
        # newer one was stored): remember its id so it stays a duplicate,
        # but the newer run keeps its record ("last run wins").
        rec["executions"] = executions
        return Applied.STALE
    was_done = rec.get("status") in done
    records[c.processor] = _record(c, now, executions=executions, runs=int(rec.get("runs", 1)) + 1)
    return Applied.COUNTED if c.status in done and not was_done else Applied.UPDATED


def _record(c: Completion, now: datetime, *, executions: list[Any], runs: int) -> dict[str, Any]:
    return {
        "status": c.status,
        "execution_id": c.execution_id,
        "executions": executions,
        "message_id": c.message_id,
        "record_count": c.record_count,
        "correlation_id": c.correlation_id,
        "metadata": c.metadata_json,
        "reported_at": c.reported_at,
        "recorded_at": now,
        "runs": runs,
    }


def latest_correlation_id(doc: dict[str, Any]) -> str | None:
    """Correlation id of the most recently reported expected processor, if any."""
    best: tuple[datetime, str] | None = None
    for rec in doc.get("processors", {}).values():
        if not isinstance(rec, dict):
            continue
        cid, at = rec.get("correlation_id"), rec.get("reported_at")
        if isinstance(cid, str) and isinstance(at, datetime) and (best is None or at >= best[0]):
            best = (at, cid)
    return None if best is None else best[1]
