"""
A circuit breaker shared across instances through a ``StateStore``, which
writes only on a state transition (DESIGN F6).
"""

from __future__ import annotations

from ._breaker import CircuitBreaker
from ._config import BreakerConfig
from ._events import (
    BreakerEvent,
    BreakerListener,
    RejectionEvent,
    TransitionEvent,
    TripReportEvent,
)
from ._state import BreakerState
from ._status import BreakerStatus

__all__ = [
    "BreakerConfig",
    "BreakerEvent",
    "BreakerListener",
    "BreakerState",
    "BreakerStatus",
    "CircuitBreaker",
    "RejectionEvent",
    "TransitionEvent",
    "TripReportEvent",
]
