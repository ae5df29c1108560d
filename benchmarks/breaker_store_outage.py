"""
Benchmark of the breaker during a store outage (issue 10, item 5).

A FirestoreStore is pointed (via ``FIRESTORE_EMULATOR_HOST``) at

1. a black hole: a local TCP listener that accepts connections and never answers;
2. a dead port: nothing listens, every connection is refused.

Several threads call a trivial function through one breaker (``fail_open``,
``store_timeout`` = D, ``cache_ttl`` short so that the store is tried again
and again). For each call the benchmark knows whether that call's thread went
to the store (the refreshing call) or not (every other call), and prints the
p50/p99 latency each adds over a bare call, as a ratio to D.

Goal: p99 <= 1.0 x D for the refreshing call, <= 0.01 x D for all other calls.
The baseline, measured in the same run, is the same loop over a healthy
MemoryStore. Loops are bounded in calls and in time; the script stops by itself.

Run: ``python benchmarks/breaker_store_outage.py [--quick]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from pipeline_reliability import FirestoreStore, MemoryStore, StateStore
from pipeline_reliability.breaker import CircuitBreaker
from pipeline_reliability.stores import Outcome, Snapshot
from pipeline_reliability.testing import StoreWrapper

R = TypeVar("R")
PROTECTED = int  # the protected call: as cheap as a Python call gets
_IN_STORE = threading.local()


class MarkingStore(StoreWrapper):
    """Marks the calling thread as having gone to the store (the refreshing call)."""

    def get(self, collection: str, key: str, *, timeout: float | None = None) -> Snapshot:
        """Read, marking the thread."""
        _IN_STORE.hit = True
        return super().get(collection, key, timeout=timeout)

    def transact(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        """Transact, marking the thread."""
        _IN_STORE.hit = True
        return super().transact(collection, key, fn, timeout=timeout)


@dataclass
class Samples:
    """Per-call latencies (seconds), split by whether the call went to the store."""

    refreshing: list[float] = field(default_factory=list)
    others: list[float] = field(default_factory=list)


@contextmanager
def black_hole() -> Iterator[str]:
    """A listener that accepts and never answers; yields ``host:port``."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.1)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conns.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in conns:
            conn.close()
        server.close()


def dead_port() -> str:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def run(store: StateStore, *, deadline: float, threads: int, seconds: float,
        max_calls: int) -> Samples:
    """Call through one breaker from several threads; bounded in time and calls."""
    breaker = CircuitBreaker(
        "bench-outage", MarkingStore(store), store_timeout=deadline, cache_ttl=deadline * 2,
        on_store_error="fail_open", instance_id="bench",
    )
    samples = Samples()
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker() -> None:
        mine = Samples()
        clock = time.perf_counter
        for _ in range(max_calls):
            if time.monotonic() >= stop_at:
                break
            _IN_STORE.hit = False
            started = clock()
            breaker.call(PROTECTED)
            elapsed = clock() - started
            (mine.refreshing if _IN_STORE.hit else mine.others).append(elapsed)
        with lock:
            samples.refreshing.extend(mine.refreshing)
            samples.others.extend(mine.others)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=seconds + 30 * deadline + 10)
    if any(thread.is_alive() for thread in pool):
        raise SystemExit("a worker did not stop: a call is stuck on the store")
    return samples


def bare_call_cost(calls: int) -> float:
    """The median cost of calling the protected function directly."""
    clock, fn = time.perf_counter, PROTECTED
    costs = []
    for _ in range(calls):
        started = clock()
        fn()
        costs.append(clock() - started)
    return statistics.median(costs)


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank); nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def report(name: str, samples: Samples, bare: float, deadline: float) -> list[str]:
    """One line per kind of call; returns the goals missed."""
    missed = []
    for kind, values, goal in (("refreshing", samples.refreshing, 1.0),
                               ("other", samples.others, 0.01)):
        added = [max(v - bare, 0.0) for v in values]
        p50, p99 = pct(added, 50), pct(added, 99)
        ratio = p99 / deadline
        ok = ratio <= goal
        print(f"  {name:<11} {kind:<10} calls={len(values):>8}  "
              f"p50={p50 * 1e3:9.3f} ms ({p50 / deadline:6.3f}x)  "
              f"p99={p99 * 1e3:9.3f} ms ({ratio:6.3f}x)  goal <= {goal:g}x  "
              f"{'ok' if ok else 'MISSED'}")
        if not ok and values:
            missed.append(f"{name}/{kind}")
    return missed


def main() -> int:
    """Run both outages and the healthy baseline; print ratios to the store deadline."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (CI smoke run)")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # every failed store call logs a traceback by design
    deadline = 0.25
    seconds, threads, max_calls = (1.5, 4, 200_000) if args.quick else (6.0, 8, 2_000_000)
    bare = bare_call_cost(20_000)
    print(f"breaker during a store outage: store_timeout D = {deadline * 1e3:g} ms, "
          f"{threads} threads x {seconds:g} s, bare call {bare * 1e9:.0f} ns")
    missed = report("healthy", run(MemoryStore(), deadline=deadline, threads=threads,
                                   seconds=seconds, max_calls=max_calls), bare, deadline)
    previous = os.environ.get("FIRESTORE_EMULATOR_HOST")
    try:
        with black_hole() as host:
            os.environ["FIRESTORE_EMULATOR_HOST"] = host
            store = FirestoreStore(project="bench-outage")
            _ = store.client  # create the client before timing (no I/O happens)
            samples = run(store, deadline=deadline, threads=threads, seconds=seconds,
                          max_calls=max_calls)
            store.close()
        missed += report("black hole", samples, bare, deadline)
        os.environ["FIRESTORE_EMULATOR_HOST"] = dead_port()
        store = FirestoreStore(project="bench-outage")
        _ = store.client
        samples = run(store, deadline=deadline, threads=threads, seconds=seconds,
                      max_calls=max_calls)
        store.close()
        missed += report("dead port", samples, bare, deadline)
    finally:
        if previous is None:
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = previous
    if missed:
        print(f"goals missed: {', '.join(missed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
