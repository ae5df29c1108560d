"""
The completion document of one (phase, date), as pure functions.

Nothing here does I/O: each function takes the document as a plain dict (the
snapshot's fresh copy), changes it in place, and says what it did. The tracker
runs them inside ``store.transact``, so every decision is taken on the state it
is written against. Layout::

    {
      "schema": 1, "phase": "phase3", "date": "2026-01-31",
      "processors": {name: {status, execution_id, executions[], message_id,
                            record_count, correlation_id,
                            metadata (JSON text, when small) or metadata_ref,
                            completed_at, reported_at, recorded_at, runs}},
      "ignored":    {name: {status, execution_id, executions[], recorded_at, deliveries}},
      "messages":   [recent message ids],
      "ops":        [ids of recent writes],
      "expected":   [the expected set of this date, fixed when first needed],
      "trigger":    {state, trigger_id, owner, attempt, reason, rearms, ...} or absent,
      "gate":       {state: open|closed, reason, since} or absent,
      "audit":      [{op, by, at, reason, ...}: recent operator actions],
      "meta":       {first_completion_at, updated_at, count, completed[],
                     deadline_exceeded_at, ignored_dropped},
    }

``meta.count`` / ``meta.completed`` are written for people reading the
document; the code never reads them back (DESIGN F1): the done set is always
recomputed from ``processors``.

The document's size is bounded by design (Firestore refuses documents over
1 MiB, and one completion must never be refused because of the others):
every list is a bounded ring, ids in the rings are at most 64 bytes (longer
ones are kept as a digest), at most ``MAX_IGNORED`` unknown names are kept
(the rest are counted), and metadata larger than ``INLINE_METADATA_BYTES``
lives in a document of its own (``metadata_ref`` holds its key, digest and
size). ``_bounds.max_doc_bytes`` states the bound.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ._calendar import day_end, local_deadline_at
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
    "remember_write",
    "ring_key",
    "rule_reason",
    "seen",
]

SCHEMA = 1
MAX_MESSAGES = 256  # message ids remembered for dedup, newest last
MAX_EXECUTIONS = 16  # execution ids remembered per expected processor
MAX_IGNORED_EXECUTIONS = 4  # execution ids remembered per ignored name
MAX_OPS = 32  # write ids remembered (see TrackerCore._transact)
MAX_IGNORED = 20  # distinct unknown names kept; beyond that only counted
MAX_RING_KEY_BYTES = 64  # ids in the rings: longer ones are kept as a digest
#: Metadata up to this size (JSON, UTF-8) is kept in the date's document;
#: larger metadata goes to a document of its own (``metadata_ref``).
INLINE_METADATA_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Completion:
    """One validated completion report (internal)."""

    processor: str
    execution_id: str
    status: str
    reported_at: datetime  # the tracker's clock: informational, never decides anything
    message_id: str | None = None
    record_count: int | None = None
    metadata_json: str | None = None
    correlation_id: str | None = None
    #: When the run finished, by the processor (tz-aware UTC); ``None``: the
    #: store's time when it receives the report. Orders the runs of a processor.
    completed_at: datetime | None = None

    @property
    def metadata_bytes(self) -> int:
        """Size of the metadata as UTF-8 JSON (0 without metadata)."""
        return 0 if self.metadata_json is None else len(self.metadata_json.encode("utf-8"))

    @property
    def metadata_inline(self) -> bool:
        """Whether the metadata is small enough to live in the date's document."""
        return self.metadata_bytes <= INLINE_METADATA_BYTES

    @property
    def metadata_digest(self) -> str | None:
        """SHA-256 (hex) of the metadata JSON, ``None`` without metadata."""
        if self.metadata_json is None:
            return None
        return hashlib.sha256(self.metadata_json.encode("utf-8")).hexdigest()


def metadata_key(date: str, processor: str, digest: str) -> str:
    """Key of the document that holds large metadata (content-addressed: immutable)."""
    return f"{date}_{processor}_{digest[:32]}"


def ring_key(value: str) -> str:
    """How an id is kept in a ring: as is up to 64 UTF-8 bytes, else as a digest."""
    raw = value.encode("utf-8")
    if len(raw) <= MAX_RING_KEY_BYTES:
        return value
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:32]


def _in_ring(ring: object, value: str) -> bool:
    # Documents written by v1 keep long ids unhashed: look for both forms.
    return isinstance(ring, list) and (ring_key(value) in ring or value in ring)


