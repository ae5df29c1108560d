"""status() (with its ledger fallback) and replay_ledger()."""

from __future__ import annotations

from datetime import UTC, datetime

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

from pipeline_reliability.completion import CompletionTracker, LedgerRow, MemoryLedger
from pipeline_reliability.errors import (
    ConfigurationError,
    PublishFailedError,
    RetryExhaustedError,
)
from pipeline_reliability.testing import FaultyStore


def test_status_of_a_date_nobody_reported(tracker: CompletionTracker) -> None:
    """A date without a document is all missing, untriggered, due a day and a deadline later."""
    status = tracker.status(PHASE, DATE)

    assert (status.exists, status.count, status.missing) == (False, 0, EXPECTED)
    assert (status.trigger_state, status.triggered) == ("none", False)
    assert status.deadline_at == datetime(2026, 2, 1, 6, tzinfo=UTC)


def test_status_reports_records_trigger_and_ignored(tracker: CompletionTracker) -> None:
    """The status shows each record, unknown names, and the claim in progress."""
    record_all(tracker, EXPECTED)
    tracker.record_completion(PHASE, DATE, "stranger", execution_id="x")

    status = tracker.status(PHASE, DATE)

    assert (status.count, status.ignored) == (5, frozenset({"stranger"}))
    assert (status.trigger_state, status.trigger_reason, status.trigger_attempt) == (
        "claimed",
        "complete",
        1,
    )
    assert status.trigger_owner == "worker-1"
    assert status.records[FIRST].execution_id == f"run-{FIRST}"


def test_status_falls_back_to_the_ledger_when_the_store_is_down(
    store: FaultyStore, tracker: CompletionTracker
) -> None:
    """During an outage, status is rebuilt from the ledger and marked degraded/from_ledger."""
    with store.outage():
        record_all(tracker, [FIRST, "stranger"])
        status = tracker.status(PHASE, DATE)

    assert (status.degraded, status.from_ledger, status.trigger_state) == (True, True, "unknown")
    assert status.completed == {FIRST}
    assert status.ignored == {"stranger"}


def test_status_without_ledger_raises_when_the_store_is_down(
    store: FaultyStore, make_tracker: MakeTracker
) -> None:
    """With no ledger to fall back on, a store failure propagates."""
    tracker = make_tracker(ledger=None)

    with store.outage(), pytest.raises(RetryExhaustedError):
        tracker.status(PHASE, DATE)


def test_replay_needs_a_ledger(make_tracker: MakeTracker) -> None:
    """replay_ledger on a tracker without a ledger is a configuration error."""
    with pytest.raises(ConfigurationError):
        make_tracker(ledger=None).replay_ledger(PHASE, [DATE])


def test_replay_while_the_store_is_still_down_raises(
    store: FaultyStore, tracker: CompletionTracker
) -> None:
    """Replay does not fall back to the ledger it is draining: it raises for a later retry."""
    with store.outage():
        record_all(tracker, [FIRST])
        with pytest.raises(RetryExhaustedError):
            tracker.replay_ledger(PHASE, [DATE])


def test_replay_is_idempotent_and_keeps_report_times(
    store: FaultyStore, tracker: CompletionTracker, ledger: MemoryLedger
) -> None:
    """Replaying twice changes nothing the second time; records keep the original report time."""
    with store.outage():
        results = record_all(tracker, EXPECTED, metadata={"k": [1, 2]}, record_count=7)
    assert all(r.degraded for r in results)

    first = tracker.replay_ledger(PHASE, [DATE])
    second = tracker.replay_ledger(PHASE, [DATE])
    record = tracker.status(PHASE, DATE).records[FIRST]

    assert (first.rows, first.applied, first.duplicates, len(first.claims)) == (5, 5, 0, 1)
    assert (second.applied, second.duplicates, second.claims) == (0, 5, ())
    assert record.reported_at == ledger.rows[0].event_time
    assert (record.metadata, record.record_count) == ({"k": [1, 2]}, 7)


def test_replay_skips_rows_of_other_dates_and_accepts_mirror_rows(
    tracker: CompletionTracker, ledger: MemoryLedger
) -> None:
    """Only the requested dates are replayed; rows that mirrored a store write are harmless."""
    now = datetime(2026, 1, 31, tzinfo=UTC)
    ledger.append(LedgerRow(PHASE, DATE, FIRST, "r1", "success", now, now, True))
    ledger.append(LedgerRow(PHASE, "2026-01-01", FIRST, "r1", "success", now, now, False))

    report = tracker.replay_ledger(PHASE, [DATE])

    assert (report.rows, report.applied) == (1, 1)
    assert not tracker.status(PHASE, "2026-01-01").exists


def test_replay_and_trigger_publishes_claims_it_took(
    store: FaultyStore, tracker: CompletionTracker, publisher: Publisher
) -> None:
    """A date completed by replay is published; a failed publish is reported per date."""
    record_all(tracker, OTHERS)
    with store.outage():
        record_all(tracker, [FIRST])
    publisher.fail_with = PublishFailedError("down")

    failed = tracker.replay_and_trigger(PHASE, [DATE], publisher)
    publisher.fail_with = None
    swept = tracker.sweep_and_trigger(PHASE, [DATE], publisher)

    assert set(failed.publish_errors) == {DATE}
    assert [c.claim.date for c in swept.published] == [DATE]
    assert len(publisher.events) == 1
