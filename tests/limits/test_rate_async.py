"""AsyncAdaptiveRateLimiter: the same behaviour as the sync limiter, awaited, no threads."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from rate_helpers import FakeApi, ThrottledError

from pipeline_reliability import AsyncMemoryStore, MemoryStore, RateLimitTimeoutError
from pipeline_reliability.errors import (
    ConfigurationError,
    InvalidInputError,
    StoreUnavailableError,
)
from pipeline_reliability.limits import (
    AdaptiveRateLimiter,
    AsyncAdaptiveRateLimiter,
    RateLimiterEvent,
    RateStoreErrorEvent,
)
from pipeline_reliability.stores import Outcome, Snapshot, StoreStats
from pipeline_reliability.testing import FakeClock

R = TypeVar("R")


def test_item2_the_async_limiter_converges_under_a_fake_429_source(fake_clock: FakeClock) -> None:
    """Must show (async form): from 4x the capacity C the admitted rate settles around C."""
    capacity = 40
    api = FakeApi(fake_clock, capacity)

    async def main() -> None:
        limiter = AsyncAdaptiveRateLimiter(
            "scraper", rate=4 * capacity, min_rate=capacity / 10, cooldown=1.0, clock=fake_clock
        )
        while fake_clock.monotonic() < 200:
            with contextlib.suppress(ThrottledError):
                await limiter.call(api.acall)

    asyncio.run(main())
    late = [ok for at, ok in api.log if at >= 100]
    assert 0.5 * capacity <= sum(late) / 100 <= capacity + 1
    assert late.count(False) / len(late) < 0.05


def test_waits_advance_an_injected_clock(fake_clock: FakeClock) -> None:
    """At 8 calls/s, five acquires sleep 4 x 0.125 s on the FakeClock; a far token times out."""

    async def main() -> None:
        limiter = AsyncAdaptiveRateLimiter("api", rate=8, clock=fake_clock)
        for _ in range(5):
            await limiter.acquire()
        with pytest.raises(RateLimitTimeoutError):
            await limiter.acquire(timeout=0.125 - 1e-6)
        await limiter.acquire(timeout=0.125)

    asyncio.run(main())
    assert fake_clock.sleeps == [0.125] * 5


def test_waits_await_a_clocks_asleep_when_it_has_one() -> None:
    """A clock with an ``asleep`` coroutine is awaited instead of its blocking ``sleep``."""

    class AsyncClock(FakeClock):
        def __init__(self) -> None:
            super().__init__()
            self.awaited: list[float] = []

        async def asleep(self, seconds: float) -> None:
            self.awaited.append(seconds)
            self.advance(seconds)

    clock = AsyncClock()

    async def main() -> None:
        limiter = AsyncAdaptiveRateLimiter("api", rate=4, clock=clock)
        await limiter.acquire()
        await limiter.acquire()

    asyncio.run(main())
    assert clock.awaited == [0.25]
    assert clock.sleeps == []


def test_the_real_clock_waits_with_asyncio_sleep_and_uses_no_thread() -> None:
    """Without a clock, waits are ``asyncio.sleep``: other tasks run meanwhile, no thread."""
    ticks: list[float] = []

    async def ticker() -> None:
        for _ in range(5):
            ticks.append(time.monotonic())
            await asyncio.sleep(0.005)

    async def main() -> float:
        limiter = AsyncAdaptiveRateLimiter("api", rate=50)
        threads = threading.active_count()
        start = time.monotonic()
        task = asyncio.create_task(ticker())
        for _ in range(4):
            await limiter.acquire()
        await task
        assert threading.active_count() == threads
        return time.monotonic() - start

    elapsed = asyncio.run(main())
    assert elapsed >= 3 / 50 * 0.9
    assert len(ticks) == 5


def test_permit_call_and_decorator_learn_from_outcomes(fake_clock: FakeClock) -> None:
    """``async with permit()``, ``await call()`` and ``@limiter`` classify like the sync ones."""

    async def main() -> list[float]:
        limiter = AsyncAdaptiveRateLimiter(
            "api", rate=64, cooldown=1.0, burst=100, clock=fake_clock,
            throttled_result=lambda r: r == 429,
        )
        rates = []
        with pytest.raises(ThrottledError):
            async with limiter.permit():
                raise ThrottledError
        rates.append(limiter.rate)
        fake_clock.advance(1.0)

        @limiter
        async def fetch(code: int) -> int:
            return code

        assert await fetch(429) == 429
        rates.append(limiter.rate)
        fake_clock.advance(1.0)
        async with limiter.permit(timeout=1):
            pass
        rates.append(limiter.rate)
        return rates

    assert asyncio.run(main()) == [32.0, 16.0, 16.0 + 64 / 20]


def test_the_async_decorator_refuses_plain_functions() -> None:
    """A plain function under an async limiter would never be awaited: refused."""
    limiter = AsyncAdaptiveRateLimiter("api", rate=1)
    with pytest.raises(InvalidInputError):
        limiter(lambda: None)  # type: ignore[arg-type, return-value]


def test_sync_and_async_instances_share_one_budget(fake_clock: FakeClock) -> None:
    """A sync instance and an async one on the same MemoryStore split the fleet rate."""
    memory = MemoryStore(clock=fake_clock)
    sync = AdaptiveRateLimiter(
        "dml", rate=20, share=5, store=memory, instance_id="sync", clock=fake_clock
    )
    a = AsyncAdaptiveRateLimiter(
        "dml", rate=20, share=5, store=AsyncMemoryStore(store=memory), instance_id="async",
        clock=fake_clock,
    )

    async def main() -> None:
        for _ in range(3):
            sync.acquire()
            await a.acquire()
            fake_clock.advance(5)

    asyncio.run(main())
    assert (sync.rate, a.rate) == (10.0, 10.0)
    assert (sync.members, a.members) == (2, 2)


def test_an_async_store_failure_falls_back_without_blocking(fake_clock: FakeClock) -> None:
    """A failing heartbeat is an event and a fallback share, never an error of the call."""

    class DownStore:
        def __init__(self) -> None:
            self.calls: list[float | None] = []

        @property
        def stats(self) -> StoreStats:
            return StoreStats()

        def reset_stats(self) -> None:
            return None

        async def get(self, collection: str, key: str, *, timeout: float | None = None) -> Any:
            raise StoreUnavailableError("down")

        async def transact(
            self,
            collection: str,
            key: str,
            fn: Callable[[Snapshot], Outcome[R]],
            *,
            timeout: float | None = None,
        ) -> R:
            self.calls.append(timeout)
            raise StoreUnavailableError("down")

    store = DownStore()
    events: list[RateLimiterEvent] = []

    async def main() -> None:
        limiter = AsyncAdaptiveRateLimiter(
            "api", rate=10, min_rate=1, share=2, store=store, clock=fake_clock,
            store_timeout=0.5,
        )
        limiter.add_listener(events.append)
        for _ in range(4):  # at 1 call/s: t = 0, 1, 2, 3; heartbeats due at 0 and 2
            await limiter.acquire()
        assert limiter.rate == 1.0  # never saw the document: at most min_rate

    asyncio.run(main())
    assert store.calls == [0.5, 0.5]  # one heartbeat per period, bounded by store_timeout
    assert [type(e) for e in events] == [RateStoreErrorEvent, RateStoreErrorEvent]


def test_the_async_limiter_needs_an_async_store(memory_store: MemoryStore) -> None:
    """A sync store under the async limiter is a configuration error, and vice versa."""
    with pytest.raises(ConfigurationError):
        AsyncAdaptiveRateLimiter("api", rate=1, store=memory_store)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        AdaptiveRateLimiter("api", rate=1, store=AsyncMemoryStore())  # type: ignore[arg-type]


@pytest.mark.firestore
def test_item5_an_async_fleet_on_async_firestore_converges_under_a_fake_429_source(
    firestore_project: str,
) -> None:
    """
    The async forms on the Firestore emulator (``AsyncFirestoreStore``): three
    instances sharing one budget start at 3x an API's capacity and settle
    around it, as the sync fleet does; a heartbeat per period, never per call.
    """
    from pipeline_reliability.stores import AsyncFirestoreStore

    clock = FakeClock()
    capacity, share = 30, 5.0
    api = FakeApi(clock, capacity)
    stores = [AsyncFirestoreStore(project=firestore_project) for _ in range(3)]

    async def main() -> list[AsyncAdaptiveRateLimiter]:
        limiters = [
            AsyncAdaptiveRateLimiter(
                "fleet-429-async", rate=3 * capacity, min_rate=3.0, cooldown=1.0, share=share,
                store=store, instance_id=name, clock=clock, store_timeout=10,
            )
            for name, store in zip("abc", stores, strict=True)
        ]
        for store in stores:
            await store.get("warm-up", "channel")  # the first RPC opens the channel
            store.reset_stats()
        try:
            while clock.monotonic() < 120:
                for limiter in limiters:
                    with contextlib.suppress(ThrottledError):
                        await limiter.call(api.acall)
        finally:
            for store in stores:
                await store.aclose()
        return limiters

    limiters = asyncio.run(main())
    late = [ok for at, ok in api.log if at >= 60]
    assert 0.5 * capacity <= sum(late) / 60 <= capacity + 1
    assert late.count(False) / len(late) < 0.1
    assert [x.members for x in limiters] == [3, 3, 3]
    for store in stores:
        assert store.stats.writes <= 120 / share + 1
