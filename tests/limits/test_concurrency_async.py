"""AsyncConcurrencyLimit passes the sync limit's scenarios, on AsyncMemoryStore + FakeClock."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from pipeline_reliability import AsyncMemoryStore, MemoryStore
from pipeline_reliability.errors import SlotLostError, SlotNotAcquiredError, StoreUnavailableError
from pipeline_reliability.limits import AsyncConcurrencyLimit, ConcurrencyLimit, SlotEvent
from pipeline_reliability.testing import FakeClock

LEASE = 30.0
US = timedelta(microseconds=1)


def make(store: AsyncMemoryStore, owner: str, **options: Any) -> AsyncConcurrencyLimit:
    options.setdefault("limit", 2)
    options.setdefault("lease", LEASE)
    options.setdefault("clock", store.clock)
    return AsyncConcurrencyLimit("merge:ds.table", store, owner=owner, **options)


@pytest.fixture
def astore(memory_store: MemoryStore) -> AsyncMemoryStore:
    return AsyncMemoryStore(store=memory_store)


def test_async_uncontended_acquire_and_release_cost_two_store_operations(
    astore: AsyncMemoryStore,
) -> None:
    limit = make(astore, "a")

    async def main() -> None:
        astore.reset_stats()
        async with limit.slot() as slot:
            assert slot.held

    asyncio.run(main())
    assert (astore.stats.transactions, astore.stats.writes) == (2, 2)
    assert astore.dump() == {}


def test_async_n_plus_5_tasks_across_3_instances_never_exceed_n(
    astore: AsyncMemoryStore, fake_clock: FakeClock
) -> None:
    """Checked from inside the critical section with a shared counter."""
    n = 3
    # Each instance waits on a clock of its own: were every task's backoff to move
    # the store's clock, eight waiters would age each other's tickets eight times
    # faster than real time. The store's time moves only inside the critical section.
    limits = [make(astore, f"instance-{i}", limit=n, clock=FakeClock()) for i in range(3)]
    inside, peak, done = 0, 0, 0

    async def worker(index: int) -> None:
        nonlocal inside, peak, done
        for _ in range(3):
            async with limits[index % 3].slot(timeout=600):
                inside += 1
                peak = max(peak, inside)
                assert inside <= n
                for _ in range(3):
                    await asyncio.sleep(0)  # let the other tasks try meanwhile
                fake_clock.advance(0.01)
                inside -= 1
        done += 1

    async def main() -> None:
        await asyncio.gather(*(worker(i) for i in range(n + 5)))

    asyncio.run(main())
    assert done == n + 5
    assert peak == n, "the limit was reached, never exceeded"
    assert astore.dump() == {}


def test_async_a_killed_holders_slot_returns_after_its_lease(astore: AsyncMemoryStore) -> None:
    clock = astore.clock
    assert isinstance(clock, FakeClock)

    async def main() -> float:
        await make(astore, "dead", limit=1).acquire()  # never released
        start = clock.monotonic()
        slot = await make(astore, "b", limit=1).acquire(timeout=LEASE + 5)
        assert slot.held
        return clock.monotonic() - start

    waited = asyncio.run(main())
    assert LEASE <= waited < LEASE + 1.0


@pytest.mark.parametrize(
    ("after", "free"),
    [(timedelta(seconds=LEASE) - US, False), (timedelta(seconds=LEASE), True)],
    ids=["one_microsecond_before_expiry_still_held", "exactly_at_expiry_reclaimable"],
)
def test_async_lease_expiry_boundary(
    astore: AsyncMemoryStore, fake_clock: FakeClock, after: timedelta, free: bool
) -> None:
    async def main() -> None:
        await make(astore, "a", limit=1).acquire()
        fake_clock.advance(after)
        other = make(astore, "b", limit=1)
        if free:
            assert (await other.acquire(timeout=0)).held
        else:
            with pytest.raises(SlotNotAcquiredError):
                await other.acquire(timeout=0)

    asyncio.run(main())


def test_async_timeout_release_renew_and_ensure_held(
    astore: AsyncMemoryStore, fake_clock: FakeClock
) -> None:
    events: list[SlotEvent] = []
    limit = make(astore, "a", limit=1)
    limit.add_listener(events.append)

    async def main() -> None:
        slot = await limit.acquire()
        with pytest.raises(SlotNotAcquiredError) as info:
            await limit.acquire(timeout=2)
        assert info.value.waited == pytest.approx(2.0)
        assert await slot.renew() == fake_clock.now() + timedelta(seconds=LEASE)
        await slot.ensure_held()
        fake_clock.advance(LEASE)
        with pytest.raises(SlotLostError):
            await slot.ensure_held()
        assert await slot.release() is False
        assert await slot.release() is False

    asyncio.run(main())
    assert [e.kind for e in events] == ["acquired", "timeout", "lost"]


def test_async_and_sync_holders_share_one_limit(
    memory_store: MemoryStore, astore: AsyncMemoryStore, fake_clock: FakeClock
) -> None:
    sync = ConcurrencyLimit("merge:ds.table", memory_store, limit=1, clock=fake_clock)
    held = sync.acquire()

    async def main() -> None:
        with pytest.raises(SlotNotAcquiredError):
            await make(astore, "a", limit=1).acquire(timeout=0)
        held.release()
        assert (await make(astore, "a", limit=1).acquire(timeout=0)).held

    asyncio.run(main())


def test_async_fairness_a_queued_waiter_is_served_before_a_later_one(
    astore: AsyncMemoryStore, fake_clock: FakeClock
) -> None:
    """FIFO: the waiter that queued first gets the next free slot."""
    order: list[str] = []

    async def main() -> None:
        holder = await make(astore, "h", limit=1).acquire()

        async def wait(owner: str) -> None:
            async with make(astore, owner, limit=1).slot(timeout=600):
                order.append(owner)
                await asyncio.sleep(0)

        first = asyncio.create_task(wait("first"))
        for _ in range(5):
            await asyncio.sleep(0)  # "first" takes its ticket
        second = asyncio.create_task(wait("second"))
        for _ in range(5):
            await asyncio.sleep(0)
        fake_clock.advance(1)
        await holder.release()
        await asyncio.gather(first, second)

    asyncio.run(main())
    assert order == ["first", "second"]


def test_async_store_failure_fails_closed_or_open(fake_clock: FakeClock) -> None:
    class Broken(AsyncMemoryStore):
        async def transact(self, *args: Any, **kwargs: Any) -> Any:
            raise StoreUnavailableError("down")

    broken = Broken(clock=fake_clock)

    async def main() -> None:
        with pytest.raises(StoreUnavailableError):
            await make(broken, "a").acquire()
        async with make(broken, "a", on_store_error="fail_open").slot() as slot:
            assert slot.bypassed

    asyncio.run(main())


def test_async_auto_renew_runs_as_a_task_and_stops_on_release() -> None:
    """Real time (a short lease): the renewal task keeps the slot past its first lease."""
    store = AsyncMemoryStore()
    limit = AsyncConcurrencyLimit("renewed", store, limit=1, lease=0.3, auto_renew=True)

    async def main() -> None:
        async with limit.slot() as slot:
            await asyncio.sleep(0.5)
            await slot.ensure_held()
        assert store.dump() == {}

    asyncio.run(main())


class _AnswerLost:
    """An async store whose first ``transact`` commits and then never answers (a lost response)."""

    def __init__(self, inner: AsyncMemoryStore) -> None:
        self.inner = inner
        self.committed = asyncio.Event()
        self.hung = False

    @property
    def clock(self) -> Any:
        return self.inner.clock

    @property
    def stats(self) -> Any:
        return self.inner.stats

    def reset_stats(self) -> None:
        self.inner.reset_stats()

    async def get(self, collection: str, key: str, *, timeout: float | None = None) -> Any:
        return await self.inner.get(collection, key, timeout=timeout)

    async def transact(
        self, collection: str, key: str, fn: Any, *, timeout: float | None = None
    ) -> Any:
        result = await self.inner.transact(collection, key, fn, timeout=timeout)
        if not self.hung:
            self.hung = True
            self.committed.set()
            await asyncio.Event().wait()  # the answer never comes: the caller is cancelled here
        return result


def test_item5_a_cancelled_acquire_whose_grant_committed_gives_the_slot_back(
    astore: AsyncMemoryStore,
) -> None:
    """
    A task cancelled after its grant committed (its answer in flight) does not
    keep the slot for the lease: the acquire gives it back before the
    cancellation propagates, so the next caller gets it at once.
    """
    lost = _AnswerLost(astore)
    limit = make(lost, "a", limit=1)  # type: ignore[arg-type]
    other = make(astore, "b", limit=1)

    async def main() -> bool:
        task = asyncio.create_task(limit.acquire(timeout=0))
        await lost.committed.wait()
        assert astore.sync.dump()["concurrency_limits"]["merge:ds.table"]["holders"]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        slot = await other.acquire(timeout=0)  # would raise SlotNotAcquiredError if leaked
        return await slot.release()

    assert asyncio.run(main()) is True
