"""Auto-renewal of an :class:`AsyncLease` as an asyncio task, and the lost-lease signal."""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING

from .._clock import Clock
from .._telemetry import log_failure
from ..errors import LockLostError
from ._async_lease import AsyncLease, AsyncOnLost
from ._io import async_sleep
from ._renewer import TRANSIENT, RenewSchedule

if TYPE_CHECKING:
    import asyncio

__all__ = ["AsyncRenewer"]

logger = logging.getLogger("pipeline_reliability.lock")


class AsyncRenewer:
    """
    Renews one lease from a task until stopped, and signals its loss.

    The twin of :class:`Renewer`: :meth:`step` renews once and returns the
    delay to the next step, with the same :class:`RenewSchedule` deciding
    backoff and loss. :meth:`stop` cancels the task, a renewal in flight
    included (safe: the release that follows matches the lease whether or not
    that renewal committed).
    """

    def __init__(
        self, lease: AsyncLease, interval: float, on_lost: AsyncOnLost | None, clock: Clock
    ) -> None:
        self.lease = lease
        self.clock = clock
        self.interval = interval
        self.on_lost = on_lost
        self._schedule = RenewSchedule(lease, interval)
        self._stopped = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the renewal task on the running loop."""
        import asyncio  # lazily: `import pipeline_reliability` stays light

        self.task = asyncio.get_running_loop().create_task(
            self._run(), name=f"pipeline-reliability-lease-{self.lease.name}-{self.lease.date}"
        )

    async def stop(self) -> None:
        """Stop renewing: cancel the task and wait until it has ended (unless called from it)."""
        import asyncio  # lazily: `import pipeline_reliability` stays light

        self._stopped = True
        task = self.task
        if task is None or task.done() or task is asyncio.current_task():
            return
        task.cancel()
        # wait() does not raise the task's cancellation into this caller; a
        # cancellation of the caller itself still propagates.
        await asyncio.wait({task})

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called or the lease was declared lost."""
        return self._stopped

    async def step(self) -> float | None:
        """Renew once; the seconds until the next step, or ``None`` when renewal is over."""
        if self._stopped:
            return None
        try:
            await self.lease.renew()
        except LockLostError as exc:
            await self._declare_lost(str(exc))
            return None
        except TRANSIENT as exc:
            delay = self._schedule.after_transient(exc)
            if delay is None:
                await self._declare_lost(self._schedule.unreachable_reason(exc))
            return delay
        except Exception as exc:  # noqa: BLE001 - the task must not die quietly
            await self._declare_lost(self._schedule.after_unexpected(exc))
            return None
        return self._schedule.after_success()

    async def _declare_lost(self, reason: str) -> None:
        self._stopped = True
        if self.on_lost is None:
            return
        try:
            result = self.on_lost(self.lease, reason)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # noqa: BLE001 - a user hook must not break the renewer
            log_failure(
                logger, "on_lost callback raised", exc, lock=self.lease.name, date=self.lease.date
            )

    async def _run(self) -> None:
        delay: float | None = self.interval
        while delay is not None and not self._stopped:
            await async_sleep(self.clock, delay)
            if self._stopped:
                return
            delay = await self.step()
