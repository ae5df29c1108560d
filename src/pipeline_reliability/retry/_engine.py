"""
The retry loop: a ``RetryPolicy`` run on tenacity, with telemetry.

Every call gets a fresh :class:`_Run` and a fresh tenacity controller, so
nothing mutable is shared between concurrent calls of one policy (tenacity's
controllers keep per-call state, and our start time lives on the run).

Nearly every call succeeds at once, so the first attempt runs bare: no run,
no controller, no tenacity state (issue 13: building them cost more than the
retry of a failure saves). Only an error that will be retried (the predicate
accepts it, or tenacity's explicit ``TryAgain``) builds the machinery, which
then continues at attempt 2 with the deadline counted from the first start.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any, NoReturn, ParamSpec, Protocol, TypeVar, cast

from opentelemetry import trace
from tenacity import (
    AsyncRetrying,
    AttemptManager,
    DoAttempt,
    DoSleep,
    RetryCallState,
    Retrying,
    TryAgain,
)

from .._clock import Clock, SystemClock
from .._telemetry import counter, log_failure
from ..errors import RetryBudgetExhaustedError, RetryExhaustedError
from ._backoff import Backoff, next_delay, suggested_delay
from ._budget import RetryBudget
from ._predicates import Predicate
from ._testing import is_testing

__all__ = [
    "Schedule",
    "iterate",
    "iterate_counted",
    "run_async",
    "run_async_counted",
    "run_sync",
    "run_sync_counted",
]

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("pipeline_reliability.retry")
_SYSTEM_CLOCK = SystemClock()
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


def run_sync(
    policy: Schedule, name: str, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """Call ``fn`` under ``policy`` (see :meth:`RetryPolicy.call`)."""
    clock = policy.clock or _SYSTEM_CLOCK
    start = clock.monotonic()
    try:
        return fn(*args, **kwargs)
    except BaseException as exc:
        if not _retried(policy, exc):
            raise
        failed = sys.exc_info()
    return _resume_sync(_Run(policy, name, start=start), failed, fn, args, kwargs)


def run_sync_counted(
    policy: Schedule,
    budget: RetryBudget,
    name: str,
    fn: Callable[P, R],
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """:func:`run_sync` for a policy with a budget: the call is counted first."""
    clock = policy.clock or _SYSTEM_CLOCK
    start = clock.monotonic()
    budget.record_call(start)
    try:
        return fn(*args, **kwargs)
    except BaseException as exc:
        if not _retried(policy, exc):
            raise
        failed = sys.exc_info()
    return _resume_sync(_Run(policy, name, start=start), failed, fn, args, kwargs)


def _resume_sync(run: _Run, failed: Any, fn: Callable[..., R], args: Any, kwargs: Any) -> R:
    """The same loop as ``Retrying.__call__``, entered with attempt 1 failed."""
    controller = run.controller()
    controller.begin()
    state = RetryCallState(retry_object=controller, fn=fn, args=args, kwargs=kwargs)
    state.set_exception(failed)
    while True:
        do = controller.iter(retry_state=state)
        if isinstance(do, DoAttempt):
            try:
                result = fn(*args, **kwargs)
            except BaseException:  # noqa: BLE001 - kept as the outcome, as tenacity does
                state.set_exception(sys.exc_info())  # type: ignore[arg-type]
            else:
                state.set_result(result)
        elif isinstance(do, DoSleep):
            state.prepare_for_next_attempt()
            controller.sleep(do)
        else:
            return do  # type: ignore[no-any-return]


async def run_async(
    policy: Schedule,
    name: str,
    fn: Callable[P, Awaitable[R]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """Await ``fn`` under ``policy`` (see :meth:`RetryPolicy.acall`)."""
    clock = policy.clock or _SYSTEM_CLOCK
    start = clock.monotonic()
    try:
        return await fn(*args, **kwargs)
    except BaseException as exc:
        if not _retried(policy, exc):
            raise
        failed = sys.exc_info()
    return await _resume_async(_Run(policy, name, start=start), failed, fn, args, kwargs)


async def run_async_counted(
    policy: Schedule,
    budget: RetryBudget,
    name: str,
    fn: Callable[P, Awaitable[R]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """:func:`run_async` for a policy with a budget: the call is counted first."""
    clock = policy.clock or _SYSTEM_CLOCK
    start = clock.monotonic()
    budget.record_call(start)
    try:
        return await fn(*args, **kwargs)
    except BaseException as exc:
        if not _retried(policy, exc):
            raise
        failed = sys.exc_info()
    return await _resume_async(_Run(policy, name, start=start), failed, fn, args, kwargs)


async def _resume_async(
    run: _Run, failed: Any, fn: Callable[..., Awaitable[R]], args: Any, kwargs: Any
) -> R:
    """The same loop as ``AsyncRetrying.__call__``, entered with attempt 1 failed."""
    controller = run.async_controller()
    controller.begin()
    state = RetryCallState(retry_object=controller, fn=fn, args=args, kwargs=kwargs)
    state.set_exception(failed)
    while True:
        do = await controller.iter(retry_state=state)
        if isinstance(do, DoAttempt):
            try:
                result = await fn(*args, **kwargs)
            except BaseException:  # noqa: BLE001 - kept as the outcome, as tenacity does
                state.set_exception(sys.exc_info())  # type: ignore[arg-type]
            else:
                state.set_result(result)
        elif isinstance(do, DoSleep):
            state.prepare_for_next_attempt()
            await controller.sleep(do)  # type: ignore[misc]
        else:
            return do  # type: ignore[no-any-return]


def iterate(policy: Schedule, name: str) -> Iterator[AttemptManager]:
    """Yield attempts for a ``for attempt in …: with attempt:`` block."""
    clock = policy.clock or _SYSTEM_CLOCK
    first = _FirstAttempt(policy, clock.monotonic())
    yield first
    if first.exc_info is not None:
        yield from _resume_block(_Run(policy, name, start=first.start), first)


def iterate_counted(policy: Schedule, budget: RetryBudget, name: str) -> Iterator[AttemptManager]:
    """:func:`iterate` for a policy with a budget: the block is counted when it starts."""
    clock = policy.clock or _SYSTEM_CLOCK
    start = clock.monotonic()
    budget.record_call(start)
    first = _FirstAttempt(policy, start)
    yield first
    if first.exc_info is not None:
        yield from _resume_block(_Run(policy, name, start=start), first)


def _resume_block(run: _Run, first: _FirstAttempt) -> Iterator[AttemptManager]:
    """tenacity takes over from the failed first attempt, as in ``BaseRetrying.__iter__``."""
    controller = run.controller()
    controller.begin()
    state = first.retry_state
    state.retry_object = controller
    state.set_exception(first.exc_info)  # type: ignore[arg-type]
    while True:
        do = controller.iter(retry_state=state)
        if isinstance(do, DoAttempt):
            yield AttemptManager(retry_state=state)
        elif isinstance(do, DoSleep):
            state.prepare_for_next_attempt()
            controller.sleep(do)
        else:
            return


def _retried(policy: Schedule, exc: BaseException) -> bool:
    """Whether a failed first attempt goes on to tenacity (tenacity's own ``TryAgain`` does)."""
    return isinstance(exc, TryAgain) or bool(policy.predicate(exc))


class _FirstAttempt(AttemptManager):
    """
    Attempt 1 of a block, without tenacity state unless someone asks for it.

    An error the policy does not retry leaves the ``with`` block unchanged; one
    it retries is swallowed and kept for the loop in :func:`iterate`.
    """

    def __init__(self, policy: Schedule, start: float) -> None:  # no super(): state is lazy
        self._policy = policy
        self._state: RetryCallState | None = None
        self.start = start
        self.exc_info: tuple[type[BaseException], BaseException, TracebackType | None] | None
        self.exc_info = None

    @property
    def retry_state(self) -> RetryCallState:
        """tenacity's state of this attempt (built on first access)."""
        if self._state is None:
            # The controller is attached when (and if) a retry needs one.
            self._state = RetryCallState(cast("Any", None), fn=None, args=(), kwargs={})
        return self._state

    @retry_state.setter
    def retry_state(self, value: RetryCallState) -> None:
        self._state = value

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        if exc_type is None or exc_value is None or not _retried(self._policy, exc_value):
            return None
        self.exc_info = (exc_type, exc_value, traceback)
        return True  # swallowed: the next iteration retries it


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
    """
    The mutable state of one retried call. Never shared between calls.

    Built only after attempt 1 failed with an error worth retrying: the fast
    path has already asked the predicate about it.
    """

    __slots__ = ("budget", "clock", "name", "policy", "start", "stop_reason", "suggested")

    def __init__(self, policy: Schedule, name: str, *, start: float) -> None:
        self.policy = policy
        self.name = name
        self.clock: Clock = policy.clock or _SYSTEM_CLOCK
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
