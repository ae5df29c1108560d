"""DateLock acquire, release, contention and input validation on the MemoryStore."""

from __future__ import annotations

import datetime as dt

import pytest
from lock_helpers import DATE, NAME, TTL, MakeLock, lock_doc

from pipeline_reliability import Delete, MemoryStore, Outcome, Snapshot
from pipeline_reliability.errors import (
    ConfigurationError,
    InvalidInputError,
    LockError,
    LockNotAcquiredError,
)
from pipeline_reliability.lock import DateLock
from pipeline_reliability.testing import FakeClock


def test_acquire_returns_a_fenced_lease_in_store_time(
    make_lock: MakeLock, fake_clock: FakeClock
) -> None:
    """A free lock is granted with a token, the owner, and an expiry of store time + TTL."""
    lease = make_lock("a").acquire()

    assert lease.fenced
    assert lease.token > 0
    assert lease.owner == "a"
    assert (lease.name, lease.date) == (NAME, DATE)
    assert lease.expires_at == fake_clock.now() + dt.timedelta(seconds=TTL)
    assert lease.acquired_at == fake_clock.now()


def test_uncontended_acquire_and_release_cost_three_transactions(
    make_lock: MakeLock, memory_store: MemoryStore
) -> None:
    """An acquire reads, reserves a token and grants the lease; a release is one more."""
    lock = make_lock("a")
    memory_store.reset_stats()

    lock.acquire()
    lock.release()

    stats = memory_store.stats
    assert (stats.transactions, stats.reads, stats.writes) == (3, 4, 3)


def test_non_blocking_acquire_reports_contention_as_an_error(
    make_lock: MakeLock, fake_clock: FakeClock
) -> None:
    """A second owner gets LockNotAcquiredError naming the holder and its expiry."""
    held = make_lock("a").acquire()

    with pytest.raises(LockNotAcquiredError) as info:
        make_lock("b").acquire(blocking=False)

    assert info.value.holder == "a"
    assert info.value.expires_at == held.expires_at


def test_blocking_acquire_with_timeout_gives_up_after_the_timeout(
    make_lock: MakeLock, fake_clock: FakeClock
) -> None:
    """Polling stops at the timeout (by the injected clock) and raises, never succeeds."""
    make_lock("a").acquire()
    start = fake_clock.monotonic()

    with pytest.raises(LockNotAcquiredError):
        make_lock("b").acquire(timeout=10)

    assert fake_clock.monotonic() - start == pytest.approx(10)
    assert len(fake_clock.sleeps) > 3  # it polled, with backoff


def test_blocking_acquire_waits_for_the_holders_expiry(
    make_lock: MakeLock, fake_clock: FakeClock
) -> None:
    """Without a timeout the waiter gets the lock once the holder's lease expires."""
    held = make_lock("a").acquire()

    lease = make_lock("b").acquire()

    assert held.expires_at is not None
    assert lease.acquired_at is not None
    assert lease.acquired_at >= held.expires_at
    # Polling never overshoots the holder's expiry by more than one poll interval.
    assert lease.acquired_at - held.expires_at <= dt.timedelta(seconds=2)
    assert lease.token > held.token


def test_poll_delays_are_jittered_and_bounded(make_lock: MakeLock, fake_clock: FakeClock) -> None:
    """Backoff grows, is jittered, and never exceeds two seconds."""
    make_lock("a", ttl=600).acquire()

    with pytest.raises(LockNotAcquiredError):
        make_lock("b").acquire(timeout=60)

    sleeps = fake_clock.sleeps
    assert max(sleeps) <= 2.0
    assert len(set(sleeps)) > len(sleeps) // 2  # jitter: mostly distinct delays


