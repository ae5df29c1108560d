"""Constants and small helpers shared by the lock tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline_reliability import MemoryStore
from pipeline_reliability.lock import DateLock

NAME = "phase4"
DATE = "2026-01-31"
TTL = 60.0
COLLECTION = "date_locks"

MakeLock = Callable[..., DateLock]
"""The ``make_lock`` fixture: ``make_lock(owner, store=None, **DateLock options)``."""


def lock_doc(store: MemoryStore, lock: DateLock) -> dict[str, Any] | None:
    """The lock's document as stored (without counting a read)."""
    return store.dump().get(lock.collection, {}).get(lock.key)
