"""Publishing a run's completion: retried, and never dropped without a typed error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import CompletionNotPublishedError, InvalidInputError
from ..pubsub import CompletionMessage, CompletionPublisher, MemoryCompletionPublisher
from ..pubsub._publisher import DEFAULT_PUBLISH_RETRY
from ..retry import RetryPolicy, any_of, if_exception_type

__all__ = ["publish_completion"]


def publish_completion(
    publisher: Callable[[CompletionMessage], Any],
    message: CompletionMessage,
    retry: RetryPolicy | None,
) -> str | None:
    """
    Publish ``message``; return the message id if the publisher gave one.

    The library's publishers retry under their own policy, so they are called
    once (one failure is never retried twice over, DESIGN F9); any other
    callable is retried under ``retry`` on transient errors.

    Raises:
        CompletionNotPublishedError: the publish failed for good; the last
            error is chained and ``completion`` is ``message``.
    """
    result: Any
    try:
        if isinstance(publisher, CompletionPublisher | MemoryCompletionPublisher):
            result = publisher(message)
        else:
            policy = retry or DEFAULT_PUBLISH_RETRY
            # A timed-out attempt may have been delivered: publishing again is
            # safe, the tracker deduplicates by (processor, execution_id).
            policy = policy.with_(
                predicate=any_of(policy.predicate, if_exception_type(TimeoutError))
            )
            result = policy.call(publisher, message)
    except CompletionNotPublishedError:
        raise
    except InvalidInputError:
        raise
    except Exception as exc:
        raise CompletionNotPublishedError(
            f"publishing the completion of {message.processor_name} {message.game_date} "
            f"failed: {exc}",
            completion=message,
        ) from exc
    return result if isinstance(result, str) else None
