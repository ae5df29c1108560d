"""
Fencing tokens strictly increase per (name, date) for ever (DESIGN §2), on any clock.

The lock document may disappear (a Firestore TTL policy, an operator, a
migration) and the store's clock may stand still (``MemoryStore`` on a frozen
``FakeClock``): tokens still never repeat, because every token is reserved
from a counter document that nothing deletes and granted only above the token
already in the lock document.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lock_helpers import COLLECTION, DATE, NAME, MakeLock, lock_doc

from pipeline_reliability import MemoryStore
from pipeline_reliability.errors import LockError, LockNotAcquiredError
from pipeline_reliability.lock import DateLock, break_lock
from pipeline_reliability.lock._record import counter_key
from pipeline_reliability.stores import Delete, Outcome, Put, Snapshot
from pipeline_reliability.testing import FakeClock

ENDINGS = ("release", "break", "expire", "delete_lock", "delete_counter")


def _delete(_snap: Snapshot) -> Outcome[None]:
    return Outcome(None, Delete())


def _end(store: MemoryStore, clock: FakeClock, lock: DateLock, ending: str) -> None:
    """End the lease ``lock`` holds the way ``ending`` says (``lock`` is not used again)."""
    if ending == "release":
        lock.release()
        return
    if ending == "break":
        assert break_lock(store, NAME, DATE) is not None
    elif ending == "expire":
        clock.advance(lock.ttl)
    elif ending == "delete_lock":
        store.transact(COLLECTION, lock.key, _delete)
    else:
        # The lease stays live: release it, then lose the counter.
        lock.release()
        store.transact(COLLECTION, counter_key(lock.key), _delete)


def test_item8_tokens_increase_after_the_document_is_deleted_under_a_frozen_clock() -> None:
    """Acquire, release, delete the lock document, acquire: a larger token, clock frozen."""
    clock = FakeClock()  # never advanced
    store = MemoryStore(clock=clock)
    lock = DateLock(store, NAME, DATE, owner="a", clock=clock, ttl=60)
    first = lock.acquire().token
    lock.release()

    store.transact(COLLECTION, lock.key, _delete)
    second = lock.acquire().token

    assert second > first


@settings(max_examples=60, deadline=None)
@given(endings=st.lists(st.sampled_from(ENDINGS), min_size=1, max_size=25))
def test_tokens_strictly_increase_whatever_ends_each_lease(endings: list[str]) -> None:
    """Any mix of release, break, expiry and deletion of either document: tokens only grow."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    tokens = []
    for i, ending in enumerate([*endings, "release"]):
        lock = DateLock(store, NAME, DATE, owner=f"holder-{i}", clock=clock, ttl=60)
        tokens.append(lock.acquire(blocking=False).token)
        _end(store, clock, lock, ending)

    assert all(a < b for a, b in itertools.pairwise(tokens)), tokens


def test_a_deleted_counter_restarts_above_the_lock_document(
    make_lock: MakeLock, memory_store: MemoryStore
) -> None:
    """Without its counter, the next token is still above the lock document's."""
    lock = make_lock("a")
    tokens = [lock.acquire().token]
    lock.release()
    memory_store.transact(COLLECTION, counter_key(lock.key), _delete)

    tokens.append(lock.acquire().token)

    assert tokens[1] > tokens[0]
    doc = memory_store.dump()[COLLECTION][counter_key(lock.key)]
    assert doc["token"] == tokens[1]  # the counter caught up with the lock document


def test_a_lock_document_from_before_the_counter_keeps_its_order(
    make_lock: MakeLock, memory_store: MemoryStore
) -> None:
    """A lock written by an older version (time-based tokens, no counter) is continued above."""
    lock = make_lock("a")
    legacy = 1_769_860_800_000_000  # a token of the old time-based scheme
    memory_store.transact(
        COLLECTION, lock.key, lambda _s: Outcome(None, Put({"token": legacy, "holder": None}))
    )

    assert lock.acquire().token == legacy + 1


def test_tokens_are_consecutive_when_nothing_is_lost(make_lock: MakeLock) -> None:
    """Tokens are small consecutive integers: no clock in them."""
    lock = make_lock("a")
    tokens = []
    for _ in range(3):
        tokens.append(lock.acquire().token)
        lock.release()

    assert tokens == [1, 2, 3]


def test_busy_attempts_reserve_nothing(make_lock: MakeLock, memory_store: MemoryStore) -> None:
    """A non-blocking attempt on a held lock writes nothing, not even to the counter."""
    make_lock("a").acquire()
    memory_store.reset_stats()

    with pytest.raises(LockNotAcquiredError):
        make_lock("b").acquire(blocking=False)

    assert memory_store.stats.writes == 0


def test_counter_document_never_expires(make_lock: MakeLock, memory_store: MemoryStore) -> None:
    """The counter carries no ``expire_at``: a TTL policy on the collection never deletes it."""
    lock = make_lock("a")
    lock.acquire()

    counter = memory_store.dump()[COLLECTION][counter_key(lock.key)]
    assert set(counter) == {"name", "date", "token"}
    doc = lock_doc(memory_store, lock)
    assert doc is not None
    assert doc["expire_at"] - doc["expires_at"] >= dt.timedelta(days=7)


def test_locks_with_the_same_owner_never_both_hold(make_lock: MakeLock) -> None:
    """Two DateLock objects given one owner id are still two holders: the second is refused."""
    first, second = make_lock("same"), make_lock("same")
    lease = first.acquire()

    with pytest.raises(LockNotAcquiredError):
        second.acquire(blocking=False)
    with pytest.raises(LockError):
        second.release()  # it holds nothing, so it cannot end the first one's lease

    assert second.lease is None
    lease.ensure_held()
