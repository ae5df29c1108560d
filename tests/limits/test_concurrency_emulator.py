"""
ConcurrencyLimit on the Firestore emulator: real transactions, the server's clock, real processes.

The emulator locks pessimistically and times out a conflicting transaction
after 2 s (EMULATORS.md §3): holders start a little apart, as processors
would, and timeouts are generous.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import threading
import time

import pytest

from pipeline_reliability import AsyncFirestoreStore, FirestoreStore, Snapshot, StateStore
from pipeline_reliability.errors import SlotNotAcquiredError
from pipeline_reliability.limits import AsyncConcurrencyLimit, ConcurrencyLimit

pytestmark = pytest.mark.firestore

N = 3
LEASE = 3.0


def test_n_plus_5_concurrent_holders_across_3_instances_never_exceed_n(
    firestore_project: str,
) -> None:
    """
    Checked from INSIDE the critical section with a shared counter.

    Each transaction on the one document that overlaps another costs the
    emulator's 2 s lock timeout, so each holder enters once (a minute at worst).
    """
    # Each instance has its own client, as separate processes would.
    stores = [FirestoreStore(project=firestore_project) for _ in range(3)]
    instances = [
        ConcurrencyLimit("merge:ds.table", stores[i], limit=N, lease=30,
                         owner=f"instance-{i}", store_timeout=120)
        for i in range(3)
    ]
    guard = threading.Lock()
    inside, peak, entries = 0, 0, 0
    errors: list[BaseException] = []

    def holder(index: int) -> None:
        nonlocal inside, peak, entries
        rng = random.Random(index)
        time.sleep(rng.uniform(0, 2.0))
        try:
            with instances[index % 3].slot(timeout=300):
                with guard:
                    inside += 1
                    entries += 1
                    peak = max(peak, inside)
                time.sleep(1.0)  # the MERGE statement
                with guard:
                    inside -= 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=holder, args=(i,)) for i in range(N + 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)

    left = stores[0].get("concurrency_limits", "merge:ds.table")
    for store in stores:
        store.close()
    assert errors == []
    assert entries == N + 5
    assert 1 <= peak <= N, f"{peak} holders at once, limit {N}"
    assert left.data is None


_CHILD = """
import sys
from pipeline_reliability.limits import AsyncConcurrencyLimit, ConcurrencyLimit
from pipeline_reliability.stores.firestore import FirestoreStore

limit = ConcurrencyLimit("merge:ds.table", FirestoreStore(project=sys.argv[1]), limit=1,
                         owner="doomed-child", lease=float(sys.argv[2]))
slot = limit.acquire(timeout=0)
print(slot.slot_id, flush=True)
sys.stdin.read()  # hold the slot until killed
"""


def test_a_killed_holders_slot_returns_after_its_lease(
    firestore_store: StateStore, firestore_project: str
) -> None:
    """A process killed (SIGKILL, no release) while holding blocks others only for its lease."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, firestore_project, str(LEASE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=dict(os.environ),
        text=True,
    )
    try:
        assert child.stdout is not None
        child_slot = child.stdout.readline().strip()
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child_slot

    survivor = ConcurrencyLimit("merge:ds.table", firestore_store, limit=1, owner="survivor",
                                lease=LEASE, store_timeout=30)
    with pytest.raises(SlotNotAcquiredError) as info:
        survivor.acquire(timeout=0)
    assert info.value.holders == 1
    started = time.monotonic()
    slot = survivor.acquire(timeout=6 * LEASE)
    waited = time.monotonic() - started

    assert slot.held
    assert waited < LEASE + 5.0
    assert slot.release() is True


def test_async_n_plus_5_concurrent_holders_across_3_instances_never_exceed_n(
    firestore_project: str,
) -> None:
    """The async form on AsyncFirestoreStore (official async client): the same scenario."""
    store = AsyncFirestoreStore(project=firestore_project)
    instances = [
        AsyncConcurrencyLimit("merge:ds.table", store, limit=N, lease=30,
                              owner=f"instance-{i}", store_timeout=60)
        for i in range(3)
    ]
    inside, peak, entries = 0, 0, 0

    async def holder(index: int) -> None:
        nonlocal inside, peak, entries
        await asyncio.sleep(random.Random(index).uniform(0, 2.0))
        async with instances[index % 3].slot(timeout=300):
            inside += 1
            entries += 1
            peak = max(peak, inside)
            await asyncio.sleep(1.0)  # the MERGE statement
            inside -= 1

    async def main() -> Snapshot:
        try:
            await asyncio.gather(*(holder(i) for i in range(N + 5)))
            return await store.get("concurrency_limits", "merge:ds.table")
        finally:
            await store.aclose()

    left = asyncio.run(main())

    assert entries == N + 5
    assert 1 <= peak <= N, f"{peak} holders at once, limit {N}"
    assert left.data is None
