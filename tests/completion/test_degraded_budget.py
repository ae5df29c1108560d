"""
The degraded path's latency is bounded by a configured budget (issue 10, item 15).

A store that never answers costs each call its timeout; so does a BigQuery
ledger that never answers. Time is a FakeClock, moved by the black holes and
by the retry sleeps (testing mode is switched off here so the sleeps count).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from pipeline_reliability import MemoryStore
from pipeline_reliability.completion import CompletionTracker, MemoryLedger, PhaseSpec
from pipeline_reliability.errors import (
    CompletionNotRecordedError,
    ConfigurationError,
    SinkUnavailableError,
    StoreUnavailableError,
)
from pipeline_reliability.retry import RetryPolicy, set_testing
from pipeline_reliability.sinks.ledger import BigQueryLedger
from pipeline_reliability.stores import Outcome, Snapshot
from pipeline_reliability.testing import FakeClock, StoreWrapper

R = TypeVar("R")
SPEC = PhaseSpec("phase3", {"a", "b"})
DATE = "2026-01-31"


@pytest.fixture(autouse=True)
def _sleeps_count() -> Iterator[None]:
    with set_testing(False):
        yield


class BlackHoleStore(StoreWrapper):
    """Every call hangs for its deadline (the caller's timeout, else the store's), then fails."""

    def __init__(self, clock: FakeClock, call_timeout: float) -> None:
        super().__init__(MemoryStore(clock=clock))
        self.clock = clock
        self.call_timeout = call_timeout
        self.calls = 0

    def _hang(self, timeout: float | None) -> StoreUnavailableError:
        self.calls += 1
        self.clock.advance(self.call_timeout if timeout is None else min(timeout,
                                                                        self.call_timeout))
        return StoreUnavailableError("deadline exceeded (black-holed store)")

    def get(self, collection: str, key: str, *, timeout: float | None = None) -> Snapshot:
        raise self._hang(timeout)

    def transact(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        raise self._hang(timeout)


class BlackHoleBigQuery:
    """A BigQuery client whose inserts hang for their whole timeout, then drop."""

    project = "proj"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.timeouts: list[float] = []

    def insert_rows_json(self, table: str, rows: list[Any], **kwargs: Any) -> list[Any]:
        self.timeouts.append(kwargs["timeout"])
        self.clock.advance(kwargs["timeout"])
        raise ConnectionError("connection reset after the timeout")


def _ledger(clock: FakeClock, deadline: float, timeout: float = 30.0) -> BigQueryLedger:
    retry = RetryPolicy(attempts=50, deadline=deadline, initial=0.5, maximum=4.0, clock=clock)
    return BigQueryLedger("ds.completion_ledger", BlackHoleBigQuery(clock), retry=retry,
                          timeout=timeout)


def test_item15_degraded_completion_is_bounded_by_the_budget() -> None:
    """Store and ledger both black-holed: the call ends within the stated worst case."""
    clock = FakeClock()
    store = BlackHoleStore(clock, call_timeout=3.0)
    tracker = CompletionTracker(
        store, [SPEC], ledger=_ledger(clock, deadline=10.0), clock=clock, store_deadline=10.0
    )
    start = clock.monotonic()

    with pytest.raises(CompletionNotRecordedError):
        tracker.record_completion("phase3", DATE, "a", execution_id="r1")

    # store_deadline + the ledger's deadline: no store call outlives the budget
    assert clock.monotonic() - start <= 10.0 + 10.0
    assert store.calls >= 2  # the budget was used for retries, not one long wait


def test_item15_ledger_append_never_outlives_its_deadline() -> None:
    """A 30 s request timeout is cut to what is left of a 10 s deadline."""
    clock = FakeClock()
    ledger = _ledger(clock, deadline=10.0, timeout=30.0)
    tracker = CompletionTracker(
        BlackHoleStore(clock, 1.0), [SPEC], ledger=ledger, clock=clock, store_deadline=1.0
    )
    start = clock.monotonic()

    with pytest.raises(CompletionNotRecordedError) as info:
        tracker.record_completion("phase3", DATE, "a", execution_id="r1")

    assert isinstance(info.value.__cause__, SinkUnavailableError)
    assert clock.monotonic() - start <= 1.0 + 10.0


@pytest.mark.parametrize("call_timeout", [0.1, 2.0, 9.99, 10.0, 25.0])
@pytest.mark.parametrize("store_deadline", [0.5, 10.0, timedelta(seconds=4)])
def test_degraded_to_a_working_ledger_within_the_store_budget(
    call_timeout: float, store_deadline: float | timedelta
) -> None:
    """With a ledger that works, a degraded result costs at most the store's share."""
    clock = FakeClock()
    budget = (
        store_deadline.total_seconds()
        if isinstance(store_deadline, timedelta)
        else store_deadline
    )
    tracker = CompletionTracker(
        BlackHoleStore(clock, call_timeout),
        [SPEC],
        ledger=MemoryLedger(),
        clock=clock,
        store_deadline=store_deadline,
    )
    start = clock.monotonic()

    result = tracker.record_completion("phase3", DATE, "a", execution_id="r1")

    assert result.degraded
    assert tracker.store_deadline == budget
    assert clock.monotonic() - start <= budget


def test_store_deadline_caps_a_longer_retry_policy() -> None:
    """An explicit store_deadline wins over a retry policy with a longer (or no) deadline."""
    clock = FakeClock()
    store = BlackHoleStore(clock, 1.0)
    tracker = CompletionTracker(
        store,
        [SPEC],
        ledger=MemoryLedger(),
        clock=clock,
        retry=RetryPolicy(attempts=1000, deadline=None, clock=clock),
        store_deadline=5.0,
    )

    tracker.record_completion("phase3", DATE, "a", execution_id="r1")

    assert clock.monotonic() <= 5.0 + 1.0
    assert tracker.store_deadline == 5.0


def test_default_budget_follows_the_retry_policy_else_ten_seconds() -> None:
    """Without store_deadline: the given policy's deadline, else 10 s."""
    store = MemoryStore()

    assert CompletionTracker(store, [SPEC]).store_deadline == 10.0
    given = CompletionTracker(store, [SPEC], retry=RetryPolicy(deadline=3.0))
    assert given.store_deadline == 3.0


@pytest.mark.parametrize(
    "value", [0, -1, float("nan"), float("inf"), 10**400, timedelta.max, True, "10", []]
)
def test_store_deadline_must_be_a_sane_duration(value: object) -> None:
    """Anything but a positive, finite, bounded duration is a ConfigurationError."""
    with pytest.raises(ConfigurationError):
        CompletionTracker(MemoryStore(), [SPEC], store_deadline=value)  # type: ignore[arg-type]


def test_retry_must_be_a_policy() -> None:
    """A retry that is not a RetryPolicy is refused when the tracker is built."""
    with pytest.raises(ConfigurationError):
        CompletionTracker(MemoryStore(), [SPEC], retry=3)  # type: ignore[arg-type]
