"""
``AsyncAdaptiveRateLimiter``: the asyncio twin, on the same state and decisions.

Waiting is ``await asyncio.sleep`` (or the injected clock's), the shared
budget's heartbeat is ``await store.transact`` on an ``AsyncStateStore``: no
thread anywhere. asyncio is imported on first use, never at module import, so
synchronous users do not pay for it at cold start.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from .._clock import Clock
from .._telemetry import span
from .._validate import describe
from ..errors import ConfigurationError, InvalidInputError, ReliabilityError
from ..stores._protocol import AsyncStateStore
from ._rate_base import LimiterBase
from ._rate_config import (
    DEFAULT_COOLDOWN,
    DEFAULT_SHARE,
    DEFAULT_STORE_TIMEOUT,
    DEFAULT_THROTTLED,
)

__all__ = ["AsyncAdaptiveRateLimiter"]

P = ParamSpec("P")
T = TypeVar("T")


class AsyncAdaptiveRateLimiter(LimiterBase):
    """
    The asyncio form of :class:`AdaptiveRateLimiter`: same options, same
    behaviour, coroutine methods, an :class:`~pipeline_reliability.AsyncStateStore`.

    Waits are ``await asyncio.sleep(...)``. With an injected ``clock``, waits
    await its ``asleep(seconds)`` coroutine if it has one; otherwise they call
    its ``sleep`` (a ``FakeClock`` then advances instead of blocking) and yield
    to the loop once.

    Raises:
        ConfigurationError: invalid options.
    """

    def __init__(
        self,
        name: str,
        *,
        rate: float,
        min_rate: float | None = None,
        max_rate: float | None = None,
        increase: float | None = None,
        decrease: float = 0.5,
        cooldown: timedelta | float = DEFAULT_COOLDOWN,
        burst: int = 1,
        throttled: Callable[[BaseException], bool] = DEFAULT_THROTTLED,
        throttled_result: Callable[[Any], bool] | None = None,
        store: AsyncStateStore | None = None,
        share: timedelta | float = DEFAULT_SHARE,
        store_timeout: timedelta | float = DEFAULT_STORE_TIMEOUT,
        timeout: timedelta | float | None = None,
        clock: Clock | None = None,
        instance_id: str | None = None,
        collection: str = "rate_limits",
    ) -> None:
        if store is not None and not isinstance(cast(object, store), AsyncStateStore):
            raise ConfigurationError(f"store must be an AsyncStateStore, got {describe(store)}")
        if store is not None and not inspect.iscoroutinefunction(
            getattr(store, "transact", None)
        ):
            raise ConfigurationError("store must be an AsyncStateStore (transact a coroutine)")
        super().__init__(
            name, rate=rate, min_rate=min_rate, max_rate=max_rate, increase=increase,
            decrease=decrease, cooldown=cooldown, burst=burst, throttled=throttled,
            throttled_result=throttled_result, store=store, share=share,
            store_timeout=store_timeout, timeout=timeout, clock=clock,
            instance_id=instance_id, collection=collection,
        )
        self._store = store
        self._clock = clock

    async def _sleep(self, seconds: float) -> None:
        import asyncio

        clock = self._clock
        if clock is None:
            await asyncio.sleep(seconds)
            return
        asleep = getattr(clock, "asleep", None)
        if asleep is not None and inspect.iscoroutinefunction(asleep):
            await asleep(seconds)
            return
        clock.sleep(seconds)
        await asyncio.sleep(0)

    async def acquire(self, timeout: timedelta | float | None = None) -> None:
        """
        Wait for the next token (see :meth:`AdaptiveRateLimiter.acquire`).

        Raises:
            RateLimitTimeoutError: the next token is further than ``timeout``.
            InvalidInputError: ``timeout`` is not a non-negative duration.
        """
        await self._acquire(self._limit(timeout))

    async def _acquire(self, limit: float) -> None:
        core = self._core
        if core.shared:
            await self._heartbeat()
        wait = core.take(limit)
        if wait > 0:
            with span("limits", "acquire", lambda: {"limiter": self.name, "wait_s": wait}):
                await self._sleep(wait)

    def permit(
        self, timeout: timedelta | float | None = None
    ) -> AbstractAsyncContextManager[None]:
        """
        ``async with limiter.permit():`` (see :meth:`AdaptiveRateLimiter.permit`).

        Raises:
            RateLimitTimeoutError: on entry, as :meth:`acquire`.
            InvalidInputError: ``timeout`` is not a non-negative duration.
        """
        return _AsyncPermit(self, self._limit(timeout))

    async def call(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """
        Acquire, await ``fn(*args, **kwargs)``, and learn from its outcome.

        Raises:
            RateLimitTimeoutError: no token within the limiter's ``timeout`` (``fn`` did not run).
            InvalidInputError: ``fn`` is not callable.
        """
        if not callable(fn):
            raise InvalidInputError(f"fn must be callable, got {describe(fn)}")
        await self._acquire(self._timeout)
        sent_at = self._core.mono()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._failure(exc, sent_at)
            raise
        self._outcome(result, sent_at)
        return result

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """
        Decorate a coroutine function so that every call goes through :meth:`call`.

        Raises:
            InvalidInputError: ``fn`` is not a coroutine function.
        """
        if not inspect.iscoroutinefunction(fn):
            raise InvalidInputError(
                f"an async rate limiter decorates coroutine functions, got {describe(fn)}"
            )

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.call(fn, *args, **kwargs)

        return wrapper

    async def _heartbeat(self) -> None:
        job = self._core.heartbeat_due()
        if job is None:
            return
        fn, publish = job
        config, store = self._config, cast(AsyncStateStore, self._store)
        try:
            with span("limits", "heartbeat", {"limiter": self.name}):
                membership = await store.transact(
                    config.collection, config.key, fn, timeout=config.store_timeout
                )
        except ReliabilityError as exc:
            self._core.heartbeat_failed(exc, publish)
        except BaseException:
            self._core.heartbeat_aborted(publish)
            raise
        else:
            self._core.heartbeat_done(membership, publish)


class _AsyncPermit:
    """The context manager :meth:`AsyncAdaptiveRateLimiter.permit` returns (one use)."""

    __slots__ = ("_limit", "_limiter", "_sent_at")

    def __init__(self, limiter: AsyncAdaptiveRateLimiter, limit: float) -> None:
        self._limiter = limiter
        self._limit = limit
        self._sent_at = 0.0

    async def __aenter__(self) -> None:
        await self._limiter._acquire(self._limit)
        self._sent_at = self._limiter._core.mono()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self._limiter._core.success()
        else:
            self._limiter._failure(exc, self._sent_at)
