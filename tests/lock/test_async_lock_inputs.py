"""
Hostile input to every AsyncDateLock entry point, as for DateLock (DESIGN §4).

Only ``ReliabilityError`` subclasses may escape the constructor or any
awaited method, and a refused call writes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from lock_helpers import DATE, NAME
from test_lock_hostile_inputs import LOCK_OPTIONS

from hostile_values import HOSTILE_SETTINGS, hostile
from pipeline_reliability import AsyncDateLock, AsyncMemoryStore, MemoryStore
from pipeline_reliability.errors import ReliabilityError
from pipeline_reliability.testing import FakeClock


async def _typed(store: MemoryStore, call: Callable[[], Awaitable[Any]]) -> Any:
    """Await ``call()``; only ReliabilityError may escape, and only without a write."""
    before = store.stats.writes
    try:
        return await call()
    except ReliabilityError:
        assert store.stats.writes == before, "a refused call wrote to the store"
        return None


def _build(options: dict[str, Any], store: MemoryStore) -> AsyncDateLock | None:
    try:
        return AsyncDateLock(**options)
    except ReliabilityError:
        assert store.stats.writes == 0
        return None


@HOSTILE_SETTINGS
@given(option=st.sampled_from(LOCK_OPTIONS), value=hostile)
def test_async_lock_options_and_every_method(option: str, value: Any) -> None:
    """Any one hostile option: refused up front, or a lock whose every coroutine is safe."""
    clock = FakeClock()
    memory = MemoryStore(clock=clock)
    valid = {
        "store": AsyncMemoryStore(store=memory),
        "name": NAME,
        "date": DATE,
        "ttl": 60,
        "owner": "a",
        "clock": clock,
    }
    lock = _build({**valid, option: value}, memory)
    if lock is None:
        return

    async def scenario(lock: AsyncDateLock) -> None:
        lease = await _typed(memory, lambda: lock.acquire(blocking=False))
        await _typed(memory, lock.locked)
        if lease is not None:
            await _typed(memory, lease.renew)
            await _typed(memory, lease.ensure_held)
            await _typed(memory, lock.release)

    asyncio.run(scenario(lock))


@HOSTILE_SETTINGS
@given(blocking=hostile | st.booleans(), timeout=hostile)
def test_async_acquire_arguments(blocking: Any, timeout: Any) -> None:
    """acquire(blocking, timeout) refuses hostile values before touching the store."""
    clock = FakeClock()
    memory = MemoryStore(clock=clock)
    lock = AsyncDateLock(AsyncMemoryStore(store=memory), NAME, DATE, owner="a", clock=clock)

    lease = asyncio.run(_typed(memory, lambda: lock.acquire(blocking=blocking, timeout=timeout)))

    assert (lease is not None) == (lock.lease is not None)


@HOSTILE_SETTINGS
@given(argument=st.sampled_from(("store", "name", "date", "collection")), value=hostile)
def test_async_inspect(argument: str, value: Any) -> None:
    """AsyncDateLock.inspect with one hostile argument raises only typed errors."""
    memory = MemoryStore(clock=FakeClock())
    args: dict[str, Any] = {
        "store": AsyncMemoryStore(store=memory),
        "name": NAME,
        "date": DATE,
        "collection": "date_locks",
    }

    asyncio.run(_typed(memory, lambda: AsyncDateLock.inspect(**{**args, argument: value})))
