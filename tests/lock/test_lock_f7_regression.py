"""Regression tests for DESIGN F7: the lock that deleted its successor and failed open."""

from __future__ import annotations

import pytest
from lock_helpers import DATE, NAME, TTL, MakeLock

from pipeline_reliability import MemoryStore
from pipeline_reliability.errors import LockLostError, StaleFenceError, StoreUnavailableError
from pipeline_reliability.lock import DateLock, FenceGuard, date_lock
from pipeline_reliability.testing import FakeClock, FaultyStore


def test_f7_holder_outliving_ttl_cannot_release_the_next_holders_lock(
    make_lock: MakeLock, fake_clock: FakeClock, memory_store: MemoryStore
) -> None:
    """F7: holder A outlives its TTL, B acquires, A releases -> A is told, B still holds."""
    first = make_lock("instance-a")
    first.acquire()
    fake_clock.advance(TTL + 1)  # A is paused (GC, slow BigQuery job) past its 300 s TTL
    second = make_lock("instance-b")
    lease_b = second.acquire(blocking=False)

    with pytest.raises(LockLostError):
        first.release()

    info = DateLock.inspect(memory_store, NAME, DATE)
    assert (info.holder, info.token, info.held) == ("instance-b", lease_b.token, True)
    lease_b.ensure_held()
    second.release()


def test_f7_stale_holder_writes_are_fenced(
    make_lock: MakeLock, fake_clock: FakeClock
) -> None:
    """F7: the paused holder's late write carries an older token and is refused."""
    guard = FenceGuard()
    lease_a = make_lock("instance-a").acquire()
    fake_clock.advance(TTL + 1)
    lease_b = make_lock("instance-b").acquire()
    guard.check(lease_b.token)

    with pytest.raises(StaleFenceError):
        guard.check(lease_a.token)
    with pytest.raises(LockLostError):
        lease_a.ensure_held()


def test_f7_store_errors_fail_closed(fake_clock: FakeClock) -> None:
    """F7: when the lock store errors, acquire raises instead of proceeding without a lock."""
    store = FaultyStore(MemoryStore(clock=fake_clock))
    lock = DateLock(store, NAME, DATE, owner="a", clock=fake_clock)

    with store.outage(), pytest.raises(StoreUnavailableError):
        lock.acquire()
    with store.outage(), pytest.raises(StoreUnavailableError):
        lock.acquire(blocking=False)
    with (
        store.outage(),
        pytest.raises(StoreUnavailableError),
        date_lock(store, NAME, DATE, clock=fake_clock),
    ):
        pytest.fail("the block must not run without a lock")

    assert lock.lease is None
    assert not DateLock.inspect(store, NAME, DATE).held
