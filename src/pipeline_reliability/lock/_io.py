"""
The lock's store and clock requests, and the two drivers that perform them.

Multi-step lock algorithms (acquire: peek, reserve, grant, recover, back off)
are written once as generators that *yield* what they need done (a read, a
transaction, a sleep) and receive its result. :func:`drive_sync` performs the
requests with blocking calls, :func:`drive_async` awaits them: the decisions,
their order and their error handling are the same code for ``DateLock`` and
``AsyncDateLock``, so the two cannot drift apart. An error raised by a
request is thrown back into the generator at its ``yield``, exactly where a
direct call would have raised it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from .._clock import Clock, SystemClock
from ..stores import AsyncStateStore, Outcome, Snapshot, StateStore

__all__ = [
    "Get",
    "Request",
    "Sleep",
    "Steps",
    "Transact",
    "async_sleep",
    "drive_async",
    "drive_sync",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Get:
    """Read one document (``store.get``); the result is its :class:`Snapshot`."""

    collection: str
    key: str


@dataclass(frozen=True, slots=True)
class Transact:
    """Run ``fn`` in a transaction (``store.transact``); the result is ``fn``'s result."""

    collection: str
    key: str
    fn: Callable[[Snapshot], Outcome[Any]]


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds`` on the lock's clock; the result is ``None``."""

    seconds: float


Request = Get | Transact | Sleep
Steps = Generator[Request, Any, T]
"""An algorithm that yields requests and finally returns a ``T``."""


def drive_sync(steps: Steps[T], store: StateStore, clock: Clock) -> T:
    """Run ``steps`` with blocking store calls and ``clock.sleep``."""
    request = next(steps)
    while True:
        error: Exception | None = None
        result: Any = None
        try:
            if isinstance(request, Get):
                result = store.get(request.collection, request.key)
            elif isinstance(request, Transact):
                result = store.transact(request.collection, request.key, request.fn)
            else:
                clock.sleep(request.seconds)
        except Exception as exc:  # noqa: BLE001 - handed to the algorithm, which decides
            error = exc
        try:
            request = steps.send(result) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


async def drive_async(steps: Steps[T], store: AsyncStateStore, clock: Clock) -> T:
    """Run ``steps`` awaiting the store and :func:`async_sleep`."""
    request = next(steps)
    while True:
        error: Exception | None = None
        result: Any = None
        try:
            if isinstance(request, Get):
                result = await store.get(request.collection, request.key)
            elif isinstance(request, Transact):
                result = await store.transact(request.collection, request.key, request.fn)
            else:
                await async_sleep(clock, request.seconds)
        except Exception as exc:  # noqa: BLE001 - handed to the algorithm, which decides
            error = exc
        try:
            request = steps.send(result) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


async def async_sleep(clock: Clock, seconds: float) -> None:
    """
    Wait ``seconds`` without blocking the event loop.

    The system clock waits with ``asyncio.sleep``. Any other clock (a
    ``FakeClock`` in tests) is asked to ``sleep`` (a fake clock moves its time
    instead of blocking), and then the loop gets a turn, so other tasks see the
    new time. As with ``RetryPolicy.acall``, do not inject a clock whose
    ``sleep`` really blocks into async code.
    """
    import asyncio  # lazily: `import pipeline_reliability` stays light

    if type(clock) is SystemClock:
        await asyncio.sleep(max(seconds, 0.0))
        return
    clock.sleep(seconds)
    await asyncio.sleep(0)
