"""AsyncConcurrencyLimit: the asyncio twin of ConcurrencyLimit over an AsyncStateStore."""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .._clock import Clock
from .._telemetry import log_failure, span
from .._validate import describe
from ..errors import (
    ConfigurationError,
    LockError,
    SlotLostError,
    StoreConflictError,
    StoreError,
    StoreUnavailableError,
)
from ..stores import AsyncStateStore
from ._concurrency_acquire import AcquireRun
from ._concurrency_events import SlotListener, Telemetry
from ._concurrency_options import DEFAULT_COLLECTION, LimitConfig, OnStoreError, parse_timeout
from ._concurrency_slot import RENEW_FRACTION, SlotBase
from ._slots import (
    Full,
    Granted,
    check_held,
    decide_acquire,
    decide_cancel,
    decide_release,
    decide_renew,
    peek,
)

if TYPE_CHECKING:
    import asyncio

__all__ = ["AsyncConcurrencyLimit", "AsyncSlot"]

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
        self._store = store
        self.config = LimitConfig.build(
            name, limit=limit, lease=lease, owner=owner, clock=clock, max_wait=max_wait,
            on_store_error=on_store_error, store_timeout=store_timeout,
            max_waiters=max_waiters, auto_renew=auto_renew, collection=collection,
        )
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
            while True:
                try:
                    outcome = await self._attempt(run)
                except StoreUnavailableError as exc:
                    run.store_failed(exc)
                    return AsyncSlot(self._store, c, self._telemetry, slot_id=run.slot_id,
                                     acquired_at=None, expires_at=None, bypassed=True)
                if isinstance(outcome, Granted):
                    run.granted(outcome)
                    return self._hold(run.slot_id, outcome)
                wait = run.next_sleep(outcome)
                if wait is None:
                    await self._withdraw(run)
                    raise run.timed_out()
                await _sleep(c, wait)

    async def _attempt(self, run: AcquireRun) -> Granted | Full | None:
        c, req = self.config, run.request
        if not run.first:
            seen = peek(await self._store.get(c.collection, c.key, timeout=c.store_timeout), req)
            if not seen.try_now:
                return seen.full
        decide = functools.partial(decide_acquire, req=req)
        try:
            result: Granted | Full = await self._store.transact(
                c.collection, c.key, decide, timeout=c.store_timeout
            )
        except StoreConflictError:
            return None
        except StoreUnavailableError as exc:
            if not exc.maybe_committed:
                raise
            snap = await self._store.get(c.collection, c.key, timeout=c.store_timeout)
            recovered = run.recovered(snap)
            if recovered is None:
                raise
            return recovered
        return result

    def _hold(self, slot_id: str, granted: Granted) -> AsyncSlot:
        held = AsyncSlot(self._store, self.config, self._telemetry, slot_id=slot_id,
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
            await self._store.transact(c.collection, c.key, decide, timeout=c.store_timeout)
        except StoreError as exc:
            logger.info("withdrawing a ticket of %s failed: %s", c.name, exc)


async def _sleep(config: LimitConfig, seconds: float) -> None:
    import asyncio  # lazily: importing the package must stay light (async callers have it)

    if config.injected_clock:
        config.clock.sleep(seconds)  # a FakeClock moves time instead of blocking
        await asyncio.sleep(0)  # and other tasks (the holders) still get their turn
    else:
        await asyncio.sleep(seconds)


class AsyncSlot(SlotBase):
    """One slot of an :class:`AsyncConcurrencyLimit`; the methods of :class:`Slot`, awaited."""

    def __init__(
        self,
        store: AsyncStateStore,
        config: LimitConfig,
        telemetry: Telemetry,
        *,
        slot_id: str,
        acquired_at: datetime | None,
        expires_at: datetime | None,
        bypassed: bool = False,
    ) -> None:
        super().__init__(config, telemetry, slot_id=slot_id, acquired_at=acquired_at,
                         expires_at=expires_at, bypassed=bypassed)
        self._store = store
        self._renewal: asyncio.Task[None] | None = None

    async def renew(self) -> datetime:
        """Extend the lease (see :meth:`Slot.renew`)."""
        self._check_usable()
        c = self._config
        decide = functools.partial(
            decide_renew, slot_id=self.slot_id, lease=c.lease, name=c.name, limit=c.limit
        )
        with span("limits", "renew", lambda: {**c.attributes(), "limit.slot": self.slot_id}):
            result = await self._store.transact(
                c.collection, c.key, decide, timeout=c.store_timeout
            )
        return self._renewed(result)

    async def ensure_held(self) -> None:
        """Check with the store that the slot is live (see :meth:`Slot.ensure_held`)."""
        self._check_usable()
        c = self._config
        snap = await self._store.get(c.collection, c.key, timeout=c.store_timeout)
        self._renewed(check_held(snap, self.slot_id), snap.now)

    async def release(self) -> bool:
        """Give the slot back; idempotent (see :meth:`Slot.release`)."""
        await self._stop_renewing()
        if not self.held:
            return False
        c = self._config
        decide = functools.partial(
            decide_release, slot_id=self.slot_id, name=c.name, limit=c.limit
        )
        try:
            with span("limits", "release", lambda: {**c.attributes(), "limit.slot": self.slot_id}):
                result = await self._store.transact(
                    c.collection, c.key, decide, timeout=c.store_timeout
                )
        except (StoreUnavailableError, StoreConflictError) as exc:
            self._telemetry.store_error("release")
            self._release_failed(exc)
            return False
        return self._released(result)

    def start_renewing(self) -> None:
        """Renew in a task every third of the lease until released or lost."""
        import asyncio

        self._renewal = asyncio.get_running_loop().create_task(self._renew_loop())

    async def _renew_loop(self) -> None:
        import asyncio

        interval = (self._config.lease * RENEW_FRACTION).total_seconds()
        delay = interval
        while True:
            # Real time even with an injected clock: a FakeClock's sleep returns
            # at once, and this loop would spin. The task ends with the slot.
            await asyncio.sleep(delay)
            try:
                await self.renew()
            except SlotLostError:
                return  # reported by the slot (event, log)
            except (StoreUnavailableError, StoreConflictError) as exc:
                logger.warning("renewing slot %s failed: %s; retrying", self.slot_id, exc)
                delay = min(interval / 2, 1.0)
                continue
            delay = interval

    async def _stop_renewing(self) -> None:
        import asyncio

        task, self._renewal = self._renewal, None
        if task is None or task is asyncio.current_task():
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            # Our own cancellation of the renewal task, unless we are being cancelled too.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
