"""
Regression tests for DESIGN §1 F1-F5, each named after the failure it prevents.

Every test sets up what happened in production and asserts the guarantee; the
docstring says how the old behaviour fails it.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
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

from pipeline_reliability import MemoryStore, Outcome, Put
from pipeline_reliability.completion import (
    CompletionTracker,
    MemoryLedger,
    PhaseSpec,
)
from pipeline_reliability.errors import (
    CompletionNotRecordedError,
    PublishFailedError,
    WriteFailedError,
)
from pipeline_reliability.testing import FakeClock, FaultyStore

COLLECTION = f"completion_{PHASE}"


def _seed(store: MemoryStore, clock: FakeClock, *, counter: int) -> None:
    """Write a doc with all five records but a stale counter, as the side writer left it."""
    now = clock.now()
    records = {
        name: {
            "status": "success",
            "execution_id": f"run-{name}",
            "executions": [f"run-{name}"],
            "reported_at": now,
            "recorded_at": now,
            "runs": 1,
        }
        for name in EXPECTED
    }
    doc = {
        "schema": 1,
        "phase": PHASE,
        "date": DATE,
        "processors": records,
        "meta": {"first_completion_at": now, "count": counter, "completed": sorted(EXPECTED)[:3]},
    }
    store.transact(COLLECTION, DATE, lambda _snap: Outcome(None, Put(doc)))


def test_f1_stale_counter_doc_triggers_exactly_once_on_next_record(
    memory_store: MemoryStore, fake_clock: FakeClock, tracker: CompletionTracker
) -> None:
    """A doc with 5 records and a counter of 3 triggers on the next (duplicate) record; an
    increment-the-counter implementation sees a duplicate, stays at 3 and never triggers."""
    _seed(memory_store, fake_clock, counter=3)

    first = tracker.record_completion(PHASE, DATE, FIRST, execution_id=f"run-{FIRST}")
    again = tracker.record_completion(PHASE, DATE, OTHERS[0], execution_id=f"run-{OTHERS[0]}")

    assert first.duplicate
    assert first.count == 5
    assert first.trigger is not None
    assert first.trigger.reason == "complete"
    assert again.trigger is None
    assert memory_store.dump()[COLLECTION][DATE]["meta"]["count"] == 5


def test_f1_stale_counter_doc_triggers_exactly_once_on_sweep(
    memory_store: MemoryStore, fake_clock: FakeClock, tracker: CompletionTracker
) -> None:
    """With no further message at all, the sweep finds the drifted date and claims it, once."""
    _seed(memory_store, fake_clock, counter=3)

    first = tracker.sweep(PHASE, [DATE])
    second = tracker.sweep(PHASE, [DATE])

    assert [o.action for o in first.outcomes] == ["claimed"]
    assert len(first.claims) == 1
    assert [o.action for o in second.outcomes] == ["in_flight"]


def test_f1_concurrent_last_completions_claim_exactly_once(
    make_tracker: MakeTracker,
) -> None:
    """Five instances recording the five processors at once: exactly one receives the claim."""
    trackers = [make_tracker(owner=f"worker-{i}") for i in range(5)]
    results: list[Any] = []
    lock = threading.Lock()

    def run(tracker: CompletionTracker, name: str) -> None:
        result = tracker.record_completion(PHASE, DATE, name, execution_id=f"run-{name}")
        with lock:
            results.append(result)

    threads = [
        threading.Thread(target=run, args=(t, n))
        for t, n in zip(trackers, sorted(EXPECTED), strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sum(r.trigger is not None for r in results) == 1
    assert max(r.count for r in results) == 5


def test_f2_store_failure_goes_to_ledger_and_reports_degraded(
    store: FaultyStore,
    ledger: MemoryLedger,
    tracker: CompletionTracker,
    caplog: pytest.LogCaptureFixture,
    span_exporter: Any,
) -> None:
    """An unwritable store yields a ledger row and degraded=True, logged with its traceback
    and marked on the span; the old code logged a warning without traceback and moved on."""
    caplog.set_level(logging.WARNING, logger="pipeline_reliability")
    with store.outage():
        result = tracker.record_completion(PHASE, DATE, FIRST, execution_id="run-1")

    assert result.degraded
    assert not result.counted
    assert result.error is not None
    [row] = ledger.rows
    assert (row.processor, row.execution_id, row.primary_ok) == (FIRST, "run-1", False)
    failures = [
        r
        for r in caplog.records
        if r.name == "pipeline_reliability.completion" and r.levelno == logging.ERROR
    ]
    assert failures
    assert all(r.exc_info is not None for r in failures)
    [record_span] = [
        s
        for s in span_exporter.get_finished_spans()
        if s.name == "pipeline_reliability.tracker.record_completion"
    ]
    assert record_span.status.status_code.name == "ERROR"
    assert any(e.name == "exception" for e in record_span.events)


class _BrokenLedger(MemoryLedger):
    def append(self, row: Any) -> None:
        raise WriteFailedError("ledger table unavailable")


def test_f2_store_and_ledger_failure_raises(
    store: FaultyStore, make_tracker: MakeTracker, caplog: pytest.LogCaptureFixture
) -> None:
    """When neither the store nor the ledger takes the completion, the call raises, chained."""
    tracker = make_tracker(ledger=_BrokenLedger())
    caplog.set_level(logging.ERROR, logger="pipeline_reliability.completion")

    with store.outage(), pytest.raises(CompletionNotRecordedError) as caught:
        tracker.record_completion(PHASE, DATE, FIRST, execution_id="run-1")

    assert isinstance(caught.value.__cause__, WriteFailedError)
    assert (caught.value.phase, caught.value.date, caught.value.processor) == (PHASE, DATE, FIRST)
    logged = [r for r in caplog.records if r.name == "pipeline_reliability.completion"]
    assert len(logged) == 2  # the store failure and the ledger failure
    assert all(r.exc_info is not None for r in logged)


def test_f2_store_failure_without_ledger_raises(
    store: FaultyStore, make_tracker: MakeTracker
) -> None:
    """Without a ledger, a store failure raises CompletionNotRecordedError: never silent."""
    tracker = make_tracker(ledger=None)

    with store.outage(), pytest.raises(CompletionNotRecordedError):
        tracker.record_completion(PHASE, DATE, FIRST, execution_id="run-1")


def test_f2_replay_after_outage_completes_and_triggers(
    store: FaultyStore, ledger: MemoryLedger, tracker: CompletionTracker, publisher: Publisher
) -> None:
    """Completions the ledger took during an outage reach the store on replay; one trigger."""
    record_all(tracker, OTHERS)
    with store.outage():
        assert record_all(tracker, [FIRST])[0].degraded

    report = tracker.replay_and_trigger(PHASE, [DATE], publisher)
    again = tracker.replay_and_trigger(PHASE, [DATE], publisher)

    assert (report.applied, report.duplicates) == (1, 0)
    assert len(report.published) == 1
    assert (again.applied, again.duplicates) == (0, 1)
    assert len(publisher.events) == 1
    assert tracker.status(PHASE, DATE).triggered


def test_f3_publish_failure_releases_and_redelivery_retriggers(
    tracker: CompletionTracker, publisher: Publisher
) -> None:
    """A failed publish frees the claim, and a redelivery of the same message triggers; the old
    code latched _triggered and treated the redelivery as a duplicate forever."""
    record_all(tracker, OTHERS)
    publisher.fail_with = PublishFailedError("topic unavailable")

    with pytest.raises(PublishFailedError):
        tracker.record_and_trigger(
            PHASE, DATE, FIRST, execution_id="run-last", message_id="m-1", publish=publisher
        )
    assert tracker.status(PHASE, DATE).trigger_state == "released"

    publisher.fail_with = None
    redelivered = tracker.record_and_trigger(
        PHASE, DATE, FIRST, execution_id="run-last", message_id="m-1", publish=publisher
    )

    assert redelivered.duplicate
    assert redelivered.confirmation is not None
    assert redelivered.confirmation.claim.attempt == 2
    assert [f"{PHASE}:{DATE}"] == [e.trigger_id for e in publisher.events]
    assert tracker.status(PHASE, DATE).triggered


def test_f3_crashed_claim_expires_and_redelivery_retriggers(
    tracker: CompletionTracker, fake_clock: FakeClock, publisher: Publisher, spec: PhaseSpec
) -> None:
    """A holder that dies after claiming leaves a lease; once it expires a redelivery triggers."""
    record_all(tracker, OTHERS)
    crashed = tracker.record_completion(PHASE, DATE, FIRST, execution_id="run-last")
    assert crashed.trigger is not None  # ... and the process dies before publishing

    early = tracker.record_and_trigger(
        PHASE, DATE, FIRST, execution_id="run-last", publish=publisher
    )
    fake_clock.advance(spec.trigger_lease)
    late = tracker.record_and_trigger(
        PHASE, DATE, FIRST, execution_id="run-last", publish=publisher
    )

    assert early.trigger is None
    assert late.confirmation is not None
    assert len(publisher.events) == 1


def test_f3_processor_finishing_during_slow_publish_does_not_trigger_again(
    make_tracker: MakeTracker, publisher: Publisher
) -> None:
    """While one instance publishes slowly, another completion (re-run or redelivery) on another
    instance gets no claim; the old code triggered phase 4 a second time."""
    first, second = make_tracker(owner="worker-1"), make_tracker(owner="worker-2")
    record_all(first, OTHERS)
    during: list[Any] = []

    def second_processor_finishes() -> None:
        during.append(
            second.record_and_trigger(
                PHASE,
                DATE,
                OTHERS[0],
                execution_id="rerun",
                publish=publisher,
                completed_at=datetime.now(UTC),
            )
        )

    publisher.during = second_processor_finishes
    result = first.record_and_trigger(PHASE, DATE, FIRST, execution_id="run", publish=publisher)
    publisher.during = None
    after = second.record_and_trigger(PHASE, DATE, OTHERS[1], execution_id="r2", publish=publisher)

    assert result.confirmation is not None
    assert during[0].trigger is None
    assert during[0].updated
    assert after.trigger is None
    assert len(publisher.events) == 1


def test_f3_publish_slower_than_lease_confirms_exactly_once(
    make_tracker: MakeTracker, publisher: Publisher, fake_clock: FakeClock, spec: PhaseSpec
) -> None:
    """A publish that outlives its lease is taken over; only the new holder confirms."""
    slow, fast = make_tracker(owner="slow"), make_tracker(owner="fast")
    record_all(slow, OTHERS)
    taken: list[Any] = []

    def lease_runs_out() -> None:
        publisher.during = None
        fake_clock.advance(spec.trigger_lease + timedelta(seconds=1))
        taken.append(
            fast.record_and_trigger(PHASE, DATE, FIRST, execution_id="run", publish=publisher)
        )

    publisher.during = lease_runs_out
    result = slow.record_and_trigger(PHASE, DATE, FIRST, execution_id="run", publish=publisher)

    assert result.confirmation is None
    assert result.trigger_error is not None
    assert "TriggerClaimLostError" in result.trigger_error
    assert taken[0].confirmation is not None
    assert {f"{PHASE}:{DATE}"} == {e.trigger_id for e in publisher.events}
    status = slow.status(PHASE, DATE)
    assert (status.trigger_state, status.trigger_owner, status.trigger_attempt) == (
        "confirmed",
        "fast",
        2,
    )


@pytest.mark.parametrize("name", ["PlayerGameSummaryProcessor", "player_game_sumary", "nba_x"])
def test_f4_unknown_or_misspelled_name_never_counts(tracker: CompletionTracker, name: str) -> None:
    """An unknown name is kept as ignored and reported, and cannot complete the phase; the old
    code counted any name toward completeness."""
    record_all(tracker, OTHERS)

    result = tracker.record_completion(PHASE, DATE, name, execution_id="x")
    status = tracker.status(PHASE, DATE)

    assert result.ignored
    assert not result.counted
    assert result.trigger is None
    assert result.count == 4
    assert {FIRST} == result.missing
    assert {name} == status.ignored
    assert status.count == 4


def test_f5_sweep_fires_partial_trigger_on_stuck_date(
    make_tracker: MakeTracker, fake_clock: FakeClock, publisher: Publisher
) -> None:
    """A date whose last processor never reports triggers from the sweep after the deadline,
    with no incoming message; the old timeout only ran when a message arrived."""
    spec = PhaseSpec(
        PHASE, EXPECTED, min_to_trigger=3, critical={FIRST}, deadline=timedelta(hours=2)
    )
    tracker = make_tracker(phases=[spec])
    record_all(tracker, [FIRST, *OTHERS[:3]])

    before = tracker.sweep_and_trigger(PHASE, [DATE], publisher)
    fake_clock.advance(timedelta(hours=2))
    after = tracker.sweep_and_trigger(PHASE, [DATE], publisher)

    assert [o.action for o in before.outcomes] == ["waiting"]
    assert [o.action for o in after.outcomes] == ["claimed"]
    [event] = publisher.events
    assert ("deadline_partial", frozenset({OTHERS[3]})) == (event.reason, event.missing)
    assert tracker.status(PHASE, DATE).triggered


def test_f5_sweep_reports_overdue_dates_including_silent_ones(
    tracker: CompletionTracker, fake_clock: FakeClock, memory_store: MemoryStore
) -> None:
    """Overdue dates without the partial rule are reported, also dates nobody reported for,
    and the mark is written only once."""
    record_all(tracker, [FIRST])
    silent = "2026-01-30"
    fake_clock.advance(timedelta(days=2))

    first = tracker.sweep(PHASE, [DATE, silent])
    memory_store.reset_stats()
    second = tracker.sweep(PHASE, [DATE, silent])

    assert (DATE, silent) == first.exceeded
    assert all(o.newly_marked for o in first.outcomes)
    assert (DATE, silent) == second.exceeded
    assert not any(o.newly_marked for o in second.outcomes)
    assert memory_store.stats.writes == 0
    assert set(OTHERS) == first.outcomes[0].missing
    assert first.outcomes[1].missing == EXPECTED
