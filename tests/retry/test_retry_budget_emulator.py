"""
Must show (issue 12): "a retry budget caps the extra load during an outage",
on the Firestore emulator.

200 calls read a real document through ``FaultyStore`` put in an outage.
Without a budget every call makes its 5 attempts (5x the load); with
``budget=0.2`` the attempts reaching the store stay within 1.2x the calls
(the floor of 10 retries per window is below 20 % of 200 calls, so it adds
nothing here). After the outage the same calls succeed at once, and once
their successes have earned retries again a transient error is retried as
usual. Testing mode removes the sleeps; the budget's window runs on a FakeClock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from pipeline_reliability.errors import RetryBudgetExhaustedError, RetryExhaustedError
from pipeline_reliability.retry import RetryBudget, RetryPolicy, set_testing
from pipeline_reliability.stores import FirestoreStore, Outcome, Put, Snapshot
from pipeline_reliability.testing import FakeClock, Fault, FaultyStore, StoreWrapper

pytestmark = pytest.mark.firestore

R = TypeVar("R")
CALLS = 200
ATTEMPTS = 5
RATIO = 0.2
DOC = ("budget-demo", "config")


class CountingStore(StoreWrapper):
    """Counts every operation that reaches the wrapped store (the dependency's load)."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self._lock = threading.Lock()
        self.operations = 0

    def get(self, collection: str, key: str, *, timeout: float | None = None) -> Snapshot:
        with self._lock:
            self.operations += 1
        return super().get(collection, key, timeout=timeout)

    def transact(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        with self._lock:
            self.operations += 1
        return super().transact(collection, key, fn, timeout=timeout)


@pytest.fixture
def dependency(firestore_store: FirestoreStore) -> Iterator[tuple[FaultyStore, CountingStore]]:
    """A seeded document behind a fault injector, behind a counter of what reaches it."""
    firestore_store.transact(*DOC, lambda snap: Outcome(result=None, write=Put({"answer": 42})))
    faulty = FaultyStore(firestore_store)
    with set_testing(True):
        yield faulty, CountingStore(faulty)


def _read(store: CountingStore) -> int:
    snap = store.get(*DOC, timeout=10.0)
    assert snap.data is not None
    answer: int = snap.data["answer"]
    return answer


def _run_calls(policy: RetryPolicy, store: CountingStore, calls: int) -> dict[str, int]:
    """``calls`` concurrent reads through ``policy``; how each ended."""

    def one(_: int) -> str:
        try:
            assert policy.call(_read, store) == 42
        except RetryBudgetExhaustedError:
            return "refused"
        except RetryExhaustedError:
            return "exhausted"
        return "ok"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(one, range(calls), timeout=120))
    return {kind: outcomes.count(kind) for kind in ("ok", "exhausted", "refused")}


def test_item3_a_retry_budget_caps_the_extra_load_during_an_outage(
    dependency: tuple[FaultyStore, CountingStore],
) -> None:
    """200 calls in an outage: 1000 attempts without a budget, at most 240 with budget=0.2."""
    faulty, counted = dependency
    clock = FakeClock()
    unbudgeted = RetryPolicy(attempts=ATTEMPTS, deadline=None, clock=clock)
    budget = RetryBudget(ratio=RATIO)  # floor: 1 retry/s x 10 s = 10 retries per window
    budgeted = RetryPolicy(attempts=ATTEMPTS, deadline=None, clock=clock, budget=budget)

    with faulty.outage():
        without = _run_calls(unbudgeted, counted, CALLS)
        load_without = counted.operations
        counted.operations = 0
        with_budget = _run_calls(budgeted, counted, CALLS)
        load_with = counted.operations

    assert without == {"ok": 0, "exhausted": CALLS, "refused": 0}
    assert load_without == ATTEMPTS * CALLS  # 5x: every call made every attempt
    floor = int(budget.min_per_second * budget.window)
    assert CALLS < load_with <= CALLS + max(RATIO * CALLS, floor)  # <= 1.2x the calls
    assert load_with / CALLS <= 1.2
    assert with_budget["refused"] > 0.9 * CALLS  # most calls failed fast, after one attempt
    assert budget.usage(clock.monotonic()) == (CALLS, load_with - CALLS)

    # After the outage: calls succeed at once, one attempt each...
    counted.operations = 0
    assert _run_calls(budgeted, counted, 20) == {"ok": 20, "exhausted": 0, "refused": 0}
    assert counted.operations == 20
    # ...and earn retries again: 0.2 x 220 calls = 44 > the 40 retries spent, so an
    # isolated transient error is retried as usual.
    faulty.fail_next(Fault.UNAVAILABLE)
    counted.operations = 0
    assert budgeted.call(_read, counted) == 42
    assert counted.operations == 2
