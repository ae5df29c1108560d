"""
``sweep(..., dry_run=True)`` predicts exactly what the real sweep then does (issue 10, item 13).

One decision function serves both; the matrix below drives every combination
of recorded processors, position against the deadline, trigger state and kind
of phase (plain; gates open or closed; a local wall-clock deadline across a
DST change; a schedule, with and without anything scheduled: issue 11), and
asserts that the prediction equals the real outcome and that the prediction
wrote nothing.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest

from pipeline_reliability import MemoryStore
from pipeline_reliability.completion import (
    CompletionTracker,
    GateResult,
    LocalDeadline,
    MemoryExecutionLog,
    PhaseSpec,
    SweepOutcome,
)
from pipeline_reliability.completion._doc import (
    Completion,
    apply_completion,
    deadline_at,
    ensure_doc,
)
from pipeline_reliability.errors import InvalidInputError
from pipeline_reliability.stores import Outcome, Put, Snapshot
from pipeline_reliability.testing import FakeClock

PHASE = "phase4"
DATE = "2026-03-07"  # the next day is the spring-forward change in New York
EXPECTED = frozenset({"a", "b", "c", "d"})
RULE: dict[str, Any] = {"min_to_trigger": 2, "critical": {"a"}}
SPEC = PhaseSpec(PHASE, EXPECTED, deadline=timedelta(hours=1), **RULE)


def _open(day: str) -> bool:
    return True


def _closed(day: str) -> GateResult:
    return GateResult(False, "no rows yet")


def _games(day: date) -> frozenset[str]:
    return EXPECTED


def _no_games(day: date) -> frozenset[str]:
    return frozenset()


KINDS = {
    "plain": SPEC,
    "gate_open": PhaseSpec(PHASE, EXPECTED, deadline=timedelta(hours=1), gates=[_open], **RULE),
    "gate_closed": PhaseSpec(
        PHASE, EXPECTED, deadline=timedelta(hours=1), gates=[_closed], **RULE
    ),
    "local_deadline": PhaseSpec(
        PHASE,
        EXPECTED,
        timezone="America/New_York",
        local_deadline=LocalDeadline(time(14), days_after=1),
        **RULE,
    ),
    "scheduled": PhaseSpec(PHASE, _games, deadline=timedelta(hours=1), **RULE),
    "nothing_scheduled": PhaseSpec(PHASE, _no_games, deadline=timedelta(hours=1)),
}

RECORDS = {
    "nothing": (),
    "below_min": ("a",),
    "partial_with_critical": ("a", "b"),
    "partial_without_critical": ("b", "c"),
    "complete": ("a", "b", "c", "d"),
}
DEADLINE = {"before": -1, "exactly_at": 0, "after": 1}  # seconds from the deadline
TRIGGERS = (
    "unclaimed",
    "claimed_live",
    "claimed_expiring_now",
    "claimed_expired",
    "released",
    "confirmed",
)


def _trigger(state: str, sweep_at: datetime) -> dict[str, Any] | None:
    if state == "unclaimed":
        return None
    expires = {
        "claimed_live": sweep_at + timedelta(seconds=1),
        "claimed_expiring_now": sweep_at,
    }.get(state, sweep_at - timedelta(seconds=1))
    return {
        "state": {"released": "released", "confirmed": "confirmed"}.get(state, "claimed"),
        "trigger_id": f"{PHASE}:{DATE}",
        "owner": "other-instance",
        "attempt": 1,
        "reason": "complete",
        "claimed_at": sweep_at - timedelta(minutes=5),
        "first_claimed_at": sweep_at - timedelta(minutes=5),
        "lease_expires_at": expires,
        "completed": [],
        "missing": sorted(EXPECTED),
        "correlation_id": None,
    }


def _build(
    records: str, deadline: str, trigger: str, kind: str = "plain"
) -> tuple[CompletionTracker, MemoryStore]:
    spec = KINDS[kind]
    clock = FakeClock(datetime.fromisoformat(f"{DATE}T12:00:00+00:00"))
    store = MemoryStore(clock=clock)
    start = clock.now()
    doc = ensure_doc(None, PHASE, DATE)
    resolved = spec.with_expected(spec.expected_for(DATE))
    for name in RECORDS[records]:
        apply_completion(doc, resolved, Completion(name, f"run-{name}", "success", start), start)
    due = deadline_at(doc, resolved, DATE)
    sweep_at = due + timedelta(seconds=DEADLINE[deadline])
    claim = _trigger(trigger, sweep_at)
    if claim is not None:
        doc["trigger"] = claim
    if records != "nothing" or claim is not None:

        def put(snap: Snapshot) -> Outcome[None]:
            return Outcome(None, Put(doc))

        store.transact(spec.collection, DATE, put)
    clock.advance(sweep_at - start)
    tracker = CompletionTracker(
        store, [spec], clock=clock, owner="sweeper", execution_log=MemoryExecutionLog()
    )
    return tracker, store


def _seen(outcome: SweepOutcome) -> tuple[Any, ...]:
    return (
        outcome.date,
        outcome.action,
        outcome.missing,
        outcome.newly_marked,
        outcome.reason,
        outcome.error,
    )


CASES = list(itertools.product(RECORDS, DEADLINE, TRIGGERS, KINDS))


@pytest.mark.parametrize(("records", "deadline", "trigger", "kind"), CASES)
def test_item13_dry_run_predicts_the_real_sweep(
    records: str, deadline: str, trigger: str, kind: str
) -> None:
    """For every state, the dry run's outcome is the real sweep's, and it wrote nothing."""
    tracker, store = _build(records, deadline, trigger, kind)
    for _ in range(2):  # the second round sees what the first real sweep wrote
        writes = store.stats.writes

        predicted = tracker.sweep(PHASE, [DATE], dry_run=True)

        assert store.stats.writes == writes
        assert predicted.dry_run
        assert predicted.claims == ()
        real = tracker.sweep(PHASE, [DATE])
        assert [_seen(o) for o in predicted.outcomes] == [_seen(o) for o in real.outcomes]


def test_matrix_covers_every_action() -> None:
    """The matrix reaches every sweep action but "error" (so the comparison means something)."""
    actions = set()
    for case in CASES:
        tracker, _ = _build(*case)
        actions |= {o.action for o in tracker.sweep(PHASE, [DATE]).outcomes}

    assert actions == {
        "claimed",
        "deadline_exceeded",
        "waiting",
        "in_flight",
        "triggered",
        "gated",
        "skipped",
    }


def test_dry_run_past_an_unmarked_deadline_says_deadline_exceeded() -> None:
    """The case the old CLI got wrong: overdue, never marked, partial rule not met."""
    tracker, _ = _build("below_min", "after", "unclaimed")

    [predicted] = tracker.sweep(PHASE, [DATE], dry_run=True).outcomes
    [real] = tracker.sweep(PHASE, [DATE]).outcomes

    assert (predicted.action, predicted.newly_marked) == ("deadline_exceeded", True)
    assert (real.action, real.newly_marked) == ("deadline_exceeded", True)


def test_dry_run_claims_nothing_and_logs_nothing() -> None:
    """A due trigger is predicted as claimed with its reason, but stays unclaimed."""
    tracker, store = _build("partial_with_critical", "after", "unclaimed")
    log = MemoryExecutionLog()
    tracker = CompletionTracker(store, [SPEC], owner="sweeper", execution_log=log)

    [predicted] = tracker.sweep(PHASE, [DATE], dry_run=True).outcomes

    assert (predicted.action, predicted.reason, predicted.claim) == (
        "claimed",
        "deadline_partial",
        None,
    )
    assert tracker.status(PHASE, DATE).trigger_state == "none"
    assert log.rows == []


@pytest.mark.parametrize("flag", [None, 1, "yes"])
def test_dry_run_must_be_a_bool(flag: object) -> None:
    """A non-bool dry_run is refused before anything is read or written."""
    tracker, _ = _build("complete", "before", "unclaimed")

    with pytest.raises(InvalidInputError):
        tracker.sweep(PHASE, [DATE], dry_run=flag)  # type: ignore[arg-type]
    assert tracker.status(PHASE, DATE).trigger_state == "none"
