"""Time is injected everywhere: every lease, deadline and cooldown reads a ``Clock``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "utcnow"]


@runtime_checkable
class Clock(Protocol):
    """
    What the library needs to know about time.

    ``now`` is wall time (tz-aware UTC) for values written to stores;
    ``monotonic`` measures intervals inside one process; ``sleep`` waits, so a
    fake clock can move time instead of blocking.
    """

    def now(self) -> datetime:
        """Return the current wall time, tz-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Return seconds from an arbitrary, never decreasing origin."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Return the current wall time, tz-aware UTC."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Return ``time.monotonic()``."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds``."""
        if seconds > 0:
            time.sleep(seconds)


def utcnow() -> datetime:
    """Return the current UTC time (for places that take no clock, such as log rows)."""
    return datetime.now(UTC)
