"""DateLock: a lease per (name, date) with fencing tokens, judged by the store's time."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from .._clock import Clock
from .._telemetry import span
from ..errors import (
    ConfigurationError,
    LockError,
    StoreConflictError,
    StoreError,
    StoreUnavailableError,
)
from ..stores import StateStore
from ._acquire import acquire_lease
from ._lease import Lease, LockTarget, OnLost
from ._lock_base import BaseDateLock
from ._ops import LockInfo, inspect_lock
from ._options import DEFAULT_COLLECTION, OnStoreError, check_store
from ._record import Lost, Record, Released
from ._renewer import Renewer

__all__ = ["DateLock", "date_lock"]

logger = logging.getLogger("pipeline_reliability.lock")


class DateLock(BaseDateLock):
    """
    A lease-based lock on one (name, date), shared by every process using the store.

    Shaped like :class:`threading.Lock`: :meth:`acquire`, :meth:`release`,
    :meth:`locked` and ``with lock as lease:``. Expiry is judged inside the
    store's transaction by the store's own time, so clients with skewed
    clocks agree; every lease carries a fencing token (:attr:`Lease.token`)
    that increases strictly per (name, date), even if the lock document is
    deleted. An uncontended acquire costs two transactions (reserve a token
    in the counter document, grant the lease) and a release one.

    One ``DateLock`` object holds at most one lease at a time; it is
    thread-safe, and any thread may release what another acquired.

    Args:
        store: Where the lock lives (MemoryStore, FirestoreStore, ...).
        name: What is locked, e.g. ``"phase4-predictions"``; any characters.
        date: The date, as ``datetime.date`` or ``"YYYY-MM-DD"``.
        ttl: Lease duration (timedelta or seconds). A holder that neither
            releases nor renews within it loses the lease to the next caller.
        owner: This holder's id, as operators will see it; by default
            ``host:pid:random``. Give each concurrent holder its own.
        clock: Local time source for timeouts, backoff and the renewal
            deadline (store time decides expiry).
        on_store_error: ``"fail_closed"`` (default) raises
            :class:`StoreUnavailableError` when the store fails during
            acquire; ``"proceed"`` returns an *unfenced* lease instead
            (``lease.fenced`` is False, token 0), logs a WARNING, and lets a
            failed release pass with a WARNING. Only for work that is safe to
            run twice.
        collection: The store collection of lock documents.
        auto_renew: Renew the lease in a background thread every third of
            the TTL until released.
        on_lost: ``on_lost(lease, reason)``, called once from the renewal
            thread when the lease is found lost. Exceptions it raises are logged.

    Raises:
        InvalidInputError: ``name`` or ``date`` is invalid.
        ConfigurationError: an option is invalid (e.g. ``ttl`` not a positive
            duration of at most ``MAX_DURATION``, ``store`` not a StateStore).
    """

    def __init__(
        self,
        store: StateStore,
        name: str,
        date: dt.date | str,
        *,
        ttl: dt.timedelta | float = dt.timedelta(minutes=5),
        owner: str | None = None,
        clock: Clock | None = None,
        on_store_error: OnStoreError = "fail_closed",
        collection: str = DEFAULT_COLLECTION,
        auto_renew: bool = False,
        on_lost: OnLost | None = None,
    ) -> None:
        super().__init__(
            check_store(store, ConfigurationError),
            name,
            date,
            ttl=ttl,
            owner=owner,
            clock=clock,
            on_store_error=on_store_error,
            collection=collection,
            auto_renew=auto_renew,
            on_lost=on_lost,
        )
        self._target: LockTarget[StateStore]
        self._state = threading.Lock()  # guards _lease and _renewer; never held across I/O
        self._acquiring = threading.Lock()  # one acquire at a time per object
        self._lease: Lease | None = None
        self._renewer: Renewer | None = None

    def __repr__(self) -> str:
        return f"<DateLock {self.name}/{self.date} owner={self.owner!r} lease={self._lease!r}>"

    @property
    def lease(self) -> Lease | None:
        """The lease this object holds, if any (as far as this process knows)."""
        with self._state:
            return self._lease

    # -- acquire -------------------------------------------------------------------------

    def acquire(self, blocking: bool = True, timeout: float | dt.timedelta | None = None) -> Lease:
        """
        Take the lease, waiting for it unless ``blocking`` is False.

        A blocking call polls with jittered backoff (sleeping through the
        clock, waking soon after the holder's expiry) until the lock is free
        or ``timeout`` has passed; ``timeout=None`` waits forever.

        Returns:
            The :class:`Lease`.

        Raises:
            LockNotAcquiredError: another owner holds it (at once when not
                blocking, after ``timeout`` otherwise); ``holder`` and
                ``expires_at`` say who and until when.
            StoreUnavailableError: the store failed (with ``"fail_closed"``).
            LockError: this object already holds a lease: release it first.
            InvalidInputError: ``blocking`` is not a bool; ``timeout`` is
                negative, not finite, beyond ``MAX_DURATION``, or given with
                ``blocking=False``.
        """
        limit = self._acquire_args(blocking, timeout)
        with self._acquiring:
            if self.lease is not None:
                raise LockError(f"{self!r} already holds a lease; release it first")
            with span("lock", "acquire", self._acquire_attributes(blocking, limit)) as sp:
                lease = acquire_lease(
                    self._target, blocking, limit, self.on_store_error, self._rng
                )
                if sp.is_recording():
                    sp.set_attributes({"lock.token": lease.token, "lock.fenced": lease.fenced})
            self._count_acquired(lease)
            self._hold(lease)
            return lease

    def _hold(self, lease: Lease) -> None:
        interval = self._renews(lease)
        renewer = None if interval is None else Renewer(lease, interval, self.on_lost)
        with self._state:
            self._lease, self._renewer = lease, renewer
        if renewer is not None:
            renewer.start()

    # -- release -------------------------------------------------------------------------

    def release(self) -> None:
        """
        Release the lease, only if this caller still holds it with the same token.

        Raises:
            LockLostError: the lease had expired or been taken over or broken
                before the release; any other holder's lease is untouched.
            LockError: this object holds no lease.
            StoreUnavailableError: the store failed (with ``"fail_closed"``);
                the lease is kept, so ``release()`` can be called again, and
                otherwise simply expires after its TTL.
        """
        with self._state:
            lease, renewer = self._lease, self._renewer
        if lease is None:
            raise LockError(f"{self.name}/{self.date}: release() without a lease")
        if renewer is not None:
            # Stop renewing first: a renewal racing the release would report a false loss.
            renewer.stop()
        try:
            with span("lock", "release", {**self._target.attributes(), "lock.token": lease.token}):
                self._release(lease)
        except (StoreUnavailableError, StoreConflictError) as exc:
            self._release_failed(lease, exc)
        except BaseException:
            self._forget(lease)
            raise
        self._forget(lease)

    def _release(self, lease: Lease) -> None:
        if not lease.fenced:
            lease.mark_ended()
            return
        t = self._target
        result: Released | Lost = t.store.transact(
            t.collection, t.key, self._release_decision(lease)
        )
        self._released(lease, result)

    def _forget(self, lease: Lease) -> None:
        with self._state:
            if self._lease is lease:
                self._lease = self._renewer = None

    # -- inspection ----------------------------------------------------------------------

    def locked(self) -> bool:
        """Whether anyone holds the lock now, by the store's time (one store read)."""
        t = self._target
        snap = t.store.get(t.collection, t.key)
        return Record.parse(snap).live(snap.now)

    @staticmethod
    def inspect(
        store: StateStore,
        name: str,
        date: dt.date | str,
        *,
        collection: str = DEFAULT_COLLECTION,
    ) -> LockInfo:
        """
        Read a lock's state, for operators and the CLI (one store read).

        Raises:
            InvalidInputError: ``name`` or ``date`` is invalid.
            StoreUnavailableError: the store failed.
        """
        return inspect_lock(store, name, date, collection=collection)

    # -- context manager -----------------------------------------------------------------

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.release()
            return
        try:
            self.release()
        except (LockError, StoreError) as release_error:
            self._release_failed_after_block(exc, release_error)


_OPTIONS = frozenset(
    ("ttl", "owner", "clock", "on_store_error", "collection", "auto_renew", "on_lost")
)


@contextmanager
def date_lock(
    store: StateStore,
    name: str,
    date: dt.date | str,
    *,
    blocking: bool = True,
    timeout: float | dt.timedelta | None = None,
    **options: Any,
) -> Iterator[Lease]:
    """
    Hold the (name, date) lock for the ``with`` block; yields the :class:`Lease`.

    ``options`` are :class:`DateLock`'s keyword arguments (``ttl``, ``owner``,
    ``auto_renew``, ...). The lease is released when the block ends; if the
    block raised, a failed release is logged and noted on the block's error.

    Example::

        with date_lock(store, "phase4", "2026-01-31", ttl=600, auto_renew=True) as lease:
            writer.upsert(table, rows, fence=lease)

    Raises:
        ConfigurationError: an unknown or invalid option.
        LockNotAcquiredError: the lock stayed held (see :meth:`DateLock.acquire`).
        LockLostError: the block succeeded but the lease was lost before release.
    """
    unknown = sorted(set(options) - _OPTIONS, key=str)
    if unknown:
        raise ConfigurationError(f"unknown DateLock options: {unknown}")
    lock = DateLock(store, name, date, **options)
    lease = lock.acquire(blocking=blocking, timeout=timeout)
    try:
        yield lease
    except BaseException as exc:
        lock.__exit__(type(exc), exc, exc.__traceback__)
        raise
    lock.release()
