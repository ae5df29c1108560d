"""
Which errors are worth retrying.

A retry is only correct when the failure is *transient* (the same request may
succeed later) and the operation is *idempotent* (repeating it cannot apply it
twice, DESIGN F9). These predicates answer the first question; the caller
answers the second by choosing what to wrap.

Google libraries are never imported here (DESIGN F10). An exception object of a
Google class can only exist if its module has already been imported, so the
predicates look the module up in ``sys.modules`` and, when it is absent, know
the exception is not a Google one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ReliabilityError

__all__ = [
    "BIGQUERY_TRANSIENT_REASONS",
    "THROTTLING_REASONS",
    "Predicate",
    "all_of",
    "any_of",
    "if_exception_type",
    "is_serialization_conflict",
    "is_throttling",
    "is_transient",
    "is_transient_outside_transaction",
]

Predicate = Callable[[BaseException], bool]
"""A function that says whether an exception should be retried."""

BIGQUERY_TRANSIENT_REASONS: frozenset[str] = frozenset(
    {
        "rateLimitExceeded",
        "backendError",
        "jobRateLimitExceeded",
        "internalError",
        # google-cloud-bigquery's own retry treats this one as transient too.
        "badGateway",
    }
)
"""
BigQuery error reasons (``exc.errors[i]["reason"]``) that are transient.

``quotaExceeded`` is deliberately absent: BigQuery uses it for daily quotas
that no retry within a deadline can outlast.
"""

THROTTLING_REASONS: frozenset[str] = frozenset(
    {"rateLimitExceeded", "jobRateLimitExceeded", "quotaExceeded", "userRateLimitExceeded"}
)
"""
Google API error reasons that say "you are calling too fast" (:func:`is_throttling`).

