"""
Issue 13: a first completion decides on the duplicate check's read and commits
only if the document is still as read (``transact_from``); anything that
changed in between sends it to a real transaction. Run on MemoryStore and on
the Firestore emulator (where the commit carries an update_time precondition).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from tracker_helpers import Holding

from pipeline_reliability import MemoryStore, Outcome, Snapshot, StoreUnavailableError
from pipeline_reliability.completion import CompletionResult, CompletionTracker, PhaseSpec
from pipeline_reliability.stores.firestore import FirestoreStore
from pipeline_reliability.testing import FakeClock

R = TypeVar("R")
DATE = "2026-01-31"
SPEC = PhaseSpec("phase3", {"a", "b", "c"})


class _Hold:
    """Stops the first ``transact_from`` after its decision, before the commit."""

    def __init__(self) -> None:
        self.inside = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def wrap(self, fn: Callable[[Snapshot], Outcome[R]]) -> Callable[[Snapshot], Outcome[R]]:
        self.calls += 1
        if self.calls > 1:
            return fn

        def held(snap: Snapshot) -> Outcome[R]:
            outcome = fn(snap)
            self.inside.set()
            assert self.release.wait(timeout=60), "test never released the commit"
            return outcome

        return held


class HoldingMemory(MemoryStore):
    """A MemoryStore whose first optimistic attempt waits before committing."""

    hold: _Hold

    def transact_from(
        self, first: Snapshot, fn: Callable[[Snapshot], Outcome[R]], *,
        timeout: float | None = None,
    ) -> R:
        return super().transact_from(first, self.hold.wrap(fn), timeout=timeout)


class HoldingFirestore(FirestoreStore):
    """A FirestoreStore whose first optimistic attempt waits before committing."""

    hold: _Hold

    def transact_from(
        self, first: Snapshot, fn: Callable[[Snapshot], Outcome[R]], *,
        timeout: float | None = None,
    ) -> R:
        return super().transact_from(first, self.hold.wrap(fn), timeout=timeout)


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.memory),
        pytest.param("firestore", marks=pytest.mark.firestore),
    ]
)
def stores(request: pytest.FixtureRequest, fake_clock: FakeClock) -> Iterator[list[Any]]:
    """Two instances' stores on one backend: [holding, plain]."""
    if request.param == "memory":
        holding = HoldingMemory(clock=fake_clock)
        holding.hold = _Hold()
        # One shared document space: the plain instance is the same store, unheld.
        plain = MemoryStore.__new__(MemoryStore)
        plain.__dict__.update(holding.__dict__)
        yield [holding, plain]
        return
    project = request.getfixturevalue("firestore_project")
    held = HoldingFirestore(project=project)
    held.hold = _Hold()
    other = FirestoreStore(project=project)
    yield [held, other]
    held.close()
    other.close()


def _tracker(store: Any, owner: str) -> CompletionTracker:
    return CompletionTracker(store, [SPEC], owner=owner)


def test_item_b_a_duplicate_committed_while_a_first_completion_is_in_flight_counts_once(
    stores: list[Any],
) -> None:
    """
    Instance 1 read the document, decided to count the last processor and to
    claim the trigger, and has not committed. Instance 2 gets the same
    delivery, reads the same version and commits first. Instance 1's
    conditional commit then fails, its transaction sees the delivery recorded:
    one count, one trigger, and instance 1 reports a duplicate.
    """
    holding, plain = stores
    setup = _tracker(plain, "i0")
    setup.record_completion("phase3", DATE, "a", execution_id="ra")
    setup.record_completion("phase3", DATE, "b", execution_id="rb")
    slow, fast = _tracker(holding, "i1"), _tracker(plain, "i2")

    with ThreadPoolExecutor(max_workers=1) as pool:
        late = pool.submit(
            slow.record_completion, "phase3", DATE, "c", execution_id="rc", message_id="mc"
        )
        assert holding.hold.inside.wait(timeout=60)
        early = fast.record_completion("phase3", DATE, "c", execution_id="rc", message_id="mc")
        holding.hold.release.set()
        results: list[CompletionResult] = [early, late.result(timeout=120)]

    assert (early.counted, early.duplicate) == (True, False)
    assert early.trigger is not None
    assert (results[1].counted, results[1].duplicate, results[1].trigger) == (False, True, None)
    status = setup.status("phase3", DATE)
    assert (status.count, status.completed) == (3, frozenset({"a", "b", "c"}))
    assert holding.stats.conflicts >= 1


