"""
Every error that ``pipeline_reliability`` raises.

Errors from Google client libraries never escape the library untranslated: each
store and sink maps them at its boundary into one of the classes below and
chains the original (``raise ... from exc``), so ``err.__cause__`` always holds
what the Google library said.

The tree::

    ReliabilityError
    ├── ConfigurationError            (also ValueError)  bad options, missing extra
    │   └── MissingDependencyError    (also ImportError) an optional extra is absent
    ├── InvalidInputError             (also ValueError)  bad date/name/metadata/...
    │   ├── InvalidMessageError       a poison Pub/Sub message: ack or dead-letter it
    │   └── PayloadMismatchError      same idempotency key, different payload
    ├── StoreError                    the state store failed
    │   ├── StoreUnavailableError     transient: unreachable, deadline, internal
    │   └── StoreConflictError        transient: contention outlasted the attempts
    ├── SinkError                     BigQuery or Pub/Sub failed
    │   ├── WriteFailedError          a BigQuery load/query/insert failed
    │   │   └── SinkUnavailableError  transient: BigQuery overloaded/unreachable
    │   └── PublishFailedError        a Pub/Sub publish failed
    │       └── CompletionNotPublishedError  a processor's completion could not be published
    ├── RetryExhaustedError           attempts or deadline ran out (last error chained)
    │   └── RetryBudgetExhaustedError the retry budget refused a retry: failed fast
    ├── CompletionNotRecordedError    neither the store nor the ledger took a completion
    ├── TriggerClaimLostError         a trigger claim expired or was taken over
    ├── CircuitOpenError              the circuit rejects calls for now
    ├── RateLimitTimeoutError         no rate-limiter token within the caller's timeout
    ├── LockError
    │   ├── LockNotAcquiredError      another owner holds the lease
    │   │   └── AlreadyRunningError   another instance runs this processor's date
    │   ├── LockLostError             the caller's lease is no longer held
    │   ├── SlotNotAcquiredError      a ConcurrencyLimit had no slot before the timeout
    │   └── SlotLostError             the caller's concurrency slot is no longer held
    ├── AlreadyCompletedError         a processor's date is already done (idempotency)
    ├── StaleFenceError               a write carried an outdated fencing token
    └── EmulatorError                 a local emulator could not be started (testing)

``transient`` is a class attribute: ``True`` where retrying the same operation
later can succeed. The retry predicates read it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar

__all__ = [
    "AlreadyCompletedError",
    "AlreadyRunningError",
    "CircuitOpenError",
    "CompletionNotPublishedError",
    "CompletionNotRecordedError",
    "ConfigurationError",
    "EmulatorError",
    "InvalidInputError",
    "InvalidMessageError",
    "LockError",
    "LockLostError",
    "LockNotAcquiredError",
    "MissingDependencyError",
    "PayloadMismatchError",
    "PublishFailedError",
    "RateLimitTimeoutError",
    "ReliabilityError",
    "RetryBudgetExhaustedError",
    "RetryExhaustedError",
    "SinkError",
    "SinkUnavailableError",
    "SlotLostError",
    "SlotNotAcquiredError",
    "StaleFenceError",
    "StoreConflictError",
    "StoreError",
    "StoreUnavailableError",
    "TriggerClaimLostError",
    "WriteFailedError",
]


class ReliabilityError(Exception):
    """Base class of every error raised by ``pipeline_reliability``."""

    transient: ClassVar[bool] = False


class ConfigurationError(ReliabilityError, ValueError):
    """The library was configured with values that cannot work."""


class MissingDependencyError(ConfigurationError, ImportError):
    """An optional extra (``pip install pipeline-reliability[gcp]``) is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is required for this feature; "
            f"install it with: pip install 'pipeline-reliability[{extra}]'"
        )
        self.package = package
        self.extra = extra


class InvalidInputError(ReliabilityError, ValueError):
    """An argument is invalid; nothing was written."""


class InvalidMessageError(InvalidInputError):
    """
    A Pub/Sub message cannot be parsed. It is a poison message: retrying it
    cannot help, so acknowledge it or send it to a dead-letter topic.
    """


class PayloadMismatchError(InvalidInputError):
    """An idempotency key was reused with a different payload."""

    def __init__(self, key: str, expected_hash: str, actual_hash: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was claimed with payload hash {expected_hash}, "
            f"not {actual_hash}"
        )
        self.key = key
        self.expected_hash = expected_hash
        self.actual_hash = actual_hash


