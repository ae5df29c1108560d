"""
Benchmark of ConcurrencyLimit (issue 12, item 1), against baselines measured in the same run.

1. Store operations per uncontended acquire + release, read from ``store.stats``
   (goal: 2, one transaction each), and per poll of a waiter on a full limit
   (goal: one read, no write once its ticket is queued).
2. The overhead of ``with limit.slot(): call()`` against the bare ``call()``
   and against one bare read-modify-write transaction on the same store (the
   floor of any shared semaphore), on the MemoryStore.

Run: ``python benchmarks/limits.py [--quick]``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

from pipeline_reliability import MemoryStore, Outcome, Put, SlotNotAcquiredError, Snapshot
from pipeline_reliability.limits import ConcurrencyLimit
from pipeline_reliability.testing import FakeClock

NAME = "merge:bench.table"


def operations_per_slot() -> tuple[int, int, int]:
    """(transactions, reads, writes) of one uncontended ``with limit.slot():``."""
    store = MemoryStore()
    limit = ConcurrencyLimit(NAME, store, limit=18)
    with limit.slot():
        pass  # warm up: nothing is cached, but keep the measurement to one call
    store.reset_stats()
    with limit.slot():
        pass
    stats = store.stats
    return stats.transactions, stats.reads, stats.writes


def operations_per_poll() -> tuple[float, float]:
    """(reads, writes) per poll of a queued waiter on a full limit (FakeClock: no sleeping)."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    ConcurrencyLimit(NAME, store, limit=1, clock=clock, lease=3600).acquire()
    waiter = ConcurrencyLimit(NAME, store, limit=1, clock=clock, lease=3600)
    before = len(clock.sleeps)
    store.reset_stats()
    with contextlib.suppress(SlotNotAcquiredError):  # the expected end of the wait
        waiter.acquire(timeout=60)
    polls = len(clock.sleeps) - before + 1
    stats = store.stats
    return stats.reads / polls, stats.writes / polls


def per_call(fn: Callable[[], object], n: int) -> float:
    """Median of 5 runs of ``n`` calls, in microseconds per call."""
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(runs)


def overhead(n: int) -> tuple[float, float, float]:
    """(bare call, one bare transaction, slot around the call), microseconds per call."""
    store = MemoryStore()
    limit = ConcurrencyLimit(NAME, store, limit=18)
    work = sum  # a trivial call: the slot's own cost is what shows

    def bare() -> object:
        return work((1, 2, 3))

    def rewrite(snap: Snapshot) -> Outcome[None]:
        data = dict(snap.data or {"n": 0})
        data["n"] += 1
        return Outcome(None, Put(data))

    def transaction() -> object:
        return store.transact("bench_bare", "doc", rewrite)

    def slotted() -> object:
        with limit.slot():
            return work((1, 2, 3))

    return per_call(bare, n), per_call(transaction, n), per_call(slotted, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    n = 500 if args.quick else 5000

    tx, reads, writes = operations_per_slot()
    print("ConcurrencyLimit: store operations per uncontended acquire + release (MemoryStore)")
    print(f"  {tx} transactions ({reads} reads, {writes} writes)   goal: 2 transactions   "
          f"{'OK' if tx == 2 else 'MISSED'}")
    poll_reads, poll_writes = operations_per_poll()
    print(f"  a queued waiter's poll: {poll_reads:.2f} reads, {poll_writes:.2f} writes "
          "(writes only to queue, refresh its ticket every 5 s, and withdraw it)")

    bare, transaction, slotted = overhead(n)
    print(f"ConcurrencyLimit: per-call overhead on MemoryStore ({n} calls, median of 5)")
    print(f"  bare call                      {bare:9.2f} us")
    print(f"  one bare transaction (floor)   {transaction:9.2f} us")
    print(f"  with limit.slot(): call()      {slotted:9.2f} us   "
          f"= {slotted / (2 * transaction):.2f}x two bare transactions, "
          f"+{slotted - bare:.1f} us per call")


if __name__ == "__main__":
    main()
