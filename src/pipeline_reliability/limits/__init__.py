"""
Limits on what a fleet sends to the services it calls.

:class:`AdaptiveRateLimiter` (and its asyncio twin) admits calls at a rate
that backs off multiplicatively on throttling signals and recovers
additively (AIMD), per process or sharing one fleet-wide budget through a
``StateStore`` that is written once per heartbeat period, never per call.
"""

from __future__ import annotations

from ._async_rate import AsyncAdaptiveRateLimiter
from ._rate import AdaptiveRateLimiter
from ._rate_events import (
    RateChangeEvent,
    RateLimiterEvent,
    RateLimiterListener,
    RateStoreErrorEvent,
)

__all__ = [
    "AdaptiveRateLimiter",
    "AsyncAdaptiveRateLimiter",
    "RateChangeEvent",
    "RateLimiterEvent",
    "RateLimiterListener",
    "RateStoreErrorEvent",
]
