"""Issue 11, item 4: reconcile and replay as backfills (``trigger=False``) never trigger."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline_reliability import MemoryStore
from pipeline_reliability.completion import CompletionTracker, MemoryLedger, PhaseSpec
from pipeline_reliability.errors import CompletionNotRecordedError
from pipeline_reliability.testing import FakeClock, FaultyStore

DAY = "2026-01-05"
PROCS = ("a", "b")


def test_item4_reconcile_as_a_backfill_records_and_settles_without_a_claim(
    memory_store: MemoryStore,
) -> None:
    tracker = CompletionTracker(memory_store, [PhaseSpec("p", PROCS)], owner="w")
    report = tracker.reconcile("p", DAY, {"a": True, "b": True}, trigger=False)
    assert report.reconciled == {"a", "b"}
    assert report.claim is None
    status = tracker.status("p", DAY)
    assert (status.trigger_state, status.trigger_reason) == ("skipped", "backfill")
    assert tracker.sweep("p", [DAY]).claims == ()


def test_item4_replay_as_a_backfill_never_claims(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    ledger = MemoryLedger()
    faulty = FaultyStore(memory_store)
    tracker = CompletionTracker(faulty, [PhaseSpec("p", PROCS)], ledger=ledger,
                                clock=fake_clock, owner="w", store_deadline=timedelta(seconds=1))
    faulty.set_outage(True)
    for p in PROCS:  # live completions during an outage: degraded to the ledger
        assert tracker.record_completion("p", DAY, p, execution_id=f"r-{p}").degraded
    faulty.set_outage(False)

    report = tracker.replay_ledger("p", [DAY], trigger=False)

    assert report.applied == 2
    assert report.claims == ()
    assert tracker.status("p", DAY).trigger_state == "skipped"


def test_item4_a_backfill_the_store_cannot_take_raises_instead_of_using_the_ledger(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    ledger = MemoryLedger()
    faulty = FaultyStore(memory_store)
    tracker = CompletionTracker(faulty, [PhaseSpec("p", PROCS)], ledger=ledger,
                                clock=fake_clock, owner="w")
    faulty.set_outage(True)
    with pytest.raises(CompletionNotRecordedError, match="backfill"):
        tracker.record_completion("p", DAY, "a", execution_id="bf", trigger=False)
    assert ledger.rows == []
