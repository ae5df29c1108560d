"""
The retry loop: a ``RetryPolicy`` run on tenacity.

Every call gets a fresh :class:`~._run.Run` and a fresh tenacity controller,
so nothing mutable is shared between concurrent calls of one policy
(tenacity's controllers keep per-call state, and our start time lives on the
run).

Nearly every call succeeds at once, so the first attempt runs bare: no run,
no controller, no tenacity state (issue 13: building them cost more than the
retry of a failure saves). Only an error that will be retried (the predicate
accepts it, or tenacity's explicit ``TryAgain``) builds the machinery, which
then continues at attempt 2 with the deadline counted from the first start.

A policy with a retry budget enters through the ``*_counted`` twins, which
count the call first; which twin runs is decided when the decorator or block
is built, so a policy without a budget pays nothing for budgets.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from tenacity import AttemptManager, DoAttempt, DoSleep, RetryCallState, TryAgain

from ._budget import RetryBudget
from ._run import SYSTEM_CLOCK, Run, Schedule

__all__ = [
    "Schedule",
    "aiterate",
    "iterate",
    "iterate_counted",
    "run_async",
    "run_async_counted",
    "run_sync",
    "run_sync_counted",
]

P = ParamSpec("P")
R = TypeVar("R")


def run_sync(
    policy: Schedule, name: str, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """Call ``fn`` under ``policy`` (see :meth:`RetryPolicy.call`)."""
    clock = policy.clock or SYSTEM_CLOCK
    start = clock.monotonic()
    try:
        return fn(*args, **kwargs)
    except BaseException as exc:
        if not _retried(policy, exc):
            raise
        failed = sys.exc_info()
    return _resume_sync(Run(policy, name, start=start), failed, fn, args, kwargs)


def run_sync_counted(
    policy: Schedule,
    budget: RetryBudget,
    name: str,
    fn: Callable[P, R],
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """:func:`run_sync` for a policy with a budget: the call is counted first."""
    clock = policy.clock or SYSTEM_CLOCK
    start = clock.monotonic()
    budget.record_call(start)
    try:
        return fn(*args, **kwargs)
    except BaseException as exc:
        if not _retried(policy, exc):
            raise
        failed = sys.exc_info()
    return _resume_sync(Run(policy, name, start=start), failed, fn, args, kwargs)


def _resume_sync(run: Run, failed: Any, fn: Callable[..., R], args: Any, kwargs: Any) -> R:
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
    clock = policy.clock or SYSTEM_CLOCK
    start = clock.monotonic()
    try:
        return await fn(*args, **kwargs)
    except BaseException as exc:
        if not _retried(policy, exc):
            raise
        failed = sys.exc_info()
    return await _resume_async(Run(policy, name, start=start), failed, fn, args, kwargs)


async def run_async_counted(
    policy: Schedule,
    budget: RetryBudget,
    name: str,
    fn: Callable[P, Awaitable[R]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """:func:`run_async` for a policy with a budget: the call is counted first."""
    clock = policy.clock or SYSTEM_CLOCK
    start = clock.monotonic()
    budget.record_call(start)
    try:
        return await fn(*args, **kwargs)
    except BaseException as exc:
        if not _retried(policy, exc):
            raise
        failed = sys.exc_info()
    return await _resume_async(Run(policy, name, start=start), failed, fn, args, kwargs)


async def _resume_async(
    run: Run, failed: Any, fn: Callable[..., Awaitable[R]], args: Any, kwargs: Any
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
    clock = policy.clock or SYSTEM_CLOCK
    first = _FirstAttempt(policy, clock.monotonic())
    yield first
    if first.exc_info is not None:
        yield from _resume_block(Run(policy, name, start=first.start), first)


def iterate_counted(policy: Schedule, budget: RetryBudget, name: str) -> Iterator[AttemptManager]:
    """:func:`iterate` for a policy with a budget: the block is counted when it starts."""
    clock = policy.clock or SYSTEM_CLOCK
    start = clock.monotonic()
    budget.record_call(start)
    first = _FirstAttempt(policy, start)
    yield first
    if first.exc_info is not None:
        yield from _resume_block(Run(policy, name, start=start), first)


async def aiterate(
    policy: Schedule, budget: RetryBudget | None, name: str
) -> AsyncIterator[AttemptManager]:
    """Yield attempts for an ``async for attempt in …: with attempt:`` block."""
    clock = policy.clock or SYSTEM_CLOCK
    start = clock.monotonic()
    if budget is not None:
        budget.record_call(start)
    first = _FirstAttempt(policy, start)
    yield first
    if first.exc_info is None:
        return
    # The loop of ``AsyncRetrying.__anext__``, entered with attempt 1 failed.
    controller = Run(policy, name, start=start).async_controller()
    controller.begin()
    state = first.retry_state
    state.retry_object = controller
    state.set_exception(first.exc_info)
    while True:
        do = await controller.iter(retry_state=state)
        if isinstance(do, DoAttempt):
            yield AttemptManager(retry_state=state)
        elif isinstance(do, DoSleep):
            state.prepare_for_next_attempt()
            await controller.sleep(do)  # type: ignore[misc]
        else:
            return


def _resume_block(run: Run, first: _FirstAttempt) -> Iterator[AttemptManager]:
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
