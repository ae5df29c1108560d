"""``idempotent``: run a handler at most once per key within the dedup window."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

from .._telemetry import log_failure
from .._validate import describe
from ..errors import ConfigurationError, LockNotAcquiredError
from ._ledger import Completed, IdempotencyLedger, InProgress

__all__ = ["idempotent"]

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("pipeline_reliability.dedup")


def idempotent(
    ledger: IdempotencyLedger,
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

    Args:
        ledger: The ledger holding the claims.
        key_fn: Computes the idempotency key from the handler's arguments.
        payload_fn: Computes the payload whose hash must match on every
            delivery of the key (``PayloadMismatchError`` otherwise); ``None``
            checks nothing.

    Raises:
        ConfigurationError: ``ledger`` is not an :class:`IdempotencyLedger`,
            ``key_fn`` or ``payload_fn`` is not callable, or the handler is
            not callable or is a coroutine function (the ledger's store calls
            block; wrap a synchronous handler instead).

    Example::

        @idempotent(ledger, key_fn=lambda message: message.message_id,
                    payload_fn=lambda message: message.data.decode())
        def handle(message): ...

    .. versionadded:: 0.1.0
    """
    if not isinstance(ledger, IdempotencyLedger):
        raise ConfigurationError(f"ledger must be an IdempotencyLedger, got {describe(ledger)}")
    if not callable(key_fn):
        raise ConfigurationError(f"key_fn must be callable, got {describe(key_fn)}")
    if payload_fn is not None and not callable(payload_fn):
        raise ConfigurationError(f"payload_fn must be callable, got {describe(payload_fn)}")

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if not callable(fn):
            raise ConfigurationError(f"idempotent() wraps a function, got {describe(fn)}")
        if inspect.iscoroutinefunction(fn):
            raise ConfigurationError("idempotent() wraps synchronous handlers only")

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            key = key_fn(*args, **kwargs)
            payload = None if payload_fn is None else payload_fn(*args, **kwargs)
            outcome = ledger.claim(key, payload)
            if isinstance(outcome, Completed):
                return cast(R, outcome.result)
            if isinstance(outcome, InProgress):
                raise LockNotAcquiredError(
                    f"idempotency key {key!r} is being handled by {outcome.owner}",
                    holder=outcome.owner,
                    expires_at=outcome.expires_at,
                )
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                _release_quietly(ledger, outcome, exc)
                raise
            ledger.complete(outcome, result)
            return result

        return wrapper

    return decorate


def _release_quietly(ledger: IdempotencyLedger, claim: Any, cause: BaseException) -> None:
    # The handler's own exception is what the caller must see. If releasing
    # fails too, log that (with traceback) and let the claim lapse by itself.
    try:
        ledger.release(claim)
    except Exception as exc:  # noqa: BLE001
        log_failure(logger, "releasing an idempotency claim failed", exc, key=claim.key,
                    handler_error=type(cause).__name__)
