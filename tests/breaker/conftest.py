"""Fixtures for the breaker tests: breakers on one MemoryStore driven by a FakeClock."""

from __future__ import annotations

from typing import Any

import pytest
from breaker_helpers import NAME, MakeBreaker

from pipeline_reliability import MemoryStore, StateStore
from pipeline_reliability.breaker import BreakerEvent, CircuitBreaker
from pipeline_reliability.testing import FakeClock


@pytest.fixture
def events() -> list[BreakerEvent]:
    """A list that the breakers made by ``make_breaker`` append their events to."""
    return []


@pytest.fixture
def make_breaker(
    memory_store: MemoryStore, fake_clock: FakeClock, events: list[BreakerEvent]
) -> MakeBreaker:
    """Build breakers named NAME on the shared memory store and fake clock."""

    def make(instance_id: str, store: StateStore | None = None, **options: Any) -> CircuitBreaker:
        options.setdefault("failure_threshold", 3)
        options.setdefault("reset_timeout", 30)
        options.setdefault("cache_ttl", 5)
        options.setdefault("probe_timeout", 30)
        breaker = CircuitBreaker(
            options.pop("name", NAME),
            store if store is not None else memory_store,
            clock=fake_clock,
            instance_id=instance_id,
            **options,
        )
        breaker.add_listener(events.append)
        return breaker

    return make
