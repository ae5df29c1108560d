"""The scheduled operations: sweep (deadlines, stale claims) and reconcile (output evidence)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from tracker_helpers import (
    DATE,
    EXPECTED,
    FIRST,
    OTHERS,
    PHASE,
    MakeTracker,
    Publisher,
    record_all,
)

from pipeline_reliability import MemoryStore
from pipeline_reliability.completion import (
    CompletionTracker,
    MemoryExecutionLog,
    PhaseSpec,
    TriggerEvent,
)
from pipeline_reliability.errors import InvalidInputError, PublishFailedError
from pipeline_reliability.testing import FakeClock, Fault, FaultyStore

OTHER_DATE = "2026-01-30"


def _partial(make_tracker: MakeTracker) -> CompletionTracker:
    spec = PhaseSpec(PHASE, EXPECTED, min_to_trigger=3, deadline=timedelta(hours=1))
    return make_tracker(phases=[spec])


def test_sweep_now_overrides_the_deadline_clock(make_tracker: MakeTracker) -> None:
    """A sweep 'as of' a later time judges deadlines by it."""
    tracker = _partial(make_tracker)
    record_all(tracker, OTHERS[:3])
    status = tracker.status(PHASE, DATE)
    assert status.deadline_at is not None

    report = tracker.sweep(PHASE, [DATE], now=status.deadline_at)

    assert [o.action for o in report.outcomes] == ["claimed"]
    assert report.claims[0].reason == "deadline_partial"


def test_sweep_reclaims_stale_claims_keeping_their_reason(
    make_tracker: MakeTracker, fake_clock: FakeClock
) -> None:
    """A partial trigger whose holder vanished is re-claimed by the sweep as deadline_partial."""
    tracker = _partial(make_tracker)
    record_all(tracker, OTHERS[:3])
    fake_clock.advance(timedelta(hours=1))
    [lost] = tracker.sweep(PHASE, [DATE]).claims
    record_all(tracker, [FIRST, OTHERS[3]])  # everything done now; the reason stays
    fake_clock.advance(timedelta(minutes=5))

    [again] = tracker.sweep(PHASE, [DATE]).claims

    assert (lost.attempt, again.attempt) == (1, 2)
    assert again.reason == "deadline_partial"
    assert again.completed == EXPECTED


def test_sweep_reports_a_store_error_per_date_and_continues(
    store: FaultyStore, tracker: CompletionTracker, fake_clock: FakeClock
) -> None:
    """One date failing in the store does not stop the sweep of the others."""
    fake_clock.advance(timedelta(days=2))
    store.fail_next(Fault.UNAVAILABLE, times=4)  # every attempt on the first date

    report = tracker.sweep(PHASE, [DATE, OTHER_DATE])

    assert [o.action for o in report.outcomes] == ["error", "deadline_exceeded"]
    assert set(report.errors) == {DATE}
    assert not report.ok


def test_sweep_validates_every_date_before_writing(
    tracker: CompletionTracker, memory_store: MemoryStore
) -> None:
    """A bad date anywhere in the list raises before any date is swept."""
    with pytest.raises(InvalidInputError):
        tracker.sweep(PHASE, [DATE, "2026-13-01"])
    with pytest.raises(InvalidInputError):
        tracker.sweep(PHASE, DATE)
    with pytest.raises(InvalidInputError):
        tracker.sweep(PHASE, [DATE], now=datetime(2026, 2, 1))  # naive: ambiguous

    assert memory_store.stats.transactions == 0


def test_sweep_and_trigger_reports_publish_failures_per_date(
    tracker: CompletionTracker, publisher: Publisher
) -> None:
    """A failed publish is released and reported; the other dates are still published."""
    for date in (DATE, OTHER_DATE):
        [claim] = [r.trigger for r in record_all(tracker, EXPECTED, date=date) if r.trigger]
        tracker.release_trigger(claim, "publisher crashed")  # both dates due again
    failures: list[Exception | None] = [PublishFailedError("once"), None]

    def flaky(event: TriggerEvent) -> None:
        error = failures.pop(0)
        if error is not None:
            raise error
        publisher(event)

    report = tracker.sweep_and_trigger(PHASE, [DATE, OTHER_DATE], flaky)

    assert set(report.publish_errors) == {DATE}
    assert "PublishFailedError" in report.publish_errors[DATE]
    assert [c.claim.date for c in report.published] == [OTHER_DATE]
    assert tracker.status(PHASE, DATE).trigger_state == "released"
    assert not report.ok


def test_first_overdue_sweep_writes_one_execution_log_row(
    tracker: CompletionTracker, fake_clock: FakeClock, execution_log: MemoryExecutionLog
) -> None:
    """Marking a date overdue logs a deadline_exceeded row once, not on every sweep."""
    record_all(tracker, [FIRST])
    fake_clock.advance(timedelta(days=1))

    tracker.sweep(PHASE, [DATE])
    tracker.sweep(PHASE, [DATE])

    [row] = execution_log.rows
    assert (row.status, row.game_date) == ("deadline_exceeded", DATE)
    assert row.metadata is not None
    assert row.metadata["missing_processors"] == sorted(OTHERS)


def test_reconcile_records_outputs_that_exist_and_claims(tracker: CompletionTracker) -> None:
    """Missing processors whose output exists become 'reconciled', count, and claim the trigger."""
    record_all(tracker, OTHERS[:3])
    asked: list[str] = []

    def evidence(processor: str) -> bool:
        asked.append(processor)
        return True

    report = tracker.reconcile(PHASE, DATE, evidence)

    assert sorted(asked) == sorted([FIRST, OTHERS[3]])
    assert report.reconciled == {FIRST, OTHERS[3]}
    assert report.count == 5
    assert report.claim is not None
    assert report.claim.reason == "reconciled"
    assert tracker.status(PHASE, DATE).records[FIRST].status == "reconciled"
    assert tracker.status(PHASE, DATE).trigger_state == "claimed"  # not latched as triggered


def test_reconcile_without_all_outputs_does_not_claim(tracker: CompletionTracker) -> None:
    """Evidence for some missing processors only: they are recorded, nothing is claimed."""
    report = tracker.reconcile(PHASE, DATE, {FIRST: True, OTHERS[0]: False})

    assert report.reconciled == {FIRST}
    assert report.still_missing == frozenset(OTHERS)
    assert report.claim is None
    assert tracker.reconcile(PHASE, DATE, {FIRST: True}).reconciled == frozenset()


def test_reconcile_evidence_error_writes_nothing(
    tracker: CompletionTracker, memory_store: MemoryStore
) -> None:
    """If asking for evidence fails, the error propagates before anything is written."""

    def broken(processor: str) -> bool:
        raise RuntimeError("bigquery down")

    with pytest.raises(RuntimeError):
        tracker.reconcile(PHASE, DATE, broken)
    assert memory_store.stats.writes == 0


def test_reconcile_and_trigger_publishes_through_the_claim_protocol(
    tracker: CompletionTracker, publisher: Publisher, fake_clock: FakeClock
) -> None:
    """Reconciling to completion publishes once and confirms; a failed publish is released."""
    record_all(tracker, OTHERS)
    publisher.fail_with = PublishFailedError("down")
    with pytest.raises(PublishFailedError):
        tracker.reconcile_and_trigger(PHASE, DATE, {FIRST: True}, publisher)
    publisher.fail_with = None

    swept = tracker.sweep_and_trigger(PHASE, [DATE], publisher)

    [event] = publisher.events
    assert (event.reason, event.attempt) == ("reconciled", 2)
    assert len(swept.published) == 1
    assert tracker.status(PHASE, DATE).triggered
