"""ProcessorRun: one processor's run of one date, from lock to published completion."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from .._clock import Clock, SystemClock
from .._identity import default_owner
from .._telemetry import log_failure
from .._validate import iso_date
from ..dedup import Claimed, IdempotencyLedger
from ..errors import (
    ConfigurationError,
    InvalidInputError,
    LockLostError,
    ReliabilityError,
    StaleFenceError,
    StoreError,
)
from ..lock import DateLock, Lease
from ..pubsub import CompletionMessage
from ..pubsub._completion_publisher import encode_completion
from ..pubsub._names import normalise_processor_name
from ..retry import RetryPolicy
from ._fence import RunFence
from ._options import (
    Trigger,
    build_lock,
    check_metadata,
    check_record_count,
    check_status,
    check_text,
    inherit_ids,
    lock_wait,
)
from ._publish import publish_completion
from ._steps import complete_claim, count, release_claim, release_lock, take_claim, take_lock

__all__ = ["ProcessorRun", "PublishCompletion"]

logger = logging.getLogger("pipeline_reliability.processor")

PublishCompletion = Callable[[CompletionMessage], Any]
"""A publisher: ``CompletionPublisher``, ``MemoryCompletionPublisher`` or any callable."""

_ERROR_TEXT = 1000  # characters of the error message kept in a failed completion


class ProcessorRun:
    """
    Run one processor for one date: lock, ids, fence, and the completion it publishes.

    Use it as a context manager (``with``/``async with``) around the body
    that does the date's work, or as a decorator (:func:`processor_run`)::

        with ProcessorRun("player_game_summary", "2026-01-31", phase="phase_3_analytics",
                          publisher=CompletionPublisher("phase3-complete", project="p"),
                          lock={"store": store, "ttl": 600}) as run:
            report = writer.upsert(table, rows, key="player", fence=run.fence)
            run.record_count = report.inserted + report.updated

    On entry the run takes the processor's date lock (if ``lock``), then the
    idempotency claim (if ``idempotency``). On a normal exit it publishes the
    completion (``run.status``: ``success`` unless the body set ``no_data``
    or ``partial``), completes the claim and releases the lock. If the body
    raises, a ``failed`` completion is published and the error propagates.

    Outcomes that are not a run (nothing is run and nothing published):

    - :class:`~pipeline_reliability.errors.AlreadyRunningError` from
      ``__enter__``: another instance holds the processor's date lock (or its
      idempotency claim). It reports the date: acknowledge the message.
    - :class:`~pipeline_reliability.errors.AlreadyCompletedError` from
      ``__enter__`` (with ``idempotency``): the date was completed already.
    - A *superseded* run, whose lease was lost (the body hit
      ``StaleFenceError``/``LockLostError``, or the lease was found lost at
      exit): it publishes nothing, because its completion would overwrite
      the newer holder's record, and raises ``LockLostError`` (or the
      body's error). The newer holder reports the date.

    Args:
        processor: The processor's name (class names are normalised as
            ``parse_completion_message`` does).
        date: The date, ``datetime.date`` or ``YYYY-MM-DD``.
        phase: The phase string put into the completion, e.g. ``phase_3_analytics``.
        publisher: Called with the :class:`~pipeline_reliability.CompletionMessage`;
            returns the message id. A ``CompletionPublisher`` retries under
            its own policy; any other callable is retried under ``publish_retry``.
        lock: ``None``, a :class:`~pipeline_reliability.DateLock` for the
            run's date, or DateLock options as a mapping: ``store`` (required),
            ``name`` (default: the processor), ``ttl``, ``auto_renew``
            (default True), ``collection``, ... (``owner`` and ``clock``
            default to the run's).
        lock_timeout: How long to wait for a held lock (``None``: do not wait).
        idempotency: An :class:`~pipeline_reliability.IdempotencyLedger`:
            the date runs at most once per processor and phase within the
            ledger's window (key ``phase/processor/date``).
        trigger: The message that started the run (a ``CompletionMessage``
            or ``TriggerEvent``): its correlation id is carried on.
        execution_id: The run's id (default: a new random id).
        correlation_id: The trace id (default: the trigger's, else the execution id).
        owner: This instance's id, for the lock and the claim (default: host:pid:random).
        clock: Time source of the completion time (default: the system clock).
        publish_retry: Retry of a plain-callable publisher (default: 5 attempts in 60 s).

    Raises:
        InvalidInputError: a bad processor, date, phase or id.
        ConfigurationError: bad lock options or publisher.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        processor: str,
        date: dt.date | str,
        *,
        phase: str,
        publisher: PublishCompletion,
        lock: DateLock | Mapping[str, Any] | None = None,
        lock_timeout: float | dt.timedelta | None = None,
        idempotency: IdempotencyLedger | None = None,
        trigger: Trigger | None = None,
        execution_id: str | None = None,
        correlation_id: str | None = None,
        owner: str | None = None,
        clock: Clock | None = None,
        publish_retry: RetryPolicy | None = None,
    ) -> None:
        if not callable(publisher):
            raise ConfigurationError(f"publisher must be callable, got {publisher!r:.80}")
        self.processor = normalise_processor_name(processor)
        self.date = iso_date(date)
        self.phase = check_text(phase, "phase")
        self.execution_id, self.correlation_id = inherit_ids(trigger, execution_id, correlation_id)
        self.trigger = trigger
        self.owner = default_owner() if owner is None else check_text(owner, "owner")
        self._clock = clock or SystemClock()
        self._publisher = publisher
        self._publish_retry = publish_retry
        self._lock = build_lock(lock, self.processor, self.date, self.owner, self._clock)
        self._blocking, self._timeout = lock_wait(lock_timeout)
        self._ledger = idempotency
        self._claim: Claimed | None = None
        self._fence: RunFence | None = None
        self._status = "success"
        self._record_count: int | None = None
        self._metadata: dict[str, Any] = {}
        self._entered = False
        #: The completion that was published, once it was.
        self.completion: CompletionMessage | None = None
        #: Its Pub/Sub message id, if the publisher returned one.
        self.message_id: str | None = None

    def __repr__(self) -> str:
        return (
            f"<ProcessorRun {self.phase}/{self.processor}/{self.date} "
            f"execution_id={self.execution_id!r} status={self._status!r}>"
        )

    # -- what the body sets --------------------------------------------------------------

    @property
    def status(self) -> str:
        """``success`` (default), ``no_data`` or ``partial``; set by the body."""
        return self._status

    @status.setter
    def status(self, value: str) -> None:
        self._status = check_status(value)

    @property
    def record_count(self) -> int | None:
        """Rows the run wrote (an int >= 0), if the body says."""
        return self._record_count

    @record_count.setter
    def record_count(self, value: int | None) -> None:
        self._record_count = check_record_count(value)

    @property
    def metadata(self) -> dict[str, Any]:
        """JSON-serialisable metadata published with the completion (a dict to fill in)."""
        return self._metadata

    @metadata.setter
    def metadata(self, value: Mapping[str, Any]) -> None:
        self._metadata = check_metadata(value)

    @property
    def lease(self) -> Lease | None:
        """The run's lease, while it holds the lock (``None`` without a lock)."""
        return None if self._fence is None else self._fence.lease

    @property
    def fence(self) -> RunFence | None:
        """
        The fence to pass to fenced writes (``BigQueryWriter.upsert(..., fence=run.fence)``).

        Its ``token`` is the lease's fencing token; reading it raises
        ``LockLostError`` once the run knows its lease is lost (the
        auto-renewal found it lost) or the run has ended, so no further
        fenced write goes out. ``None`` when the run has no lock.
        """
        return self._fence

    # -- the protocol --------------------------------------------------------------------

    def __enter__(self) -> ProcessorRun:
        self._start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish(exc)

    async def __aenter__(self) -> ProcessorRun:
        import asyncio  # lazily: importing the package must stay light

        # The lock and the store are synchronous clients: keep the event loop free.
        await asyncio.to_thread(self._start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        import asyncio

        await asyncio.to_thread(self._finish, exc)

    # -- start ---------------------------------------------------------------------------

    def _start(self) -> None:
        if self._entered:
            raise InvalidInputError(f"{self!r} was already started: a run is used once")
        self._entered = True
        if self._lock is not None:
            lease = take_lock(self._lock, self._blocking, self._timeout, self._clock,
                              processor=self.processor, date=self.date)
            self._fence = RunFence(lease)
        if self._ledger is not None:
            key = f"{self.phase}/{self.processor}/{self.date}"
            try:
                self._claim = take_claim(self._ledger, key, self.processor, self.date)
            except BaseException:
                self._release_lock(None)
                raise

    # -- finish --------------------------------------------------------------------------

    def _finish(self, exc: BaseException | None) -> None:
        try:
            if self._superseded(exc):
                self._end_superseded(exc)
            elif exc is None:
                self._end_success()
            elif isinstance(exc, Exception):
                self._end_failed(exc)
            else:  # KeyboardInterrupt, SystemExit, cancellation: the process is going away
                self._release_claim(exc)
        finally:
            if self._fence is not None:
                self._fence.close()
            self._release_lock(exc)

    def _superseded(self, exc: BaseException | None) -> bool:
        if self._fence is None:
            return False
        if isinstance(exc, StaleFenceError | LockLostError) or self._fence.lease.lost:
            return True
        if exc is not None:
            return False
        try:
            # One store read: a holder that has been superseded must not report.
            self._fence.lease.ensure_held()
        except LockLostError:
            return True
        except StoreError as error:
            # The sink's fence check protected every write; the report is still true.
            log_failure(logger, "could not re-check the lease before publishing", error,
                        processor=self.processor, date=self.date)
        return False

    def _end_success(self) -> None:
        message = self._message(self._status, self._metadata)
        try:
            encode_completion(message)
        except InvalidInputError as error:
            # The body's metadata cannot be published: report the run as failed.
            self._end_failed(error)
            raise
        try:
            self._publish(message)
        except BaseException as error:
            self._release_claim(error)
            raise
        self._complete_claim()
        self._count("success" if self._status == "success" else self._status)

    def _end_failed(self, exc: Exception) -> None:
        metadata = {
            "error_type": type(exc).__name__,
            "error_message": str(exc)[:_ERROR_TEXT],
        }
        message = self._message("failed", {**self._metadata, **metadata})
        try:
            encode_completion(message)
        except InvalidInputError:
            message = self._message("failed", metadata)  # the body's metadata is unusable
        try:
            self._publish(message)
        except ReliabilityError as error:
            log_failure(logger, "publishing the failed completion failed", error,
                        processor=self.processor, date=self.date,
                        execution_id=self.execution_id)
            exc.add_note(f"and publishing its failed completion failed: {error}")
        self._release_claim(exc)
        self._count("failed")

    def _end_superseded(self, exc: BaseException | None) -> None:
        reason = self._fence.lease.lost_reason if self._fence is not None else None
        logger.error(
            "%s %s (execution %s) lost its lease%s; it publishes no completion, "
            "the newer holder reports the date",
            self.processor, self.date, self.execution_id, f": {reason}" if reason else "",
        )
        self._release_claim(exc)
        self._count("superseded")
        if exc is None:
            raise LockLostError(
                f"{self.processor} {self.date}: the run's lease was lost"
                f"{f' ({reason})' if reason else ''}; no completion was published"
            )

    # -- helpers -------------------------------------------------------------------------

    def _message(self, status: str, metadata: Mapping[str, Any]) -> CompletionMessage:
        return CompletionMessage(
            processor_name=self.processor,
            phase=self.phase,
            execution_id=self.execution_id,
            correlation_id=self.correlation_id,
            game_date=self.date,
            status=status,
            record_count=self._record_count,
            metadata=dict(metadata),
            timestamp=self._clock.now(),  # the processor's own completion time
            message_id=None,
        )

    def _publish(self, message: CompletionMessage) -> None:
        self.message_id = publish_completion(self._publisher, message, self._publish_retry)
        self.completion = message

    def _complete_claim(self) -> None:
        if self._ledger is not None and self._claim is not None:
            result = {"execution_id": self.execution_id, "status": self._status,
                      "record_count": self._record_count, "message_id": self.message_id}
            complete_claim(self._ledger, self._claim, result, self.processor, self.date)

    def _release_claim(self, exc: BaseException | None) -> None:
        if self._ledger is not None and self._claim is not None:
            release_claim(self._ledger, self._claim, exc, self.processor, self.date)

    def _release_lock(self, exc: BaseException | None) -> None:
        if self._lock is not None:
            release_lock(self._lock, exc, self.completion is not None, self.processor, self.date)

    def _count(self, outcome: str) -> None:
        count(self.processor, outcome)
