"""DateLock under store faults: lost responses, contention, outages and the opt-in 'proceed'."""

from __future__ import annotations

import logging

import pytest
from lock_helpers import DATE, NAME, TTL

from pipeline_reliability import MemoryStore
from pipeline_reliability.errors import (
    LockLostError,
    LockNotAcquiredError,
    StaleFenceError,
    StoreConflictError,
    StoreUnavailableError,
)
from pipeline_reliability.lock import DateLock, FenceGuard
from pipeline_reliability.testing import FakeClock, Fault, FaultyStore


@pytest.fixture
def faulty(memory_store: MemoryStore) -> FaultyStore:
    """A FaultyStore around the test's MemoryStore."""
    return FaultyStore(memory_store)


# The operations of an acquire: a read, then two transactions (reserve, grant).
_RESERVE, _GRANT, _READ_BACK = 1, 2, 3


def _lock(store: FaultyStore, clock: FakeClock, owner: str, **options: object) -> DateLock:
    return DateLock(store, NAME, DATE, owner=owner, clock=clock, ttl=TTL, **options)  # type: ignore[arg-type]


def test_lost_acquire_response_is_recovered(faulty: FaultyStore, fake_clock: FakeClock) -> None:
    """An acquire applied but unanswered is read back and returned as our lease."""
    faulty.plan[_GRANT] = Fault.LOST_RESPONSE

    lease = _lock(faulty, fake_clock, "a").acquire()

    lease.ensure_held()
    assert DateLock.inspect(faulty, NAME, DATE).token == lease.token


def test_unrecoverable_lost_acquire_fails_closed_and_expires(
    faulty: FaultyStore, fake_clock: FakeClock
) -> None:
    """If the read-back fails too, acquire raises; the orphan lease frees itself after the TTL."""
    faulty.plan.update({_GRANT: Fault.LOST_RESPONSE, _READ_BACK: Fault.UNAVAILABLE})
    lock = _lock(faulty, fake_clock, "a")

    with pytest.raises(StoreUnavailableError) as info:
        lock.acquire()

    assert info.value.maybe_committed
    assert lock.lease is None
    with pytest.raises(LockNotAcquiredError):
        _lock(faulty, fake_clock, "b").acquire(blocking=False)
    fake_clock.advance(TTL)
    _lock(faulty, fake_clock, "b").acquire(blocking=False)


def test_aborted_attempts_are_rerun_transparently(
    faulty: FaultyStore, fake_clock: FakeClock
) -> None:
    """An aborted first attempt does not grant a second token or a second lease."""
    faulty.plan.update({_RESERVE: Fault.ABORTED, _GRANT: Fault.ABORTED})

    lease = _lock(faulty, fake_clock, "a").acquire()

    assert DateLock.inspect(faulty, NAME, DATE).token == lease.token


def test_conflicts_count_as_contention(faulty: FaultyStore, fake_clock: FakeClock) -> None:
    """StoreConflictError is contention: non-blocking raises LockNotAcquiredError, chained."""
    faulty.plan[_GRANT] = Fault.CONTENTION

    with pytest.raises(LockNotAcquiredError) as info:
        _lock(faulty, fake_clock, "a").acquire(blocking=False)

    assert isinstance(info.value.__cause__, StoreConflictError)


def test_blocking_acquire_retries_through_conflicts(
    faulty: FaultyStore, fake_clock: FakeClock
) -> None:
    """A blocking acquire keeps polling through transaction conflicts and then succeeds."""
    only_transactions = FaultyStore(faulty.inner, operations=("transact",))
    only_transactions.fail_next(Fault.CONTENTION, times=3)

    lease = _lock(only_transactions, fake_clock, "a").acquire(timeout=30)

    assert lease.fenced
    assert len(fake_clock.sleeps) == 3


def test_lost_release_response_can_be_retried(
    faulty: FaultyStore, fake_clock: FakeClock
) -> None:
    """A release applied but unanswered raises; calling release() again succeeds."""
    lock = _lock(faulty, fake_clock, "a")
    lock.acquire()
    faulty.fail_next(Fault.LOST_RESPONSE)

    with pytest.raises(StoreUnavailableError):
        lock.release()
    assert lock.lease is not None  # kept so that release can be retried

    lock.release()
    assert lock.lease is None
    assert not lock.locked()


def test_release_during_an_outage_keeps_the_lease_until_retried(
    faulty: FaultyStore, fake_clock: FakeClock
) -> None:
    """With fail_closed a release that cannot reach the store raises and can be retried."""
    lock = _lock(faulty, fake_clock, "a")
    lock.acquire()

    with faulty.outage(), pytest.raises(StoreUnavailableError):
        lock.release()
    lock.release()

    assert not lock.locked()


