"""A clock that moves only when told to."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

__all__ = ["FakeClock"]

_DEFAULT_START = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


class FakeClock:
    """
    A :class:`~pipeline_reliability.Clock` for tests: time stands still until
    :meth:`advance` (or :meth:`sleep`, which advances instead of blocking).

    Thread-safe. Time never goes backwards.
    """

    def __init__(self, start: datetime = _DEFAULT_START) -> None:
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self._lock = threading.Lock()
        self._now = start.astimezone(UTC)
        self._mono = 0.0
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        """Return the fake wall time (tz-aware UTC)."""
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        """Return fake seconds since the clock was made."""
        with self._lock:
            return self._mono

    def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` instead of blocking, and remember the call."""
        with self._lock:
            self.sleeps.append(seconds)
        self.advance(max(seconds, 0.0))

    def advance(self, delta: float | timedelta) -> None:
        """Move time forward by ``delta`` seconds (or a ``timedelta``)."""
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        if seconds < 0:
            raise ValueError("a FakeClock never goes backwards")
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._mono += seconds