def test_blocking_acquire_with_zero_timeout_tries_once(
    make_lock: MakeLock, fake_clock: FakeClock, memory_store: MemoryStore
) -> None:
    """timeout=0 makes exactly one attempt: one read that finds the lock held, no write."""
    make_lock("a").acquire()
    memory_store.reset_stats()

    with pytest.raises(LockNotAcquiredError):
        make_lock("b").acquire(timeout=0)

    stats = memory_store.stats
    assert (stats.reads, stats.transactions, stats.writes) == (1, 0, 0)
    assert fake_clock.sleeps == []


def test_release_frees_the_lock_and_keeps_the_token_counter(
    make_lock: MakeLock, memory_store: MemoryStore
) -> None:
    """After release the document stays, without holder, and the next token is higher."""
    lock = make_lock("a")
    first = lock.acquire()
    lock.release()

    doc = lock_doc(memory_store, lock)
    assert doc is not None
    assert doc["holder"] is None
    assert doc["token"] == first.token
    assert not lock.locked()
    second = make_lock("b").acquire()
    assert second.token > first.token


def test_tokens_increase_even_when_store_time_stands_still(make_lock: MakeLock) -> None:
    """Leases granted at the same store instant still get strictly increasing tokens."""
    lock = make_lock("a")
    tokens = []
    for _ in range(5):
        tokens.append(lock.acquire().token)
        lock.release()

    assert tokens == sorted(set(tokens))


