"""The two ways in: a decorator for functions and an iterator for blocks."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, ParamSpec, TypeVar, cast

from tenacity import AttemptManager

from ..errors import ConfigurationError
from ._budget import RetryBudget
from ._engine import (
    aiterate,
    iterate,
    iterate_counted,
    run_async,
    run_async_counted,
    run_sync,
    run_sync_counted,
)
from ._policy import RetryPolicy, name_of

__all__ = ["AttemptBlock", "retry_transient", "retrying"]

P = ParamSpec("P")
R = TypeVar("R")
_MAX_NAME = 200  # a label for logs, spans and metric attributes


def _resolve(
    policy: RetryPolicy | None, overrides: dict[str, Any], *, block: bool = False
) -> RetryPolicy:
    if policy is not None and not isinstance(policy, RetryPolicy):
        # `@retry_transient` without parentheses would hand us the function.
        raise ConfigurationError(
            f"expected a RetryPolicy, not {policy!r}; write @retry_transient() with parentheses"
        )
    base = _default() if policy is None else policy
    if not overrides:
        return base
    if "budget" in overrides and not isinstance(overrides["budget"], RetryBudget | None):
        if block:
            raise ConfigurationError(
                "retrying(budget=<ratio>) would build a new budget for every block, which "
                "never limits anything; build a RetryBudget (or the RetryPolicy) once and pass it"
            )
        # A ratio builds a budget of its own: one per decorated function, never
        # one shared through the cache with every other site that wrote budget=0.2.
        return base.with_(**overrides)
    try:
        # The type is part of the key: True == 1 but attempts=True must still be refused.
        return _with(base, tuple((k, type(v), v) for k, v in sorted(overrides.items())))
    except TypeError:  # an unhashable override value: build it uncached
        return base.with_(**overrides)


@functools.cache
def _default() -> RetryPolicy:
    # A frozen value: one instance serves every caller (building one costs ~10 us).
    return RetryPolicy()


@functools.lru_cache(maxsize=256)
def _with(base: RetryPolicy, overrides: tuple[tuple[str, type, Any], ...]) -> RetryPolicy:
    # ``retrying(attempts=3)`` in a loop asks for the same frozen policy again and again.
    return base.with_(**{k: v for k, _, v in overrides})


def retry_transient(
    policy: RetryPolicy | None = None, **overrides: Any
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """
    Decorate a function (sync or ``async def``) so transient failures are retried.

    The policy is built (and validated) when the decorator is applied. Each call
    of the decorated function is an independent retried call: concurrent calls
    share nothing but the frozen policy.

    Only decorate idempotent operations, and let them raise: a function that
    catches its own errors never gets retried (DESIGN F9).

    Args:
        policy: The base policy; ``RetryPolicy()`` defaults when omitted.
        **overrides: Fields replaced on the base policy (``attempts=3``,
            ``deadline=10``, ``predicate=...``, ``budget=0.2``, …). A ratio
            as ``budget`` gives this function a budget of its own; pass a
            ``RetryBudget`` to share one between functions.

    Returns:
        A decorator.

    Raises:
        ConfigurationError: An override is invalid (raised when decorating).

    Example::

        @retry_transient(attempts=3, deadline=10)
        def fetch(key: str) -> dict[str, object]: ...

        @retry_transient(attempts=3)
        async def publish(event: bytes) -> str: ...

    .. versionadded:: 0.1.0
    """
    effective = _resolve(policy, overrides)

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        given: object = fn
        if not callable(given):
            raise ConfigurationError(f"retry_transient decorates callables, not {fn!r:.80}")
        name = name_of(fn)  # once, not per call
        budget = effective.budget
        if isinstance(budget, RetryBudget):
            return _counted(effective, budget, name, fn)
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await run_async(effective, name, fn, *args, **kwargs)

            return cast("Callable[P, R]", async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return run_sync(effective, name, fn, *args, **kwargs)

        return wrapper

    return decorate


def _counted(
    policy: RetryPolicy, budget: RetryBudget, name: str, fn: Callable[P, R]
) -> Callable[P, R]:
    # Chosen when decorating, so that a policy without a budget pays nothing for budgets.
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            return await run_async_counted(policy, budget, name, fn, *args, **kwargs)

        return cast("Callable[P, R]", async_wrapper)

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return run_sync_counted(policy, budget, name, fn, *args, **kwargs)

    return wrapper


class AttemptBlock:
    """
    The attempts of one ``retrying()`` block: iterate it once, with ``for`` in
    sync code or ``async for`` in a coroutine (then the backoff is awaited,
    never slept on the event loop).

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_it", "_name", "_policy")

    def __init__(self, policy: RetryPolicy, name: str) -> None:
        self._policy = policy
        self._name = name
        self._it: Iterator[AttemptManager] | None = None

    def __iter__(self) -> Iterator[AttemptManager]:
        # The common path (``for``): one generator made; after next(), the same one.
        if self._it is not None:
            return self._it
        policy = self._policy
        budget: Any = policy.budget
        if budget is None:
            return iterate(policy, self._name)
        return iterate_counted(policy, budget, self._name)

    def __next__(self) -> AttemptManager:
        if self._it is None:
            self._it = iter(self)
        return next(self._it)

    def __aiter__(self) -> AsyncIterator[AttemptManager]:
        return aiterate(self._policy, cast("RetryBudget | None", self._policy.budget), self._name)


def retrying(
    policy: RetryPolicy | None = None, *, name: str = "retrying", **overrides: Any
) -> AttemptBlock:
    """
    Retry a block of code, tenacity style::

        for attempt in retrying(attempts=3, deadline=10):
            with attempt:
                upsert_rows()

        async for attempt in retrying(attempts=3, deadline=10):  # in a coroutine
            with attempt:
                await upsert_rows()

    A transient error leaving the ``with`` block starts the next attempt (after
    the backoff, awaited with ``async for``); a permanent one propagates at
    once, unchanged; when attempts or deadline run out,
    :class:`~pipeline_reliability.errors.RetryExhaustedError` is raised from
    the last error. The loop ends after the first attempt that does not raise.

    Args:
        policy: The base policy; ``RetryPolicy()`` defaults when omitted.
        name: Names the block in logs, span events and metrics.
        **overrides: Fields replaced on the base policy. ``budget`` must be a
            ``RetryBudget`` built once (or ``None``): a ratio here would build a
            new budget per block. A policy with a budget counts the block as
            one call when the loop starts.

    Raises:
        ConfigurationError: An invalid override or name, or ``budget=<ratio>``.

    Returns:
        The block's attempts (context managers), for ``for`` or ``async for``.
        Iterate it once.

    .. versionadded:: 0.1.0
    """
    label: object = name
    if not isinstance(label, str) or not label or len(label) > _MAX_NAME:
        raise ConfigurationError(
            f"name must be a non-empty string of at most {_MAX_NAME} characters, got {name!r:.80}"
        )
    return AttemptBlock(_resolve(policy, overrides, block=True), name)
