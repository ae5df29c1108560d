"""ConcurrencyLimit: a fleet-wide semaphore of leased slots, judged by the store's time."""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from .._clock import Clock
from .._telemetry import log_failure, span
from .._validate import describe
from ..errors import (
    ConfigurationError,
    LockError,
    StoreConflictError,
    StoreError,
    StoreUnavailableError,
)
from ..stores import StateStore
from ._concurrency_acquire import AcquireRun
from ._concurrency_events import SlotListener, Telemetry
from ._concurrency_options import DEFAULT_COLLECTION, LimitConfig, OnStoreError, parse_timeout
from ._concurrency_slot import Door, Slot
from ._slots import Full, Granted, decide_acquire, decide_cancel, peek

__all__ = ["ConcurrencyLimit"]

logger = logging.getLogger("pipeline_reliability.limits")


class ConcurrencyLimit:
    """
    At most ``limit`` holders of ``name`` at once, across every process sharing the store.

    Each holder takes a *slot*: a lease in the limit's one document, judged by
    the store's time, so the slot of a holder that died comes back after its
    lease. Long holders renew (:meth:`Slot.renew`, or ``auto_renew=True``).

    Cost: an uncontended ``with limit.slot():`` is two store operations, one
    transaction to acquire and one to release. A waiter polls with one read
    per poll and writes only to take a slot or keep its place in the queue.

    Fairness: a caller that finds no free slot takes a ticket in a FIFO
    queue in the document (up to ``max_waiters``), and free slots go to the
    oldest live tickets first: no later caller overtakes a waiter that keeps
    polling. A waiter that stops polling (it died, or timed out) loses its
    place after 10 seconds.

    One object may be shared by any number of threads; each ``slot()`` call
    takes its own slot.

    Args:
        name: What is limited, e.g. ``"merge:project.dataset.table"``; any characters.
        store: Where the limit lives (MemoryStore, FirestoreStore, ...).
        limit: Holders admitted at once, 1..1000. Every process must use the same value.
        lease: How long a slot lasts unless renewed or released (default 5 minutes).
        owner: This process's id as operators see it (default ``host:pid:random``,
            at most 256 bytes).
        clock: Local time source for waiting and backoff (store time decides leases).
        max_wait: How long ``slot()`` waits when given no ``timeout`` (default 1 minute).
        on_store_error: ``"fail_closed"`` (default) raises ``StoreUnavailableError``
            when the store fails: a limit that protects a quota must not let
            the whole fleet through at the moment it cannot count.
            ``"fail_open"`` runs the caller without a slot (``slot.bypassed``),
            with a ``bypassed`` event and a WARNING.
        store_timeout: Seconds allowed for each store call (default 10).
        max_waiters: Length of the FIFO queue of waiters, 0..1000 (0: no queue, no fairness).
        auto_renew: Renew each slot every third of its lease until released.
        collection: The store collection of limit documents.

    Raises:
        InvalidInputError: ``name`` is not a non-empty string.
        ConfigurationError: an option is invalid.
    """

    def __init__(
        self,
        name: str,
        store: StateStore,
        *,
        limit: int,
        lease: timedelta | float = timedelta(minutes=5),
        owner: str | None = None,
        clock: Clock | None = None,
        max_wait: timedelta | float = timedelta(minutes=1),
        on_store_error: OnStoreError = "fail_closed",
        store_timeout: timedelta | float = 10.0,
        max_waiters: int = 1000,
        auto_renew: bool = False,
        collection: str = DEFAULT_COLLECTION,
    ) -> None:
        if not isinstance(store, StateStore):
            raise ConfigurationError(f"store must be a StateStore, got {describe(store)}")
        self.config = LimitConfig.build(
            name,
            limit=limit,
            lease=lease,
            owner=owner,
            clock=clock,
            max_wait=max_wait,
            on_store_error=on_store_error,
            store_timeout=store_timeout,
            max_waiters=max_waiters,
            auto_renew=auto_renew,
            collection=collection,
        )
        self._door = Door(store, self.config)
        self._telemetry = Telemetry(self.config.name)
        self._rng = random.Random()

    def __repr__(self) -> str:
        c = self.config
        return f"<ConcurrencyLimit {c.name!r} limit={c.limit} owner={c.owner!r}>"

    @property
    def name(self) -> str:
        """The limit's name."""
        return self.config.name

    @property
    def limit(self) -> int:
        """Holders admitted at once."""
        return self.config.limit

    @property
    def owner(self) -> str:
        """This object's owner id."""
        return self.config.owner

    def add_listener(self, listener: SlotListener) -> None:
        """Call ``listener(event)`` with each :class:`SlotEvent` (errors are logged)."""
        self._telemetry.add(listener)

    def remove_listener(self, listener: SlotListener) -> None:
        """Stop calling ``listener`` (no error if it was not added)."""
        self._telemetry.remove(listener)

    @contextmanager
    def slot(self, timeout: float | timedelta | None = None) -> Iterator[Slot]:
        """
        Hold a slot for the ``with`` block; yields the :class:`Slot`.

        If the block raised, a failed release is logged and noted on the
        block's error rather than masking it.

        Args:
            timeout: Longest wait for a slot, in seconds or a timedelta
                (``None``: the limit's ``max_wait``; ``0``: try once, no queueing).

        Raises:
            SlotNotAcquiredError: no slot within ``timeout``.
            StoreUnavailableError: the store failed (``on_store_error="fail_closed"``).
            InvalidInputError: ``timeout`` is negative, not finite or too long.
        """
        held = self.acquire(timeout)
        try:
            yield held
        except BaseException as exc:
            try:
                held.release()
            except (LockError, StoreError) as release_error:
                log_failure(logger, "release after a failed block failed", release_error,
                            limit=self.name)
                exc.add_note(f"and releasing slot {held.slot_id} of {self.name} failed: "
                             f"{release_error}")
            raise
        held.release()

    def acquire(self, timeout: float | timedelta | None = None) -> Slot:
        """
        Take a slot and return it; the caller must :meth:`Slot.release` it.

        Same arguments and errors as :meth:`slot`.
        """
        c = self.config
        run = AcquireRun(c, self._telemetry, parse_timeout(timeout, c.max_wait), self._rng)
        with span("limits", "acquire", c.attributes):
            while True:
                try:
                    outcome = self._attempt(run)
                except StoreUnavailableError as exc:
                    run.store_failed(exc)  # raises unless failing open
                    return Slot(self._door, self._telemetry, slot_id=run.slot_id,
                                acquired_at=None, expires_at=None, bypassed=True)
                if isinstance(outcome, Granted):
                    run.granted(outcome)
                    return self._hold(run.slot_id, outcome)
                wait = run.next_sleep(outcome)
                if wait is None:
                    self._withdraw(run)
                    raise run.timed_out()
                c.clock.sleep(wait)

    def _attempt(self, run: AcquireRun) -> Granted | Full | None:
        """One poll: ``Granted``, ``Full``, or ``None`` for a transaction lost to contention."""
        req = run.request
        if not run.first:
            seen = peek(self._door.get(), req)
            if not seen.try_now:
                return seen.full
        decide = functools.partial(decide_acquire, req=req)
        try:
            result: Granted | Full = self._door.transact(decide)
        except StoreConflictError:
            return None  # others are writing the document: contention, not an outage
        except StoreUnavailableError as exc:
            if not exc.maybe_committed:
                raise
            # The commit may have been applied: read back whether the slot is ours.
            recovered = run.recovered(self._door.get())
            if recovered is None:
                raise
            return recovered
        return result

    def _hold(self, slot_id: str, granted: Granted) -> Slot:
        held = Slot(self._door, self._telemetry, slot_id=slot_id,
                    acquired_at=granted.acquired_at, expires_at=granted.expires_at)
        if self.config.auto_renew:
            held.start_renewing()
        return held

    def _withdraw(self, run: AcquireRun) -> None:
        """Give up the waiter's ticket; if the store fails, the ticket lapses by itself."""
        if not run.queued:
            return
        c = self.config
        decide = functools.partial(decide_cancel, ticket=run.slot_id, name=c.name, limit=c.limit)
        try:
            self._door.transact_patiently(decide, self._rng)
        except StoreError as exc:
            # The caller is about to get its timeout error; the ticket lapses in 10 s.
            logger.info("withdrawing a ticket of %s failed: %s", c.name, exc)
