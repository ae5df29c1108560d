"""record_completion: counting, deduplication, re-runs, and store faults."""

from __future__ import annotations

from datetime import timedelta

from tracker_helpers import DATE, EXPECTED, FIRST, OTHERS, PHASE, MakeTracker, record_all

from pipeline_reliability import MemoryStore
from pipeline_reliability.completion import CompletionTracker, LedgerRow, MemoryLedger, PhaseSpec
from pipeline_reliability.testing import FakeClock, Fault, FaultyStore


def test_first_completion_counts_and_reports_missing(tracker: CompletionTracker) -> None:
    """A first success counts; the result lists what is done and what is missing."""
    result = tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1")

    assert result.counted
    assert (result.duplicate, result.ignored, result.updated, result.degraded) == (
        False,
        False,
        False,
        False,
    )
    assert frozenset({FIRST}) == result.completed
    assert frozenset(OTHERS) == result.missing
    assert result.count == 1
    assert result.trigger is None


def test_same_execution_is_a_duplicate_and_costs_no_write(
    tracker: CompletionTracker, memory_store: MemoryStore
) -> None:
    """Redelivering the same (processor, execution_id) changes nothing and writes nothing."""
    tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1")
    memory_store.reset_stats()

    result = tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1")

    assert result.duplicate
    assert not result.counted
    assert memory_store.stats.writes == 0


def test_same_message_id_is_a_duplicate(tracker: CompletionTracker) -> None:
    """A second delivery carrying a seen message id is a duplicate whatever else it says."""
    tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1", message_id="m1")

    result = tracker.record_completion(PHASE, DATE, FIRST, execution_id="r2", message_id="m1")

    assert result.duplicate
    assert tracker.status(PHASE, DATE).records[FIRST].execution_id == "r1"


def test_rerun_updates_the_record_but_never_counts_twice(
    tracker: CompletionTracker, fake_clock: FakeClock
) -> None:
    """A new execution of a done processor replaces its record (last run wins), count unchanged."""
    tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1", record_count=10)
    fake_clock.advance(60)

    result = tracker.record_completion(PHASE, DATE, FIRST, execution_id="r2", record_count=12)
    record = tracker.status(PHASE, DATE).records[FIRST]

    assert result.updated
    assert not result.counted
    assert result.count == 1
    assert (record.execution_id, record.record_count, record.runs) == ("r2", 12, 2)


def test_failed_then_success_counts_and_success_then_failed_uncounts(
    tracker: CompletionTracker, fake_clock: FakeClock
) -> None:
    """Only a counting status counts, judged on the latest run."""
    failed = tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1", status="failed")
    fake_clock.advance(1)
    fixed = tracker.record_completion(PHASE, DATE, FIRST, execution_id="r2")
    fake_clock.advance(1)
    broken = tracker.record_completion(PHASE, DATE, FIRST, execution_id="r3", status="failed")

    assert (failed.counted, failed.count) == (False, 0)
    assert (fixed.counted, fixed.count) == (True, 1)
    assert (broken.updated, broken.count) == (True, 0)


def test_older_run_replayed_late_does_not_overwrite_newer(
    tracker: CompletionTracker, ledger: MemoryLedger, fake_clock: FakeClock
) -> None:
    """A run reported before the stored one, replayed later from the ledger, is not applied."""
    reported = fake_clock.now()
    ledger.append(LedgerRow(PHASE, DATE, FIRST, "old", "success", reported, reported, False))
    fake_clock.advance(60)
    tracker.record_completion(PHASE, DATE, FIRST, execution_id="new", status="failed")

    report = tracker.replay_ledger(PHASE, [DATE])
    redelivered = tracker.record_completion(
        PHASE, DATE, FIRST, execution_id="old", completed_at=reported
    )
    status = tracker.status(PHASE, DATE)

    assert report.applied == 0
    assert (status.records[FIRST].execution_id, status.count) == ("new", 0)
    assert redelivered.stale


