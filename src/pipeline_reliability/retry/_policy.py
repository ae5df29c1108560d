"""
``RetryPolicy``: how often and how long to retry, as a frozen value.

The arithmetic lives in ``_backoff`` as pure functions so that it can be
property-tested without running anything; ``_engine`` runs a policy on
tenacity. Imports go one way: ``_policy`` -> ``_engine`` -> ``_run`` -> ``_backoff``, ``_budget``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar, cast

from .._clock import Clock
from .._validate import duration_seconds
from ..errors import ConfigurationError, InvalidInputError
from ._budget import RetryBudget, as_budget
from ._engine import run_async, run_async_counted, run_sync, run_sync_counted
from ._predicates import Predicate, is_transient

__all__ = ["RetryPolicy", "name_of"]

P = ParamSpec("P")
R = TypeVar("R")


def _seconds(name: str, value: float | timedelta) -> float:
    return duration_seconds(value, name, allow_zero=True)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """
    How to retry: at most ``attempts`` calls and at most ``deadline`` seconds in
    total, whichever runs out first, with full-jitter exponential backoff.

    The n-th retry (n = 0, 1, …) sleeps ``uniform(0, min(maximum, initial *
    multiplier**n))`` seconds. A server-suggested delay (``retry_after`` on the
    error, or a Google ``RetryInfo`` detail) raises that sleep to at least the
    suggestion, but never above ``maximum``. A sleep never runs past the
    deadline: it is shortened to the time left; when no time is left, or when
    the server asks for more than is left, retrying stops.

    Durations are given as float seconds or ``timedelta`` and stored as float
    seconds. Values are validated when the policy is built.

    Attributes:
        attempts: Maximum number of calls, the first one included (>= 1).
        deadline: Total time in seconds from the first call, or ``None`` for
            attempts only.
        initial: Backoff cap of the first retry, in seconds (>= 0).
        maximum: Upper bound of any single sleep, in seconds (>= ``initial``).
        multiplier: Growth of the backoff cap per retry (1 to 1000).
        predicate: Says which errors are retried; others raise at once.
        clock: Where ``monotonic`` and ``sleep`` come from; ``None`` for the
            real clock (``asyncio.sleep`` in async code). A ``FakeClock``
            makes retries instant and deterministic.
        budget: ``None`` (no limit beyond ``attempts``), a ratio such as
            ``0.2`` (a :class:`~pipeline_reliability.retry.RetryBudget` of
            that ratio with its defaults, built here), or a ``RetryBudget``
            to share. Stored as the ``RetryBudget``: every call through this
            policy, and through copies made by :meth:`with_`, counts against
            it. When it refuses a retry the call fails at once with
            :class:`~pipeline_reliability.errors.RetryBudgetExhaustedError`.

    Raises:
        ConfigurationError: A value cannot work (``attempts < 1``, a negative
            delay, ``maximum < initial``, ``deadline <= 0``, a budget that is
            neither ``None``, a ratio within 0..1000 nor a ``RetryBudget``, …).

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.4.0 ``budget``.
    """

    attempts: int = 5
    deadline: float | timedelta | None = 60.0
    initial: float | timedelta = 0.2
    maximum: float | timedelta = 10.0
    multiplier: float = 2.0
    predicate: Predicate = is_transient
    clock: Clock | None = None
    budget: RetryBudget | float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ConfigurationError(f"attempts must be an int, not {self.attempts!r}")
        if self.attempts < 1:
            raise ConfigurationError(f"attempts must be at least 1, not {self.attempts}")
        initial = _seconds("initial", self.initial)
        maximum = _seconds("maximum", self.maximum)
        if maximum < initial:
            raise ConfigurationError(f"maximum ({maximum}s) is below initial ({initial}s)")
        multiplier = _multiplier(self.multiplier)
        deadline = None if self.deadline is None else _seconds("deadline", self.deadline)
        if deadline is not None and deadline <= 0:
            raise ConfigurationError("deadline must be positive (use None for attempts only)")
        if not callable(self.predicate):
            raise ConfigurationError(f"predicate must be callable, not {self.predicate!r}")
        if self.clock is not None and not isinstance(self.clock, Clock):
            raise ConfigurationError(f"clock must implement Clock, not {self.clock!r}")
        budget = as_budget(self.budget)
        # Normalise in place: the instance is frozen, so go around __setattr__.
        for name, value in (
            ("budget", budget),
            ("initial", initial),
            ("maximum", maximum),
            ("multiplier", multiplier),
            ("deadline", deadline),
        ):
            object.__setattr__(self, name, value)

    @property
    def deadline_seconds(self) -> float | None:
        """The deadline in seconds (``None``: attempts only)."""
        return None if self.deadline is None else _as_float(self.deadline)

    @property
    def initial_seconds(self) -> float:
        """The first backoff cap in seconds."""
        return _as_float(self.initial)

    @property
    def maximum_seconds(self) -> float:
        """The bound of any single sleep in seconds."""
        return _as_float(self.maximum)

    def with_(self, **changes: Any) -> RetryPolicy:
        """
        Return a copy with ``changes`` applied (validated like the original).

        Example::

            quick = policy.with_(attempts=3, deadline=5)

        Raises:
            ConfigurationError: an unknown field, or a value that cannot work.
        """
        unknown = sorted(set(changes) - _FIELDS)
        if unknown:
            raise ConfigurationError(f"RetryPolicy has no option(s) {unknown}")
        return dataclasses.replace(self, **changes)

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """
        Call ``fn(*args, **kwargs)``, retrying transient failures.

        Only wrap idempotent operations: a retried call may repeat work whose
        response was lost.

        Returns:
            What ``fn`` returned on the first successful attempt.

        Raises:
            RetryExhaustedError: Attempts or deadline ran out; the last error
                is chained as ``__cause__`` and kept as ``last_error``.
            RetryBudgetExhaustedError: The budget refused a retry (a subclass
                of ``RetryExhaustedError``).
            BaseException: Any error the predicate rejects, unchanged, after
                exactly one attempt.
        """
        _check_callable(fn)
        if self.budget is None:
            return run_sync(self, name_of(fn), fn, *args, **kwargs)
        budget = cast("RetryBudget", self.budget)  # a RetryBudget after __post_init__
        return run_sync_counted(self, budget, name_of(fn), fn, *args, **kwargs)

    async def acall(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """
        Await ``fn(*args, **kwargs)``, retrying transient failures (see :meth:`call`).

        Sleeps with ``asyncio.sleep``, or with the injected clock's ``sleep``
        when one is given (a ``FakeClock`` returns at once; a real clock would
        block the event loop, so do not inject one in async code).
        """
        _check_callable(fn)
        if self.budget is None:
            return await run_async(self, name_of(fn), fn, *args, **kwargs)
        budget = cast("RetryBudget", self.budget)  # a RetryBudget after __post_init__
        return await run_async_counted(self, budget, name_of(fn), fn, *args, **kwargs)


_FIELDS = frozenset(f.name for f in dataclasses.fields(RetryPolicy))
#: Beyond this the backoff cap reaches ``maximum`` after a retry or two anyway.
_MAX_MULTIPLIER = 1000.0


def _multiplier(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"multiplier must be a number, not {value!r:.80}")
    try:
        multiplier = float(value)
    except OverflowError as exc:
        raise ConfigurationError("multiplier is not a representable number") from exc
    if not (math.isfinite(multiplier) and 1 <= multiplier <= _MAX_MULTIPLIER):
        raise ConfigurationError(
            f"multiplier must be within 1..{_MAX_MULTIPLIER:g}, not {value!r:.80}"
        )
    return multiplier


def _check_callable(fn: object) -> None:
    if not callable(fn):
        raise InvalidInputError(f"expected a callable to retry, got {fn!r:.80}")


def _as_float(value: float | timedelta) -> float:
    # Always a float after __post_init__; the union exists for the constructor.
    return value.total_seconds() if isinstance(value, timedelta) else value


def name_of(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))
