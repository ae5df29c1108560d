"""The per-instance sliding window of outcomes, in constant memory."""

from __future__ import annotations

import math
from collections import deque

__all__ = ["OutcomeWindow"]


class OutcomeWindow:
    """
    Failures (and, when needed, calls) of one instance over the last ``window`` seconds.

    Exact, in O(1) time and memory: "at least N failures younger than the
    window" holds exactly when the N-th most recent failure is younger than
    the window, so only the last ``failure_threshold`` failure times are kept
    (and the last ``minimum_calls`` call times). An outcome counts while its
    age is strictly below ``window``.
    """

    __slots__ = ("_calls", "_failures", "_minimum", "_threshold", "_window", "records_successes")

    next_roll = math.inf  # no time boundaries: the hot path's gate is the view's freshness

    def __init__(
        self, *, failure_threshold: int, minimum_calls: int, window: float
    ) -> None:
        self._threshold = failure_threshold
        self._minimum = minimum_calls
        self._window = window
        # When minimum_calls <= failure_threshold, enough failures imply enough
        # calls, so successes need not be remembered at all (the cheap hot path).
        self.records_successes = minimum_calls > failure_threshold
        self._failures: deque[float] = deque(maxlen=failure_threshold)
        self._calls: deque[float] = deque(maxlen=minimum_calls)

    def success(self, at: float) -> None:
        """Remember a successful call at monotonic time ``at``."""
        if self.records_successes:
            self._calls.append(at)

    def failure(self, at: float, slow: bool = False) -> None:  # noqa: ARG002
        """Remember a failed call at monotonic time ``at`` (``slow`` changes nothing here)."""
        self._failures.append(at)
        if self.records_successes:
            self._calls.append(at)

    def slow_success(self, at: float) -> None:
        """A slow call counts as a failure under the failure-count rule."""
        self.failure(at)

    def trip_reason(self, at: float) -> str | None:
        """``failure_threshold`` when the window trips at ``at``, else None."""
        return "failure_threshold" if self.tripped(at) else None

    def tripped(self, at: float) -> bool:
        """Whether, at time ``at``, the window holds enough failures (and calls) to trip."""
        failures = self._failures
        if len(failures) < self._threshold or at - failures[0] >= self._window:
            return False
        if not self.records_successes:
            return True
        calls = self._calls
        return len(calls) >= self._minimum and at - calls[0] < self._window

    def failure_count(self, at: float) -> int:
        """How many of the remembered failures are still inside the window (≤ the threshold)."""
        return sum(1 for t in self._failures if at - t < self._window)

    def roll(self, at: float) -> None:
        """Nothing to do: failure times are kept exactly."""

    def clear(self) -> None:
        """Forget everything (the circuit moved to another generation)."""
        self._failures.clear()
        self._calls.clear()
