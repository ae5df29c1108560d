"""
Every store backend for the ``store`` fixtures, and the adapter that lets the
sync tests (the StateStore contract above all) run on the async stores.

:class:`SyncOverAsync` is a test-only ``StateStore`` whose operations are the
async store's coroutines, each run on an event loop living in a dedicated
thread: one loop per calling thread, so that a test's threads run real
concurrent async transactions, and a callback that blocks its thread (the
contract's barriers) blocks only its own loop, as it would block only its own
thread on a sync store.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from pipeline_reliability import (
    AsyncMemoryStore,
    AsyncStateStore,
    MemoryStore,
    Outcome,
    Snapshot,
    StateStore,
    StoreStats,
)
from pipeline_reliability.testing import FakeClock

T = TypeVar("T")
R = TypeVar("R")
# Longer than any store call of the suite; only a deadlocked test meets it.
CALL_LIMIT = 600.0

#: The backends of the root ``store`` fixture (every suite that takes ``store``).
SYNC_BACKENDS = [
    pytest.param("memory", marks=pytest.mark.memory),
    pytest.param("firestore", marks=pytest.mark.firestore),
]
#: The backends of the store contract: the sync ones and their async twins.
ALL_BACKENDS = [
    *SYNC_BACKENDS,
    pytest.param("async-memory", marks=pytest.mark.memory),
    pytest.param("async-firestore", marks=pytest.mark.firestore),
]


class _LoopThread:
    """An event loop running forever in its own daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="store-adapter-loop", daemon=True
        )
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout=CALL_LIMIT)
        finally:
            future.cancel()  # a no-op once done; ends the task if we stopped waiting

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


class SyncOverAsync:
    """
    A sync :class:`StateStore` over an :class:`AsyncStateStore` (tests only).

    Each calling thread gets its own event loop in a dedicated thread; every
    ``get``/``transact`` is the async store's coroutine run there. Call
    :meth:`close` at the end: it awaits the store's ``aclose()`` (if any) on
    each loop, then stops the loops.
    """

    def __init__(self, inner: AsyncStateStore) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._loops: dict[int, _LoopThread] = {}

    @property
    def loops(self) -> int:
        """How many event loops (one per calling thread) the adapter has started."""
        with self._lock:
            return len(self._loops)

    def run(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run the coroutine ``make()`` on the calling thread's loop and return its result."""
        caller = threading.get_ident()
        with self._lock:
            runner = self._loops.get(caller)
            if runner is None:
                runner = self._loops[caller] = _LoopThread()
        return runner.run(make())

    @property
    def stats(self) -> StoreStats:
        """The async store's counts."""
        return self.inner.stats

    def reset_stats(self) -> None:
        """Reset the async store's counts."""
        self.inner.reset_stats()

    def get(self, collection: str, key: str, *, timeout: float | None = None) -> Snapshot:
        """The async store's ``get``, awaited on this thread's loop."""
        return self.run(lambda: self.inner.get(collection, key, timeout=timeout))

    def transact(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        """The async store's ``transact``, awaited on this thread's loop."""
        return self.run(lambda: self.inner.transact(collection, key, fn, timeout=timeout))

    def transact_from(
        self,
        first: Snapshot,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        """The async store's ``transact_from``, awaited on this thread's loop."""
        inner: Any = self.inner
        result: R = self.run(lambda: inner.transact_from(first, fn, timeout=timeout))
        return result

    def close(self) -> None:
        """Close the store's client on every loop (``aclose``), then stop the loops."""
        with self._lock:
            runners, self._loops = list(self._loops.values()), {}
        aclose = getattr(self.inner, "aclose", None)
        for runner in runners:
            try:
                if aclose is not None:
                    runner.run(aclose())
            finally:
                runner.stop()


def is_memory(store: StateStore) -> bool:
    """Whether ``store`` is (or adapts) an embedded store: the only ones cheap under contention."""
    inner = store.inner if isinstance(store, SyncOverAsync) else store
    return isinstance(inner, MemoryStore | AsyncMemoryStore)


def make_store(
    request: pytest.FixtureRequest,
    backend: str,
    fake_clock: FakeClock,
    options: dict[str, Any],
) -> Iterator[StateStore]:
    """Yield a fresh store of ``backend`` (async ones behind :class:`SyncOverAsync`); close it."""
    if backend == "memory":
        yield MemoryStore(clock=fake_clock, **options)
        return
    if backend == "async-memory":
        adapter = SyncOverAsync(AsyncMemoryStore(clock=fake_clock, **options))
        yield adapter
        adapter.close()
        return
    # Requested here, not in a signature, so that memory-only runs start no emulator.
    project = request.getfixturevalue("firestore_project")
    if backend == "firestore":
        from pipeline_reliability.stores.firestore import FirestoreStore

        firestore = FirestoreStore(project=project, **options)
        yield firestore
        firestore.close()
        return
    assert backend == "async-firestore", backend
    from pipeline_reliability import AsyncFirestoreStore

    adapter = SyncOverAsync(AsyncFirestoreStore(project=project, **options))
    yield adapter
    adapter.close()


class AsyncOverSync:
    """
    An ``AsyncStateStore`` whose operations are a sync store's, awaited (tests only).

    The reverse of :class:`SyncOverAsync`: it lets the async capabilities run on
    the sync test stores and fault wrappers (``FaultyStore``, counting wrappers).
    """

    def __init__(self, sync: StateStore) -> None:
        self.sync = sync

    @property
    def stats(self) -> StoreStats:
        return self.sync.stats

    def reset_stats(self) -> None:
        self.sync.reset_stats()

    async def get(self, collection: str, key: str, *, timeout: float | None = None) -> Snapshot:
        return self.sync.get(collection, key, timeout=timeout)

    async def transact(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        return self.sync.transact(collection, key, fn, timeout=timeout)

    def dump(self) -> Any:
        """The wrapped store's documents (a ``MemoryStore`` underneath)."""
        inner: Any = getattr(self.sync, "inner", self.sync)
        return inner.dump()