class StoreError(ReliabilityError):
    """The state store (Firestore or memory) failed permanently."""


class StoreUnavailableError(StoreError):
    """
    The state store could not be reached or did not answer in time.

    ``maybe_committed`` is ``True`` when the failure came after a commit was
    sent: the write may or may not have been applied. Every algorithm in this
    library is written so that repeating such a call is safe.
    """

    transient = True

    def __init__(self, message: str, *, maybe_committed: bool = False) -> None:
        super().__init__(message)
        self.maybe_committed = maybe_committed


class StoreConflictError(StoreError):
    """A transaction kept conflicting with concurrent writers until it gave up."""

    transient = True

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class SinkError(ReliabilityError):
    """A BigQuery or Pub/Sub operation failed."""


class WriteFailedError(SinkError):
    """A BigQuery write failed permanently; ``job_id`` names the job, if any."""

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        super().__init__(message if job_id is None else f"{message} (job {job_id})")
        self.job_id = job_id


class SinkUnavailableError(WriteFailedError):
    """
    A BigQuery call failed in a way that retrying later can fix (rate limits,
    backend errors, serialization conflicts, unreachable endpoint).
    """

    transient = True


class PublishFailedError(SinkError):
    """A Pub/Sub publish failed."""

    transient = True


class CompletionNotPublishedError(PublishFailedError):
    """
    A processor's completion message could not be published (the retries ran out).

    ``completion`` holds the :class:`~pipeline_reliability.CompletionMessage`
    that was not published, so the caller can publish it later; the last
    error is chained.
    """

    def __init__(self, message: str, *, completion: Any) -> None:
        super().__init__(message)
        self.completion = completion


class RetryExhaustedError(ReliabilityError):
    """
    A retried operation still failed when its attempts or deadline ran out.

    The last error is chained as ``__cause__`` and kept as ``last_error``.
    """

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        last_error: BaseException,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.last_error = last_error
        #: What ran out: ``"attempts"``, ``"deadline"`` or ``"budget"`` (``None`` if unknown).
        self.reason = reason


class RetryBudgetExhaustedError(RetryExhaustedError):
    """
    A retry was refused by the policy's retry budget, so the call failed fast.

    Raised instead of retrying when the retries made in the budget's window
    already reach its share of the calls (see
    :class:`~pipeline_reliability.retry.RetryBudget`): the dependency is
    probably down for everyone, and more attempts would only add load. A
    subclass of :class:`RetryExhaustedError` (``reason`` is ``"budget"``), so
    code that handles exhaustion handles this too.

    The last error is chained as ``__cause__`` and kept as ``last_error``;
    ``attempts`` counts the attempts made (the refused retry is not one).
    ``calls`` and ``retries`` are the budget's counts in its window when it
    refused.

    .. versionadded:: 0.4.0
    """

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        last_error: BaseException,
        calls: int,
        retries: int,
    ) -> None:
        super().__init__(message, attempts=attempts, last_error=last_error, reason="budget")
        self.calls = calls
        self.retries = retries


class CompletionNotRecordedError(ReliabilityError):
    """A completion was written neither to the state store nor to the fallback ledger."""

    def __init__(self, message: str, *, phase: str, date: str, processor: str) -> None:
        super().__init__(message)
        self.phase = phase
        self.date = date
        self.processor = processor


class TriggerClaimLostError(ReliabilityError):
    """A trigger claim can no longer be confirmed: it expired and was taken over."""


class CircuitOpenError(ReliabilityError):
    """
    The circuit rejects calls. ``retry_after`` says when a call may be admitted
    again (``None`` when unknown, e.g. a forced open).

    Raised on every call during an outage, so it is as cheap as a plain
    exception: its fields live in ``args`` (``name``, ``state``, seconds to
    wait), and the message and the ``timedelta`` are made only when asked for.
    """

    transient = True

    def __init__(self, name: str, state: Any, *, retry_after: timedelta | None = None) -> None:
        super().__init__(name, state, None if retry_after is None else retry_after.total_seconds())

    @property
    def name(self) -> str:
        """The breaker's name."""
        return str(self.args[0])

    @property
    def state(self) -> Any:
        """The circuit's state when the call was rejected (a ``BreakerState``)."""
        return self.args[1]

    @property
    def retry_after(self) -> timedelta | None:
        """When a call may be admitted again (``None``: unknown)."""
        seconds = self.args[2]
        return None if seconds is None else timedelta(seconds=seconds)

    def __str__(self) -> str:
        name, state, seconds = self.args
        hint = "" if seconds is None else f"; retry after {seconds:.1f}s"
        return f"circuit {name!r} is {getattr(state, 'value', state)}{hint}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_circuit_open, self.args)


