"""A pass-through StateStore wrapper: the base for fault injectors and spies."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..stores._protocol import AsyncStateStore, Outcome, Snapshot, StateStore, StoreStats

__all__ = ["AsyncStoreWrapper", "StoreWrapper"]

R = TypeVar("R")


class StoreWrapper:
    """
    A :class:`~pipeline_reliability.stores.StateStore` that delegates everything to ``inner``.

    On its own it changes nothing. Subclass it and override :meth:`get` or
    :meth:`transact` to intercept operations (fail them, record them, rewrite
    the write a callback decides), calling ``super()`` to reach the wrapped
    store; :attr:`stats` and :meth:`reset_stats` stay those of ``inner``.
    :class:`FaultyStore` is built on it.

    Args:
        inner: the store every operation is passed to.

    Example::

        from pipeline_reliability import MemoryStore
        from pipeline_reliability.testing import StoreWrapper

        class Spy(StoreWrapper):
            # Remembers which documents were transacted on.
            def __init__(self, inner):
                super().__init__(inner)
                self.transacted = []

            def transact(self, collection, key, fn, *, timeout=None):
                self.transacted.append((collection, key))
                return super().transact(collection, key, fn, timeout=timeout)

        store = Spy(MemoryStore())

    .. versionadded:: 0.1.0
    """

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner

    @property
    def stats(self) -> StoreStats:
        """The wrapped store's counts."""
        return self.inner.stats

    def reset_stats(self) -> None:
        """Reset the wrapped store's counts."""
        self.inner.reset_stats()

    def get(self, collection: str, key: str, *, timeout: float | None = None) -> Snapshot:
        """Read from the wrapped store."""
        return self.inner.get(collection, key, timeout=timeout)

    def transact(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        """Transact on the wrapped store."""
        return self.inner.transact(collection, key, fn, timeout=timeout)


class AsyncStoreWrapper:
    """
    An :class:`~pipeline_reliability.stores.AsyncStateStore` delegating everything to ``inner``.

    The asyncio twin of :class:`StoreWrapper`: override the coroutines
    :meth:`get` or :meth:`transact` and ``await super()...`` to reach the
    wrapped store. :class:`AsyncFaultyStore` is built on it.

    Args:
        inner: the async store every operation is passed to.
    """

    def __init__(self, inner: AsyncStateStore) -> None:
        self.inner = inner

    @property
    def stats(self) -> StoreStats:
        """The wrapped store's counts."""
        return self.inner.stats

    def reset_stats(self) -> None:
        """Reset the wrapped store's counts."""
        self.inner.reset_stats()

    async def get(self, collection: str, key: str, *, timeout: float | None = None) -> Snapshot:
        """Read from the wrapped store."""
        return await self.inner.get(collection, key, timeout=timeout)

    async def transact(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        """Transact on the wrapped store."""
        return await self.inner.transact(collection, key, fn, timeout=timeout)
