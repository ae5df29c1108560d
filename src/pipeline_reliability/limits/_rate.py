"""The public ``AdaptiveRateLimiter``: AIMD on throttling signals, optionally fleet-wide."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from .._clock import Clock
from .._telemetry import span
from .._validate import describe
from ..errors import ConfigurationError, InvalidInputError, ReliabilityError
from ..stores._protocol import StateStore
from ._rate_base import LimiterBase
from ._rate_config import (
    DEFAULT_COOLDOWN,
    DEFAULT_SHARE,
    DEFAULT_STORE_TIMEOUT,
    DEFAULT_THROTTLED,
    wait_limit,
)

__all__ = ["AdaptiveRateLimiter"]

P = ParamSpec("P")
T = TypeVar("T")


class AdaptiveRateLimiter(LimiterBase):
    """
    A client-side rate limiter that adapts to the API it calls (AIMD).

    Calls are admitted by a token bucket at :attr:`rate` calls per second.
    A throttling signal (HTTP 429, BigQuery ``rateLimitExceeded`` or a quota
    reason, gRPC ``RESOURCE_EXHAUSTED``: see
    :func:`~pipeline_reliability.retry.is_throttling`) multiplies the rate by
    ``decrease``, at most once per ``cooldown`` (a burst of 429s from one
    overload counts once, and so does a 429 from a call sent before the last
    decrease); each ``cooldown`` without one that ends in a success adds
    ``increase``. The rate stays within ``[min_rate, max_rate]``. Thread-safe;
    waiting sleeps on the injected clock; exceptions are never swallowed.

    Use it as a decorator (``@limiter``), through :meth:`call`, as a block
    (``with limiter.permit():``), or take a token with :meth:`acquire` and
    report the outcome with :meth:`throttled` / :meth:`succeeded`.

    With a ``store``, ``rate``/``min_rate``/``max_rate`` are the whole fleet's:
    each instance admits its share, at most the fleet rate divided by the live
    instances, taken in one document it heartbeats at most once per ``share``
    period (one transaction: one read and one write; none while idle). A share
    never takes what the others still admit, so the instances' rates add up to
    at most the fleet rate (a newcomer admits ``min_rate / n`` until the others
    have made room, within two periods); an increase takes effect at the next
    heartbeat. Throttles are published in the heartbeat, so the others
    decrease too (within two periods). A member that stops calling keeps its
    share for its lease of three periods. A failing store never blocks a call
    beyond ``store_timeout``: the instance keeps its last share (and emits a
    :class:`RateStoreErrorEvent`) until its lease has run out, then admits at
    most ``min_rate`` divided by the members it knew.

    Args:
        name: Any non-empty text; instances with the same name and store share a budget.
        rate: The starting rate, calls per second.
        min_rate: The floor (default ``rate / 100``).
        max_rate: The ceiling (default ``rate``: only back off and recover).
        increase: Calls per second added per calm ``cooldown`` (default ``max_rate / 20``).
        decrease: The factor applied on a throttle, in (0, 1).
        cooldown: The reaction window: at most one decrease, and one increase, per window.
            Set it to at least the duration of a call.
        burst: Tokens the bucket holds when idle (calls admitted at once).
        throttled: ``exc -> bool``: which exceptions are throttling signals.
        throttled_result: ``result -> bool``: which results are (e.g. a response
            with ``status_code == 429`` from a client that does not raise).
        store: A :class:`~pipeline_reliability.StateStore` for a fleet-wide budget.
        share: The heartbeat period of the shared budget.
        store_timeout: The deadline of each heartbeat.
        timeout: The default bound on waits of :meth:`call`, the decorator and
            :meth:`permit` (``None``: wait for the next slot, however far).
        clock: Time source (a ``FakeClock`` in tests: waits advance it).
        instance_id: This instance's id in the shared budget.
        collection: The collection of shared-budget documents.

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
        store: StateStore | None = None,
        share: timedelta | float = DEFAULT_SHARE,
        store_timeout: timedelta | float = DEFAULT_STORE_TIMEOUT,
        timeout: timedelta | float | None = None,
        clock: Clock | None = None,
        instance_id: str | None = None,
        collection: str = "rate_limits",
    ) -> None:
        if store is not None and (
            not isinstance(cast(object, store), StateStore)
            or inspect.iscoroutinefunction(store.transact)
        ):
            raise ConfigurationError(
                f"store must be a StateStore (AsyncAdaptiveRateLimiter takes an "
                f"AsyncStateStore), got {describe(store)}"
            )
        super().__init__(
            name, rate=rate, min_rate=min_rate, max_rate=max_rate, increase=increase,
            decrease=decrease, cooldown=cooldown, burst=burst, throttled=throttled,
            throttled_result=throttled_result, store=store, share=share,
            store_timeout=store_timeout, timeout=timeout, clock=clock,
            instance_id=instance_id, collection=collection,
        )
        self._store = store
        self._sleep: Callable[[float], None] = time.sleep if clock is None else clock.sleep

    def acquire(self, timeout: timedelta | float | None = None) -> None:
        """
        Wait for the next token (sleeping on the limiter's clock).

        Args:
            timeout: The longest wait acceptable (``None``: the limiter's
                ``timeout``). A wait that would be longer fails at once.

        Raises:
            RateLimitTimeoutError: the next token is further than ``timeout``.
            InvalidInputError: ``timeout`` is not a non-negative duration.
        """
        # _acquire, inlined: this is the per-call cost of every admitted call.
        core = self._core
        if core.shared:
            self._heartbeat()
        wait = core.take(self._timeout if timeout is None else wait_limit(timeout))
        if wait > 0:
            self._wait(wait)

    def _acquire(self, limit: float) -> None:
        core = self._core
        if core.shared:
            self._heartbeat()
        wait = core.take(limit)
        if wait > 0:
            self._wait(wait)

    def _wait(self, wait: float) -> None:
        with span("limits", "acquire", lambda: {"limiter": self.name, "wait_s": wait}):
            self._sleep(wait)

    def permit(self, timeout: timedelta | float | None = None) -> AbstractContextManager[None]:
        """
        ``with limiter.permit():`` acquires on entry; the block's exception, if
        any, is classified with ``throttled`` on exit (a clean exit is a success).

        Raises:
            RateLimitTimeoutError: on entry, as :meth:`acquire`.
            InvalidInputError: ``timeout`` is not a non-negative duration.
        """
        return _Permit(self, self._limit(timeout))

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """
        Acquire, run ``fn(*args, **kwargs)``, and learn from its outcome.

        Raises:
            RateLimitTimeoutError: no token within the limiter's ``timeout`` (``fn`` did not run).
            InvalidInputError: ``fn`` is not callable.
        """
        if not callable(fn):
            raise InvalidInputError(f"fn must be callable, got {describe(fn)}")
        # _acquire and _outcome, inlined: the per-call cost of the decorator and call().
        core = self._core
        if core.shared:
            self._heartbeat()
        wait = core.take(self._timeout)
        if wait > 0:
            self._wait(wait)
        sent_at = core.mono()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._failure(exc, sent_at)
            raise
        if self._config.throttled_result is None:
            core.success()
        else:
            self._outcome(result, sent_at)
        return result

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """
        Decorate a plain function so that every call goes through :meth:`call`.

        Raises:
            InvalidInputError: ``fn`` is not callable, or is a coroutine
                function (use :class:`AsyncAdaptiveRateLimiter`).
        """
        if not callable(fn):
            raise InvalidInputError(f"a rate limiter decorates callables, got {describe(fn)}")
        if inspect.iscoroutinefunction(fn):
            raise InvalidInputError("decorate coroutine functions with AsyncAdaptiveRateLimiter")

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return self.call(fn, *args, **kwargs)

        return wrapper

    def _heartbeat(self) -> None:
        job = self._core.heartbeat_due()
        if job is None:
            return
        fn, publish = job
        config, store = self._config, cast(StateStore, self._store)
        try:
            with span("limits", "heartbeat", {"limiter": self.name}):
                membership = store.transact(
                    config.collection, config.key, fn, timeout=config.store_timeout
                )
        except ReliabilityError as exc:
            self._core.heartbeat_failed(exc, publish)
        except BaseException:
            self._core.heartbeat_aborted(publish)
            raise
        else:
            self._core.heartbeat_done(membership, publish)


class _Permit:
    """The context manager :meth:`AdaptiveRateLimiter.permit` returns (one use)."""

    __slots__ = ("_limit", "_limiter", "_sent_at")

    def __init__(self, limiter: AdaptiveRateLimiter, limit: float) -> None:
        self._limiter = limiter
        self._limit = limit
        self._sent_at = 0.0

    def __enter__(self) -> None:
        self._limiter._acquire(self._limit)
        self._sent_at = self._limiter._core.mono()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self._limiter._core.success()
        else:
            self._limiter._failure(exc, self._sent_at)
