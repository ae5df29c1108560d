"""processor_run: the decorator form of ProcessorRun."""

from __future__ import annotations

import datetime as dt
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from ..completion import TriggerEvent
from ..pubsub import CompletionMessage
from ._options import trigger_date
from ._run import ProcessorRun, PublishCompletion

__all__ = ["processor_run"]

P = ParamSpec("P")
R = TypeVar("R")

DateOrTrigger = dt.date | str | CompletionMessage | TriggerEvent
"""What a decorated processor is called with first: a date, or the message that started it."""


def processor_run(
    processor: str, *, phase: str, publisher: PublishCompletion, **options: Any
) -> Callable[
    [Callable[Concatenate[ProcessorRun, P], R]], Callable[Concatenate[DateOrTrigger, P], R]
]:
    """
    Decorate a processor function so that each call is one :class:`ProcessorRun`.

    The function receives the run first; the decorated function is called
    with the date, or with the message that triggered it (a
    ``CompletionMessage`` or ``TriggerEvent``: its date is the run's date and
    its correlation id is carried on), then the function's own arguments.
    ``async def`` functions get an ``async with`` run. ``options`` are
    :class:`ProcessorRun`'s keyword arguments (``lock``, ``idempotency``,
    ``clock``, ``owner``, ...); each call gets a new execution id.

    Example::

        @processor_run("player_game_summary", phase="phase_3_analytics",
                       publisher=publisher, lock={"store": store, "ttl": 600})
        def player_game_summary(run, rows):
            run.record_count = write(rows, fence=run.fence)

        player_game_summary("2026-01-31", rows)   # or player_game_summary(message, rows)

    Raises (from each call): what :class:`ProcessorRun` raises, and the body's error.

    .. versionadded:: 0.2.0
    """
    if "execution_id" in options or "trigger" in options:
        raise TypeError("execution_id and trigger are per call: pass the trigger as the date")

    def run_for(first: DateOrTrigger) -> ProcessorRun:
        if isinstance(first, CompletionMessage | TriggerEvent):
            return ProcessorRun(
                processor, trigger_date(first), phase=phase, publisher=publisher,
                trigger=first, **options,
            )
        return ProcessorRun(processor, first, phase=phase, publisher=publisher, **options)

    def decorate(
        fn: Callable[Concatenate[ProcessorRun, P], R],
    ) -> Callable[Concatenate[DateOrTrigger, P], R]:
        if inspect.iscoroutinefunction(fn):
            async_fn = cast("Callable[..., Awaitable[Any]]", fn)

            @functools.wraps(fn)
            async def async_wrapper(first: DateOrTrigger, *args: Any, **kwargs: Any) -> Any:
                async with run_for(first) as run:
                    return await async_fn(run, *args, **kwargs)

            return cast("Callable[Concatenate[DateOrTrigger, P], R]", async_wrapper)

        @functools.wraps(fn)
        def wrapper(first: DateOrTrigger, /, *args: P.args, **kwargs: P.kwargs) -> R:
            with run_for(first) as run:
                return fn(run, *args, **kwargs)

        return wrapper

    return decorate
