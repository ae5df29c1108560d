"""Operation counters shared by every store: one implementation of ``stats``/``reset_stats``."""

from __future__ import annotations

import math
import threading

from .._validate import MAX_DURATION
from ..errors import InvalidInputError
from ._protocol import StoreStats

__all__ = ["CountingStore", "call_timeout"]


class CountingStore:
    """
    Base class holding a store's operation counts behind their own lock.

    Subclasses call :meth:`_count` as operations happen; users read
    :attr:`stats` and call :meth:`reset_stats`.
    """

    def __init__(self) -> None:
        self._stats_lock = threading.Lock()
        self._counts = [0, 0, 0, 0]  # reads, writes, transactions, conflicts

    @property
    def stats(self) -> StoreStats:
        """Operation counts so far (a frozen copy)."""
        with self._stats_lock:
            return StoreStats(*self._counts)

    def reset_stats(self) -> None:
        """Set every operation count back to zero."""
        with self._stats_lock:
            self._counts = [0, 0, 0, 0]

    def _count(
        self, *, reads: int = 0, writes: int = 0, transactions: int = 0, conflicts: int = 0
    ) -> None:
        with self._stats_lock:
            counts = self._counts
            counts[0] += reads
            counts[1] += writes
            counts[2] += transactions
            counts[3] += conflicts


_MAX_SECONDS = MAX_DURATION.total_seconds()


def call_timeout(timeout: object) -> float | None:
    """
    Check a per-call ``timeout`` argument (seconds, or ``None`` for the store's default).

    Raises:
        InvalidInputError: not a positive, finite number of seconds (at most
            ``MAX_DURATION``); ``bool`` is refused.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise InvalidInputError(f"timeout must be seconds or None, got {timeout!r:.200}")
    try:
        seconds = float(timeout)
    except OverflowError as exc:
        raise InvalidInputError("timeout is not a representable number of seconds") from exc
    if not (math.isfinite(seconds) and 0 < seconds <= _MAX_SECONDS):
        raise InvalidInputError(f"timeout must be a positive, finite duration, got {timeout!r}")
    return seconds
