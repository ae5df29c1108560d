"""
The tracker's decisions, as pure functions shared by its sync and async forms.

``CompletionTracker`` and ``AsyncCompletionTracker`` differ only in how they
wait for the store; what each operation decides on the (phase, date)
document is built here once. Every ``*_step`` returns the ``decide(doc, snap)
-> (result, write)`` callback of one transaction (see ``TrackerCore._transact``):
it changes ``doc`` in place, does no I/O, and may run more than once.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from ..stores._protocol import Outcome, Put, Snapshot
from ._claims import (
    SKIPPED,
    ConfirmOutcome,
    audit,
    claim_step,
    confirm,
    gate_pending,
    rearm,
    release,
    suppress,
    trigger_of,
)
from ._doc import (
    Completion,
    apply_completion,
    done_set,
    ensure_doc,
    first_completion_at,
    recount,
    remember_write,
)
from ._events import TriggerClaim
from ._expected import fix_expected, fixed_expected, resolve
from ._gates import GateVerdict
from ._ledger import ExecutionLogRow
from ._spec import RECONCILED, PhaseSpec
from ._sweep import decide_sweep, overdue_row

__all__ = [
    "Decide",
    "confirm_step",
    "execution_row",
    "gate_due",
    "rearm_step",
    "reconcile_step",
    "release_step",
    "set_expected_step",
    "sweep_step",
    "write_once",
]

R = TypeVar("R")
#: One transaction's decision: change the document in place, return ``(result, write)``.
Decide = Callable[[dict[str, Any], Snapshot], tuple[Any, bool]]

_STATUS_OF_REASON = {
    "complete": "complete",
    "deadline_partial": "partial",
    "reconciled": "complete",
}


def write_once(
    phase: str, day: str, decide: Callable[[dict[str, Any], Snapshot], tuple[R, bool]]
) -> Callable[[Snapshot], Outcome[R]]:
    """
    The ``transact`` callback of one tracker operation, idempotent across retries.

    Each operation carries a write id stored in the document (``ops``) with
    its write: when a retry follows a lost response, the retry finds its own
    write id and returns the result of the attempt that committed, instead of
    mistaking its own write for someone else's.
    """
    write_id = secrets.token_hex(8)
    decided: list[R] = []  # result of the latest attempt that wrote

    def fn(snap: Snapshot) -> Outcome[R]:
        ops = (snap.data or {}).get("ops")
        if decided and isinstance(ops, list) and write_id in ops:
            return Outcome(decided[-1])
        doc = ensure_doc(snap.data, phase, day)
        result, write = decide(doc, snap)
        if not write:
            return Outcome(result)
        remember_write(doc, write_id)
        decided.append(result)
        return Outcome(result, Put(doc))

    return fn


def confirm_step(claim: TriggerClaim) -> Decide:
    """Confirm ``claim``: ``((outcome, store now, first completion), write)``."""

    def decide(doc: dict[str, Any], snap: Snapshot) -> tuple[Any, bool]:
        outcome = confirm(doc, claim, snap.now)
        result = (outcome, snap.now, first_completion_at(doc))
        return result, outcome is ConfirmOutcome.CONFIRMED

    return decide


def release_step(claim: TriggerClaim, text: str) -> Decide:
    """Release ``claim`` after a failed publish: ``(released, released)``."""

    def decide(doc: dict[str, Any], snap: Snapshot) -> tuple[bool, bool]:
        released = release(doc, claim, text, snap.now)
        return released, released

    return decide


def rearm_step(spec: PhaseSpec, day: str, *, owner: str, by: str, reason: str) -> Decide:
    """Rearm a settled trigger: the new claim, or the state that forbids it."""

    def decide(doc: dict[str, Any], snap: Snapshot) -> tuple[Any, bool]:
        rspec = resolve(doc, spec, day)
        result = rearm(doc, rspec, day, owner=owner, by=by, reason=reason, now=snap.now)
        return result, isinstance(result, TriggerClaim)

    return decide


def set_expected_step(
    spec: PhaseSpec, day: str, names: frozenset[str], *, by: str, reason: str
) -> Decide:
    """Fix ``names`` as the date's expected set, audited, and recount."""

    def decide(doc: dict[str, Any], snap: Snapshot) -> tuple[None, bool]:
        before = fixed_expected(doc)
        if before is None:
            before = spec.expected_for(day)
        doc["expected"] = sorted(names)
        trigger = trigger_of(doc)
        if (
            names
            and trigger is not None
            and trigger.get("state") == SKIPPED
            and trigger.get("reason") == "nothing_scheduled"
        ):
            del doc["trigger"]  # a late game: the date waits for its processors
        audit(doc, "set_expected", by, reason, snap.now,
              added=len(names - before), removed=len(before - names))
        recount(doc, spec.with_expected(names), snap.now)
        return None, True

    return decide