class Applied(enum.Enum):
    """What :func:`apply_completion` did with one report."""

    COUNTED = "counted"  # the processor is now done and was not before
    UPDATED = "updated"  # a new run replaced the record of an earlier one
    RECORDED = "recorded"  # first record of the processor, with a status that does not count
    STALE = "stale"  # a run older than the stored one: changes nothing
    DUPLICATE = "duplicate"  # same (processor, execution_id) or same message id
    IGNORED = "ignored"  # not an expected processor (DESIGN F4)
    IGNORED_DUPLICATE = "ignored_duplicate"

    @property
    def changed(self) -> bool:
        """Whether the document must be written."""
        # Identity tests: a set literal of members hashes each of them (in
        # Python) on every call, and this runs several times per completion.
        return not (
            self is Applied.DUPLICATE or self is Applied.IGNORED_DUPLICATE or self is Applied.STALE
        )


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
    # what it did not write, and never reads it either. A fresh layout is
    # built only for a document that lacks a part (once per completion otherwise).
    for key, kind in _LAYOUT:
        if not isinstance(data.get(key), kind):
            data[key] = new_doc(phase, date)[key]
    return data


#: Each top-level part of the layout and the type it must have.
_LAYOUT = tuple((key, type(value)) for key, value in new_doc("", "").items())


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
    When ``date`` becomes overdue: the earlier of the phase's rules.

    The duration rule: ``deadline`` after the first completion or, while
    nothing has reported, ``deadline`` after the end of that day in the
    phase's time zone. The local rule: ``local_deadline`` on the wall clock
    of the phase's time zone (correct across DST changes).
    """
    candidates: list[datetime] = []
    if spec.local_deadline is not None:
        candidates.append(local_deadline_at(date, spec.zone, spec.local_deadline))
    if spec.duration_deadline:
        first = first_completion_at(doc)
        start = first if first is not None else day_end(date, spec.zone)
        candidates.append(start + spec.deadline)
    return min(candidates)


def deadline_passed(doc: dict[str, Any] | None, spec: PhaseSpec, date: str, now: datetime) -> bool:
    """Whether ``date`` is overdue at ``now`` (or was already marked so)."""
    meta = (doc or {}).get("meta")
    if isinstance(meta, dict) and meta.get("deadline_exceeded_at") is not None:
        return True
    return now >= deadline_at(doc, spec, date)


def rule_reason(spec: PhaseSpec, done: frozenset[str], overdue: bool) -> str | None:
    """
    The trigger rule: ``"nothing_scheduled"`` when the date expects nobody;
    ``"complete"`` when every expected processor is done;
    ``"deadline_partial"`` when overdue and the partial rule holds; else ``None``.
    """
    if not spec.expected:
        return "nothing_scheduled"
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


def remember_write(doc: dict[str, Any], write_id: str) -> None:
    """Remember the id of the write about to be made (see ``TrackerCore._transact``)."""
    doc["ops"] = [*doc.get("ops", [])[-(MAX_OPS - 1) :], write_id]


def _remember(values: list[Any], value: str, limit: int) -> list[Any]:
    return [*values[-(limit - 1) :], value]


def apply_completion(
    doc: dict[str, Any], spec: PhaseSpec, c: Completion, now: datetime
) -> Applied:
    """
    Apply one report to ``doc`` (from :func:`ensure_doc`) and say what happened.

    Dedup by message id and by (processor, execution_id); unknown names go to
    ``ignored``; a new run of a known processor replaces its record unless it
    is older than the stored run (see :func:`run_order`); an older run is
    ``STALE`` and changes nothing. Does not recount.
    """
    if c.message_id is not None and _in_ring(doc["messages"], c.message_id):
        known = c.processor in spec.expected
        return Applied.DUPLICATE if known else Applied.IGNORED_DUPLICATE
    if c.processor not in spec.expected:
        applied = _apply_ignored(doc, c, now)
    else:
        applied = _apply_expected(doc, spec, c, now)
        if doc["meta"].get("first_completion_at") is None and applied.changed:
            doc["meta"]["first_completion_at"] = now
    if applied.changed and c.message_id is not None:
        doc["messages"] = _remember(doc["messages"], ring_key(c.message_id), MAX_MESSAGES)
    return applied


def seen(data: dict[str, Any], c: Completion) -> bool:
    """
    Whether ``data`` already holds ``c``'s message id or ``(processor, execution_id)``.

    A cheap look before the full decision: a delivery this says is new cannot
    be a duplicate, so it goes straight to the transaction.
    """
    if c.message_id is not None and _in_ring(data.get("messages"), c.message_id):
        return True
    for part in ("processors", "ignored"):
        records = data.get(part)
        rec = records.get(c.processor) if isinstance(records, dict) else None
        if isinstance(rec, dict) and (
            rec.get("execution_id") == c.execution_id
            or _in_ring(rec.get("executions"), c.execution_id)
        ):
            return True
    return False


def run_order(completed_at: datetime, execution_id: str) -> tuple[datetime, str]:
    """
    The order of two runs of one processor: by completion time, then by execution id.

    The later run wins whatever order the reports arrive in. Two different runs
    that finished at the same instant are ordered by ``execution_id`` (string
    order, the larger wins), so every instance decides alike.
    """
    return (completed_at, execution_id)


def _stored_order(rec: dict[str, Any]) -> tuple[datetime, str] | None:
    at = rec.get("completed_at")
    if not isinstance(at, datetime):
        at = rec.get("reported_at")  # a record written by v1, before completed_at existed
    execution_id = rec.get("execution_id")
    if not isinstance(at, datetime) or not isinstance(execution_id, str):
        return None
    return run_order(at, execution_id)


def _apply_ignored(doc: dict[str, Any], c: Completion, now: datetime) -> Applied:
    ignored: dict[str, Any] = doc["ignored"]
    rec = ignored.get(c.processor)
    if isinstance(rec, dict) and _in_ring(rec.get("executions"), c.execution_id):
        return Applied.IGNORED_DUPLICATE
    if rec is None and len(ignored) >= MAX_IGNORED:
        # Bound the document: a flood of bad names must not push it past 1 MiB.
        doc["meta"]["ignored_dropped"] = int(doc["meta"].get("ignored_dropped", 0)) + 1
        return Applied.IGNORED
    rec = rec if isinstance(rec, dict) else {"executions": [], "deliveries": 0}
    executions = rec.get("executions")
    executions = executions if isinstance(executions, list) else []
    rec.update(
        status=c.status,
        execution_id=c.execution_id,
        executions=_remember(executions, ring_key(c.execution_id), MAX_IGNORED_EXECUTIONS),
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
        records[c.processor] = _record(
            c, now, str(doc.get("date")), executions=[ring_key(c.execution_id)], runs=1
        )
        return Applied.COUNTED if c.status in done else Applied.RECORDED
    executions = rec.get("executions")
    executions = list(executions) if isinstance(executions, list) else []
    if _in_ring(executions, c.execution_id) or c.execution_id == rec.get("execution_id"):
        return Applied.DUPLICATE
    stored = _stored_order(rec)
    if stored is not None and run_order(c.completed_at or now, c.execution_id) < stored:
        # An older run delivered late (or replayed from the ledger after a
        # newer one was stored): the newer run keeps its record and nothing
        # is written, so the answer is the same on every redelivery.
        return Applied.STALE
    executions = _remember(executions, ring_key(c.execution_id), MAX_EXECUTIONS)
    was_done = rec.get("status") in done
    runs = int(rec.get("runs", 1)) + 1
    records[c.processor] = _record(c, now, str(doc.get("date")), executions=executions, runs=runs)
    return Applied.COUNTED if c.status in done and not was_done else Applied.UPDATED


def _record(
    c: Completion, now: datetime, date: str, *, executions: list[Any], runs: int
) -> dict[str, Any]:
    digest = c.metadata_digest
    inline = c.metadata_inline
    return {
        "status": c.status,
        "execution_id": c.execution_id,
        "executions": executions,
        "message_id": c.message_id,
        "record_count": c.record_count,
        "correlation_id": c.correlation_id,
        "metadata": c.metadata_json if inline else None,
        "metadata_ref": (
            None
            if inline or digest is None
            else {
                "key": metadata_key(date, c.processor, digest),
                "digest": digest,
                "bytes": c.metadata_bytes,
            }
        ),
        "completed_at": c.completed_at or now,
        "reported_at": c.reported_at,
        "recorded_at": now,
        "runs": runs,
    }


def latest_correlation_id(doc: dict[str, Any]) -> str | None:
    """Correlation id of the expected processor whose run finished last, if any."""
    best: tuple[tuple[datetime, str], str] | None = None
    for rec in doc.get("processors", {}).values():
        if not isinstance(rec, dict):
            continue
        cid, order = rec.get("correlation_id"), _stored_order(rec)
        if isinstance(cid, str) and order is not None and (best is None or order >= best[0]):
            best = (order, cid)
    return None if best is None else best[1]
