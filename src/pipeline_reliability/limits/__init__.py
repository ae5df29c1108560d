"""
Limits on what a fleet sends to the services it calls.

:class:`ConcurrencyLimit` (and its asyncio twin) is a fleet-wide semaphore:
at most ``limit`` holders at once across every process sharing the store,
each holding a slot leased on the store's time, waiters served in FIFO order.

:class:`AdaptiveRateLimiter` (and its asyncio twin) admits calls at a rate
that backs off multiplicatively on throttling signals and recovers
additively (AIMD), per process or sharing one fleet-wide budget through a
``StateStore`` that is written once per heartbeat period, never per call.
"""

from __future__ import annotations

from ._async_concurrency import AsyncConcurrencyLimit
from ._async_rate import AsyncAdaptiveRateLimiter
from ._concurrency import ConcurrencyLimit
from ._concurrency_async_slot import AsyncSlot
from ._concurrency_events import SlotEvent, SlotEventKind, SlotListener
from ._concurrency_slot import Slot
from ._rate import AdaptiveRateLimiter
from ._rate_events import (
    RateChangeEvent,
    RateLimiterEvent,
    RateLimiterListener,
    RateStoreErrorEvent,
)
from ._slots import MAX_CONCURRENCY_LIMIT, MAX_CONCURRENCY_WAITERS

__all__ = [
    "AdaptiveRateLimiter",
    "AsyncAdaptiveRateLimiter",
    "AsyncConcurrencyLimit",
    "AsyncSlot",
    "ConcurrencyLimit",
    "MAX_CONCURRENCY_LIMIT",
    "MAX_CONCURRENCY_WAITERS",
    "RateChangeEvent",
    "RateLimiterEvent",
    "RateLimiterListener",
    "RateStoreErrorEvent",
    "Slot",
    "SlotEvent",
    "SlotEventKind",
    "SlotListener",
]
