"""
Limits on what the fleet sends to a dependency: a fleet-wide concurrency limit
(a semaphore of leased slots in the store).
"""

from __future__ import annotations

from ._async_concurrency import AsyncConcurrencyLimit
from ._concurrency import ConcurrencyLimit
from ._concurrency_async_slot import AsyncSlot
from ._concurrency_events import SlotEvent, SlotEventKind, SlotListener
from ._concurrency_slot import Slot
from ._slots import MAX_LIMIT, MAX_WAITERS

__all__ = [
    "MAX_LIMIT",
    "MAX_WAITERS",
    "AsyncConcurrencyLimit",
    "AsyncSlot",
    "ConcurrencyLimit",
    "Slot",
    "SlotEvent",
    "SlotEventKind",
    "SlotListener",
]