def reconcile_step(
    spec: PhaseSpec,
    day: str,
    found: frozenset[str],
    *,
    run: str,
    reported_at: datetime,
    owner: str,
    trigger: bool,
    verdict: GateVerdict | None,
) -> Decide:
    """Record ``found`` as reconciled; ``((recorded, done, claim, expected), write)``."""

    def decide(doc: dict[str, Any], snap: Snapshot) -> tuple[Any, bool]:
        dspec, fixed = fix_expected(doc, spec, day, snap.now)
        recorded = set()
        for name in sorted(found - done_set(doc, dspec)):
            c = Completion(name, run, RECONCILED, reported_at)
            if apply_completion(doc, dspec, c, snap.now).changed:
                recorded.add(name)
        claim = None
        changed = False
        if trigger:
            claim, changed, _ = claim_step(
                doc, dspec, day, now=snap.now, deadline_now=snap.now,
                owner=owner, gate=verdict,
                reason_hint="reconciled" if recorded else None,
            )
        else:
            changed = suppress(doc, dspec, day, snap.now, snap.now)
        write = bool(recorded) or changed or fixed
        done = recount(doc, dspec, snap.now) if write else done_set(doc, dspec)
        return (frozenset(recorded), done, claim, dspec.expected), write

    return decide


def gate_due(spec: PhaseSpec, day: str, snap: Snapshot, now: datetime | None) -> bool:
    """Whether a first claim of ``day`` waits for the gates (ask them before deciding)."""
    doc = ensure_doc(copy.deepcopy(snap.data), spec.name, day)
    return gate_pending(doc, resolve(doc, spec, day), day, now or snap.now)


def sweep_step(
    spec: PhaseSpec, day: str, now: datetime | None, *, owner: str, gate: GateVerdict | None
) -> Decide:
    """The sweep of one date: ``((outcome, overdue row or None), write)``."""

    def decide(doc: dict[str, Any], snap: Snapshot) -> tuple[Any, bool]:
        decision = decide_sweep(
            doc, spec, day, store_now=snap.now, judged_now=now or snap.now,
            owner=owner, gate=gate,
        )
        outcome, row = decision.outcome, None
        if outcome.newly_marked:
            assert decision.spec is not None  # a marked date was resolved
            row = overdue_row(decision.spec, day, doc, snap.now, outcome.missing)
        return (outcome, row), decision.write

    return decide


def execution_row(claim: TriggerClaim, now: datetime, first: datetime | None) -> ExecutionLogRow:
    """The execution-log row of a newly confirmed trigger."""
    start = first or claim.claimed_at
    return ExecutionLogRow(
        execution_timestamp=now,
        phase_name=claim.phase,
        game_date=claim.date,
        start_time=start,
        duration_seconds=max((now - start).total_seconds(), 0.0),
        status=_STATUS_OF_REASON.get(claim.reason, claim.reason),
        correlation_id=claim.correlation_id,
        metadata={
            "trigger_id": claim.trigger_id,
            "trigger_reason": claim.reason,
            "attempt": claim.attempt,
            "completed_processors": sorted(claim.completed),
            "missing_processors": sorted(claim.missing),
            "next_phase": claim.next_phase,
        },
    )
