"""The asyncio slot of a concurrency limit, and the one way its limit reaches the store."""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from .._telemetry import span
from ..errors import SlotLostError, StoreConflictError, StoreUnavailableError
from ..stores import AsyncStateStore, Outcome, Snapshot
from ._concurrency_events import Telemetry
from ._concurrency_options import LimitConfig
from ._concurrency_slot import RELEASE_ATTEMPTS, RENEW_FRACTION, SlotBase, local_contention
from ._slots import check_held, decide_release, decide_renew

if TYPE_CHECKING:
    import asyncio

__all__ = ["AsyncDoor", "AsyncSlot", "sleep"]

logger = logging.getLogger("pipeline_reliability.limits")

R = TypeVar("R")
_RNG = random.Random()  # jitter only


async def sleep(config: LimitConfig, seconds: float) -> None:
    import asyncio  # lazily: importing the package must stay light (async callers have it)

    if config.injected_clock:
        config.clock.sleep(seconds)  # a FakeClock moves time instead of blocking
        await asyncio.sleep(0)  # and other tasks (the holders) still get their turn
    else:
        await asyncio.sleep(seconds)



class AsyncDoor:
    """
    The async twin of ``Door``: every store call with its timeout, and the
    transactions of one limit object one at a time (per event loop: an
    ``asyncio.Lock`` belongs to the loop it first waited on).
    """

    def __init__(self, store: AsyncStateStore, config: LimitConfig) -> None:
        self.store = store
        self.config = config
        self._locks: dict[Any, asyncio.Lock] = {}

    def _lock(self) -> asyncio.Lock:
        import asyncio

        loop = asyncio.get_running_loop()
        found = self._locks.get(loop)
        if found is None:
            # Locks of loops that are gone are dropped: no growth across asyncio.run calls.
            self._locks = {k: v for k, v in self._locks.items() if not k.is_closed()}
            found = self._locks[loop] = asyncio.Lock()
        return found

    async def get(self) -> Snapshot:
        c = self.config
        return await self.store.get(c.collection, c.key, timeout=c.store_timeout)

    async def transact(self, fn: Callable[[Snapshot], Outcome[R]]) -> R:
        import asyncio

        c = self.config
        lock = self._lock()
        try:
            await asyncio.wait_for(lock.acquire(), c.store_timeout)
        except TimeoutError:
            raise local_contention(c) from None
        try:
            return await self.store.transact(c.collection, c.key, fn, timeout=c.store_timeout)
        finally:
            lock.release()

    async def transact_patiently(self, fn: Callable[[Snapshot], Outcome[R]]) -> R:
        """``transact``, retried through contention as ``Door.transact_patiently`` is."""
        clock = self.config.clock
        deadline = clock.monotonic() + self.config.store_timeout
        delay = 0.05
        for attempt in range(1, 10_000):
            try:
                return await self.transact(fn)
            except StoreConflictError:
                if attempt >= RELEASE_ATTEMPTS and clock.monotonic() >= deadline:
                    raise
                await sleep(self.config, _RNG.uniform(delay / 2, delay))
                delay = min(delay * 2, 1.0)
        return await self.transact(fn)


class AsyncSlot(SlotBase):
    """One slot of an :class:`AsyncConcurrencyLimit`; the methods of :class:`Slot`, awaited."""

    def __init__(
        self,
        door: AsyncDoor,
        telemetry: Telemetry,
        *,
        slot_id: str,
        acquired_at: datetime | None,
        expires_at: datetime | None,
        bypassed: bool = False,
    ) -> None:
        super().__init__(door.config, telemetry, slot_id=slot_id, acquired_at=acquired_at,
                         expires_at=expires_at, bypassed=bypassed)
        self._door = door
        self._renewal: asyncio.Task[None] | None = None

    async def renew(self) -> datetime:
        """Extend the lease (see :meth:`Slot.renew`)."""
        self._check_usable()
        c = self._config
        decide = functools.partial(
            decide_renew, slot_id=self.slot_id, lease=c.lease, name=c.name, limit=c.limit
        )
        with span("limits", "renew", lambda: {**c.attributes(), "limit.slot": self.slot_id}):
            result = await self._door.transact(decide)
        return self._renewed(result)

    async def ensure_held(self) -> None:
        """Check with the store that the slot is live (see :meth:`Slot.ensure_held`)."""
        self._check_usable()
        snap = await self._door.get()
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
                result = await self._door.transact_patiently(decide)
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
