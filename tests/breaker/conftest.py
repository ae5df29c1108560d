"""Fixtures for the breaker tests: breakers on one MemoryStore driven by a FakeClock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pipeline_reliability import MemoryStore, StateStore
from pipeline_reliability.breaker import BreakerEvent, BreakerState, CircuitBreaker
from pipeline_reliability.testing import FakeClock

MakeBreaker = Callable[..., CircuitBreaker]
NAME = "billing-api"


class BoomError(Exception):
    """What the protected downstream raises when it fails."""


def fail() -> None:
    """A downstream call that fails."""
    raise BoomError("downstream failed")


def missing_key() -> None:
    """A call that raises KeyError (excluded in some tests)."""
    raise KeyError("missing")


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """The breaker's state (a call, so that type checkers do not narrow it between reads)."""
    return breaker.state


def ok() -> str:
    """A downstream call that succeeds."""
    return "ok"


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


def trip(breaker: CircuitBreaker, times: int = 3) -> None:
    """Make ``times`` failing calls through ``breaker``."""
    for _ in range(times):
        with pytest.raises(BoomError):
            breaker.call(fail)
