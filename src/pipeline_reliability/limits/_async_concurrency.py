"""AsyncConcurrencyLimit: the asyncio twin of ConcurrencyLimit over an AsyncStateStore."""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
from ..stores import AsyncStateStore
from ._concurrency_acquire import AcquireRun
from ._concurrency_async_slot import AsyncDoor, AsyncSlot, sleep
from ._concurrency_events import SlotListener, Telemetry
from ._concurrency_options import DEFAULT_COLLECTION, LimitConfig, OnStoreError, parse_timeout
from ._slots import Full, Granted, decide_acquire, decide_cancel, decide_release, peek

__all__ = ["AsyncConcurrencyLimit"]

logger = logging.getLogger("pipeline_reliability.limits")


class AsyncConcurrencyLimit:
    """
    The asyncio form of :class:`ConcurrencyLimit`: same document, same decisions.

    Takes an :class:`~pipeline_reliability.AsyncStateStore`; ``slot()`` is an
    async context manager and the slot's methods are coroutines. Sync and
    async holders of the same name share one limit. Waiting sleeps with
    ``asyncio.sleep``, or on the injected ``clock`` (a ``FakeClock`` in tests);
    ``auto_renew`` renews in a task. Arguments and errors are
    :class:`ConcurrencyLimit`'s.
    """

    def __init__(
        self,
        name: str,
        store: AsyncStateStore,
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
        if not isinstance(store, AsyncStateStore):
            raise ConfigurationError(f"store must be an AsyncStateStore, got {describe(store)}")
        self.config = LimitConfig.build(
            name, limit=limit, lease=lease, owner=owner, clock=clock, max_wait=max_wait,
            on_store_error=on_store_error, store_timeout=store_timeout,
            max_waiters=max_waiters, auto_renew=auto_renew, collection=collection,
        )
        self._door = AsyncDoor(store, self.config)
        self._telemetry = Telemetry(self.config.name)
        self._rng = random.Random()

    def __repr__(self) -> str:
        c = self.config
        return f"<AsyncConcurrencyLimit {c.name!r} limit={c.limit} owner={c.owner!r}>"

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

    @asynccontextmanager
    async def slot(self, timeout: float | timedelta | None = None) -> AsyncIterator[AsyncSlot]:
        """Hold a slot for the ``async with`` block (see :meth:`ConcurrencyLimit.slot`)."""
        held = await self.acquire(timeout)
        try:
            yield held
        except BaseException as exc:
            try:
                await held.release()
            except (LockError, StoreError) as release_error:
                log_failure(logger, "release after a failed block failed", release_error,
                            limit=self.name)
                exc.add_note(f"and releasing slot {held.slot_id} of {self.name} failed: "
                             f"{release_error}")
            raise
        await held.release()

    async def acquire(self, timeout: float | timedelta | None = None) -> AsyncSlot:
        """Take a slot; the caller must ``await slot.release()`` it."""
        c = self.config
        run = AcquireRun(c, self._telemetry, parse_timeout(timeout, c.max_wait), self._rng)
        with span("limits", "acquire", c.attributes):
            try:
                return await self._acquire(run)
            except BaseException as exc:
                import asyncio

                if isinstance(exc, asyncio.CancelledError):
                    # Cancelled while a grant may have committed (or while queued):
                    # give the slot and the ticket back now, not at the lease's end.
                    await asyncio.shield(self._give_back(run))
                raise

    async def _acquire(self, run: AcquireRun) -> AsyncSlot:
        while True:
            try:
                outcome = await self._attempt(run)
            except StoreUnavailableError as exc:
                run.store_failed(exc)
                return AsyncSlot(self._door, self._telemetry, slot_id=run.slot_id,
                                 acquired_at=None, expires_at=None, bypassed=True)
            if isinstance(outcome, Granted):
                run.granted(outcome)
                return self._hold(run.slot_id, outcome)
            wait = run.next_sleep(outcome)
            if wait is None:
                await self._withdraw(run)
                raise run.timed_out()
            await sleep(self.config, wait)

    async def _give_back(self, run: AcquireRun) -> None:
        """Release ``run``'s slot if a grant committed; withdraw its ticket (both idempotent)."""
        c = self.config
        decide = functools.partial(decide_release, slot_id=run.slot_id, name=c.name, limit=c.limit)
        try:
            await self._door.transact_patiently(decide)
        except StoreError as exc:
            logger.warning("giving back the slot of a cancelled acquire of %s failed: %s",
                           c.name, exc)
        await self._withdraw(run)

    async def _attempt(self, run: AcquireRun) -> Granted | Full | None:
        req = run.request
        if not run.first:
            seen = peek(await self._door.get(), req)
            if not seen.try_now:
                return seen.full
        decide = functools.partial(decide_acquire, req=req)
        try:
            result: Granted | Full = await self._door.transact(decide)
        except StoreConflictError:
            return None
        except StoreUnavailableError as exc:
            if not exc.maybe_committed:
                raise
            recovered = run.recovered(await self._door.get())
            if recovered is None:
                raise
            return recovered
        return result

    def _hold(self, slot_id: str, granted: Granted) -> AsyncSlot:
        held = AsyncSlot(self._door, self._telemetry, slot_id=slot_id,
                         acquired_at=granted.acquired_at, expires_at=granted.expires_at)
        if self.config.auto_renew:
            held.start_renewing()
        return held

    async def _withdraw(self, run: AcquireRun) -> None:
        if not run.queued:
            return
        c = self.config
        decide = functools.partial(decide_cancel, ticket=run.slot_id, name=c.name, limit=c.limit)
        try:
            await self._door.transact_patiently(decide)
        except StoreError as exc:
            logger.info("withdrawing a ticket of %s failed: %s", c.name, exc)