def test_item_b_a_different_write_in_between_is_not_lost(stores: list[Any]) -> None:
    """Another processor's completion lands between the read and the commit: both count."""
    holding, plain = stores
    slow, fast = _tracker(holding, "i1"), _tracker(plain, "i2")

    with ThreadPoolExecutor(max_workers=1) as pool:
        late = pool.submit(slow.record_completion, "phase3", DATE, "a", execution_id="ra")
        assert holding.hold.inside.wait(timeout=60)
        early = fast.record_completion("phase3", DATE, "b", execution_id="rb")
        holding.hold.release.set()
        result = late.result(timeout=120)

    assert (early.counted, result.counted) == (True, True)
    status = fast.status("phase3", DATE)
    assert (status.count, status.completed) == (2, frozenset({"a", "b"}))


class Deciding(FirestoreStore):
    """Signals when its first optimistic attempt has decided (and goes on to commit)."""

    decided: threading.Event

    def transact_from(
        self, first: Snapshot, fn: Callable[[Snapshot], Outcome[R]], *,
        timeout: float | None = None,
    ) -> R:
        def deciding(snap: Snapshot) -> Outcome[R]:
            outcome = fn(snap)
            self.decided.set()
            return outcome

        return super().transact_from(first, deciding, timeout=timeout)


class LostMemory(MemoryStore):
    """Commits the optimistic attempt, then loses its response once."""

    def transact_from(
        self, first: Snapshot, fn: Callable[[Snapshot], Outcome[R]], *,
        timeout: float | None = None,
    ) -> R:
        super().transact_from(first, fn, timeout=timeout)
        raise StoreUnavailableError("response lost", maybe_committed=True)


def test_item_b_a_lost_commit_response_is_retried_as_a_transaction_and_counted_once(
    fake_clock: FakeClock,
) -> None:
    """The retry finds its own write id: reported counted, stored once, not degraded."""
    store = LostMemory(clock=fake_clock)
    tracker = CompletionTracker(store, [SPEC], clock=fake_clock, owner="i1")
    result = tracker.record_completion("phase3", DATE, "a", execution_id="ra")
    assert (result.counted, result.duplicate, result.degraded) == (True, False, False)
    assert tracker.status("phase3", DATE).count == 1
    doc = store.dump()[SPEC.collection][DATE]
    assert doc["processors"]["a"]["runs"] == 1


def test_item_b_first_completion_reads_once(fake_clock: FakeClock) -> None:
    """The duplicate check's read is the transaction's first attempt: 1 read, not 2."""
    store = MemoryStore(clock=fake_clock)
    tracker = CompletionTracker(store, [SPEC], clock=fake_clock, owner="i1")
    store.reset_stats()
    assert tracker.record_completion("phase3", DATE, "a", execution_id="ra").counted
    stats = store.stats
    assert (stats.reads, stats.writes, stats.transactions) == (1, 1, 1)


@pytest.mark.firestore
def test_item_b_a_conditional_commit_during_another_instances_transaction_counts_once(
    firestore_project: str,
) -> None:
    """
    Must show (issue 13), with the new first attempt: instance 1 is inside a
    real Firestore transaction on the document (it read, decided to count the
    last processor and claim the trigger, and has not committed); instance 2
    gets the same delivery, and its conditional commit meets that transaction.
    Whatever the order Firestore picks, the processor counts once and the
    trigger is claimed once.
    """
    conditional = Deciding(project=firestore_project)
    conditional.decided = threading.Event()
    stores = [FirestoreStore(project=firestore_project) for _ in range(2)] + [conditional]
    try:
        setup_store, in_tx, _ = stores
        holding = Holding(in_tx)
        setup = _tracker(setup_store, "i0")
        setup.record_completion("phase3", DATE, "a", execution_id="ra")
        setup.record_completion("phase3", DATE, "b", execution_id="rb")
        slow, fast = _tracker(holding, "i1"), _tracker(conditional, "i2")

        with ThreadPoolExecutor(max_workers=2) as pool:
            held = pool.submit(
                slow.record_completion, "phase3", DATE, "c", execution_id="rc", message_id="mc"
            )
            assert holding.inside.wait(timeout=60)
            other = pool.submit(
                fast.record_completion, "phase3", DATE, "c", execution_id="rc", message_id="mc"
            )
            # Instance 2 decided on the same version and is committing into the
            # held transaction (the emulator makes it wait for the lock).
            assert conditional.decided.wait(timeout=60)
            time.sleep(0.5)
            holding.release.set()
            results = [held.result(timeout=120), other.result(timeout=120)]

        assert [r.counted for r in results].count(True) == 1
        assert [r.duplicate for r in results].count(True) == 1
        assert len([r for r in results if r.trigger is not None]) == 1
        status = setup.status("phase3", DATE)
        assert (status.count, status.completed) == (3, frozenset({"a", "b", "c"}))
    finally:
        for store in stores:
            store.close()
