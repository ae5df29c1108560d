"""
The storage contract every capability is written against.

Two operations are enough for all four capabilities: a consistent read, and one
atomic read-modify-write of a single document whose callback sees the store's
own clock. Algorithms never assume anything else of a backend.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

__all__ = [
    "AsyncStateStore",
    "Delete",
    "Outcome",
    "Put",
    "Snapshot",
    "StateStore",
    "StoreStats",
]

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """
    One document as the store saw it.

    Attributes:
        collection: The collection the document lives in.
        key: The document id.
        data: The document's fields, or ``None`` when it does not exist. A
            fresh copy: mutating it changes nothing in the store.
        version: An opaque token that changes whenever the document changes
            (a write of identical data keeps it, as in Firestore; ``None``
            when the document does not exist). Compare only for equality.
        now: The store's own time when the snapshot was read (Firestore: the
            transaction's server read time; MemoryStore: its clock). Leases
            and deadlines are judged against this, never a client clock.
    """

    collection: str
    key: str
    data: dict[str, Any] | None
    version: Hashable | None
    now: datetime

    @property
    def exists(self) -> bool:
        """Whether the document exists."""
        return self.data is not None


@dataclass(frozen=True, slots=True)
class Put:
    """Replace the whole document with ``data``."""

    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete the document."""


@dataclass(frozen=True, slots=True)
class Outcome(Generic[R]):
    """
    What a ``transact`` callback decided: what to write, and what to return.

    ``write=None`` writes nothing (and costs no write).
    """

    result: R
    write: Put | Delete | None = None


@dataclass(frozen=True, slots=True)
class StoreStats:
    """
    Operation counts of one store object since it was created or reset.

    ``reads`` counts document reads (``get`` and each transaction attempt's
    read); ``writes`` counts committed puts and deletes; ``transactions``
    counts ``transact`` calls; ``conflicts`` counts attempts that were
    aborted by a concurrent writer and re-run.
    """

    reads: int = 0
    writes: int = 0
    transactions: int = 0
    conflicts: int = 0


@runtime_checkable
class StateStore(Protocol):
    """
    A document store with one atomic read-modify-write.

    Implementations: :class:`~pipeline_reliability.MemoryStore` (embedded) and
    :class:`~pipeline_reliability.FirestoreStore`. The contract suite in
    ``tests/stores`` is what defines the behaviour; both pass it.
    """

    @property
    def stats(self) -> StoreStats:
        """Operation counts so far (a frozen copy)."""
        ...

    def reset_stats(self) -> None:
        """Set every operation count back to zero."""
        ...

    def get(self, collection: str, key: str, *, timeout: float | None = None) -> Snapshot:
        """
        Read one document.

        Args:
            timeout: Seconds allowed for the whole read, internal retries
                included (``None``: the store's own default). A store that does
                not answer in time raises ``StoreUnavailableError``.

        Raises:
            InvalidInputError: the collection or key is not a valid document
                path, or ``timeout`` is not a positive number of seconds.
            StoreUnavailableError: the store could not be reached in time.
        """
        ...

    def transact(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        """
        Atomically read a document, let ``fn`` decide, and apply its write.

        ``timeout`` bounds the whole operation in seconds, every attempt and
        internal retry included (``None``: the store's own default). When it
        runs out the call raises ``StoreUnavailableError``, with
        ``maybe_committed=True`` if the commit was already on its way.

        ``fn`` may be called more than once: when another writer changed the
        document between the read and the commit, the attempt is discarded
        and ``fn`` runs again on the new state. It must therefore have no side
        effects besides its return value. An exception raised by ``fn``
        aborts the transaction, writes nothing and propagates unchanged.

        Raises:
            InvalidInputError: bad path, bad ``timeout``, or data the store cannot hold.
            StoreConflictError: contention outlasted the store's attempts.
            StoreUnavailableError: the store failed (``maybe_committed`` tells
                whether the write may have been applied anyway).
        """
        ...


@runtime_checkable
class AsyncStateStore(Protocol):
    """
    The asyncio twin of :class:`StateStore`: the same two operations, awaited.

    The contract is :class:`StateStore`'s word for word (snapshots, versions,
    store time, timeouts, errors); only ``get`` and ``transact`` are
    coroutines. The ``transact`` callback stays a plain function: it is the
    pure decision the sync and async capabilities share, and it must not
    await anything (a transaction holds no I/O of its own besides the read
    and the commit).

    Implementations: :class:`~pipeline_reliability.AsyncMemoryStore` and
    :class:`~pipeline_reliability.AsyncFirestoreStore` (the official async
    client, not a thread pool around the sync one).
    """

    @property
    def stats(self) -> StoreStats:
        """Operation counts so far (a frozen copy)."""
        ...

    def reset_stats(self) -> None:
        """Set every operation count back to zero."""
        ...

    async def get(self, collection: str, key: str, *, timeout: float | None = None) -> Snapshot:
        """Read one document (see :meth:`StateStore.get`)."""
        ...

    async def transact(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        """Atomic read-modify-write (see :meth:`StateStore.transact`)."""
        ...
