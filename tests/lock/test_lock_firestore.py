"""
DateLock on the Firestore emulator: real transactions, the server's clock, real processes.

The emulator locks pessimistically and times out a conflicting transaction
after 2 s (EMULATORS.md §3), so TTLs here are a few seconds, and clients
pause between acquisitions as processors would.
"""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import pytest
from lock_helpers import DATE, NAME

from pipeline_reliability import StateStore
from pipeline_reliability.errors import LockLostError, LockNotAcquiredError
from pipeline_reliability.lock import DateLock, Lease, break_lock

pytestmark = pytest.mark.firestore

TTL = 2.5


@dataclass(frozen=True)
class Held:
    """One lease as its holder saw it, with its end in store time."""

    owner: str
    token: int
    start: datetime
    end: datetime
    released: bool
    paused: bool
    lost_reason: str | None


def _hold(lock: DateLock, lease: Lease, paused: bool) -> Held:
    """Work under the lease (pausing past the TTL when told to), then release."""
    time.sleep(TTL + 0.3 if paused else 0.02)
    reason = None
    try:
        lock.release()
    except LockLostError as exc:
        reason = str(exc)
    end = lease.released_at if reason is None else lease.expires_at
    assert lease.acquired_at is not None
    assert end is not None
    return Held(lock.owner, lease.token, lease.acquired_at, end, reason is None, paused, reason)


def test_contending_threads_never_overlap_and_tokens_increase(firestore_store: StateStore) -> None:
    """3 clients x 20 acquisitions, some pausing past the TTL: ordered tokens, disjoint leases."""
    per_client, results, errors = 20, list[Held](), list[BaseException]()
    guard = threading.Lock()

    def client(index: int) -> None:
        lock = DateLock(firestore_store, NAME, DATE, owner=f"client-{index}", ttl=TTL)
        rng = random.Random(index)
        try:
            for k in range(per_client):
                lease = lock.acquire(timeout=60)
                # Two clients pause past the TTL twice each (a GC pause, a slow query).
                held = _hold(lock, lease, paused=index < 2 and k % 10 == 9)
                with guard:
                    results.append(held)
                time.sleep(rng.uniform(0, 0.4))
        except BaseException as exc:
            errors.append(exc)
            raise

    threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(results) == 3 * per_client
    by_start = sorted(results, key=lambda h: h.start)
    tokens = [h.token for h in by_start]
    assert tokens == sorted(set(tokens)), "tokens must strictly increase in acquisition order"
    for earlier, later in itertools.pairwise(by_start):
        assert later.start >= earlier.end, f"{later} overlaps {earlier}"
    paused = [h for h in results if h.paused]
    assert len(paused) == 4
    assert all(not h.released for h in paused)
    assert any("superseded" in (h.lost_reason or "") for h in paused)
    info = DateLock.inspect(firestore_store, NAME, DATE)
    assert (info.holder, info.token) == (None, max(tokens))


_CHILD = """
import sys
from pipeline_reliability.lock import DateLock
from pipeline_reliability.stores.firestore import FirestoreStore

lock = DateLock(FirestoreStore(project=sys.argv[1]), sys.argv[2], sys.argv[3],
                owner="doomed-child", ttl=float(sys.argv[4]))
lease = lock.acquire(blocking=False)
print(lease.token, flush=True)
sys.stdin.read()  # hold the lease until killed
"""


def test_holder_killed_with_sigkill_is_replaced_after_the_ttl(
    firestore_store: StateStore, firestore_project: str
) -> None:
    """A process killed while holding the lock blocks others only until its TTL runs out."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, firestore_project, NAME, DATE, str(TTL)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=dict(os.environ),
        text=True,
    )
    try:
        assert child.stdout is not None
        child_token = int(child.stdout.readline())
    finally:
        child.kill()  # SIGKILL: no release, no cleanup
        child.wait(timeout=30)

    survivor = DateLock(firestore_store, NAME, DATE, owner="survivor", ttl=TTL)
    with pytest.raises(LockNotAcquiredError) as info:
        survivor.acquire(blocking=False)
    assert info.value.holder == "doomed-child"
    lease = survivor.acquire(timeout=3 * TTL)

    assert lease.token > child_token
    assert info.value.expires_at is not None
    assert lease.acquired_at is not None
    assert lease.acquired_at >= info.value.expires_at
    survivor.release()


def test_f7_on_the_emulator(firestore_store: StateStore) -> None:
    """F7 on Firestore: the holder that outlived its TTL cannot release its successor's lease."""
    first = DateLock(firestore_store, NAME, DATE, owner="instance-a", ttl=1.0)
    first.acquire()
    time.sleep(1.1)  # the server's clock decides; we must really wait
    second = DateLock(firestore_store, NAME, DATE, owner="instance-b", ttl=30)
    lease_b = second.acquire(blocking=False)

    with pytest.raises(LockLostError, match="superseded"):
        first.release()

    lease_b.ensure_held()
    info = DateLock.inspect(firestore_store, NAME, DATE)
    assert (info.holder, info.token, info.held) == ("instance-b", lease_b.token, True)
    assert break_lock(firestore_store, NAME, DATE, token=lease_b.token) == lease_b.token
    with pytest.raises(LockLostError):
        second.release()


def test_uncontended_cycle_costs_four_transactions_on_firestore(
    firestore_store: StateStore,
) -> None:
    """Acquire is two Firestore transactions (reserve, grant); renewal and release one each."""
    lock = DateLock(firestore_store, NAME, DATE, owner="a", ttl=30)
    firestore_store.reset_stats()

    lease = lock.acquire()
    lease.renew()
    lock.release()

    assert firestore_store.stats.transactions == 4
    assert firestore_store.stats.writes == 4
