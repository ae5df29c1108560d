"""AsyncFaultyStore: FaultyStore's plan and faults around an AsyncStateStore; hangs awaited."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest

from pipeline_reliability import (
    AsyncMemoryStore,
    AsyncStateStore,
    MemoryStore,
    Outcome,
    Put,
    ReliabilityError,
    Snapshot,
    StoreConflictError,
    StoreStats,
    StoreUnavailableError,
)
from pipeline_reliability.testing import AsyncFaultyStore, AsyncStoreWrapper, Fault, FaultyStore

C = "docs"
T = TypeVar("T")


def _inc(snap: Snapshot) -> Outcome[int]:
    value = (snap.data or {}).get("n", 0) + 1
    return Outcome(value, Put({"n": value}))


def _run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def _n(store: MemoryStore) -> int | None:
    data = store.get(C, "d").data
    return None if data is None else int(data["n"])


@pytest.fixture
def inner() -> MemoryStore:
    """The sync store the async one shares documents with (read directly by the tests)."""
    return MemoryStore()


@pytest.fixture
def store(inner: MemoryStore) -> AsyncFaultyStore:
    """An AsyncFaultyStore around an AsyncMemoryStore over ``inner``."""
    return AsyncFaultyStore(AsyncMemoryStore(store=inner))


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.UNAVAILABLE, StoreUnavailableError),
        (Fault.DEADLINE_EXCEEDED, StoreUnavailableError),
        (Fault.CONTENTION, StoreConflictError),
    ],
)
def test_failing_faults_apply_nothing(
    inner: MemoryStore, fault: Fault, error: type[ReliabilityError]
) -> None:
    """UNAVAILABLE, DEADLINE_EXCEEDED and CONTENTION raise and leave the store untouched."""
    store = AsyncFaultyStore(AsyncMemoryStore(store=inner), plan={0: fault})
    with pytest.raises(error) as info:
        _run(store.transact(C, "d", _inc))
    assert _n(inner) is None
    assert getattr(info.value, "maybe_committed", False) is False
    assert store.injected == [(0, "transact", fault)]


def test_lost_response_applies_the_write_then_fails(
    store: AsyncFaultyStore, inner: MemoryStore
) -> None:
    """LOST_RESPONSE commits, then raises StoreUnavailableError(maybe_committed=True)."""
    store.fail_next(Fault.LOST_RESPONSE, times=2)
    with pytest.raises(StoreUnavailableError) as info:
        _run(store.transact(C, "d", _inc))
    assert info.value.maybe_committed is True
    with pytest.raises(StoreUnavailableError):
        _run(store.get(C, "d"))
    assert inner.stats.reads == 2  # the transaction's read and the get: both applied
    assert _n(inner) == 1


def test_aborted_reruns_the_callback_and_writes_once(
    store: AsyncFaultyStore, inner: MemoryStore
) -> None:
    """ABORTED discards the first attempt's decision; the callback runs again, commits once."""
    seen: list[dict[str, Any] | None] = []

    def decide(snap: Snapshot) -> Outcome[int]:
        seen.append(snap.data)
        return _inc(snap)

    store.fail_next(Fault.ABORTED)
    assert _run(store.transact(C, "d", decide)) == 1
    assert seen == [None, None]
    assert inner.stats.writes == 1
    store.fail_next(Fault.ABORTED)
    with pytest.raises(StoreUnavailableError):
        _run(store.get(C, "d"))  # a get cannot be aborted: unavailable


def test_item5_the_plan_is_faulty_stores_own() -> None:
    """Same seed and probability: the async twin injects exactly what FaultyStore injects."""
    sync = FaultyStore(MemoryStore(), probability=0.3, seed=7)
    twin = AsyncFaultyStore(AsyncMemoryStore(), probability=0.3, seed=7)

    async def drive() -> None:
        for _ in range(100):
            with contextlib.suppress(StoreUnavailableError, StoreConflictError):
                await twin.transact(C, "d", _inc)

    for _ in range(100):
        with contextlib.suppress(StoreUnavailableError, StoreConflictError):
            sync.transact(C, "d", _inc)
    asyncio.run(drive())

    assert sync.injected == twin.injected
    assert 10 < len(twin.injected) < 60
    with pytest.raises(ValueError, match="probability"):
        AsyncFaultyStore(AsyncMemoryStore(), probability=1.5)


