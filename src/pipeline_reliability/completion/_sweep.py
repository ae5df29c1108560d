"""
The sweep's decision for one (phase, date), as a pure function (DESIGN F5).

``CompletionTracker.sweep`` runs :func:`decide_sweep` inside the date's
transaction and writes what it changed; ``sweep(..., dry_run=True)`` runs the
very same function on a copy of the document read outside a transaction and
writes nothing. One function for both is what makes a dry run predict what
the real sweep then does (the two used to disagree about dates past their
deadline that no sweep had marked yet).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ._claims import CLAIMED, CONFIRMED, trigger_of, try_claim
from ._doc import deadline_at, deadline_passed, done_set, first_completion_at, recount
from ._ledger import ExecutionLogRow
from ._results import SweepOutcome
from ._spec import PhaseSpec

__all__ = ["SweepDecision", "decide_sweep", "overdue_row"]


@dataclass(frozen=True, slots=True)
class SweepDecision:
    """What the sweep decided for one date, and whether the document changed."""

    outcome: SweepOutcome
    #: The document was changed in place and must be written.
    write: bool


def decide_sweep(
    doc: dict[str, Any],
    spec: PhaseSpec,
    day: str,
    *,
    store_now: datetime,
    judged_now: datetime,
    owner: str,
) -> SweepDecision:
    """
    Decide the sweep of ``day`` on ``doc`` (from ``ensure_doc``), changing it in place.

    In order: a due trigger is claimed (``claimed``); a confirmed or live
    claim is left alone (``triggered`` / ``in_flight``); a date not yet due
    is ``waiting``; otherwise it is ``deadline_exceeded``, marked in the
    document the first time (``newly_marked``). Leases are judged by
    ``store_now`` (the store's time), deadlines by ``judged_now``.
    """
    claim = try_claim(doc, spec, day, now=store_now, deadline_now=judged_now, owner=owner)
    missing = spec.expected - done_set(doc, spec)
    if claim is not None:
        recount(doc, spec, store_now)
        return SweepDecision(
            SweepOutcome(day, "claimed", claim, missing, reason=claim.reason), write=True
        )
    state = (trigger_of(doc) or {}).get("state")
    if state in {CONFIRMED, CLAIMED}:
        action = "triggered" if state == CONFIRMED else "in_flight"
        return SweepDecision(SweepOutcome(day, action, missing=missing), write=False)
    if not deadline_passed(doc, spec, day, judged_now):
        return SweepDecision(SweepOutcome(day, "waiting", missing=missing), write=False)
    meta = doc["meta"]
    newly = meta.get("deadline_exceeded_at") is None
    if newly:
        meta.update(deadline_exceeded_at=store_now, missing_at_deadline=sorted(missing))
        recount(doc, spec, store_now)
    outcome = SweepOutcome(day, "deadline_exceeded", missing=missing, newly_marked=newly)
    return SweepDecision(outcome, write=newly)


def overdue_row(
    spec: PhaseSpec, day: str, doc: dict[str, Any], now: datetime, missing: frozenset[str]
) -> ExecutionLogRow:
    """The execution-log row of a date first found overdue without a trigger."""
    due = deadline_at(doc, spec, day)
    start = first_completion_at(doc) or due - spec.deadline
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
