"""
The sliding windows of the rate policies: the last N calls, or the last T seconds.

Both judge a failure rate (and a slow-call rate) once the window holds
``minimum_calls`` calls. They are judged when a failed or slow call is
recorded: a plain success can only lower both rates, so it never trips the
circuit, and it is recorded without a lock (one C-level counter step), which
keeps the healthy hot path cheap. Failed and slow calls are rare and take the
window's lock.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import deque
from typing import TYPE_CHECKING

from ._window import OutcomeWindow

if TYPE_CHECKING:
    from ._config import BreakerConfig

__all__ = ["TIME_BUCKETS", "CountWindow", "RateRule", "TimeWindow", "make_window"]

#: Buckets of a time window (Resilience4j's SlidingTimeWindowMetrics keeps one
#: per second): a call counts while its bucket is one of the last TIME_BUCKETS.
TIME_BUCKETS = 20
_NEVER = -(2**62)  # the bucket number of an empty window


class RateRule:
    """When a window of ``calls`` calls, ``failed`` failed and ``slow`` slow, trips."""

    __slots__ = ("failure_rate", "minimum_calls", "slow_call_rate")

    def __init__(
        self, *, minimum_calls: int, failure_rate: float | None, slow_call_rate: float | None
    ) -> None:
        self.minimum_calls = minimum_calls
        self.failure_rate = failure_rate
        self.slow_call_rate = slow_call_rate

    def reason(self, calls: int, failed: int, slow: int) -> str | None:
        """``failure_rate`` / ``slow_call_rate`` when that rate reached its threshold."""
        if calls < self.minimum_calls or calls == 0:
            return None
        # A rate exactly at the threshold trips (as in Resilience4j); the division is
        # correctly rounded, so 10/20 equals the literal 0.5 exactly.
        if self.failure_rate is not None and failed / calls >= self.failure_rate:
            return "failure_rate"
        if self.slow_call_rate is not None and slow / calls >= self.slow_call_rate:
            return "slow_call_rate"
        return None


class _Counter:
    """A counter that threads may step without a lock (``itertools.count`` is atomic)."""

    __slots__ = ("_count", "_reads", "step")

    def __init__(self) -> None:
        self._count = itertools.count()
        self._reads = 0  # steps taken to read the value, not calls
        self.step = self._count.__next__

    def value(self) -> int:
        """Steps so far (call with the window's lock held)."""
        steps = next(self._count) - self._reads
        self._reads += 1
        return steps

    def take(self) -> int:
        """Step once and return how many steps came before (call with the lock held)."""
        return next(self._count) - self._reads


class CountWindow:
    """
    The outcomes of this instance's last ``size`` calls (like Resilience4j's COUNT_BASED).

    Each call has an index; failed and slow calls are kept with theirs (at most
    ``size`` of them), successes only advance the index: :attr:`tick` is the
    lock-free, C-level step the breaker's hot path calls.
    """

    __slots__ = ("_base", "_calls", "_failed", "_lock", "_marks", "_rule", "_size", "_slow",
                 "tick")

    records_successes = True
    next_roll = math.inf  # nothing to do at any time boundary

    def __init__(self, *, size: int, rule: RateRule) -> None:
        self._size = size
        self._rule = rule
        self._lock = threading.Lock()
        self._calls = _Counter()
        self.tick = self._calls.step
        self.clear()

    def clear(self) -> None:
        """Forget everything (the circuit moved to another generation)."""
        with self._lock:
            # The counter is never replaced (the hot path holds its step): the
            # window starts at its current value.
            self._base = self._calls.value()
            self._marks: deque[tuple[int, bool, bool]] = deque()
            self._failed = self._slow = 0

    def success(self, at: float) -> None:  # noqa: ARG002  (the windows' shared signature)
        """Remember a plain success (lock-free)."""
        self.tick()

    def roll(self, at: float) -> None:
        """Nothing to do: a count window has no time boundaries."""

    def failure(self, at: float, slow: bool = False) -> None:  # noqa: ARG002
        """Remember a failed call (``slow``: it also took too long)."""
        self._record(True, slow)

    def slow_success(self, at: float) -> None:  # noqa: ARG002
        """Remember a successful call that took at least the slow-call duration."""
        self._record(False, True)

    def _record(self, failed: bool, slow: bool) -> None:
        with self._lock:
            index = self._calls.take() - self._base
            self._marks.append((index, failed, slow))
            self._failed += failed
            self._slow += slow
            self._evict(index + 1)

    def _evict(self, total: int) -> None:
        marks = self._marks
        while marks and marks[0][0] < total - self._size:
            _, failed, slow = marks.popleft()
            self._failed -= failed
            self._slow -= slow

    def counts(self, at: float) -> tuple[int, int, int]:  # noqa: ARG002
        """(calls, failed, slow) in the window now."""
        with self._lock:
            total = self._calls.value() - self._base
            self._evict(total)
            return min(total, self._size), self._failed, self._slow

    def trip_reason(self, at: float) -> str | None:
        """Why the window trips now (``failure_rate`` / ``slow_call_rate``), or None."""
        return self._rule.reason(*self.counts(at))

    def tripped(self, at: float) -> bool:
        """Whether the window trips now."""
        return self.trip_reason(at) is not None


class TimeWindow:
    """
    The outcomes of the last ``seconds`` (like Resilience4j's TIME_BASED).

    Time is cut into buckets of ``seconds / TIME_BUCKETS``; a call counts while
    its bucket is one of the last ``TIME_BUCKETS`` (so for between
    ``seconds * (1 - 1/TIME_BUCKETS)`` and ``seconds``). Each bucket holds
    counts, so memory is constant whatever the call rate.

    Plain successes only step a lock-free counter (:attr:`tick`); the counter
    is read into the current bucket when a bucket ends (:meth:`roll`, which
    the breaker calls at the first admission at or after :attr:`next_roll`),
    so a success counts in the bucket in which the window next rolls after it.
    """

    __slots__ = (
        "_calls", "_current", "_failed", "_lock", "_mark", "_n", "_ok", "_other", "_rule",
        "_slow", "_width", "next_roll", "tick",
    )

    records_successes = True

    def __init__(self, *, seconds: float, rule: RateRule, buckets: int = TIME_BUCKETS) -> None:
        self._n = buckets
        self._width = seconds / buckets
        self._rule = rule
        self._lock = threading.Lock()
        self._calls = _Counter()
        self.tick = self._calls.step
        self.clear()

    def clear(self) -> None:
        """Forget everything (the circuit moved to another generation)."""
        with self._lock:
            n = self._n
            self._ok = [0] * n  # plain successes of closed buckets
            self._other = [0] * n  # failed or slow calls
            self._failed = [0] * n
            self._slow = [0] * n
            self._current = _NEVER  # the current bucket's number
            self._mark = self._calls.value()  # the counter when the current bucket began
            self.next_roll = -math.inf

    def _bucket(self, at: float) -> int:
        return math.floor(at / self._width)

    def success(self, at: float) -> None:
        """Remember a plain success at monotonic time ``at``."""
        if at >= self.next_roll:
            self.roll(at)
        self.tick()

    def roll(self, at: float) -> None:
        """Make the bucket of ``at`` the current one, closing the one before."""
        with self._lock:
            self._roll(self._bucket(at))

    def _roll(self, bucket: int) -> None:
        current = self._current
        if bucket <= current:
            return  # a late call of a bucket already closed counts in the current one
        n = self._n
        if current != _NEVER:
            value = self._calls.value()
            self._ok[current % n] += value - self._mark
            self._mark = value
        # Successes before the first bucket of a fresh window count in it.
        for b in range(max(current + 1, bucket - n + 1), bucket + 1):
            i = b % n
            self._ok[i] = self._other[i] = self._failed[i] = self._slow[i] = 0
        self._current = bucket
        self.next_roll = (bucket + 1) * self._width

    def failure(self, at: float, slow: bool = False) -> None:
        """Remember a failed call (``slow``: it also took too long)."""
        self._record(at, True, slow)

    def slow_success(self, at: float) -> None:
        """Remember a successful call that took at least the slow-call duration."""
        self._record(at, False, True)

    def _record(self, at: float, failed: bool, slow: bool) -> None:
        with self._lock:
            self._roll(self._bucket(at))
            i = self._current % self._n
            self._other[i] += 1
            self._failed[i] += failed
            self._slow[i] += slow

    def counts(self, at: float) -> tuple[int, int, int]:
        """(calls, failed, slow) in the window at time ``at``."""
        with self._lock:
            self._roll(self._bucket(at))
            pending = self._calls.value() - self._mark  # the current bucket's successes
            return (
                sum(self._ok) + pending + sum(self._other), sum(self._failed), sum(self._slow),
            )

    def trip_reason(self, at: float) -> str | None:
        """Why the window trips now (``failure_rate`` / ``slow_call_rate``), or None."""
        return self._rule.reason(*self.counts(at))

    def tripped(self, at: float) -> bool:
        """Whether the window trips now."""
        return self.trip_reason(at) is not None


def make_window(config: BreakerConfig) -> OutcomeWindow | CountWindow | TimeWindow:
    """The window that config's trip rule reads."""
    if not config.rate_based:
        return OutcomeWindow(
            failure_threshold=config.failure_threshold,
            minimum_calls=config.minimum_calls,
            window=config.window,
        )
    rule = RateRule(minimum_calls=config.minimum_calls, failure_rate=config.failure_rate,
                    slow_call_rate=config.slow_call_rate)
    if config.window_type == "count":
        return CountWindow(size=int(config.window_size), rule=rule)
    return TimeWindow(seconds=config.window_size, rule=rule)
