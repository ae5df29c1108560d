"""Fixtures of the processor tests: runs on the memory store and an in-memory topic."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pipeline_reliability import (
    MemoryCompletionPublisher,
    MemoryStore,
    ProcessorRun,
)
from pipeline_reliability.testing import FakeClock

DATE = "2026-01-31"
PHASE = "phase_3_analytics"


@pytest.fixture
def topic(fake_clock: FakeClock) -> MemoryCompletionPublisher:
    """An in-memory completion topic on the fake clock."""
    return MemoryCompletionPublisher(clock=fake_clock)


@pytest.fixture
def make_run(
    memory_store: MemoryStore, fake_clock: FakeClock, topic: MemoryCompletionPublisher
) -> Callable[..., ProcessorRun]:
    """ProcessorRuns of player_game_summary on DATE, locked on the memory store."""

    def make(owner: str = "instance-a", **options: Any) -> ProcessorRun:
        options.setdefault("publisher", topic)
        options.setdefault("lock", {"store": memory_store, "ttl": 60, "auto_renew": False})
        return ProcessorRun(
            options.pop("processor", "player_game_summary"),
            options.pop("date", DATE),
            phase=PHASE,
            owner=owner,
            clock=fake_clock,
            **options,
        )

    return make


