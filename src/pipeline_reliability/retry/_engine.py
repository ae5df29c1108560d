"""
The retry loop: a ``RetryPolicy`` run on tenacity, with telemetry.

Every call gets a fresh :class:`_Run` and a fresh tenacity controller, so
nothing mutable is shared between concurrent calls of one policy (tenacity's
controllers keep per-call state, and our start time lives on the run).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, NoReturn, ParamSpec, Protocol, TypeVar

from opentelemetry import trace
from tenacity import AsyncRetrying, AttemptManager, RetryCallState, Retrying

from .._clock import Clock, SystemClock
from .._telemetry import counter, log_failure
from ..errors import RetryExhaustedError
from ._backoff import Backoff, next_delay, suggested_delay
from ._predicates import Predicate
from ._testing import is_testing

__all__ = ["Schedule", "iterate", "run_async", "run_sync"]

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("pipeline_reliability.retry")
_SYSTEM_CLOCK = SystemClock()
EVENT = "pipeline_reliability.retry"


class Schedule(Backoff, Protocol):
    """What the loop needs of a :class:`~pipeline_reliability.RetryPolicy` (no import of it)."""

    @property
    def attempts(self) -> int: ...
    @property
    def predicate(self) -> Predicate: ...
    @property
    def clock(self) -> Clock | None: ...


def run_sync(
    policy: Schedule, name: str, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """Call ``fn`` under ``policy`` (see :meth:`RetryPolicy.call`)."""
    return _Run(policy, name).controller()(fn, *args, **kwargs)


async def run_async(
    policy: Schedule,
    name: str,
    fn: Callable[P, Awaitable[R]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """Await ``fn`` under ``policy`` (see :meth:`RetryPolicy.acall`)."""
    result: R = await _Run(policy, name).async_controller()(fn, *args, **kwargs)
    return result


def iterate(policy: Schedule, name: str) -> Iterator[AttemptManager]:
    """Yield tenacity attempts for a ``for attempt in …: with attempt:`` block."""
    return iter(_Run(policy, name).controller())


def _exception(rs: RetryCallState) -> BaseException:
    exc = None if rs.outcome is None else rs.outcome.exception()
    if exc is None:  # pragma: no cover - tenacity calls these hooks after failures only
        raise AssertionError("retry hook called without a failed attempt")
    return exc


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


class _Run:
    """The mutable state of one retried call. Never shared between calls."""

    __slots__ = ("clock", "name", "policy", "start", "stop_reason", "suggested")

    def __init__(self, policy: Schedule, name: str) -> None:
        self.policy = policy
        self.name = name
        self.clock: Clock = policy.clock or _SYSTEM_CLOCK
        self.start: float | None = None
        self.stop_reason: str | None = None
        self.suggested: float | None = None

    def controller(self) -> Retrying:
        """A tenacity controller for this run (sync calls and blocks)."""
        return Retrying(sleep=self.sleep, **self._hooks())

    def async_controller(self) -> AsyncRetrying:
        """A tenacity controller for this run (coroutines)."""
        return AsyncRetrying(sleep=self.async_sleep, **self._hooks())

    def _hooks(self) -> dict[str, Any]:
        return {
            "before": self.before,
            "retry": self.should_retry,
            "wait": self.wait,
            "stop": self.stop,
            "before_sleep": self.before_sleep,
            "retry_error_callback": self.give_up,
        }

    def elapsed(self) -> float:
        """Seconds since the first attempt started."""
        return 0.0 if self.start is None else self.clock.monotonic() - self.start

    def before(self, rs: RetryCallState) -> None:  # noqa: ARG002 - tenacity hook signature
        """Start the deadline's clock when the first attempt starts."""
        if self.start is None:
            self.start = self.clock.monotonic()

    def should_retry(self, rs: RetryCallState) -> bool:
        """Ask the policy's predicate; a successful attempt is never retried."""
        if rs.outcome is None or not rs.outcome.failed:
            return False
        return bool(self.policy.predicate(_exception(rs)))

    def wait(self, rs: RetryCallState) -> float:
        """
        Decide the next sleep and whether to stop at all.

        tenacity asks ``wait`` before ``stop``; both depend on the same numbers
        (the deadline decides the sleep and whether there is time for one), so
        the decision is made here once and ``stop`` only reads it.
        """
        exc = _exception(rs)
        self.suggested = suggested_delay(exc)
        if rs.attempt_number >= self.policy.attempts:
            self.stop_reason = "attempts"
            return 0.0
        delay = next_delay(
            self.policy,
            retry_number=rs.attempt_number - 1,
            elapsed=self.elapsed(),
            suggested=self.suggested,
        )
        if delay is None:
            self.stop_reason = "deadline"
            return 0.0
        return delay

    def stop(self, rs: RetryCallState) -> bool:  # noqa: ARG002 - tenacity hook signature
        """Stop when :meth:`wait` found no attempt or no time left."""
        return self.stop_reason is not None

    def sleep(self, seconds: float) -> None:
        """Sleep on the policy's clock, unless testing mode removes sleeps."""
        if not is_testing():
            self.clock.sleep(float(seconds))

    async def async_sleep(self, seconds: float) -> None:
        """``asyncio.sleep``, or the injected clock's ``sleep``; none in testing mode."""
        if is_testing():
            return
        if self.policy.clock is None:
            import asyncio  # only async callers get here, and they have it loaded already

            await asyncio.sleep(float(seconds))
        else:
            self.policy.clock.sleep(float(seconds))

    def before_sleep(self, rs: RetryCallState) -> None:
        """Report the retry: a span event, a counter and a WARNING with the error."""
        exc = _exception(rs)
        fields: dict[str, Any] = {
            "name": self.name,
            "attempt": rs.attempt_number,
            "error.type": _type_name(exc),
            "delay": float(rs.upcoming_sleep),
        }
        if self.suggested is not None:
            fields["retry_after"] = self.suggested
        current = trace.get_current_span()
        if current.is_recording():
            current.add_event(EVENT, fields)
        counter("retry.attempts", "Retries scheduled after a transient failure").add(
            1, {"name": self.name, "error.type": fields["error.type"]}
        )
        logger.warning(
            "%s: attempt %d failed with %s: %s; retrying in %.3fs",
            self.name,
            rs.attempt_number,
            fields["error.type"],
            exc,
            fields["delay"],
            exc_info=exc,
            extra={"pipeline_reliability": fields},
        )

    def give_up(self, rs: RetryCallState) -> NoReturn:
        """Raise ``RetryExhaustedError`` from the last error, after logging it."""
        exc = _exception(rs)
        reason = self.stop_reason or "attempts"
        elapsed = self.elapsed()
        counter("retry.exhausted", "Retried operations that ran out of attempts or time").add(
            1, {"name": self.name, "error.type": _type_name(exc), "stop_reason": reason}
        )
        log_failure(
            logger,
            f"{self.name}: retries exhausted ({reason})",
            exc,
            name=self.name,
            attempts=rs.attempt_number,
            stop_reason=reason,
            elapsed=round(elapsed, 6),
        )
        raise RetryExhaustedError(
            f"{self.name} failed after {rs.attempt_number} attempt(s) in {elapsed:.3f}s "
            f"({reason} ran out); last error {_type_name(exc)}: {exc}",
            attempts=rs.attempt_number,
            last_error=exc,
            reason=reason,
        ) from exc
