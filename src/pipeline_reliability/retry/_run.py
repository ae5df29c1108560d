"""
One retried call's state and tenacity hooks: when to stop, how long to wait,
whether the retry budget allows the retry, and what to report.

A :class:`Run` exists only after attempt 1 failed with an error worth
retrying, and only for that call: nothing mutable is shared between calls.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn, Protocol

from opentelemetry import trace
from tenacity import AsyncRetrying, RetryCallState, Retrying

from .._clock import Clock, SystemClock
from .._telemetry import counter, log_failure
from ..errors import RetryBudgetExhaustedError, RetryExhaustedError
from ._backoff import Backoff, next_delay, suggested_delay
from ._budget import RetryBudget
from ._predicates import Predicate
from ._testing import is_testing

__all__ = ["BUDGET_EVENT", "EVENT", "SYSTEM_CLOCK", "Run", "Schedule"]

logger = logging.getLogger("pipeline_reliability.retry")
SYSTEM_CLOCK = SystemClock()
EVENT = "pipeline_reliability.retry"
BUDGET_EVENT = "pipeline_reliability.retry.budget_exhausted"


class Schedule(Backoff, Protocol):
    """What the loop needs of a :class:`~pipeline_reliability.RetryPolicy` (no import of it)."""

    @property
    def attempts(self) -> int: ...
    @property
    def predicate(self) -> Predicate: ...
    @property
    def clock(self) -> Clock | None: ...
    @property
    def budget(self) -> RetryBudget | float | None: ...


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


class Run:
    """
    The mutable state of one retried call. Never shared between calls.

    Built only after attempt 1 failed with an error worth retrying: the fast
    path has already asked the predicate about it.
    """

    __slots__ = ("budget", "clock", "name", "policy", "start", "stop_reason", "suggested")

    def __init__(self, policy: Schedule, name: str, *, start: float) -> None:
        self.policy = policy
        self.name = name
        self.clock: Clock = policy.clock or SYSTEM_CLOCK
        self.start = start
        budget = policy.budget
        self.budget = budget if isinstance(budget, RetryBudget) else None
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
            "retry": self.should_retry,
            "wait": self.wait,
            "stop": self.stop,
            "before_sleep": self.before_sleep,
            "retry_error_callback": self.give_up,
        }

    def elapsed(self) -> float:
        """Seconds since the first attempt started."""
        return self.clock.monotonic() - self.start

    def should_retry(self, rs: RetryCallState) -> bool:
        """Ask the policy's predicate; a successful attempt is never retried."""
        if rs.outcome is None or not rs.outcome.failed:
            return False
        if rs.attempt_number == 1:  # the fast path asked already
            return True
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
        # Asked last: a retry that attempts or the deadline forbid spends nothing.
        if self.budget is not None and not self.budget.try_retry(self.clock.monotonic()):
            self.stop_reason = "budget"
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
        if reason == "budget" and self.budget is not None:
            self.refused(self.budget, rs.attempt_number, exc, elapsed)
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

    def refused(
        self, budget: RetryBudget, attempts: int, exc: BaseException, elapsed: float
    ) -> NoReturn:
        """The budget refused the retry: a span event, a counter, an ERROR; fail fast."""
        calls, retries = budget.usage(self.clock.monotonic())
        fields: dict[str, Any] = {
            "name": self.name,
            "attempt": attempts,
            "error.type": _type_name(exc),
            "budget.calls": calls,
            "budget.retries": retries,
        }
        current = trace.get_current_span()
        if current.is_recording():
            current.add_event(BUDGET_EVENT, fields)
        counter("retry.budget_refused", "Retries refused by a retry budget").add(
            1, {"name": self.name, "error.type": fields["error.type"]}
        )
        log_failure(
            logger,
            f"{self.name}: retry refused by the retry budget "
            f"({retries} retries for {calls} calls in the window)",
            exc,
            name=self.name,
            attempts=attempts,
            stop_reason="budget",
            elapsed=round(elapsed, 6),
            budget_calls=calls,
            budget_retries=retries,
        )
        raise RetryBudgetExhaustedError(
            f"{self.name} failed fast after {attempts} attempt(s): the retry budget "
            f"({budget.ratio:g} retries per call over {budget.window:g}s) is spent "
            f"({retries} retries for {calls} calls); last error {_type_name(exc)}: {exc}",
            attempts=attempts,
            last_error=exc,
            calls=calls,
            retries=retries,
        ) from exc
