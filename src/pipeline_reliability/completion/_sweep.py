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

from ._claims import CLAIMED, CONFIRMED, SKIPPED, claim_step, trigger_of
from ._doc import deadline_at, deadline_passed, done_set, first_completion_at, recount
from ._expected import fix_expected
from ._gates import GateVerdict
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
    #: The phase's spec as it applies to the date (its fixed expected set).
    spec: PhaseSpec | None = None


def decide_sweep(
    doc: dict[str, Any],
    spec: PhaseSpec,
    day: str,
    *,
    store_now: datetime,
    judged_now: datetime,
    owner: str,
    gate: GateVerdict | None = None,
) -> SweepDecision:
    """
    Decide the sweep of ``day`` on ``doc`` (from ``ensure_doc``), changing it in place.

    ``spec`` is the phase's configured spec: the date's expected set is fixed
    in ``doc`` here when it is not yet. ``gate`` is the verdict of the
    phase's gates, asked beforehand when a first claim waits for them.

    In order: a due trigger is claimed (``claimed``); a confirmed, skipped or
    live claim is left alone (``triggered`` / ``skipped`` / ``in_flight``); a
    date whose gates are closed is ``gated`` (the reason in ``reason``); a
    date not yet due is ``waiting``; otherwise it is ``deadline_exceeded``,
    marked in the document the first time (``newly_marked``). Leases are
    judged by ``store_now`` (the store's time), deadlines by ``judged_now``.
    """
    spec, write = fix_expected(doc, spec, day, store_now)
    claim, changed, gated = claim_step(
        doc, spec, day, now=store_now, deadline_now=judged_now, owner=owner, gate=gate
    )
    write = write or changed
    missing = spec.expected - done_set(doc, spec)
    if claim is not None:
        recount(doc, spec, store_now)
        return SweepDecision(
            SweepOutcome(day, "claimed", claim, missing, reason=claim.reason), True, spec
        )
    if write:
        recount(doc, spec, store_now)
    trigger = trigger_of(doc) or {}
    state = trigger.get("state")
    if state in {CONFIRMED, CLAIMED, SKIPPED}:
        action = {CONFIRMED: "triggered", CLAIMED: "in_flight", SKIPPED: "skipped"}[str(state)]
        reason = trigger.get("reason") if state == SKIPPED else None
        return SweepDecision(
            SweepOutcome(day, action, missing=missing, reason=reason), write, spec
        )
    if gated:
        # Rule met, gates closed (or not asked: the document changed since they were).
        reason = None if gate is None else gate.reason
        return SweepDecision(
            SweepOutcome(day, "gated", missing=missing, reason=reason), write, spec
        )
    if not deadline_passed(doc, spec, day, judged_now):
        return SweepDecision(SweepOutcome(day, "waiting", missing=missing), write, spec)
    meta = doc["meta"]
    newly = meta.get("deadline_exceeded_at") is None
    if newly:
        meta.update(deadline_exceeded_at=store_now, missing_at_deadline=sorted(missing))
        recount(doc, spec, store_now)
    outcome = SweepOutcome(day, "deadline_exceeded", missing=missing, newly_marked=newly)
    return SweepDecision(outcome, write or newly, spec)


def overdue_row(
    spec: PhaseSpec, day: str, doc: dict[str, Any], now: datetime, missing: frozenset[str]
) -> ExecutionLogRow:
    """The execution-log row of a date first found overdue without a trigger."""
    due = deadline_at(doc, spec, day)
    start = first_completion_at(doc) or min(due - spec.deadline, due)
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
