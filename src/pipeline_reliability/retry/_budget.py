"""
``RetryBudget``: retries limited to a fraction of recent calls, per process.

A policy's ``attempts`` bounds the retries of one call; it cannot bound what a
fleet of calls does to a sick dependency: with ``attempts=5`` an outage meets
five times its normal load, exactly when it can least take it (DESIGN §1: the
retry storm of thousands of runs). A budget bounds the *sum*: over a sliding
window, retries may not exceed ``ratio`` times the calls, so the dependency
sees at most ``1 + ratio`` times its load (Finagle's ``RetryBudget``, Envoy's
retry budgets and gRPC's retry throttling do the same for RPC clients).

Accounting is a ring of ten (``SLOTS``) counters per window (one per second for
the default 10 s window): counting a call is one lock, one division and one
increment, O(1) whatever the traffic. Only a retry decision sums the ring.
"""

from __future__ import annotations

import math
import threading
from datetime import timedelta
from fractions import Fraction

from .._validate import describe, duration_seconds
from ..errors import ConfigurationError

__all__ = ["SLOTS", "RetryBudget", "as_budget"]

#: Slots per window: the window slides in steps of ``window / SLOTS``.
SLOTS = 10
#: Finagle and tower take 0 to 1000 (a ratio of 10 already never refuses 10 attempts).
_MAX_RATIO = 1000.0
_MAX_MIN_PER_SECOND = 1_000_000.0
_MIN_WINDOW = 1.0
_MAX_WINDOW = 3600.0


