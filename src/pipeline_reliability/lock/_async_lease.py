"""The asyncio twin of :class:`Lease`: the same lease, renewed and checked with awaits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from .._telemetry import span
from ..stores import AsyncStateStore
from ._lease import BaseLease, LockTarget
from ._record import Lost, Renewed

__all__ = ["AsyncLease", "AsyncOnLost"]

AsyncOnLost = Callable[["AsyncLease", str], Awaitable[None] | None]
"""``on_lost(lease, reason)``: a function or a coroutine function, called once when lost."""


class AsyncLease(BaseLease):
    """
    One granted lease on a (name, date) lock, held by asyncio code.

    Returned by :meth:`AsyncDateLock.acquire`; do not build it yourself. It is
    :class:`Lease` in every respect (``token``, ``owner``, ``fenced``,
    ``expires_at``, ``remaining()``, ``check()``, ``lost``), except that the
    two methods that ask the store, :meth:`renew` and :meth:`ensure_held`,
    are coroutines. The decisions they apply are the sync lease's own.

    Attributes:
        token: The fencing token (strictly increasing per (name, date); ``0``
            for an unfenced lease).
        owner: The owner id of the holder.
        name: The lock's name.
        date: The lock's date, ``YYYY-MM-DD``.
        fenced: ``False`` only for the lease of ``on_store_error="proceed"``
            when the store failed.
        acquired_at: When the lease was granted, in the store's time.
    """

    async def renew(self) -> datetime:
        """
        Extend the lease to the store's time plus the TTL (see :meth:`Lease.renew`).

        Raises:
            LockLostError: the lease expired, was superseded, released or
                broken; or it is unfenced. The current holder is untouched.
            StoreUnavailableError: the store failed; the lease may still be held.
            StoreConflictError: contention outlasted the store's attempts.
        """
        target: LockTarget[AsyncStateStore] = self._target
        decide = self._renew_decision()
        started = target.clock.monotonic()
        with span("lock", "renew", self._span_attributes):
            result: Renewed | Lost = await target.store.transact(
                target.collection, target.key, decide
            )
        return self._renewed(result, started)

    async def ensure_held(self) -> None:
        """
        Check with the store that this lease is still the live one (one read).

        Raises:
            LockLostError: the lease is not held (the reason is in the message).
            StoreUnavailableError: the store failed: holding cannot be proven.
        """
        self._raise_if_not_held()
        target: LockTarget[AsyncStateStore] = self._target
        self._judge_held(await target.store.get(target.collection, target.key))
