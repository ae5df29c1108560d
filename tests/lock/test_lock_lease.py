"""Lease renewal, holding checks, fencing, operator break/inspect and the context helpers."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from lock_helpers import DATE, NAME, TTL, MakeLock, lock_doc

from pipeline_reliability import MemoryStore
from pipeline_reliability.errors import (
    InvalidInputError,
    LockLostError,
    LockNotAcquiredError,
    StaleFenceError,
)
from pipeline_reliability.lock import DateLock, FenceGuard, break_lock, date_lock
from pipeline_reliability.testing import FakeClock


def test_renew_extends_the_lease_from_store_time(
    make_lock: MakeLock, fake_clock: FakeClock
) -> None:
    """renew() moves expiry to the store's now + TTL and keeps the token."""
    lease = make_lock("a").acquire()
    fake_clock.advance(TTL / 2)

    expires = lease.renew()

    assert expires == fake_clock.now() + dt.timedelta(seconds=TTL)
    assert lease.expires_at == expires
    fake_clock.advance(TTL * 0.9)
    lease.ensure_held()


def test_renew_after_expiry_raises_even_if_nobody_took_over(
    make_lock: MakeLock, fake_clock: FakeClock
) -> None:
    """An expired lease is lost: renewal cannot resurrect it."""
    lease = make_lock("a").acquire()
    fake_clock.advance(TTL)

    with pytest.raises(LockLostError, match="expired"):
        lease.renew()

    assert lease.lost


def test_stale_renew_leaves_the_current_holder_untouched(
    make_lock: MakeLock, fake_clock: FakeClock, memory_store: MemoryStore
) -> None:
    """A superseded holder's renewal raises and does not change the new holder's record."""
    old = make_lock("a").acquire()
    fake_clock.advance(TTL + 1)
    new_lock = make_lock("b")
    new = new_lock.acquire()
    before = lock_doc(memory_store, new_lock)

    with pytest.raises(LockLostError, match="superseded"):
        old.renew()

    assert lock_doc(memory_store, new_lock) == before
    new.ensure_held()


def test_ensure_held_checks_the_store(make_lock: MakeLock, fake_clock: FakeClock) -> None:
    """ensure_held passes while live and raises LockLostError after expiry."""
    lease = make_lock("a").acquire()
    lease.ensure_held()

    fake_clock.advance(TTL)

    with pytest.raises(LockLostError):
        lease.ensure_held()


def test_ensure_held_costs_one_read_and_no_write(
    make_lock: MakeLock, memory_store: MemoryStore
) -> None:
    """Checking a lease reads the document once and writes nothing."""
    lease = make_lock("a").acquire()
    memory_store.reset_stats()

    lease.ensure_held()

    assert (memory_store.stats.reads, memory_store.stats.writes) == (1, 0)


def test_lease_remaining_is_a_conservative_local_estimate(
    make_lock: MakeLock, fake_clock: FakeClock
) -> None:
    """remaining() counts down by the local monotonic clock and is zero once released."""
    lock = make_lock("a")
    lease = lock.acquire()
    fake_clock.advance(20)

    assert lease.remaining() == dt.timedelta(seconds=TTL - 20)
    lock.release()
    assert lease.remaining() == dt.timedelta(0)


def test_released_lease_cannot_be_renewed(make_lock: MakeLock) -> None:
    """A lease that was released is over: renew() and ensure_held() raise."""
    lock = make_lock("a")
    lease = lock.acquire()
    lock.release()

    with pytest.raises(LockLostError, match="released"):
        lease.renew()
    with pytest.raises(LockLostError, match="released"):
        lease.ensure_held()


def test_check_refuses_a_newer_token_from_the_sink(make_lock: MakeLock) -> None:
    """Lease.check raises StaleFenceError when the sink has seen a newer token."""
    lease = make_lock("a").acquire()

    lease.check(None)
    lease.check(lease.token)
    lease.check(lease.token - 1)
    with pytest.raises(StaleFenceError) as info:
        lease.check(lease.token + 1)

    assert (info.value.token, info.value.current) == (lease.token, lease.token + 1)


def test_fence_guard_rejects_a_stale_holder_after_takeover(
    make_lock: MakeLock, fake_clock: FakeClock
) -> None:
    """A holder that paused past its TTL is refused by the writer once the next holder wrote."""
    guard = FenceGuard()
    old = make_lock("a").acquire()
    guard.check(old.token, key=(NAME, DATE))
    fake_clock.advance(TTL + 1)
    new = make_lock("b").acquire()
    guard.check(new.token, key=(NAME, DATE))

    with pytest.raises(StaleFenceError):
        guard.check(old.token, key=(NAME, DATE))

    assert guard.newest((NAME, DATE)) == new.token
    assert guard.check(new.token, key=(NAME, DATE)) == new.token  # equal tokens pass
    assert guard.check(old.token, key="another resource") == old.token


def test_fence_guard_refuses_non_tokens() -> None:
    """Booleans and negative numbers are not fencing tokens."""
    guard = FenceGuard()

    with pytest.raises(InvalidInputError):
        guard.check(True)
    with pytest.raises(InvalidInputError):
        guard.check(-1)