def test_tokens_survive_deletion_of_the_document(
    make_lock: MakeLock, memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """A TTL policy (or an operator) deleting the document cannot make tokens go back."""
    lock = make_lock("a")
    before = [lock.acquire().token]
    lock.release()
    before.append(lock.acquire().token)
    lock.release()
    doc = lock_doc(memory_store, lock)
    assert doc is not None
    fake_clock.advance(doc["expire_at"] - fake_clock.now())  # the TTL policy may now delete it

    memory_store.transact(lock.collection, lock.key, _delete)
    after = lock.acquire().token

    assert after > max(before)


def _delete(snap: Snapshot) -> Outcome[None]:
    return Outcome(None, Delete())


def test_expire_at_always_lies_well_after_the_lease(
    make_lock: MakeLock, memory_store: MemoryStore
) -> None:
    """The garbage-collection time is days after the lease's expiry, and moves with renewals."""
    lock = make_lock("a")
    lease = lock.acquire()
    doc = lock_doc(memory_store, lock)
    assert doc is not None
    assert doc["expire_at"] - doc["expires_at"] >= dt.timedelta(days=7)

    lease.renew()
    renewed = lock_doc(memory_store, lock)
    assert renewed is not None
    assert renewed["expire_at"] - renewed["expires_at"] >= dt.timedelta(days=7)


def test_locked_reflects_store_time(make_lock: MakeLock, fake_clock: FakeClock) -> None:
    """locked() is True while a lease is live and False once it expired, for anyone asking."""
    make_lock("a").acquire()
    observer = make_lock("observer")

    assert observer.locked()
    fake_clock.advance(TTL)
    assert not observer.locked()


def test_one_lock_object_holds_one_lease(make_lock: MakeLock) -> None:
    """A second acquire on the same object is a usage error, not a re-entrant success."""
    lock = make_lock("a")
    lock.acquire()

    with pytest.raises(LockError, match="already holds"):
        lock.acquire(blocking=False)


def test_release_without_a_lease_is_an_error(make_lock: MakeLock) -> None:
    """release() on an object that holds nothing raises LockError."""
    with pytest.raises(LockError):
        make_lock("a").release()


def test_with_statement_acquires_and_releases(make_lock: MakeLock) -> None:
    """`with lock as lease` yields the lease and frees the lock afterwards."""
    lock = make_lock("a")

    with lock as lease:
        assert lock.locked()
        assert lock.lease is lease

    assert not lock.locked()
    assert lock.lease is None


def test_dates_may_be_given_as_date_objects(memory_store: MemoryStore) -> None:
    """datetime.date and the ISO string address the same lock."""
    by_date = DateLock(memory_store, NAME, dt.date(2026, 1, 31), owner="a")
    by_string = DateLock(memory_store, NAME, DATE, owner="b")

    assert by_date.key == by_string.key
    assert by_date.date == DATE


def test_different_dates_and_names_are_different_locks(make_lock: MakeLock) -> None:
    """Locks on other dates or names do not contend."""
    make_lock("a").acquire()

    make_lock("b", date="2026-02-01").acquire(blocking=False)
    make_lock("c", name="phase5").acquire(blocking=False)


def test_names_with_path_characters_are_escaped(make_lock: MakeLock) -> None:
    """A name with '/' or '~' still maps to one valid document id."""
    lease = make_lock("a", name="odds/api~props").acquire()

    assert lease.name == "odds/api~props"


@pytest.mark.parametrize(
    "date",
    ["2026-1-31", "2026-02-30", "31/01/2026", "", None, 20260131, "2026-01-31T00:00:00"],
)
def test_invalid_dates_raise_before_any_store_call(
    memory_store: MemoryStore, date: object
) -> None:
    """Bad dates are refused with InvalidInputError and nothing is read or written."""
    with pytest.raises(InvalidInputError):
        DateLock(memory_store, NAME, date, owner="a")  # type: ignore[arg-type]

    assert memory_store.stats.transactions == 0


def test_datetimes_are_refused_as_dates(memory_store: MemoryStore) -> None:
    """A datetime is not silently truncated to its date."""
    with pytest.raises(InvalidInputError, match="not a datetime"):
        DateLock(memory_store, NAME, dt.datetime(2026, 1, 31, 23, 0), owner="a")


@pytest.mark.parametrize("name", ["", "   ", None, 7])
def test_invalid_names_raise(memory_store: MemoryStore, name: object) -> None:
    """Empty or non-string names are refused with InvalidInputError."""
    with pytest.raises(InvalidInputError):
        DateLock(memory_store, name, DATE)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [
        {"ttl": 0},
        {"ttl": -1},
        {"ttl": dt.timedelta(0)},
        {"ttl": float("nan")},
        {"ttl": float("inf")},
        {"ttl": "60"},
        {"owner": ""},
        {"owner": "x" * 501},
        {"on_store_error": "fail_open"},
        {"collection": "a/b"},
        {"collection": ""},
        {"on_lost": "not callable"},
    ],
)
def test_invalid_options_raise_configuration_error(
    memory_store: MemoryStore, options: dict[str, object]
) -> None:
    """Nonsense options are refused when the lock is built."""
    with pytest.raises(ConfigurationError):
        DateLock(memory_store, NAME, DATE, **options)  # type: ignore[arg-type]


def test_timeout_with_non_blocking_is_refused(make_lock: MakeLock) -> None:
    """As threading.Lock, a timeout makes no sense for a non-blocking acquire."""
    with pytest.raises(InvalidInputError):
        make_lock("a").acquire(blocking=False, timeout=1)


def test_negative_timeout_is_refused(make_lock: MakeLock) -> None:
    """A negative timeout is a bad call argument (None means wait forever)."""
    with pytest.raises(InvalidInputError):
        make_lock("a").acquire(timeout=-1)


def test_default_owner_is_unique_per_lock(memory_store: MemoryStore) -> None:
    """Two locks built without an owner get different owner ids."""
    first = DateLock(memory_store, NAME, DATE)
    second = DateLock(memory_store, NAME, DATE)

    assert first.owner != second.owner
    first.acquire()
    with pytest.raises(LockNotAcquiredError):
        second.acquire(blocking=False)


def test_ttl_may_be_given_as_a_timedelta(make_lock: MakeLock, fake_clock: FakeClock) -> None:
    """ttl accepts a timedelta as well as seconds."""
    lease = make_lock("a", ttl=dt.timedelta(minutes=2)).acquire()

    assert lease.expires_at == fake_clock.now() + dt.timedelta(minutes=2)
