"""
Issue 13: a delivery that a plain read proves to be a duplicate needs no
transaction; anything else still takes one (and the emulator agrees).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from tracker_helpers import Holding

from pipeline_reliability import MemoryStore, Outcome, Snapshot
from pipeline_reliability.completion import CompletionResult, CompletionTracker, PhaseSpec
from pipeline_reliability.errors import StoreUnavailableError
from pipeline_reliability.stores.firestore import FirestoreStore
from pipeline_reliability.testing import FakeClock, StoreWrapper

R = TypeVar("R")
DATE = "2026-01-31"
SPEC = PhaseSpec("phase3", {"a", "b", "c"})


class Counting(StoreWrapper):
    """Counts reads and transactions as the tracker issues them."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.gets = 0
        self.transactions = 0

    def get(self, collection: str, key: str, *, timeout: float | None = None) -> Snapshot:
        self.gets += 1
        return super().get(collection, key, timeout=timeout)

    def transact(
        self, collection: str, key: str, fn: Callable[[Snapshot], Outcome[R]],
        *, timeout: float | None = None,
    ) -> R:
        self.transactions += 1
        return super().transact(collection, key, fn, timeout=timeout)


@pytest.fixture
def counting(fake_clock: FakeClock) -> Counting:
    """A MemoryStore whose reads and transactions are counted as the tracker issues them."""
    return Counting(MemoryStore(clock=fake_clock))


def _tracker(store: Any, clock: FakeClock | None = None, owner: str = "i1") -> CompletionTracker:
    return CompletionTracker(store, [SPEC], clock=clock, owner=owner)


@pytest.mark.parametrize(
    ("execution_id", "message_id"), [("r1", None), ("r2", "m1"), ("r1", "m1")]
)
def test_item5_duplicate_proven_by_a_read_takes_no_transaction(
    counting: Counting, fake_clock: FakeClock, execution_id: str, message_id: str | None
) -> None:
    """Same execution id, same message id, or both: one read, no transaction."""
    tracker = _tracker(counting, fake_clock)
    tracker.record_completion("phase3", DATE, "a", execution_id="r1", message_id="m1")
    counting.gets = counting.transactions = 0

    result = tracker.record_completion(
        "phase3", DATE, "a", execution_id=execution_id, message_id=message_id
    )

    assert (result.duplicate, result.counted, result.count) == (True, False, 1)
    assert (counting.gets, counting.transactions) == (1, 0)


def test_item5_new_run_and_first_completion_take_the_transaction(
    counting: Counting, fake_clock: FakeClock
) -> None:
    """Anything the read does not prove a duplicate is decided in a transaction."""
    tracker = _tracker(counting, fake_clock)
    first = tracker.record_completion("phase3", DATE, "a", execution_id="r1")
    fake_clock.advance(1)
    rerun = tracker.record_completion("phase3", DATE, "a", execution_id="r2")
    assert (first.counted, rerun.duplicate) == (True, False)
    assert counting.transactions == 2


def test_item5_duplicate_whose_trigger_was_released_still_claims_it(
    counting: Counting, fake_clock: FakeClock
) -> None:
    """The redelivery path (DESIGN F3) writes, so it is never decided by the read alone."""
    tracker = _tracker(counting, fake_clock)
    for name in ("a", "b"):
        tracker.record_completion("phase3", DATE, name, execution_id="r1")
    last = tracker.record_completion("phase3", DATE, "c", execution_id="r1", message_id="m3")
    assert last.trigger is not None
    tracker.release_trigger(last.trigger, RuntimeError("publish failed"))
    counting.transactions = 0

    again = tracker.record_completion("phase3", DATE, "c", execution_id="r1", message_id="m3")

    assert again.duplicate
    assert again.trigger is not None  # re-claimed, in a transaction
    assert counting.transactions == 1


def test_item5_failed_read_falls_back_to_the_transaction(
    counting: Counting, fake_clock: FakeClock
) -> None:
    """A read that fails is not an answer: the transaction decides (and retries)."""

    class FailingGet(Counting):
        def get(self, collection: str, key: str, *, timeout: float | None = None) -> Snapshot:
            raise StoreUnavailableError("read failed")

    store = FailingGet(counting.inner)
    tracker = _tracker(store, fake_clock)
    tracker.record_completion("phase3", DATE, "a", execution_id="r1")
    result = tracker.record_completion("phase3", DATE, "a", execution_id="r1")
    assert (result.duplicate, result.degraded) == (True, False)
    assert store.transactions == 2


def test_item5_memory_store_decides_duplicates_by_a_read_too(fake_clock: FakeClock) -> None:
    """MemoryStore counts the same operations as Firestore (the differential suite checks)."""
    store = MemoryStore(clock=fake_clock)
    tracker = _tracker(store, fake_clock)
    tracker.record_completion("phase3", DATE, "a", execution_id="r1")
    store.reset_stats()
    assert tracker.record_completion("phase3", DATE, "a", execution_id="r1").duplicate
    assert (store.stats.reads, store.stats.transactions) == (1, 0)


@pytest.mark.firestore
def test_a_duplicate_arriving_mid_transaction_is_counted_once_and_never_triggers_twice(
    firestore_project: str,
) -> None:
    """
    Must show (issue 13), on the Firestore emulator: while one instance is
    inside its transaction on the document (it read, decided to count the last
    processor and claim the trigger, and has not committed), a duplicate of an
    earlier completion is answered from a plain read without a transaction,
    and a duplicate of the very completion in flight waits for the
    transaction path. Each processor counts once; one trigger in all.
    """
    stores = [FirestoreStore(project=firestore_project) for _ in range(3)]
    try:
        setup, in_flight, late = stores
        holding = Holding(in_flight)
        first = _tracker(setup, owner="i1")
        first.record_completion("phase3", DATE, "a", execution_id="ra", message_id="ma")
        first.record_completion("phase3", DATE, "b", execution_id="rb", message_id="mb")
        holder = _tracker(holding, owner="i2")
        other = _tracker(Counting(late), owner="i3")

        with ThreadPoolExecutor(max_workers=2) as pool:
            last = pool.submit(
                holder.record_completion, "phase3", DATE, "c", execution_id="rc", message_id="mc"
            )
            assert holding.inside.wait(timeout=60)
            # Mid-transaction: a duplicate of "a" is proven by the read alone.
            late.reset_stats()
            dup_a = other.record_completion(
                "phase3", DATE, "a", execution_id="ra", message_id="ma"
            )
            assert (late.stats.transactions, late.stats.writes) == (0, 0)
            # A duplicate of "c" (the completion in flight) cannot be proven yet.
            dup_c = pool.submit(
                other.record_completion, "phase3", DATE, "c", execution_id="rc", message_id="mc"
            )
            holding.release.set()
            results: list[CompletionResult] = [last.result(timeout=120), dup_c.result(timeout=120)]

        assert (dup_a.duplicate, dup_a.counted, dup_a.trigger) == (True, False, None)
        counted = [r for r in results if r.counted]
        assert len(counted) == 1  # "c" counts once, whichever delivery won
        assert [r.duplicate for r in results].count(True) == 1
        assert len([r for r in [*results, dup_a] if r.trigger is not None]) == 1
        status = first.status("phase3", DATE)
        assert (status.count, status.completed) == (3, frozenset({"a", "b", "c"}))
    finally:
        for store in stores:
            store.close()
