"""
Benchmark of DateLock (DESIGN F7), as ratios against baselines measured in the same run.

1. Store operations per uncontended acquire + release, read from ``store.stats``
   (target: 3 atomic operations: reserve a token in the counter document, grant,
   release; plus the read that precedes a grant), next to the
   production lock this library replaces ("naive": read, then write without a
   precondition; release deletes the document without checking the holder).
2. Acquire latency (median and p95 of acquire alone; each acquire is followed
   by an untimed release), against one bare read-modify-write transaction on
   the same store: the floor for any atomic lock.

On the MemoryStore always; on the Firestore emulator when
``FIRESTORE_EMULATOR_HOST`` is set, or with ``--emulator`` (started through
``pipeline_reliability.testing.emulators``, and stopped at the end).

Run: ``python benchmarks/lock.py [--quick] [--emulator]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pipeline_reliability import Delete, MemoryStore, Outcome, Put, Snapshot, StateStore
from pipeline_reliability.lock import DateLock

NAME, DATE = "bench", "2026-01-31"


# ------------------------------------------------------------------------------ baselines


class NaiveLock:
    """The production lock of F7: check, then set; release deletes whatever is there."""

    collection = "naive_locks"

    def __init__(self, store: StateStore, key: str, owner: str, ttl: float) -> None:
        self.store, self.key, self.owner, self.ttl = store, key, owner, ttl

    def acquire(self) -> bool:
        """Read the document, and write ourselves in if it looks free (racy by design)."""
        snap = self.store.get(self.collection, self.key)
        if snap.data is not None and snap.data["expires"] > time.time():
            return False
        record = {"holder": self.owner, "expires": time.time() + self.ttl}
        self.store.transact(self.collection, self.key, lambda _: Outcome(None, Put(record)))
        return True

    def release(self) -> None:
        """Delete the document, whoever holds it (the F7 bug)."""
        self.store.transact(self.collection, self.key, lambda _: Outcome(None, Delete()))


def bare_transaction(store: StateStore, template: dict[str, Any]) -> Callable[[], None]:
    """One read-modify-write of a document shaped like the lock's: the floor."""

    def rewrite(snap: Snapshot) -> Outcome[None]:
        data = dict(snap.data or template)
        data["token"] = data.get("token", 0) + 1
        return Outcome(None, Put(data))

    return lambda: store.transact("bench_bare", "doc", rewrite)


# -------------------------------------------------------------------------- measurement


@dataclass(frozen=True)
class Latency:
    """Median and 95th percentile, in milliseconds."""

    median: float
    p95: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        ordered = sorted(seconds)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        return cls(statistics.median(ordered) * 1e3, p95 * 1e3)


def ops_per_cycle(store: StateStore, cycle: Callable[[], None], repeats: int) -> dict[str, float]:
    """Average store operations of one ``cycle()``, from the store's own counters."""
    cycle()  # warm up (first document creation, client start)
    store.reset_stats()
    for _ in range(repeats):
        cycle()
    stats = store.stats
    return {
        "transactions": stats.transactions / repeats,
        "reads": stats.reads / repeats,
        "writes": stats.writes / repeats,
    }


def timed(step: Callable[[], Any], after: Callable[[], Any], repeats: int) -> Latency:
    """Latency of ``step`` alone, running the untimed ``after`` between samples."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
        after()
    return Latency.of(samples)


def bench_store(label: str, store: StateStore, repeats: int) -> None:
    """Print operation counts and acquire latency on ``store``."""
    lock = DateLock(store, NAME, DATE, owner="bench", ttl=60)
    naive = NaiveLock(store, f"{NAME}~{DATE}", "bench", 60)

    def ours_cycle() -> None:
        lock.acquire()
        lock.release()

    def naive_cycle() -> None:
        naive.acquire()
        naive.release()

    ours = ops_per_cycle(store, ours_cycle, repeats)
    theirs = ops_per_cycle(store, naive_cycle, repeats)
    print(f"\n[{label}] store operations per uncontended acquire + release")
    print(f"  {'':28} {'transactions':>12} {'plain gets':>10} {'writes':>7} {'round trips':>11}")
    for name, ops in (("DateLock", ours), ("naive lock (baseline, F7)", theirs)):
        gets = ops["reads"] - ops["transactions"]  # one read per transaction without conflicts
        trips = ops["transactions"] + gets
        print(f"  {name:28} {ops['transactions']:12.2f} {gets:10.2f} "
              f"{ops['writes']:7.2f} {trips:11.2f}")  # fmt: skip
    verdict = "meets" if ours["transactions"] <= 3 and ours["writes"] <= 3 else "MISSES"
    print(f"  -> DateLock {verdict} the target of 3 atomic operations per acquire + release")

    lock.acquire()
    template = dict(store.get(lock.collection, lock.key).data or {})
    lock.release()
    bare = timed(bare_transaction(store, template), lambda: None, repeats)
    acquire = timed(lock.acquire, lock.release, repeats)
    naive_acquire = timed(naive.acquire, naive.release, repeats)
    print(f"\n[{label}] acquire latency, {repeats} samples (ms)")
    print(f"  {'':28} {'median':>8} {'p95':>8} {'x bare txn':>10}")
    rows = (
        ("bare txn, same doc (floor)", bare),
        ("DateLock.acquire", acquire),
        ("naive acquire (baseline)", naive_acquire),
    )
    for name, lat in rows:
        print(f"  {name:28} {lat.median:8.3f} {lat.p95:8.3f} {lat.median / bare.median:10.2f}")


@contextmanager
def firestore_store(start: bool) -> Iterator[StateStore | None]:
    """A FirestoreStore on the emulator named by the environment, or one started here."""
    emulator = None
    if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        if not start:
            yield None
            return
        from pipeline_reliability.testing.emulators import start_firestore

        emulator = start_firestore()
        os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
    from pipeline_reliability.stores.firestore import FirestoreStore

    store = FirestoreStore(project=f"bench-{uuid.uuid4().hex[:12]}")
    try:
        yield store
    finally:
        store.close()
        if emulator is not None:
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
            emulator.stop()


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument(
        "--emulator", action="store_true", help="start a Firestore emulator if none is set"
    )
    args = parser.parse_args()
    memory_repeats, emulator_repeats = (200, 20) if args.quick else (5_000, 200)

    bench_store("memory", MemoryStore(), memory_repeats)
    with firestore_store(args.emulator) as store:
        if store is None:
            print("\n[firestore emulator] skipped: set FIRESTORE_EMULATOR_HOST or pass --emulator")
        else:
            bench_store("firestore emulator", store, emulator_repeats)


if __name__ == "__main__":
    main()