def test_outage_and_operations_filter(store: AsyncFaultyStore) -> None:
    """Inside outage() every transact fails; operations=("transact",) spares reads."""
    spared = AsyncFaultyStore(store.inner, operations=("transact",))

    async def main() -> None:
        with store.outage(), spared.outage():
            with pytest.raises(StoreUnavailableError):
                await store.get(C, "d")
            assert (await spared.get(C, "d")).data is None
            with pytest.raises(StoreUnavailableError):
                await spared.transact(C, "d", _inc)
        assert await store.transact(C, "d", _inc) == 1

    asyncio.run(main())


def test_item5_a_hang_awaits_the_callers_timeout_without_blocking_the_loop(
    store: AsyncFaultyStore, inner: MemoryStore
) -> None:
    """A hang ends at the call's timeout with StoreUnavailableError; other tasks run meanwhile."""
    store.hang_next()

    async def main() -> tuple[float, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        beat = asyncio.create_task(ticker())
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="hang") as info:
            await store.transact(C, "d", _inc, timeout=0.2)
        elapsed = time.monotonic() - started
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
        assert info.value.maybe_committed is False
        return elapsed, ticks

    elapsed, ticks = asyncio.run(main())

    assert 0.19 <= elapsed < 5
    assert ticks >= 5  # the loop kept running during the hang
    assert _n(inner) is None
    assert store.hangs == [(0, "transact")]
    assert store.hanging == 0


def test_a_hang_without_a_timeout_uses_hang_timeout(inner: MemoryStore) -> None:
    """A call that gives no timeout hangs for the wrapper's hang_timeout."""
    store = AsyncFaultyStore(AsyncMemoryStore(store=inner), hang_timeout=0.05)
    store.hang_next()
    with pytest.raises(StoreUnavailableError, match="hang"):
        _run(store.get(C, "d"))


def test_release_hangs_from_another_thread_ends_the_hang_at_once(store: AsyncFaultyStore) -> None:
    """release_hangs() (here from a thread) frees an awaiting call; wait_hanging() sees it."""

    async def main() -> tuple[float, bool]:
        with store.outage(hang=True):
            call = asyncio.create_task(store.get(C, "d", timeout=60))
            assert await store.wait_hanging(1, timeout=10)
            assert store.hanging == 1
            started = time.monotonic()
            releaser = threading.Thread(target=store.release_hangs)
            releaser.start()
            with pytest.raises(StoreUnavailableError):
                await call
            releaser.join(timeout=10)
            elapsed = time.monotonic() - started
            none_left = not await store.wait_hanging(1, timeout=0.05)
            with pytest.raises(StoreUnavailableError):
                await store.get(C, "d", timeout=0.02)  # a later call hangs again
        return elapsed, none_left

    elapsed, none_left = asyncio.run(main())
    assert elapsed < 5
    assert none_left
    assert store.hanging == 0


def test_cancelling_a_hanging_task_ends_its_hang(store: AsyncFaultyStore) -> None:
    """A cancelled hang raises CancelledError and is no longer counted as hanging."""

    async def main() -> None:
        store.hang_next()
        call = asyncio.create_task(store.transact(C, "d", _inc, timeout=60))
        assert await store.wait_hanging(1, timeout=10)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    asyncio.run(main())
    assert store.hanging == 0


def test_stats_pass_through_and_it_is_an_async_state_store(
    store: AsyncFaultyStore, inner: MemoryStore
) -> None:
    """stats and reset_stats are the wrapped store's; both wrappers satisfy AsyncStateStore."""
    assert _run(store.transact(C, "d", _inc, timeout=1.0)) == 1
    assert store.stats == inner.stats == StoreStats(reads=1, writes=1, transactions=1)
    store.reset_stats()
    assert inner.stats == StoreStats()
    assert isinstance(store, AsyncStateStore)
    assert isinstance(AsyncStoreWrapper(store), AsyncStateStore)
    with pytest.raises(ReliabilityError):
        _run(store.get(C, "d", timeout=-1))  # the timeout reaches the inner store