def test_inspect_shows_holder_token_and_expiry(
    make_lock: MakeLock, fake_clock: FakeClock, memory_store: MemoryStore
) -> None:
    """inspect reports the live lease, and after expiry held=False by store time."""
    never = DateLock.inspect(memory_store, NAME, DATE)
    assert (never.holder, never.token, never.held) == (None, 0, False)

    lease = make_lock("a").acquire()
    info = DateLock.inspect(memory_store, NAME, DATE)
    assert (info.holder, info.token, info.held) == ("a", lease.token, True)
    assert info.expires_at == lease.expires_at
    assert info.store_time == fake_clock.now()

    fake_clock.advance(TTL)
    assert not DateLock.inspect(memory_store, NAME, dt.date(2026, 1, 31)).held


def test_break_lock_invalidates_the_holder(
    make_lock: MakeLock, memory_store: MemoryStore
) -> None:
    """An operator break clears the holder; the broken holder learns it; next token is higher."""
    lock = make_lock("a")
    lease = lock.acquire()

    assert break_lock(memory_store, NAME, DATE) == lease.token

    info = DateLock.inspect(memory_store, NAME, DATE)
    assert (info.holder, info.held, info.token) == (None, False, lease.token)
    with pytest.raises(LockLostError, match="break"):
        lease.ensure_held()
    with pytest.raises(LockLostError):
        lock.release()
    assert make_lock("b").acquire().token > lease.token


def test_break_lock_with_a_token_leaves_a_newer_lease_alone(
    make_lock: MakeLock, memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """break_lock(token=N) does nothing when the recorded lease is no longer N."""
    old = make_lock("a").acquire()
    fake_clock.advance(TTL)
    new = make_lock("b").acquire()

    assert break_lock(memory_store, NAME, DATE, token=old.token) is None
    new.ensure_held()
    assert break_lock(memory_store, NAME, DATE, token=new.token) == new.token


def test_break_lock_on_a_free_lock_returns_none(memory_store: MemoryStore) -> None:
    """Breaking a lock nobody holds changes nothing and writes nothing."""
    assert break_lock(memory_store, NAME, DATE) is None
    assert memory_store.stats.writes == 0


def test_date_lock_holds_for_the_block(memory_store: MemoryStore, fake_clock: FakeClock) -> None:
    """date_lock yields a lease and releases it after the block."""
    with date_lock(memory_store, NAME, DATE, owner="a", clock=fake_clock, ttl=30) as lease:
        assert DateLock.inspect(memory_store, NAME, DATE).holder == "a"
        assert lease.expires_at == fake_clock.now() + dt.timedelta(seconds=30)

    assert not DateLock.inspect(memory_store, NAME, DATE).held


def test_date_lock_passes_on_contention(memory_store: MemoryStore, fake_clock: FakeClock) -> None:
    """date_lock with blocking=False raises LockNotAcquiredError when held elsewhere."""
    DateLock(memory_store, NAME, DATE, owner="a", clock=fake_clock).acquire()

    with (
        pytest.raises(LockNotAcquiredError),
        date_lock(memory_store, NAME, DATE, owner="b", clock=fake_clock, blocking=False),
    ):
        pytest.fail("the block must not run")


def test_block_error_is_not_masked_by_a_failed_release(
    make_lock: MakeLock, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """If the block fails and the lease was lost too, the block's error propagates, noted."""
    lock = make_lock("a")

    def fail_after_losing_the_lease() -> None:
        with lock:
            fake_clock.advance(TTL + 1)
            make_lock("b").acquire()
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError) as info:
        fail_after_losing_the_lease()

    assert any("releasing" in note for note in info.value.__notes__)
    assert "release after a failed block failed" in caplog.text


def test_lost_lease_surfaces_on_exit_of_a_successful_block(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """If the block succeeded but the lease was lost, leaving the block raises LockLostError."""
    with (
        pytest.raises(LockLostError),
        date_lock(memory_store, NAME, DATE, owner="a", clock=fake_clock, ttl=10),
    ):
        fake_clock.advance(11)


def test_release_of_an_expired_untaken_lease_reports_the_lapse(
    make_lock: MakeLock, fake_clock: FakeClock, memory_store: MemoryStore
) -> None:
    """A lease that lapsed but was not taken over is cleared, and the caller is told."""
    lock = make_lock("a")
    lock.acquire()
    fake_clock.advance(TTL)

    with pytest.raises(LockLostError, match="expired before release"):
        lock.release()

    doc = lock_doc(memory_store, lock)
    assert doc is not None
    assert doc["holder"] is None
    assert lock.lease is None


def test_lost_leases_are_logged(
    make_lock: MakeLock, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Discovering a lost lease logs a WARNING on the lock logger, once."""
    lease = make_lock("a").acquire()
    fake_clock.advance(TTL)
    caplog.set_level(logging.WARNING, "pipeline_reliability.lock")

    for _ in range(2):
        with pytest.raises(LockLostError):
            lease.ensure_held()

    lost = [r for r in caplog.records if "lease lost" in r.getMessage()]
    assert len(lost) == 1
