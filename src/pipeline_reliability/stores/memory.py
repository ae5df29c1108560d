"""The embedded store: thread-safe, versioned, optimistic like Firestore."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

from .._clock import Clock, SystemClock
from .._keys import validate_id
from ..errors import ConfigurationError, StoreConflictError
from ._protocol import Delete, Outcome, Put, Snapshot
from ._stats import CountingStore, call_timeout
from ._values import check_first, copy_document, normalise_document

__all__ = ["MemoryStore"]

R = TypeVar("R")
# Far more than contention ever needs; bounds the loop whatever a caller passes.
_MAX_ATTEMPTS = 1000


class MemoryStore(CountingStore):
    """
    A :class:`StateStore` in process memory: the embedded default.

    Concurrency is optimistic, as in Firestore: ``transact`` reads a version,
    runs the callback without holding the lock, and commits only if the
    version is unchanged; otherwise the callback is run again on fresh state,
    up to ``max_attempts`` times. Versions come from one counter per store, so
    a deleted and re-created document never reuses a version.

    Args:
        clock: The store's time source (``Snapshot.now``). Pass a
            :class:`~pipeline_reliability.testing.FakeClock` to move time in tests.
        max_attempts: Attempts per ``transact`` before ``StoreConflictError``.

    The ``timeout`` of ``get`` and ``transact`` is checked and otherwise
    ignored: this store never waits on anything but its own short lock.
    """

    def __init__(self, *, clock: Clock | None = None, max_attempts: int = 5) -> None:
        attempts = cast(object, max_attempts)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or not (
            1 <= attempts <= _MAX_ATTEMPTS
        ):
            raise ConfigurationError(
                f"max_attempts must be an integer in 1..{_MAX_ATTEMPTS}, got {max_attempts!r:.100}"
            )
        if clock is not None and not (
            callable(getattr(clock, "now", None)) and callable(getattr(clock, "monotonic", None))
        ):
            raise ConfigurationError(f"clock must have now() and monotonic(), got {clock!r:.100}")
        super().__init__()
        self.clock: Clock = clock or SystemClock()
        self.max_attempts = max_attempts
        self._lock = threading.Lock()
        self._docs: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self._versions = itertools.count(1)

    def get(self, collection: str, key: str, *, timeout: float | None = None) -> Snapshot:
        """Read one document (see :meth:`StateStore.get`)."""
        validate_id(collection, "collection id")
        validate_id(key)
        call_timeout(timeout)
        return self._read(collection, key)

    def transact(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        """Atomic read-modify-write (see :meth:`StateStore.transact`)."""
        validate_id(collection, "collection id")
        validate_id(key)
        call_timeout(timeout)
        return self._run(collection, key, fn, None)

    def transact_from(
        self,
        first: Snapshot,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        """
        :meth:`transact` on ``first.collection``/``first.key``, whose first
        attempt decides on ``first`` instead of reading again.

        ``first`` must be a snapshot this store's :meth:`get` returned, and the
        caller gives it up (``fn`` may change its ``data``). The first
        attempt commits only if the document is still at ``first.version``;
        otherwise it is discarded as a conflicting attempt is, and ``fn`` runs
        again on a fresh read. The guarantees are :meth:`transact`'s.

        Raises:
            InvalidInputError: ``first`` is not a :class:`Snapshot`, or as :meth:`transact`.
            StoreConflictError: as :meth:`transact`.
        """
        snap = check_first(first, int)
        validate_id(snap.collection, "collection id")
        validate_id(snap.key)
        call_timeout(timeout)
        return self._run(snap.collection, snap.key, fn, snap)

    def _run(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[R]],
        first: Snapshot | None,
    ) -> R:
        self._count(transactions=1)
        for _ in range(self.max_attempts):
            snap, first = first or self._read(collection, key), None
            outcome = fn(snap)
            write = outcome.write
            # Validate outside the lock; a bad document aborts before anything is written.
            data = normalise_document(write.data) if isinstance(write, Put) else None
            if self._commit(collection, key, snap.version, write, data):
                return outcome.result
        raise StoreConflictError(
            f"transaction on {collection}/{key} conflicted {self.max_attempts} times",
            attempts=self.max_attempts,
        )

    def dump(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Return a deep copy of every document, by collection then key (for tests and tools)."""
        with self._lock:
            out: dict[str, dict[str, dict[str, Any]]] = {}
            for (collection, key), (_, data) in sorted(self._docs.items()):
                out.setdefault(collection, {})[key] = copy_document(data)
            return out

    def _read(self, collection: str, key: str) -> Snapshot:
        self._count(reads=1)
        with self._lock:
            entry = self._docs.get((collection, key))
            now = self.clock.now()
            if entry is None:
                return Snapshot(collection, key, None, None, now)
            return Snapshot(collection, key, copy_document(entry[1]), entry[0], now)

    def _commit(
        self,
        collection: str,
        key: str,
        read_version: object,
        write: Put | Delete | None,
        data: dict[str, Any] | None,
    ) -> bool:
        with self._lock:
            if write is None:
                # A read-only transaction is serialisable at its read point.
                return True
            entry = self._docs.get((collection, key))
            current = None if entry is None else entry[0]
            if current != read_version:
                # Someone committed since our read: discard this attempt and re-run.
                self._count(conflicts=1)
                return False
            if isinstance(write, Delete):
                if entry is not None:
                    del self._docs[(collection, key)]
                    self._count(writes=1)
                return True
            assert data is not None
            # Firestore keeps update_time when a write changes nothing; so do we.
            unchanged = entry is not None and _identical(entry[1], data)
            version = entry[0] if entry is not None and unchanged else next(self._versions)
            self._docs[(collection, key)] = (version, data)
            self._count(writes=1)
            return True


def _identical(a: Any, b: Any) -> bool:
    """Equal as Firestore compares values: 1, 1.0 and True differ."""
    if a != b:  # Python's equality is looser (1 == 1.0 == True): a cheap first "no"
        return False
    return _same(a, b)


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))
    return bool(a == b)