def test_done_empty_status_resolves_a_processor_when_configured(make_tracker: MakeTracker) -> None:
    """With done_empty_statuses={'no_data'}, a no_data report resolves its processor."""
    plain = make_tracker(owner="plain")
    empty_ok = make_tracker(
        owner="empty", phases=[PhaseSpec("p_empty", EXPECTED, done_empty_statuses={"no_data"})]
    )

    a = plain.record_completion(PHASE, DATE, FIRST, execution_id="r", status="no_data")
    b = empty_ok.record_completion("p_empty", DATE, FIRST, execution_id="r", status="no_data")

    assert (a.counted, a.count) == (False, 0)
    assert (b.counted, b.count) == (True, 1)
    assert {FIRST} == empty_ok.status("p_empty", DATE).done_empty


def test_ignored_duplicates_and_bounded_ignored_map(
    tracker: CompletionTracker, memory_store: MemoryStore
) -> None:
    """Unknown names are remembered once each; a flood of them cannot grow the doc unbounded."""
    first = tracker.record_completion(PHASE, DATE, "unknown", execution_id="x")
    dup = tracker.record_completion(PHASE, DATE, "unknown", execution_id="x")
    for i in range(150):
        tracker.record_completion(PHASE, DATE, f"junk{i}", execution_id="x")

    doc = memory_store.dump()[f"completion_{PHASE}"][DATE]
    assert (first.ignored, first.duplicate) == (True, False)
    assert (dup.ignored, dup.duplicate) == (True, True)
    assert len(doc["ignored"]) == 20
    assert doc["meta"]["ignored_dropped"] == 131
    assert tracker.status(PHASE, DATE).count == 0


def test_lost_response_is_reported_as_counted_once(
    store: FaultyStore, tracker: CompletionTracker
) -> None:
    """A write applied but whose response was lost is retried, and still reported as counted."""
    store.fail_next(Fault.LOST_RESPONSE)

    result = tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1")

    assert result.counted
    assert not result.duplicate
    assert result.count == 1


def test_lost_response_on_the_last_completion_keeps_the_claim(
    store: FaultyStore, tracker: CompletionTracker
) -> None:
    """The claim taken by a write whose response was lost is returned by the retry, not dropped."""
    record_all(tracker, OTHERS)
    store.fail_next(Fault.LOST_RESPONSE)

    result = tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1")

    assert result.counted
    assert result.trigger is not None
    assert result.trigger.attempt == 1


def test_concurrent_duplicate_after_lost_response_is_not_counted_twice(
    store: FaultyStore, make_tracker: MakeTracker
) -> None:
    """Two deliveries of one run, one of them losing its response: exactly one says counted."""
    a, b = make_tracker(owner="a"), make_tracker(owner="b")
    store.fail_next(Fault.LOST_RESPONSE)
    results = [a.record_completion(PHASE, DATE, FIRST, execution_id="r1")]
    results.append(b.record_completion(PHASE, DATE, FIRST, execution_id="r1"))

    assert [r.counted for r in results] == [True, False]
    assert [r.duplicate for r in results] == [False, True]


def test_aborted_and_transient_faults_are_retried(
    store: FaultyStore, tracker: CompletionTracker
) -> None:
    """ABORTED, DEADLINE_EXCEEDED and CONTENTION are retried; the completion lands once."""
    for fault in (Fault.ABORTED, Fault.DEADLINE_EXCEEDED, Fault.CONTENTION):
        store.fail_next(fault)
    results = record_all(tracker, [FIRST, OTHERS[0], OTHERS[1]])

    assert [r.count for r in results] == [1, 2, 3]
    assert not any(r.degraded for r in results)


def test_message_ids_are_bounded_but_recent_ones_dedup(
    tracker: CompletionTracker, memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """The document keeps the most recent message ids only; the recent ones still deduplicate."""
    for i in range(300):
        fake_clock.advance(timedelta(seconds=1))
        tracker.record_completion(PHASE, DATE, FIRST, execution_id=f"r{i}", message_id=f"m{i}")

    doc = memory_store.dump()[f"completion_{PHASE}"][DATE]
    assert len(doc["messages"]) == 256
    assert tracker.record_completion(
        PHASE, DATE, FIRST, execution_id="new", message_id="m299"
    ).duplicate
