"""The two ways in: a decorator for functions and an iterator for blocks."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar, cast

from tenacity import AttemptManager

from ..errors import ConfigurationError
from ._engine import iterate, run_async, run_sync
from ._policy import RetryPolicy, name_of

__all__ = ["retry_transient", "retrying"]

P = ParamSpec("P")
R = TypeVar("R")
_MAX_NAME = 200  # a label for logs, spans and metric attributes


def _resolve(policy: RetryPolicy | None, overrides: dict[str, Any]) -> RetryPolicy:
    if policy is not None and not isinstance(policy, RetryPolicy):
        # `@retry_transient` without parentheses would hand us the function.
        raise ConfigurationError(
            f"expected a RetryPolicy, not {policy!r}; write @retry_transient() with parentheses"
        )
    base = _default() if policy is None else policy
    if not overrides:
        return base
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
            ``deadline=10``, ``predicate=...``, …).

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


def retrying(
    policy: RetryPolicy | None = None, *, name: str = "retrying", **overrides: Any
) -> Iterator[AttemptManager]:
    """
    Retry a block of code, tenacity style::

        for attempt in retrying(attempts=3, deadline=10):
            with attempt:
                upsert_rows()

    A transient error leaving the ``with`` block starts the next attempt (after
    the backoff); a permanent one propagates at once, unchanged; when attempts
    or deadline run out, :class:`~pipeline_reliability.errors.RetryExhaustedError`
    is raised from the last error. The loop ends after the first attempt that
    does not raise.

    Args:
        policy: The base policy; ``RetryPolicy()`` defaults when omitted.
        name: Names the block in logs, span events and metrics.
        **overrides: Fields replaced on the base policy.

    Returns:
        An iterator of attempts (context managers). Iterate it once.

    .. versionadded:: 0.1.0
    """
    label: object = name
    if not isinstance(label, str) or not label or len(label) > _MAX_NAME:
        raise ConfigurationError(
            f"name must be a non-empty string of at most {_MAX_NAME} characters, got {name!r:.80}"
        )
    return iterate(_resolve(policy, overrides), name)
