"""Shared fixtures: hypothesis profiles, a fake clock, a memory store."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from pipeline_reliability import MemoryStore
from pipeline_reliability.testing import FakeClock

settings.register_profile(
    "dev", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "nightly", deadline=None, max_examples=2000, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that moves only when the test says so."""
    return FakeClock()


@pytest.fixture
def memory_store(fake_clock: FakeClock) -> MemoryStore:
    """A fresh MemoryStore on the fake clock."""
    return MemoryStore(clock=fake_clock)
