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
from typing import Any

from .._telemetry import log_failure
from .._validate import duration_seconds
from ._engine import Engine

__all__ = ["NO_RESULT", "PolicyEngine", "seconds_or_none"]

logger = logging.getLogger("pipeline_reliability.breaker")

#: What a ``with`` block "returns": ``failure_if`` is not asked about it.
NO_RESULT: Any = object()


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
        # failure_if without slow calls: judged inline by CircuitBreaker.call.
        self._hook_alone = config.failure_if if config.slow_call_duration is None else None

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
