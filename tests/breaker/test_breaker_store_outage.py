"""
A store that does not answer (issue 10, item 5): every store call the breaker
makes has its own short deadline, the back-off after a failure counts from the
end of the failed call, and while one thread waits on the store the others
serve from the cached view without waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from breaker_helpers import MakeBreaker, ok

from pipeline_reliability import ConfigurationError, MemoryStore, StoreUnavailableError
from pipeline_reliability.breaker import CircuitBreaker
from pipeline_reliability.stores import Outcome, Snapshot
from pipeline_reliability.testing import FakeClock, FaultyStore, StoreWrapper

R = TypeVar("R")


class TimeoutSpy(StoreWrapper):
    """Remembers the ``timeout`` of every call."""

    def __init__(self, inner: MemoryStore) -> None:
        super().__init__(inner)
        self.timeouts: list[tuple[str, float | None]] = []

    def get(self, collection: str, key: str, *, timeout: float | None = None) -> Snapshot:
        """Read, remembering the deadline."""
        self.timeouts.append(("get", timeout))
        return super().get(collection, key, timeout=timeout)

    def transact(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        """Transact, remembering the deadline."""
        self.timeouts.append(("transact", timeout))
        return super().transact(collection, key, fn, timeout=timeout)


class SlowFailingStore(StoreWrapper):
    """Every call takes ``seconds`` of the fake clock, then fails as a deadline does."""

    def __init__(self, inner: MemoryStore, clock: FakeClock, seconds: float) -> None:
        super().__init__(inner)
        self.clock, self.seconds, self.calls = clock, seconds, 0

    def get(self, collection: str, key: str, *, timeout: float | None = None) -> Snapshot:
        """Hang for ``seconds``, then fail."""
        self.calls += 1
        self.clock.advance(self.seconds)
        raise StoreUnavailableError("deadline exceeded")


def test_item5_every_store_call_on_the_call_path_carries_the_store_timeout(
    make_breaker: MakeBreaker, memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """Reads, trips, elections and probe verdicts pass store_timeout (default 250 ms)."""
    spy = TimeoutSpy(memory_store)
    breaker = make_breaker("a", spy, failure_threshold=1, cache_ttl=0)
    breaker.call(ok)
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)  # trips
    fake_clock.advance(30)
    breaker.call(ok)  # elected, probe succeeds

    operations = {op for op, _ in spy.timeouts}
    assert operations == {"get", "transact"}
    assert {t for _, t in spy.timeouts} == {0.25}
    assert breaker.config.store_timeout == 0.25


def test_store_timeout_is_an_option(make_breaker: MakeBreaker, memory_store: MemoryStore) -> None:
    """store_timeout takes a timedelta or seconds and is passed as seconds."""
    spy = TimeoutSpy(memory_store)
    breaker = make_breaker("a", spy, cache_ttl=0, store_timeout=timedelta(milliseconds=40))
    breaker.call(ok)
    assert spy.timeouts == [("get", 0.04)]


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "1", True, 2.5e11])
def test_store_timeout_is_validated(memory_store: MemoryStore, bad: Any) -> None:
    """A store_timeout that cannot work is refused when the breaker is built."""
    with pytest.raises(ConfigurationError):
        CircuitBreaker("x", memory_store, store_timeout=bad)


def test_operator_actions_use_the_stores_own_deadline(
    make_breaker: MakeBreaker, memory_store: MemoryStore
) -> None:
    """force_open / status(refresh=True) are not on a caller's hot path: timeout=None."""
    spy = TimeoutSpy(memory_store)
    breaker = make_breaker("a", spy)
    breaker.force_open()
    breaker.status(refresh=True)
    assert spy.timeouts == [("transact", None), ("get", None)]


def test_item5_the_back_off_counts_from_the_end_of_the_failed_call(
    make_breaker: MakeBreaker, memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """A read that hangs 3 s then fails: the store is left alone for cache_ttl after that."""
    slow = SlowFailingStore(memory_store, fake_clock, seconds=3)
    breaker = make_breaker("a", slow, cache_ttl=5)

    assert breaker.call(ok) == "ok"  # t=0..3: the read hangs, fails; fail_open serves
    assert slow.calls == 1
    fake_clock.advance(4.9)  # t=7.9: 4.9 s after the failure ended
    assert breaker.call(ok) == "ok"
    assert slow.calls == 1, "the back-off must run one cache_ttl from the END of the failure"
    fake_clock.advance(0.1)  # t=8.0: exactly cache_ttl after the failure
    breaker.call(ok)
    assert slow.calls == 2


def test_item5_other_threads_serve_from_the_cached_view_while_one_refresh_hangs(
    memory_store: MemoryStore,
) -> None:
    """
    With real threads and a store that hangs: while one thread's refresh is
    blocked on the store, the instance's other threads complete their calls.
    """
    store = FaultyStore(memory_store)
    clock = FakeClock()
    breaker = CircuitBreaker(
        "hang", store, clock=clock, cache_ttl=5, store_timeout=30, instance_id="a"
    )
    assert breaker.call(ok) == "ok"  # a fresh CLOSED view
    clock.advance(5)  # the view is stale: the next call refreshes
    results: list[str] = []
    with store.outage(hang=True):
        refresher = threading.Thread(target=lambda: results.append(breaker.call(ok)))
        refresher.start()
        try:
            assert store.wait_hanging(1, timeout=10), "the refresh never reached the store"
            others = [threading.Thread(target=lambda: results.append(breaker.call(ok)))
                      for _ in range(8)]
            started = time.monotonic()
            for thread in others:
                thread.start()
            for thread in others:
                thread.join(timeout=10)
            elapsed = time.monotonic() - started
            assert not any(t.is_alive() for t in others), "a call waited on the hanging store"
            assert results == ["ok"] * 8
            assert store.hanging == 1  # still only the refresher waits on the store
            assert elapsed < 5
        finally:
            store.release_hangs()
            refresher.join(timeout=10)
    assert not refresher.is_alive()
    assert results == ["ok"] * 9
    assert breaker.status().store_error is not None


def test_item5_a_hanging_store_costs_the_refreshing_call_at_most_store_timeout(
    memory_store: MemoryStore,
) -> None:
    """FaultyStore hangs until the breaker's deadline: one call pays it, then back-off."""
    store = FaultyStore(memory_store)
    breaker = CircuitBreaker("hang", store, cache_ttl=60, store_timeout=0.05, instance_id="a")
    with store.outage(hang=True):
        started = time.monotonic()
        assert breaker.call(ok) == "ok"
        first = time.monotonic() - started
        started = time.monotonic()
        for _ in range(100):
            breaker.call(ok)
        rest = time.monotonic() - started
    assert 0.04 <= first < 2.0
    assert rest < 0.5
