"""Fault injection around any AsyncStateStore: FaultyStore's plan, awaited."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from ..stores._protocol import AsyncStateStore, Outcome, Snapshot
from ._faults import DEFAULT_FAULTS, HANG, Fault, FaultPlan, Hang, fault_error
from ._wrapper import AsyncStoreWrapper

__all__ = ["AsyncFaultyStore"]

R = TypeVar("R")


class AsyncFaultyStore(FaultPlan, AsyncStoreWrapper):
    """
    The asyncio twin of :class:`FaultyStore`: the same plan, faults and outages.

    Every option, attribute and control (``fail_next``, ``hang_next``,
    ``outage``, ``release_hangs``, ``injected``, ``hangs``, ``hanging``) is
    FaultyStore's, shared with it; only waiting differs. A hang awaits until
    the caller's ``timeout`` (``hang_timeout`` for a call without one), then
    raises ``StoreUnavailableError`` as a real hung store's deadline does;
    it blocks no thread, :meth:`release_hangs` (from any thread) ends it at
    once, and cancelling the waiting task ends it too. :meth:`wait_hanging`
    is a coroutine here.

    Example::

        store = AsyncFaultyStore(AsyncMemoryStore())
        store.hang_next()
        await store.get("c", "k", timeout=0.1)  # raises StoreUnavailableError after 0.1 s
    """

    def __init__(
        self,
        inner: AsyncStateStore,
        *,
        plan: Mapping[int, Fault] | None = None,
        probability: float = 0.0,
        faults: Iterable[Fault] = DEFAULT_FAULTS,
        seed: int = 0,
        operations: Iterable[str] = ("get", "transact"),
        hang_timeout: float = 30.0,
    ) -> None:
        FaultPlan.__init__(
            self,
            plan=plan,
            probability=probability,
            faults=faults,
            seed=seed,
            operations=operations,
            hang_timeout=hang_timeout,
        )
        AsyncStoreWrapper.__init__(self, inner)

    async def wait_hanging(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until at least ``count`` calls hang; ``False`` if ``timeout`` passed first."""
        import asyncio  # not at module level: importing the package must not load asyncio

        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        # Hangs may start in other threads' loops: poll rather than wait on this loop only.
        while self.hanging < count:
            if loop.time() >= end:
                return False
            await asyncio.sleep(0.005)
        return True

    async def get(self, collection: str, key: str, *, timeout: float | None = None) -> Snapshot:
        """Read, unless a fault is due."""
        fault = self._draw("get")
        if fault is not None and fault is not Fault.LOST_RESPONSE:
            raise await self._fail(fault, collection, key, timeout)
        snap = await self.inner.get(collection, key, timeout=timeout)
        if fault is Fault.LOST_RESPONSE:
            raise fault_error(fault, collection, key)
        return snap

    async def transact(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        """Transact, unless a fault is due."""
        fault = self._draw("transact")
        if fault is Fault.ABORTED:
            # The first attempt's decision is thrown away, as after a real abort.
            fn(await self.inner.get(collection, key, timeout=timeout))
            return await self.inner.transact(collection, key, fn, timeout=timeout)
        if fault is not None and fault is not Fault.LOST_RESPONSE:
            raise await self._fail(fault, collection, key, timeout)
        result = await self.inner.transact(collection, key, fn, timeout=timeout)
        if fault is Fault.LOST_RESPONSE:
            raise fault_error(fault, collection, key)
        return result

    async def _fail(
        self, fault: Fault | Hang, collection: str, key: str, timeout: float | None
    ) -> Exception:
        if fault is HANG:
            import asyncio

            loop = asyncio.get_running_loop()
            woken = asyncio.Event()

            def wake() -> None:
                # release_hangs may run in another thread, or after this loop closed.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(woken.set)

            with self._hang(wake) as release:
                if not release.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._hang_seconds(timeout)):
                            await woken.wait()
        return fault_error(fault, collection, key)