Unlike :data:`BIGQUERY_TRANSIENT_REASONS` this includes ``quotaExceeded``: a
quota is not worth retrying within a deadline, but it is a reason to slow down.
"""

# BigQuery reports a MERGE/DML that lost a race on the same table with the first
# message (400 BadRequest from the query, or a job error), and cancels the later
# of two conflicting multi-statement transactions with the second. Re-running the
# statement is the documented remedy (F8).
_SERIALIZATION_CONFLICTS = (
    "could not serialize access to table",
    "transaction is aborted due to concurrent update",
)

# api-core classes retried by is_transient, by name so nothing is imported.
_GOOGLE_TRANSIENT = (
    "ServiceUnavailable",
    "InternalServerError",
    "TooManyRequests",  # ResourceExhausted (gRPC quota / rate limit) subclasses it
    "GatewayTimeout",  # DeadlineExceeded subclasses it
    "BadGateway",
)


def if_exception_type(*types: type[BaseException]) -> Predicate:
    """
    Return a predicate that is true for instances of any of ``types``.

    Args:
        *types: Exception classes to retry.

    .. versionadded:: 0.1.0
    """

    def predicate(exc: BaseException) -> bool:
        return isinstance(exc, types)

    predicate.__name__ = predicate.__qualname__ = (
        f"if_exception_type({', '.join(t.__name__ for t in types)})"
    )
    return predicate


def any_of(*predicates: Predicate) -> Predicate:
    """
    Return a predicate that is true when at least one of ``predicates`` is.

    .. versionadded:: 0.1.0
    """

    def predicate(exc: BaseException) -> bool:
        return any(p(exc) for p in predicates)

    predicate.__name__ = predicate.__qualname__ = f"any_of({_names(predicates)})"
    return predicate


def all_of(*predicates: Predicate) -> Predicate:
    """
    Return a predicate that is true when every one of ``predicates`` is.

    .. versionadded:: 0.1.0
    """

    def predicate(exc: BaseException) -> bool:
        return all(p(exc) for p in predicates)

    predicate.__name__ = predicate.__qualname__ = f"all_of({_names(predicates)})"
    return predicate


def _names(predicates: Iterable[Predicate]) -> str:
    return ", ".join(getattr(p, "__name__", repr(p)) for p in predicates)


def is_serialization_conflict(exc: BaseException) -> bool:
    """
    Return whether ``exc`` is BigQuery's "Could not serialize access to table …
    due to concurrent update" (a DML statement lost a race) or "Transaction is
    aborted due to concurrent update" (a script's transaction lost one);
    re-running is safe when the statement is idempotent, as a MERGE upsert is.

    The message is looked for in the exception text and in BigQuery's structured
    ``errors`` entries, whatever the exception class (a 400 ``BadRequest``, a job
    error, or one of our ``WriteFailedError`` wrapping it).

    .. versionadded:: 0.1.0
    """
    texts = [str(exc).lower()]
    texts += [str(entry.get("message", "")).lower() for entry in _google_error_entries(exc)]
    return any(marker in text for marker in _SERIALIZATION_CONFLICTS for text in texts)


def is_transient(exc: BaseException) -> bool:
    """
    Return whether retrying the operation that raised ``exc`` may succeed.

    True for:

    * this library's errors whose class says ``transient = True``
      (``StoreUnavailableError``, ``StoreConflictError``, ``PublishFailedError``,
      ``CircuitOpenError``, ``LockNotAcquiredError``);
    * ``google.api_core.exceptions`` ``ServiceUnavailable``,
      ``InternalServerError``, ``TooManyRequests``/``ResourceExhausted``,
      ``GatewayTimeout``/``DeadlineExceeded`` and ``BadGateway``;
    * any Google API error carrying a BigQuery reason in
      :data:`BIGQUERY_TRANSIENT_REASONS`;
    * BigQuery serialization conflicts (:func:`is_serialization_conflict`);
    * connection failures: ``ConnectionError``, ``requests`` connection errors,
      timeouts and chunked-encoding errors (not SSL errors), and
      ``google.auth.exceptions.TransportError``.

    Everything else is permanent, notably ``PermissionDenied``,
    ``Unauthenticated``, ``NotFound``, ``AlreadyExists``, ``InvalidArgument``,
    ``BadRequest``, ``FailedPrecondition`` and ``Aborted``: Firestore
    transactions already retry ``Aborted`` themselves, and retrying around them
    would multiply the attempts. Use :func:`is_transient_outside_transaction`
    for single RPCs made outside a transaction.

    .. versionadded:: 0.1.0
    """
    if isinstance(exc, ReliabilityError):
        # Our classes know: the store/sink boundary already classified the cause.
        return exc.transient or is_serialization_conflict(exc)
    return (
        _is_transient_google(exc)
        or _is_connection_error(exc)
        or is_serialization_conflict(exc)
    )


def is_transient_outside_transaction(exc: BaseException) -> bool:
    """
    Like :func:`is_transient`, and also true for ``google.api_core`` ``Aborted``.

    Use it for single, idempotent RPCs that run outside a Firestore transaction
    (a lone ``get`` or ``set``), where nothing else retries an abort.

    .. versionadded:: 0.1.0
    """
    return is_transient(exc) or _is_google(exc, ("Aborted",))


def is_throttling(exc: BaseException) -> bool:
    """
    Return whether ``exc`` says the caller exceeded a rate limit or quota.

    The signal an :class:`~pipeline_reliability.limits.AdaptiveRateLimiter`
    slows down on. True for:

    * ``google.api_core.exceptions.TooManyRequests`` and its subclass
      ``ResourceExhausted`` (HTTP 429, gRPC ``RESOURCE_EXHAUSTED``);
    * any Google API error carrying a reason in :data:`THROTTLING_REASONS`
      (BigQuery's ``rateLimitExceeded`` comes as a 403 or 400);
    * a ``grpc.RpcError`` whose ``code()`` is ``RESOURCE_EXHAUSTED``;
    * any exception whose ``status_code`` or ``code`` is 429, or whose
      ``response.status_code`` is 429 (``requests.HTTPError``,
      ``httpx.HTTPStatusError``, ``urllib.error.HTTPError``);
    * any of the above found as the ``__cause__`` of this library's errors
      (e.g. a ``SinkUnavailableError`` translated from a BigQuery 429).

    Never raises, whatever ``exc``'s attributes do.

    .. versionadded:: 0.2.0
    """
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:  # a cause chain may be a cycle
        try:
            if _throttles(current):
                return True
        except Exception:  # noqa: BLE001 - a hostile attribute is not a throttle
            return False
        if not isinstance(current, ReliabilityError):
            return False
        current, seen = current.__cause__, seen + 1
    return False


def _throttles(exc: BaseException) -> bool:
    if _is_google(exc, ("TooManyRequests",)):
        return True
    if any(entry.get("reason") in THROTTLING_REASONS for entry in _google_error_entries(exc)):
        return True
    for status in (
        getattr(exc, "status_code", None),
        getattr(exc, "code", None),
        getattr(getattr(exc, "response", None), "status_code", None),
    ):
        if type(status) is int and status == 429:
            return True
    grpc = sys.modules.get("grpc")
    if grpc is not None and isinstance(exc, grpc.RpcError):
        code = getattr(exc, "code", None)
        return callable(code) and code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    return False


def _is_google(exc: BaseException, names: tuple[str, ...]) -> bool:
    module = sys.modules.get("google.api_core.exceptions")
    if module is None:
        return False
    return isinstance(exc, tuple(getattr(module, name) for name in names))


def _google_error_entries(exc: BaseException) -> list[dict[str, Any]]:
    # api-core keeps BigQuery's structured errors as a list of dicts in `.errors`.
    if not _is_google(exc, ("GoogleAPICallError",)):
        return []
    return [e for e in getattr(exc, "errors", ()) if isinstance(e, dict)]


def _is_transient_google(exc: BaseException) -> bool:
    if _is_google(exc, _GOOGLE_TRANSIENT):
        return True
    return any(
        entry.get("reason") in BIGQUERY_TRANSIENT_REASONS
        for entry in _google_error_entries(exc)
    )


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError):
        return True
    requests_exc = sys.modules.get("requests.exceptions")
    if requests_exc is not None:
        if isinstance(exc, requests_exc.SSLError):
            # A certificate problem does not heal by itself.
            return False
        retried = (
            requests_exc.ConnectionError,
            requests_exc.Timeout,
            requests_exc.ChunkedEncodingError,
        )
        if isinstance(exc, retried):
            return True
    auth_exc = sys.modules.get("google.auth.exceptions")
    return auth_exc is not None and isinstance(exc, auth_exc.TransportError)
