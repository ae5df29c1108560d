"""
AsyncDateLock on the Firestore emulator, through ``AsyncFirestoreStore``.

Real transactions of the official async client and the server's clock:
tasks contending through ``asyncio.gather``, a sync and an async holder on
the same lock, and the renewal task keeping a short lease alive in real time.
The emulator times out a conflicting transaction after 2 s (EMULATORS.md §3),
so TTLs are a few seconds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from typing import Any

import pytest
from lock_helpers import DATE, NAME

from pipeline_reliability import AsyncDateLock, AsyncLease, DateLock, StateStore
from pipeline_reliability.errors import LockLostError, LockNotAcquiredError
from pipeline_reliability.stores import AsyncFirestoreStore

pytestmark = pytest.mark.firestore

TTL = 2.5


def _async_store(project: str) -> Any:
    return AsyncFirestoreStore(project=project)


def test_gathered_tasks_on_firestore_exactly_one_holder(firestore_project: str) -> None:
    """
    Six tasks acquire at once through real async transactions: one lease, five refusals.

    The TTL is long here: on a loaded emulator six contending transactions can
    take longer than a few seconds, and a lease that lapses meanwhile is
    rightly taken over (a second holder, after the first, never beside it).
    """

    async def scenario() -> list[Any]:
        store = _async_store(firestore_project)
        try:
            locks = [AsyncDateLock(store, NAME, DATE, owner=f"t{i}", ttl=60) for i in range(6)]
            outcomes = await asyncio.gather(
                *(lock.acquire(blocking=False) for lock in locks), return_exceptions=True
            )
            held = [lock for lock in locks if lock.lease is not None]
            assert len(held) == 1
            await held[0].release()
            return list(outcomes)
        finally:
            await store.aclose()

    outcomes = asyncio.run(scenario())

    assert sum(isinstance(o, AsyncLease) for o in outcomes) == 1
    assert all(isinstance(o, (AsyncLease, LockNotAcquiredError)) for o in outcomes), outcomes


def test_gathered_blocking_tasks_on_firestore_never_overlap(firestore_project: str) -> None:
    """Four tasks queue for a short lease: each holds in turn, intervals apart by store time."""

    async def worker(store: Any, i: int) -> tuple[int, Any, Any]:
        lock = AsyncDateLock(store, NAME, DATE, owner=f"t{i}", ttl=TTL)
        async with lock as lease:
            await asyncio.sleep(0.1)
        return lease.token, lease.acquired_at, lease.released_at

    async def scenario() -> list[tuple[int, Any, Any]]:
        store = _async_store(firestore_project)
        try:
            return list(await asyncio.gather(*(worker(store, i) for i in range(4))))
        finally:
            await store.aclose()

    held = sorted(asyncio.run(scenario()), key=lambda h: h[0])

    assert len({token for token, _, _ in held}) == 4
    for (_, _, released), (_, acquired, _) in itertools.pairwise(held):
        assert released is not None
        assert acquired >= released  # the next lease began after the previous release


def test_sync_and_async_holders_share_one_firestore_lock(
    firestore_store: StateStore, firestore_project: str
) -> None:
    """A DateLock and an AsyncDateLock on the same documents: one holder, one token series."""
    sync_lock = DateLock(firestore_store, NAME, DATE, owner="sync", ttl=TTL)
    first = sync_lock.acquire(blocking=False)

    async def scenario() -> int:
        store = _async_store(firestore_project)
        try:
            lock = AsyncDateLock(store, NAME, DATE, owner="async", ttl=TTL)
            with pytest.raises(LockNotAcquiredError) as busy:
                await lock.acquire(blocking=False)
            assert busy.value.holder == "sync"
            sync_lock.release()
            async with lock as lease:
                await lease.ensure_held()
                info = await AsyncDateLock.inspect(store, NAME, DATE)
                assert (info.holder, info.held) == ("async", True)
                return lease.token
        finally:
            await store.aclose()

    second = asyncio.run(scenario())

    assert second > first.token
    assert not DateLock.inspect(firestore_store, NAME, DATE).held


def test_renewal_task_keeps_a_firestore_lease_past_its_ttl(firestore_project: str) -> None:
    """In real time, the task renews a 2.5 s lease through 2.5 TTLs; release stops it."""

    async def scenario() -> None:
        store = _async_store(firestore_project)
        try:
            lost: list[str] = []
            lock = AsyncDateLock(
                store, NAME, DATE, owner="a", ttl=TTL, auto_renew=True,
                on_lost=lambda _lease, reason: lost.append(reason),
            )
            lease = await lock.acquire()
            first_expiry = lease.expires_at
            await asyncio.sleep(TTL * 2.5)
            await lease.ensure_held()
            assert lost == []
            assert lease.expires_at is not None
            assert first_expiry is not None
            assert lease.expires_at - first_expiry >= dt.timedelta(seconds=TTL)
            task = lock.renewal_task
            await lock.release()
            assert task is not None
            assert task.done()
            with pytest.raises(LockLostError):
                await lease.renew()
        finally:
            await store.aclose()

    asyncio.run(scenario())
