"""
The breaker policies beyond "N failures in a window": their option checks and
how a finished call is judged (slow calls, ``failure_if``) and recorded.

The transition table (``_state``) and the windows (``_window``, ``_windows``)
decide; this layer only classifies outcomes, so every policy still writes to
the store only on a transition.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from .._telemetry import log_failure
from .._validate import duration_seconds
from ..errors import ConfigurationError
from ._engine import Engine

if TYPE_CHECKING:
    from ._config import BreakerConfig

__all__ = ["DEFAULT_WINDOW_CALLS", "NO_RESULT", "PolicyEngine", "check_policy", "resolve_window"]

logger = logging.getLogger("pipeline_reliability.breaker")

#: The default size of a count window and the default ``minimum_calls`` of a
#: rate policy (Resilience4j's defaults too).
DEFAULT_WINDOW_CALLS = 100
#: The shortest time window (20 buckets of 50 µs).
MIN_TIME_WINDOW = 0.001
#: Largest ``reset_backoff``: beyond it the first failed probe already reaches any cap.
MAX_BACKOFF = 1000.0
#: What a ``with`` block "returns": ``failure_if`` is not asked about it.
NO_RESULT: Any = object()
_MODES = ("enforce", "observe")
_WINDOW_TYPES = ("count", "time")


def _show(value: object) -> str:
    from ._config import show

    return show(value)


def _rate(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{what} must be a number in (0, 1], got {_show(value)}")
    if not 0 < value <= 1:  # NaN fails this too
        raise ConfigurationError(f"{what} must be in (0, 1], got {_show(value)}")
    return float(value)


def resolve_window(
    *,
    rate_based: bool,
    window_type: object,
    window_size: object,
    window: float,
    minimum_calls: object,
    failure_threshold: object,
) -> tuple[str, float, object]:
    """
    The window type, size and ``minimum_calls`` a constructor's arguments mean.

    ``window_type``/``window_size`` belong to the rate policies; the failure
    count rule keeps its ``window`` and ``failure_threshold``, as before.

    Raises:
        ConfigurationError: a window option without a rate policy, or a bad size.
    """
    if not rate_based:
        if window_type is not None or window_size is not None:
            raise ConfigurationError(
                "window_type and window_size apply to failure_rate / slow_call_rate; "
                "the failure count rule uses window"
            )
        return "count", DEFAULT_WINDOW_CALLS, (
            failure_threshold if minimum_calls is None else minimum_calls
        )
    kind = "count" if window_type is None else window_type
    if not isinstance(kind, str) or kind not in _WINDOW_TYPES:
        raise ConfigurationError(f"window_type must be one of {_WINDOW_TYPES}, got {_show(kind)}")
    size: float
    if kind == "count":
        size = DEFAULT_WINDOW_CALLS if window_size is None else _calls(window_size)
        default_minimum = min(DEFAULT_WINDOW_CALLS, int(size))
    else:
        size = window if window_size is None else duration_seconds(window_size, "window_size")
        default_minimum = DEFAULT_WINDOW_CALLS
    return kind, size, default_minimum if minimum_calls is None else minimum_calls


def _calls(value: object) -> int:
    from ._config import MAX_COUNT

    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        raise ConfigurationError(
            f"window_size of a count window must be an integer in 1..{MAX_COUNT} calls, "
            f"got {_show(value)}"
        )
    return value


def check_policy(config: BreakerConfig) -> None:
    """
    Validate the policy options of ``config`` (called by ``BreakerConfig``).

    Raises:
        ConfigurationError: any value that cannot work.
    """
    _rate(config.failure_rate, "failure_rate")
    _rate(config.slow_call_rate, "slow_call_rate")
    if config.slow_call_duration is not None:
        duration_seconds(config.slow_call_duration, "slow_call_duration")
    if config.slow_call_rate is not None:
        if config.slow_call_duration is None:
            raise ConfigurationError("slow_call_rate needs slow_call_duration")
        if config.failure_rate is None:
            raise ConfigurationError(
                "slow_call_rate needs failure_rate (use failure_rate=1.0 to judge slow calls only)"
            )
    kind = cast(object, config.window_type)
    if not isinstance(kind, str) or kind not in _WINDOW_TYPES:
        raise ConfigurationError(f"window_type must be one of {_WINDOW_TYPES}, got {_show(kind)}")
    if kind == "count":
        size = _calls(config.window_size)
        if config.rate_based and config.minimum_calls > size:
            raise ConfigurationError(
                f"minimum_calls ({config.minimum_calls}) cannot exceed the count window's "
                f"window_size ({size}): the window could never hold enough calls"
            )
    elif duration_seconds(config.window_size, "window_size") < MIN_TIME_WINDOW:
        # Its buckets must be wider than the clock's resolution (and than zero).
        raise ConfigurationError(
            f"window_size of a time window must be at least {MIN_TIME_WINDOW:g}s, "
            f"got {_show(config.window_size)}"
        )
    for option in ("failure_if", "fallback"):
        hook = cast(object, getattr(config, option))
        if hook is not None and not callable(hook):
            raise ConfigurationError(f"{option} must be callable, got {_show(hook)}")
    _check_backoff(config)
    mode = cast(object, config.mode)
    if not isinstance(mode, str) or mode not in _MODES:
        raise ConfigurationError(f"mode must be one of {_MODES}, got {_show(mode)}")


def _check_backoff(config: BreakerConfig) -> None:
    backoff = cast(object, config.reset_backoff)
    if (
        isinstance(backoff, bool)
        or not isinstance(backoff, int | float)
        or not 1 <= backoff <= MAX_BACKOFF  # NaN fails this too
    ):
        raise ConfigurationError(
            f"reset_backoff must be a number in [1, {MAX_BACKOFF:g}], got {_show(backoff)}"
        )
    cap = config.max_reset_timeout
    if cap is not None:
        seconds = duration_seconds(cap, "max_reset_timeout")
        if seconds < config.reset_timeout:
            raise ConfigurationError(
                f"max_reset_timeout ({seconds:g}s) cannot be shorter than "
                f"reset_timeout ({config.reset_timeout:g}s)"
            )


class PolicyEngine(Engine):
    """The engine plus the judging of finished calls (slow calls, ``failure_if``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        config = self.config
        self._slow = math.inf if config.slow_call_duration is None else config.slow_call_duration
        # A call is slow when it ends at or after start + slow_call_duration (a
        # deadline, like every expiry here: "end - start" would lose the boundary
        # to float rounding). With a slow-call rate, slow calls are judged by
        # their own rate; without
        # one, a slow call counts as a failure.
        self._slow_apart = config.slow_call_rate is not None
        self._failure_if = config.failure_if
        self._fallback = config.fallback
        self._timed = config.slow_call_duration is not None
        # What the hot path calls for a plain (fast, unjudged) success of a
        # closed circuit: a rate window's C-level counter step; a no-op when the
        # window keeps no successes; None when _succeeded must decide.
        window = self._window
        self._count_success: Callable[[], object] | None = None
        if config.rate_based:
            self._count_success = getattr(window, "tick")  # noqa: B009  (rate windows only)
        elif not window.records_successes:
            self._count_success = _NOOP
        self._tick = self._count_success if config.failure_if is None else None

    def _judge(self, ticket: int, start: float, result: object) -> tuple[bool, bool] | None:
        """``(failed, slow)`` of a call that returned ``result``; None for a plain success."""
        slow = self._timed and self._mono() >= start + self._slow
        failed = (
            self._failure_if is not None
            and result is not NO_RESULT
            and self._result_failed(result)
        )
        if failed:
            return True, slow
        if not slow:
            return None
        if ticket & 1 or not self._slow_apart:
            return True, True  # a slow call (or a slow probe) counts as a failure
        return False, True  # judged by the slow-call rate

    def _succeeded(self, ticket: int, start: float, result: object) -> None:
        """Record a call that returned ``result`` (started at monotonic ``start``)."""
        hook = self._failure_if
        if not self._timed:
            if hook is None:
                self._record_success(ticket)  # the failure count rule with minimum_calls
                return
            if not ticket & 1 and result is not NO_RESULT:
                # failure_if alone, a closed circuit: judged here, one frame less.
                try:
                    failed = True if hook(result) else False  # noqa: SIM210  (in the try)
                except Exception as broken:  # noqa: BLE001  (user code: contained)
                    failed = self._hook_raised(broken)
                if failed:
                    self._record_failure(ticket)
                elif (count := self._count_success) is None:
                    self._record_success(ticket)
                else:
                    count()
                return
        verdict = self._judge(ticket, start, result)
        if verdict is not None:
            self._record_failure(ticket, verdict[1], verdict[0])
        elif ticket & 1 or (count := self._count_success) is None:
            self._record_success(ticket)
        else:
            count()  # a plain success of a closed circuit: no lock, no clock

    def _failed(self, ticket: int, start: float) -> None:
        """Record a call that raised a failure (slow too, under a slow-call rate)."""
        slow = self._slow_apart and self._mono() >= start + self._slow
        self._record_failure(ticket, slow)

    def _result_failed(self, result: object) -> bool:
        hook = self._failure_if
        assert hook is not None
        try:
            return bool(hook(result))
        except Exception as broken:  # noqa: BLE001  (user code: any error must be contained)
            return self._hook_raised(broken)

    def _hook_raised(self, broken: Exception) -> bool:
        log_failure(logger, f"failure_if of breaker {self.name!r} raised; "
                    "counting the call as a failure", broken, breaker=self.name)
        return True


# A C-level callable that does nothing: the hot path's "record nothing".
_NOOP = itertools.repeat(None).__next__


def seconds_or_none(value: timedelta | float | None, what: str) -> float | None:
    """A duration option that may be left out."""
    return None if value is None else duration_seconds(value, what)