def _circuit_open(name: str, state: Any, retry_seconds: float | None) -> CircuitOpenError:
    # BaseException.__new__ stores the args; the breaker builds it the same way.
    return CircuitOpenError.__new__(CircuitOpenError, name, state, retry_seconds)


class RateLimitTimeoutError(ReliabilityError):
    """
    An adaptive rate limiter could not admit a call within the caller's ``timeout``.

    Raised at once, without waiting, when the wait the limiter computes for
    the next token is longer than the timeout: nothing was reserved, and the
    call did not run. ``retry_after`` is that wait (a hint: the rate may
    change meanwhile).
    """

    transient = True

    def __init__(self, name: str, *, retry_after: float, timeout: float) -> None:
        super().__init__(
            f"rate limiter {name!r}: the next token is {retry_after:.3f}s away, "
            f"longer than the timeout of {timeout:.3f}s"
        )
        self.name = name
        self.timeout = timeout
        self._retry_after = retry_after

    @property
    def retry_after(self) -> timedelta:
        """How long the caller would have had to wait for a token (at most ``timedelta.max``)."""
        return timedelta(seconds=min(self._retry_after, _MAX_TIMEDELTA_SECONDS))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rate_timeout, (self.name, self._retry_after, self.timeout))


_MAX_TIMEDELTA_SECONDS = timedelta.max.total_seconds() // 2


def _rate_timeout(name: str, retry_after: float, timeout: float) -> RateLimitTimeoutError:
    return RateLimitTimeoutError(name, retry_after=retry_after, timeout=timeout)


class LockError(ReliabilityError):
    """Base class of the lock errors (date locks and concurrency-limit slots)."""


class LockNotAcquiredError(LockError):
    """Another owner holds the lease. Contention is never reported as success."""

    transient = True

    def __init__(
        self,
        message: str,
        *,
        holder: str | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        super().__init__(message)
        self.holder = holder
        self.expires_at = expires_at


class LockLostError(LockError):
    """The caller's lease expired or was taken by another owner."""


class SlotNotAcquiredError(LockError):
    """
    A :class:`~pipeline_reliability.ConcurrencyLimit` had no free slot for the
    caller before its timeout (at once for ``timeout=0``). Nothing ran.

    Attributes:
        name: The limit's name.
        limit: How many holders the limit admits.
        holders: Live holders at the last look.
        waiters: Live waiters' tickets at the last look.
        waited: Seconds spent waiting (local monotonic time).
    """

    transient = True

    def __init__(
        self, message: str, *, name: str, limit: int, holders: int, waiters: int, waited: float
    ) -> None:
        super().__init__(message)
        self.name = name
        self.limit = limit
        self.holders = holders
        self.waiters = waiters
        self.waited = waited


class SlotLostError(LockError):
    """
    The caller's concurrency slot is no longer held: its lease expired (and
    another holder may have it now), or it was released already.
    """


class AlreadyRunningError(LockNotAcquiredError):
    """
    Another instance is running this processor for this date: this run did not start.

    Raised by ``ProcessorRun`` when the processor's date lock (or its
    idempotency claim) is held by someone else. Nothing was run or
    published; the holder reports the date. Acknowledge the message.
    """

    def __init__(
        self,
        message: str,
        *,
        processor: str,
        date: str,
        holder: str | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        super().__init__(message, holder=holder, expires_at=expires_at)
        self.processor = processor
        self.date = date


class AlreadyCompletedError(ReliabilityError):
    """
    The processor already completed this date (within the idempotency window).

    Raised by ``ProcessorRun`` with ``idempotency=``: nothing was run or
    published. ``result`` is what the completed run recorded.
    """

    def __init__(
        self, message: str, *, processor: str, date: str, completed_at: datetime, result: Any
    ) -> None:
        super().__init__(message)
        self.processor = processor
        self.date = date
        self.completed_at = completed_at
        self.result = result


class StaleFenceError(ReliabilityError):
    """A write carried a fencing token older than the newest one already seen."""

    def __init__(self, message: str, *, token: int, current: int | None) -> None:
        super().__init__(message)
        self.token = token
        self.current = current


class EmulatorError(ReliabilityError):
    """A local emulator (Firestore, Pub/Sub, BigQuery) is missing or failed to start."""
