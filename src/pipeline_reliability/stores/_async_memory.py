"""The embedded store for asyncio code: a ``MemoryStore`` whose operations are awaited."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .._clock import Clock
from ..errors import ConfigurationError
from ._protocol import Outcome, Snapshot, StoreStats
from .memory import MemoryStore

__all__ = ["AsyncMemoryStore"]

R = TypeVar("R")


class AsyncMemoryStore:
    """
    An :class:`AsyncStateStore` in process memory.

    It runs :class:`MemoryStore`'s code directly on the event loop: that code
    never waits on anything but a lock held for microseconds, so there is
    nothing to hand to a thread. Pass ``store=`` to share documents with sync
    code (a sync tracker and an async one over the same dates, as in a mixed
    fleet); otherwise a fresh ``MemoryStore`` is made from ``clock`` and
    ``max_attempts``.

    Args:
        store: The ``MemoryStore`` to share (its clock and attempts apply).
        clock: The store's time source when ``store`` is not given.
        max_attempts: Attempts per ``transact`` when ``store`` is not given.
    """

    def __init__(
        self,
        store: MemoryStore | None = None,
        *,
        clock: Clock | None = None,
        max_attempts: int = 5,
    ) -> None:
        if store is not None:
            if not isinstance(store, MemoryStore):
                raise ConfigurationError(f"store must be a MemoryStore, got {store!r:.100}")
            if clock is not None:
                raise ConfigurationError("pass clock to the shared MemoryStore, not here")
        self.sync: MemoryStore = store or MemoryStore(clock=clock, max_attempts=max_attempts)

    @property
    def clock(self) -> Clock:
        """The store's time source."""
        return self.sync.clock

    @property
    def stats(self) -> StoreStats:
        """Operation counts so far (shared with ``sync``, the wrapped MemoryStore)."""
        return self.sync.stats

    def reset_stats(self) -> None:
        """Set every operation count back to zero."""
        self.sync.reset_stats()

    async def get(self, collection: str, key: str, *, timeout: float | None = None) -> Snapshot:
        """Read one document (see :meth:`StateStore.get`)."""
        return self.sync.get(collection, key, timeout=timeout)

    async def transact(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        """Atomic read-modify-write (see :meth:`StateStore.transact`)."""
        return self.sync.transact(collection, key, fn, timeout=timeout)

    async def transact_from(
        self,
        first: Snapshot,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        """A transaction deciding first on ``first`` (see :meth:`MemoryStore.transact_from`)."""
        return self.sync.transact_from(first, fn, timeout=timeout)

    def dump(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Return a deep copy of every document (see :meth:`MemoryStore.dump`)."""
        return self.sync.dump()
