"""``idempotent``: run a handler at most once per key within the dedup window."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from .._telemetry import log_failure
from .._validate import describe
from ..errors import ConfigurationError, LockNotAcquiredError
from ._async_ledger import AsyncIdempotencyLedger
from ._claims import Claimed, ClaimResult
from ._ledger import Completed, IdempotencyLedger, InProgress

__all__ = ["idempotent"]

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("pipeline_reliability.dedup")


def idempotent(
    ledger: IdempotencyLedger | AsyncIdempotencyLedger,
    key_fn: Callable[..., str],
    *,
    payload_fn: Callable[..., Any] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """
    Decorate a handler so that each key is handled once.

    Each call computes ``key_fn(*args, **kwargs)`` (e.g. the Pub/Sub message
    id) and claims it in ``ledger``:

    - already completed: the stored result is returned and the handler is
      **not** called (the result is the JSON form of what the first call
      returned, so a ``datetime`` comes back as an ISO string);
    - claimed by another live call: ``LockNotAcquiredError`` is raised. It is
      transient (``holder`` and ``expires_at`` say who and until when), so a
      Pub/Sub subscriber that lets it escape nacks the message and gets it
      again later, by which time the first call has finished or its claim
      has lapsed;
    - otherwise the handler runs; its result is recorded with
      :meth:`~IdempotencyLedger.complete`. If it raises, the claim is
      released and the exception propagates, so a redelivery retries at once.

    With an :class:`AsyncIdempotencyLedger` the handler must be a coroutine
    function, and the wrapper is one too: the claim, the completion and the
    release are awaited. A handler cancelled mid-way releases its claim like
    one that raised, and the cancellation propagates.

    Args:
        ledger: The ledger holding the claims.
        key_fn: Computes the idempotency key from the handler's arguments.
        payload_fn: Computes the payload whose hash must match on every
            delivery of the key (``PayloadMismatchError`` otherwise); ``None``
            checks nothing.

    Raises:
        ConfigurationError: ``ledger`` is not an :class:`IdempotencyLedger` or
            :class:`AsyncIdempotencyLedger`, ``key_fn`` or ``payload_fn`` is
            not callable, or the handler is not callable, or is a coroutine
            function given a sync ledger (whose store calls block), or a plain
            function given an async ledger.

    Example::

        @idempotent(ledger, key_fn=lambda message: message.message_id,
                    payload_fn=lambda message: message.data.decode())
        def handle(message): ...

    .. versionadded:: 0.1.0
    """
    if not isinstance(ledger, IdempotencyLedger | AsyncIdempotencyLedger):
        raise ConfigurationError(
            "ledger must be an IdempotencyLedger or an AsyncIdempotencyLedger, "
            f"got {describe(ledger)}"
        )
    if not callable(key_fn):
        raise ConfigurationError(f"key_fn must be callable, got {describe(key_fn)}")
    if payload_fn is not None and not callable(payload_fn):
        raise ConfigurationError(f"payload_fn must be callable, got {describe(payload_fn)}")

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if not callable(fn):
            raise ConfigurationError(f"idempotent() wraps a function, got {describe(fn)}")
        if isinstance(ledger, AsyncIdempotencyLedger):
            if not inspect.iscoroutinefunction(fn):
                raise ConfigurationError(
                    "idempotent() with an AsyncIdempotencyLedger wraps coroutine functions only"
                )
            return cast("Callable[P, R]", _async_wrapper(ledger, key_fn, payload_fn, fn))
        if inspect.iscoroutinefunction(fn):
            raise ConfigurationError(
                "idempotent() with an IdempotencyLedger wraps synchronous handlers only "
                "(use an AsyncIdempotencyLedger for coroutine functions)"
            )

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            key = key_fn(*args, **kwargs)
            payload = None if payload_fn is None else payload_fn(*args, **kwargs)
            outcome = _claimed(key, ledger.claim(key, payload))
            if isinstance(outcome, Completed):
                return cast(R, outcome.result)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                _release_quietly(ledger, outcome, exc)
                raise
            ledger.complete(outcome, result)
            return result

        return wrapper

    return decorate


def _async_wrapper(
    ledger: AsyncIdempotencyLedger,
    key_fn: Callable[..., str],
    payload_fn: Callable[..., Any] | None,
    fn: Callable[..., Awaitable[Any]],
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = key_fn(*args, **kwargs)
        payload = None if payload_fn is None else payload_fn(*args, **kwargs)
        outcome = _claimed(key, await ledger.claim(key, payload))
        if isinstance(outcome, Completed):
            return outcome.result
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            await _release_quietly_async(ledger, outcome, exc)
            raise
        await ledger.complete(outcome, result)
        return result

    return wrapper


def _claimed(key: str, outcome: ClaimResult) -> Claimed | Completed:
    """The claim or completion; a live claim elsewhere is the transient lock error."""
    if isinstance(outcome, InProgress):
        raise LockNotAcquiredError(
            f"idempotency key {key!r} is being handled by {outcome.owner}",
            holder=outcome.owner,
            expires_at=outcome.expires_at,
        )
    return outcome


def _release_quietly(ledger: IdempotencyLedger, claim: Any, cause: BaseException) -> None:
    # The handler's own exception is what the caller must see. If releasing
    # fails too, log that (with traceback) and let the claim lapse by itself.
    try:
        ledger.release(claim)
    except Exception as exc:  # noqa: BLE001
        log_failure(logger, "releasing an idempotency claim failed", exc, key=claim.key,
                    handler_error=type(cause).__name__)


async def _release_quietly_async(
    ledger: AsyncIdempotencyLedger, claim: Claimed, cause: BaseException
) -> None:
    try:
        await ledger.release(claim)
    except Exception as exc:  # noqa: BLE001
        log_failure(logger, "releasing an idempotency claim failed", exc, key=claim.key,
                    handler_error=type(cause).__name__)
