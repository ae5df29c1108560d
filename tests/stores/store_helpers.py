"""Helpers for the store tests: running threads, small callbacks, a compare-and-set."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pipeline_reliability import Outcome, Put, Snapshot, StateStore
from store_backends import is_memory

__all__ = [
    "COLLECTION",
    "StaleVersionError",
    "compare_and_set",
    "increment",
    "is_memory",
    "put",
    "run_threads",
]

T = TypeVar("T")
COLLECTION = "contract"


def run_threads(count: int, target: Callable[[int], T]) -> list[T]:
    """Run ``target(i)`` for i in range(count) in as many threads, all released at once."""
    start = threading.Barrier(count, timeout=60)

    def run(index: int) -> T:
        start.wait()
        return target(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(run, i) for i in range(count)]
        # .result() re-raises a thread's exception here, in the test's thread.
        return [f.result(timeout=300) for f in futures]


def put(store: StateStore, key: str, data: Mapping[str, Any]) -> None:
    """Replace a document unconditionally."""
    store.transact(COLLECTION, key, lambda _snap: Outcome(None, Put(data)))


def increment(snap: Snapshot) -> Outcome[int]:
    """Add one to the document's ``n`` (a missing document counts as 0)."""
    value = (snap.data or {}).get("n", 0) + 1
    return Outcome(value, Put({"n": value}))


class StaleVersionError(Exception):
    """The compare-and-set saw a version other than the expected one."""


def compare_and_set(
    store: StateStore, key: str, expected: Hashable | None, data: Mapping[str, Any]
) -> Hashable | None:
    """
    Write ``data`` only if the document's version is still ``expected``.

    Built over ``transact``, as capabilities do; returns the version it replaced.
    """

    def decide(snap: Snapshot) -> Outcome[Hashable | None]:
        if snap.version != expected:
            raise StaleVersionError(f"expected version {expected!r}, found {snap.version!r}")
        return Outcome(snap.version, Put(data))

    return store.transact(COLLECTION, key, decide)
