"""Fixtures for the lock tests: locks on a MemoryStore driven by a FakeClock."""

from __future__ import annotations

from typing import Any

import pytest
from lock_helpers import DATE, NAME, TTL, MakeLock

from pipeline_reliability import MemoryStore, StateStore
from pipeline_reliability.lock import DateLock
from pipeline_reliability.testing import FakeClock


@pytest.fixture
def make_lock(memory_store: MemoryStore, fake_clock: FakeClock) -> MakeLock:
    """Build DateLocks on NAME/DATE sharing the memory store and the fake clock."""

    def make(owner: str, store: StateStore | None = None, **options: Any) -> DateLock:
        options.setdefault("ttl", TTL)
        return DateLock(
            store if store is not None else memory_store,
            options.pop("name", NAME),
            options.pop("date", DATE),
            owner=owner,
            clock=fake_clock,
            **options,
        )

    return make