class RetryBudget:
    """
    A per-process limit on retries: at most ``ratio`` retries per call, over a
    sliding ``window``, shared by every call that uses it.

    A retry is allowed when, counting it, the retries made in the window are at
    most ``max(ratio * calls in the window, min_per_second * window)``. The
    minimum is a floor, not an addition (as Envoy's ``min_retry_concurrency``;
    Finagle adds its reserve on top): a quiet process can still make
    ``min_per_second * window`` retries per window, and a busy one never makes
    more than ``ratio`` retries per call, so a dependency in an outage sees at
    most ``1 + ratio`` times the calls in any window. A refused retry fails the
    call at once with :class:`~pipeline_reliability.errors.RetryBudgetExhaustedError`.

    A call counts when its first attempt starts; a retry counts when it is
    allowed (refused ones do not count). Time is the monotonic time of the
    policy's clock, cut into ten slots per window: an event counts
    from its slot until ``window`` after the start of that slot, so it stops
    counting between ``window - window/SLOTS`` and ``window`` after it happened.

    One object is shared by every policy it is passed to and is thread-safe;
    share it between policies only when they use the same clock. Pass it as
    ``RetryPolicy(budget=RetryBudget(...))``, or give a ratio
    (``RetryPolicy(budget=0.2)``) for a budget of its own with the defaults.

    Args:
        ratio: Retries allowed per call in the window, 0 to 1000 (``0.2``:
            20 % of calls may be retried once, or 5 % four times).
        window: How far back calls and retries are counted, 1 s to 1 hour
            (seconds or ``timedelta``).
        min_per_second: The floor, in retries per second of window (0 to 1e6;
            ``0``: no floor). With the defaults, 10 retries per 10 s window.

    Raises:
        ConfigurationError: A value out of its range, not a number, or a bool.

    Example::

        budget = RetryBudget(ratio=0.1, window=timedelta(seconds=30))
        reads = RetryPolicy(attempts=5, budget=budget)
        writes = RetryPolicy(attempts=3, budget=budget)  # one budget for both

    .. versionadded:: 0.4.0
    """

    __slots__ = (
        "_calls",
        "_floor",
        "_lock",
        "_ratio",
        "_retries",
        "_slot_ids",
        "_width",
        "min_per_second",
        "ratio",
        "window",
    )

    def __init__(
        self,
        ratio: float = 0.2,
        *,
        window: float | timedelta = 10.0,
        min_per_second: float = 1.0,
    ) -> None:
        #: Retries allowed per call in the window.
        self.ratio = _number("ratio", ratio, _MAX_RATIO)
        #: The window in seconds.
        self.window = _window(window)
        #: The floor in retries per second of window.
        self.min_per_second = _number("min_per_second", min_per_second, _MAX_MIN_PER_SECOND)
        # Exact arithmetic, so that "retries == ratio x calls" is allowed exactly:
        # 0.7 x 10 must be 7, not 6.999…; a float counts as the decimal it prints as.
        self._ratio = Fraction(repr(self.ratio))
        self._floor = Fraction(repr(self.min_per_second)) * Fraction(repr(self.window))
        self._width = self.window / SLOTS
        self._lock = threading.Lock()
        # Slot i of the ring holds the counts of absolute slot _slot_ids[i].
        self._slot_ids = [-1] * SLOTS
        self._calls = [0] * SLOTS
        self._retries = [0] * SLOTS

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio!r}, window={self.window!r}, "
            f"min_per_second={self.min_per_second!r})"
        )

    def record_call(self, now: float) -> None:
        """
        Count one call made at monotonic time ``now`` (the engine calls this).

        Raises:
            ConfigurationError: ``now`` is not a finite number (a broken clock).
        """
        # On every call's path: inlined, and acquire/release rather than ``with``
        # (half the cost on CPython 3.11).
        try:
            slot = int(now // self._width)
        except (TypeError, ValueError, OverflowError) as exc:
            raise _bad_time(now) from exc
        i = slot % SLOTS
        lock = self._lock
        lock.acquire()
        try:
            if self._slot_ids[i] == slot:
                self._calls[i] += 1
            else:  # the ring came round: this entry holds an expired slot
                self._slot_ids[i] = slot
                self._calls[i] = 1
                self._retries[i] = 0
        finally:
            lock.release()

    def try_retry(self, now: float) -> bool:
        """
        Count one retry at ``now`` if the budget allows it; ``False`` (and count
        nothing) if it does not. Check and count are one atomic step.

        Raises:
            ConfigurationError: ``now`` is not a finite number (a broken clock).
        """
        slot = self._slot(now)
        with self._lock:
            calls, retries = self._sums(slot)
            if not self._allows(calls, retries + 1):
                return False
            i = slot % SLOTS
            if self._slot_ids[i] == slot:
                self._retries[i] += 1
            else:
                self._slot_ids[i] = slot
                self._calls[i] = 0
                self._retries[i] = 1
            return True

    def usage(self, now: float) -> tuple[int, int]:
        """
        Return ``(calls, retries)`` counted in the window that ends at ``now``.

        Raises:
            ConfigurationError: ``now`` is not a finite number (a broken clock).
        """
        slot = self._slot(now)
        with self._lock:
            return self._sums(slot)

    def allowed(self, calls: int) -> int:
        """How many retries a window holding ``calls`` calls allows in total."""
        by_ratio = self._ratio * calls
        return math.floor(max(by_ratio, self._floor))

    def _allows(self, calls: int, retries: int) -> bool:
        return retries <= self._ratio * calls or retries <= self._floor

    def _sums(self, slot: int) -> tuple[int, int]:
        # Entries of slots (slot - SLOTS, slot] count; older ones expired, and
        # "newer" ones only exist if the clock went back: they count for nothing.
        oldest = slot - SLOTS
        calls = retries = 0
        for k in range(SLOTS):
            if oldest < self._slot_ids[k] <= slot:
                calls += self._calls[k]
                retries += self._retries[k]
        return calls, retries

    def _slot(self, now: float) -> int:
        try:
            return int(now // self._width)
        except (TypeError, ValueError, OverflowError) as exc:
            raise _bad_time(now) from exc


def _bad_time(now: object) -> ConfigurationError:
    return ConfigurationError(
        f"the retry budget needs a finite monotonic time, the clock gave {describe(now)}"
    )


def as_budget(value: object) -> RetryBudget | None:
    """The ``budget=`` option of a policy: ``None``, a ratio, or a :class:`RetryBudget`."""
    if value is None or isinstance(value, RetryBudget):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(
            "budget must be a ratio of calls (e.g. 0.2), a RetryBudget or None, "
            f"not {describe(value)}"
        )
    return RetryBudget(ratio=value)


def _number(name: str, value: object, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{name} must be a number, not {describe(value)}")
    try:
        number = float(value)
    except OverflowError as exc:
        raise ConfigurationError(f"{name} is not a representable number") from exc
    if not (math.isfinite(number) and 0 <= number <= maximum):
        raise ConfigurationError(f"{name} must be within 0..{maximum:g}, not {describe(value)}")
    return number


def _window(value: object) -> float:
    seconds = duration_seconds(value, "window")
    if not _MIN_WINDOW <= seconds <= _MAX_WINDOW:
        raise ConfigurationError(
            f"window must be within {_MIN_WINDOW:g} s..{_MAX_WINDOW:g} s, not {describe(value)}"
        )
    return seconds
