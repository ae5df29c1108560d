"""AsyncDateLock: DateLock for asyncio code, over an AsyncStateStore."""

from __future__ import annotations

import datetime as dt
from types import TracebackType
from typing import TYPE_CHECKING

from .._clock import Clock
from .._keys import encode_key
from .._telemetry import span
from ..errors import (
    ConfigurationError,
    InvalidInputError,
    LockError,
    StoreConflictError,
    StoreError,
    StoreUnavailableError,
)
from ..stores import AsyncStateStore
from ._acquire import acquire_steps
from ._async_lease import AsyncLease, AsyncOnLost
from ._async_renewer import AsyncRenewer
from ._io import drive_async
from ._lease import LockTarget
from ._lock_base import BaseDateLock
from ._ops import LockInfo, lock_info
from ._options import (
    DEFAULT_COLLECTION,
    OnStoreError,
    check_async_store,
    check_collection,
    parse_date,
    parse_name,
)
from ._record import Lost, Record, Released

if TYPE_CHECKING:
    import asyncio

__all__ = ["AsyncDateLock"]


class AsyncDateLock(BaseDateLock):
    """
    :class:`DateLock` for asyncio code: the same lock, awaited.

    Same options, same documents and the same decisions as ``DateLock`` (the
    two forms share every store callback and the acquire algorithm, and can
    contend for the same lock through one store), over an
    :class:`~pipeline_reliability.AsyncStateStore`. ``acquire``, ``release``,
    ``locked`` and ``inspect`` are coroutines; use ``async with lock as lease:``.

    Differences from ``DateLock``:

    - a blocking acquire waits with ``asyncio.sleep`` (an injected
      non-system clock, such as a ``FakeClock``, is asked to ``sleep``
      instead, which moves fake time; never inject a clock that blocks);
    - ``auto_renew`` renews from an asyncio task on the running loop, not a
      thread; ``on_lost(lease, reason)`` may be a function or a coroutine
      function and is called once from that task. :meth:`release` and
      leaving ``async with`` cancel the task (a renewal in flight included);
    - when the task inside ``async with`` is cancelled, the block's exit still
      releases the lease (the cancellation is re-raised afterwards); a lease
      acquired without ``async with`` and never released keeps being renewed
      until :meth:`release`, and without ``auto_renew`` lapses after its TTL;
      an acquire cancelled while its grant was in flight may leave a lease
      that nobody holds, which likewise lapses after its TTL;
    - one object serialises its own acquires with an ``asyncio.Lock``: use
      one object per event loop, and one lease per object, as with ``DateLock``.

    Raises:
        InvalidInputError: ``name`` or ``date`` is invalid.
        ConfigurationError: an option is invalid, or ``store`` is not an
            ``AsyncStateStore`` (a blocking ``StateStore`` belongs to ``DateLock``).
    """

    def __init__(
        self,
        store: AsyncStateStore,
        name: str,
        date: dt.date | str,
        *,
        ttl: dt.timedelta | float = dt.timedelta(minutes=5),
        owner: str | None = None,
        clock: Clock | None = None,
        on_store_error: OnStoreError = "fail_closed",
        collection: str = DEFAULT_COLLECTION,
        auto_renew: bool = False,
        on_lost: AsyncOnLost | None = None,
    ) -> None:
        super().__init__(
            check_async_store(store, ConfigurationError),
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
        self.on_lost: AsyncOnLost | None = on_lost
        self._target: LockTarget[AsyncStateStore]
        # One acquire at a time per object; made on first use, inside the loop
        # (and so that `import pipeline_reliability` does not load asyncio).
        self._acquiring: asyncio.Lock | None = None
        self._lease: AsyncLease | None = None
        self._renewer: AsyncRenewer | None = None

    def __repr__(self) -> str:
        return (
            f"<AsyncDateLock {self.name}/{self.date} owner={self.owner!r} lease={self._lease!r}>"
        )

    @property
    def lease(self) -> AsyncLease | None:
        """The lease this object holds, if any (as far as this process knows)."""
        return self._lease

    @property
    def renewal_task(self) -> asyncio.Task[None] | None:
        """The auto-renewal task of the current lease, if any (for tests and shutdown hooks)."""
        renewer = self._renewer
        return None if renewer is None else renewer.task

    async def acquire(
        self, blocking: bool = True, timeout: float | dt.timedelta | None = None
    ) -> AsyncLease:
        """
        Take the lease, waiting for it unless ``blocking`` is False (see :meth:`DateLock.acquire`).

        Raises:
            LockNotAcquiredError: another owner holds it (at once when not
                blocking, after ``timeout`` otherwise).
            StoreUnavailableError: the store failed (with ``"fail_closed"``).
            LockError: this object already holds a lease: release it first.
            InvalidInputError: bad ``blocking`` or ``timeout``.
        """
        limit = self._acquire_args(blocking, timeout)
        if self._acquiring is None:
            import asyncio  # lazily: `import pipeline_reliability` stays light

            self._acquiring = asyncio.Lock()
        async with self._acquiring:
            if self._lease is not None:
                raise LockError(f"{self!r} already holds a lease; release it first")
            t = self._target
            with span("lock", "acquire", self._acquire_attributes(blocking, limit)) as sp:
                steps = acquire_steps(
                    t, blocking, limit, self.on_store_error, self._rng, lease_type=AsyncLease
                )
                lease = await drive_async(steps, t.store, t.clock)
                if sp.is_recording():
                    sp.set_attributes({"lock.token": lease.token, "lock.fenced": lease.fenced})
            self._count_acquired(lease)
            interval = self._renews(lease)
            self._lease = lease
            if interval is not None:
                self._renewer = AsyncRenewer(lease, interval, self.on_lost, t.clock)
                self._renewer.start()
            return lease

    async def release(self) -> None:
        """
        Release the lease, only if this caller still holds it (see :meth:`DateLock.release`).

        Raises:
            LockLostError: the lease had expired or been taken over or broken.
            LockError: this object holds no lease.
            StoreUnavailableError: the store failed (with ``"fail_closed"``);
                the lease is kept, so ``release()`` can be awaited again.
        """
        lease, renewer = self._lease, self._renewer
        if lease is None:
            raise LockError(f"{self.name}/{self.date}: release() without a lease")
        if renewer is not None:
            # Stop renewing first: a renewal racing the release would report a false loss.
            await renewer.stop()
        try:
            with span("lock", "release", {**self._target.attributes(), "lock.token": lease.token}):
                await self._release(lease)
        except (StoreUnavailableError, StoreConflictError) as exc:
            self._release_failed(lease, exc)
        except BaseException:
            self._forget(lease)
            raise
        self._forget(lease)

    async def _release(self, lease: AsyncLease) -> None:
        if not lease.fenced:
            lease.mark_ended()
            return
        t = self._target
        result: Released | Lost = await t.store.transact(
            t.collection, t.key, self._release_decision(lease)
        )
        self._released(lease, result)

    def _forget(self, lease: AsyncLease) -> None:
        if self._lease is lease:
            self._lease = self._renewer = None

    async def locked(self) -> bool:
        """Whether anyone holds the lock now, by the store's time (one store read)."""
        t = self._target
        snap = await t.store.get(t.collection, t.key)
        return Record.parse(snap).live(snap.now)

    @staticmethod
    async def inspect(
        store: AsyncStateStore,
        name: str,
        date: dt.date | str,
        *,
        collection: str = DEFAULT_COLLECTION,
    ) -> LockInfo:
        """
        Read a lock's state, for operators (one store read; see :meth:`DateLock.inspect`).

        Raises:
            InvalidInputError: ``store``, ``name``, ``date`` or ``collection`` is invalid.
            StoreUnavailableError: the store failed.
        """
        store = check_async_store(store, InvalidInputError)
        name, iso = parse_name(name), parse_date(date)
        where = check_collection(collection, InvalidInputError)
        return lock_info(name, iso, await store.get(where, encode_key(name, iso)))

    async def __aenter__(self) -> AsyncLease:
        return await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.release()
            return
        try:
            await self.release()
        except (LockError, StoreError) as release_error:
            self._release_failed_after_block(exc, release_error)