def test_renew_propagates_store_errors(faulty: FaultyStore, fake_clock: FakeClock) -> None:
    """A renewal that cannot reach the store raises StoreUnavailableError, not a loss."""
    lease = _lock(faulty, fake_clock, "a").acquire()

    with faulty.outage(), pytest.raises(StoreUnavailableError):
        lease.renew()

    assert not lease.lost
    lease.renew()


def test_lost_renew_response_is_harmless(faulty: FaultyStore, fake_clock: FakeClock) -> None:
    """A renewal applied but unanswered can simply be repeated."""
    lease = _lock(faulty, fake_clock, "a").acquire()
    faulty.fail_next(Fault.LOST_RESPONSE)

    with pytest.raises(StoreUnavailableError):
        lease.renew()
    lease.renew()

    lease.ensure_held()


def test_ensure_held_fails_closed(faulty: FaultyStore, fake_clock: FakeClock) -> None:
    """When the store cannot be read, holding cannot be proven: ensure_held raises."""
    lease = _lock(faulty, fake_clock, "a").acquire()

    with faulty.outage(), pytest.raises(StoreUnavailableError):
        lease.ensure_held()


def test_proceed_returns_an_unfenced_lease_and_warns(
    faulty: FaultyStore, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """on_store_error='proceed' hands out a lease marked unfenced (token 0) and logs a WARNING."""
    lock = _lock(faulty, fake_clock, "a", on_store_error="proceed")

    with faulty.outage():
        lease = lock.acquire()

    assert (lease.fenced, lease.token, lease.expires_at) == (False, 0, None)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("WITHOUT a lock" in r.getMessage() for r in warnings)
    with pytest.raises(LockLostError, match="unfenced"):
        lease.ensure_held()
    with pytest.raises(LockLostError, match="unfenced"):
        lease.renew()
    lock.release()
    assert lock.lease is None


def test_unfenced_lease_is_refused_by_any_fence_that_saw_a_real_token(
    faulty: FaultyStore, fake_clock: FakeClock
) -> None:
    """Token 0 is older than every real token, so fenced writers reject the unfenced holder."""
    guard = FenceGuard()
    real = _lock(faulty, fake_clock, "a").acquire()
    guard.check(real.token)
    with faulty.outage():
        unfenced = _lock(faulty, fake_clock, "b", on_store_error="proceed").acquire()

    with pytest.raises(StaleFenceError):
        guard.check(unfenced.token)
    with pytest.raises(StaleFenceError):
        unfenced.check(real.token)


def test_proceed_still_reports_contention(faulty: FaultyStore, fake_clock: FakeClock) -> None:
    """'proceed' applies to store failures only: a held lock is still LockNotAcquiredError."""
    _lock(faulty, fake_clock, "a").acquire()

    with pytest.raises(LockNotAcquiredError):
        _lock(faulty, fake_clock, "b", on_store_error="proceed").acquire(blocking=False)


def test_proceed_lets_a_failed_release_pass_with_a_warning(
    faulty: FaultyStore, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """With 'proceed', a release that cannot reach the store logs and lets the lease expire."""
    lock = _lock(faulty, fake_clock, "a", on_store_error="proceed")
    lock.acquire()

    with faulty.outage():
        lock.release()

    assert lock.lease is None
    assert "expire after its TTL" in caplog.text
    assert lock.locked()  # still recorded; it expires by itself
    fake_clock.advance(TTL)
    assert not lock.locked()


def test_retried_release_succeeds_while_the_store_records_it(
    faulty: FaultyStore, fake_clock: FakeClock
) -> None:
    """A lost release retried after another holder acquired succeeds and spares that holder."""
    first = _lock(faulty, fake_clock, "a")
    first.acquire()
    faulty.fail_next(Fault.LOST_RESPONSE)
    with pytest.raises(StoreUnavailableError):
        first.release()
    second = _lock(faulty, fake_clock, "b")
    lease = second.acquire(blocking=False)

    first.release()

    assert first.lease is None
    lease.ensure_held()


def test_retried_release_is_refused_once_its_record_is_overwritten(
    faulty: FaultyStore, fake_clock: FakeClock
) -> None:
    """When a later release replaced the record, the retry cannot prove it: LockLostError."""
    first = _lock(faulty, fake_clock, "a")
    first.acquire()
    faulty.fail_next(Fault.LOST_RESPONSE)
    with pytest.raises(StoreUnavailableError):
        first.release()
    second = _lock(faulty, fake_clock, "b")
    second.acquire(blocking=False)
    second.release()

    with pytest.raises(LockLostError, match="superseded"):
        first.release()
    assert first.lease is None
