"""The trigger claim protocol: claim, publish, confirm or release; leases and take-overs."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

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

from pipeline_reliability.completion import (
    CompletionTracker,
    MemoryExecutionLog,
    PhaseSpec,
    TriggerClaim,
)
from pipeline_reliability.errors import PublishFailedError, TriggerClaimLostError, WriteFailedError
from pipeline_reliability.testing import FakeClock, FaultyStore


def _claim(tracker: CompletionTracker) -> TriggerClaim:
    results = record_all(tracker, EXPECTED, correlation_id="corr-1")
    claims = [r.trigger for r in results if r.trigger is not None]
    assert len(claims) == 1
    return claims[0]


def _partial_with_critical_first(make_tracker: MakeTracker) -> CompletionTracker:
    """A tracker whose phase, past its 1 h deadline, triggers on 2 done if FIRST is one."""
    spec = PhaseSpec(
        PHASE, EXPECTED, min_to_trigger=2, critical={FIRST}, deadline=timedelta(hours=1)
    )
    return make_tracker(phases=[spec])


def test_claim_carries_the_event_to_publish(tracker: CompletionTracker) -> None:
    """The claim names a stable trigger id, the owner, the lease and the completed set."""
    claim = _claim(tracker)
    event = claim.event()

    assert (claim.trigger_id, claim.owner, claim.attempt) == (f"{PHASE}:{DATE}", "worker-1", 1)
    assert claim.lease_expires_at == claim.claimed_at + timedelta(minutes=5)
    assert (event.reason, event.completed, event.missing) == ("complete", EXPECTED, frozenset())
    assert (event.next_phase, event.correlation_id) == ("phase4", "corr-1")


def test_confirm_is_idempotent_and_logs_one_execution_row(
    tracker: CompletionTracker, execution_log: MemoryExecutionLog
) -> None:
    """Confirming twice succeeds twice, but only the first confirmation writes the log row."""
    claim = _claim(tracker)

    first = tracker.confirm_trigger(claim)
    second = tracker.confirm_trigger(claim)

    assert (first.newly_confirmed, second.newly_confirmed) == (True, False)
    assert first.execution_logged
    [row] = execution_log.rows
    assert (row.phase_name, row.game_date, row.status) == (PHASE, DATE, "complete")
    assert row.correlation_id == "corr-1"
    assert row.metadata is not None
    assert row.metadata["trigger_id"] == f"{PHASE}:{DATE}"
    assert tracker.status(PHASE, DATE).triggered


def test_confirm_after_expiry_is_allowed_while_nobody_took_over(
    tracker: CompletionTracker, fake_clock: FakeClock
) -> None:
    """An expired claim that nobody re-claimed can still be confirmed (its event went out)."""
    claim = _claim(tracker)
    fake_clock.advance(timedelta(minutes=10))

    assert tracker.confirm_trigger(claim).newly_confirmed


def test_confirm_after_take_over_raises_claim_lost(
    make_tracker: MakeTracker, fake_clock: FakeClock
) -> None:
    """Once another instance re-claimed the expired trigger, the old claim cannot confirm."""
    old, new = make_tracker(owner="old"), make_tracker(owner="new")
    claim = _claim(old)
    fake_clock.advance(timedelta(minutes=5))
    [taken] = new.sweep(PHASE, [DATE]).claims

    with pytest.raises(TriggerClaimLostError):
        old.confirm_trigger(claim)
    assert not old.release_trigger(claim, "too late")
    assert (taken.attempt, taken.owner) == (2, "new")
    assert new.confirm_trigger(taken).newly_confirmed


def test_release_frees_the_claim_for_the_next_delivery(tracker: CompletionTracker) -> None:
    """A released claim is re-claimed by the next delivery at once, keeping its reason."""
    claim = _claim(tracker)

    assert tracker.release_trigger(claim, PublishFailedError("boom"))
    assert not tracker.release_trigger(claim, "again")
    again = tracker.record_completion(PHASE, DATE, FIRST, execution_id=f"run-{FIRST}")
    status = tracker.status(PHASE, DATE)

    assert again.trigger is not None
    assert (again.trigger.attempt, again.trigger.reason) == (2, "complete")
    assert status.trigger_state == "claimed"


def test_live_claim_is_not_reclaimed(tracker: CompletionTracker, fake_clock: FakeClock) -> None:
    """While the lease is live, deliveries and sweeps leave the claim alone."""
    _claim(tracker)
    fake_clock.advance(timedelta(minutes=4))

    dup = tracker.record_completion(PHASE, DATE, FIRST, execution_id=f"run-{FIRST}")
    swept = tracker.sweep(PHASE, [DATE])

    assert dup.trigger is None
    assert [o.action for o in swept.outcomes] == ["in_flight"]


def test_confirmed_trigger_is_never_triggered_again(
    tracker: CompletionTracker, fake_clock: FakeClock, publisher: Publisher
) -> None:
    """After confirmation, re-runs, duplicates, sweeps and time never produce another claim."""
    tracker.confirm_trigger(_claim(tracker))
    fake_clock.advance(timedelta(days=3))

    rerun = tracker.record_and_trigger(PHASE, DATE, FIRST, execution_id="rerun", publish=publisher)
    swept = tracker.sweep_and_trigger(PHASE, [DATE], publisher)

    assert rerun.trigger is None
    assert rerun.triggered
    assert [o.action for o in swept.outcomes] == ["triggered"]
    assert publisher.events == []


def test_record_and_trigger_publishes_once_and_confirms(
    tracker: CompletionTracker, publisher: Publisher
) -> None:
    """Only the completion that completes the phase publishes; it comes back confirmed."""
    results = [
        tracker.record_and_trigger(PHASE, DATE, n, execution_id=f"r-{n}", publish=publisher)
        for n in sorted(EXPECTED)
    ]

    assert [r.published for r in results] == [False] * 4 + [True]
    assert results[-1].confirmation is not None
    assert results[-1].triggered
    [event] = publisher.events
    assert event.to_dict()["completed"] == sorted(EXPECTED)


def test_release_failure_is_noted_on_the_publish_error(
    store: FaultyStore,
    tracker: CompletionTracker,
    publisher: Publisher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """If releasing fails too, the publish error propagates with a note; the lease expires."""
    record_all(tracker, OTHERS)

    def fail_and_take_the_store_down() -> None:
        store.set_outage(True)

    publisher.during = fail_and_take_the_store_down
    publisher.fail_with = PublishFailedError("topic gone")
    with pytest.raises(PublishFailedError) as caught:
        tracker.record_and_trigger(PHASE, DATE, FIRST, execution_id="r", publish=publisher)
    store.set_outage(False)

    assert any("release_trigger also failed" in n for n in caught.value.__notes__)
    assert tracker.status(PHASE, DATE).trigger_state == "claimed"
    assert any(r.exc_info for r in caplog.records if "release" in r.getMessage())


def test_confirm_failure_after_publish_is_reported_not_raised(
    store: FaultyStore, tracker: CompletionTracker, publisher: Publisher, fake_clock: FakeClock
) -> None:
    """A published trigger whose confirm fails is reported; the sweep re-publishes the same id."""
    record_all(tracker, OTHERS)
    publisher.during = lambda: store.set_outage(True)

    result = tracker.record_and_trigger(PHASE, DATE, FIRST, execution_id="r", publish=publisher)
    store.set_outage(False)
    publisher.during = None
    fake_clock.advance(timedelta(minutes=5))
    swept = tracker.sweep_and_trigger(PHASE, [DATE], publisher)

    assert result.published
    assert result.confirmation is None
    assert result.trigger_error is not None
    assert len(swept.published) == 1
    assert [e.trigger_id for e in publisher.events] == [f"{PHASE}:{DATE}"] * 2
    assert [e.attempt for e in publisher.events] == [1, 2]


class _BrokenLog(MemoryExecutionLog):
    def write(self, row: Any) -> None:
        raise WriteFailedError("phase_execution_log unavailable")


def test_execution_log_failure_is_logged_counted_and_returned(
    make_tracker: MakeTracker, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing execution-log write leaves the trigger confirmed and says so in the result."""
    tracker = make_tracker(execution_log=_BrokenLog())
    caplog.set_level(logging.ERROR, logger="pipeline_reliability.completion")

    confirmation = tracker.confirm_trigger(_claim(tracker))

    assert confirmation.newly_confirmed
    assert not confirmation.execution_logged
    assert confirmation.execution_log_error is not None
    assert "WriteFailedError" in confirmation.execution_log_error
    [logged] = [r for r in caplog.records if "execution log" in r.getMessage()]
    assert logged.exc_info is not None
    assert tracker.status(PHASE, DATE).triggered


def test_partial_rule_applies_to_late_deliveries_after_the_deadline(
    make_tracker: MakeTracker, fake_clock: FakeClock
) -> None:
    """Past the deadline, a delivery that meets the partial rule claims with deadline_partial."""
    tracker = _partial_with_critical_first(make_tracker)
    not_yet = record_all(tracker, OTHERS[:2])
    fake_clock.advance(timedelta(hours=1))

    late = tracker.record_completion(PHASE, DATE, FIRST, execution_id="late")

    assert all(r.trigger is None for r in not_yet)
    assert late.trigger is not None
    assert late.trigger.reason == "deadline_partial"
    assert late.trigger.missing == frozenset(OTHERS[2:])


def test_partial_rule_waits_for_critical_processors(
    make_tracker: MakeTracker, fake_clock: FakeClock
) -> None:
    """Enough processors but a missing critical one: overdue, not triggered."""
    tracker = _partial_with_critical_first(make_tracker)
    record_all(tracker, OTHERS)
    fake_clock.advance(timedelta(hours=1))

    report = tracker.sweep(PHASE, [DATE])

    assert report.exceeded == (DATE,)
    assert report.claims == ()
