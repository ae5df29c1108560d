"""Fixtures for the tracker tests: a tracker on a fault-injectable MemoryStore and a FakeClock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tracker_helpers import EXPECTED, PHASE, MakeTracker, Publisher

from pipeline_reliability import MemoryStore, StateStore
from pipeline_reliability.completion import (
    CompletionTracker,
    MemoryExecutionLog,
    MemoryLedger,
    PhaseSpec,
)
from pipeline_reliability.retry import set_testing
from pipeline_reliability.testing import FakeClock, FaultyStore
from store_backends import SYNC_BACKENDS, make_store


@pytest.fixture(autouse=True)
def _no_retry_sleeps() -> Iterator[None]:
    """Retries run without backoff sleeps in these tests."""
    with set_testing(True):
        yield


@pytest.fixture
def store(memory_store: MemoryStore) -> FaultyStore:
    """The memory store behind a fault injector (no faults until a test asks)."""
    return FaultyStore(memory_store)


@pytest.fixture(params=SYNC_BACKENDS)
def backend(request: pytest.FixtureRequest, fake_clock: FakeClock) -> Iterator[StateStore]:
    """A MemoryStore, then a FirestoreStore on the emulator (the root ``store``,
    which this folder's ``store`` replaces with a faulty MemoryStore)."""
    yield from make_store(request, request.param, fake_clock, {})


@pytest.fixture
def ledger() -> MemoryLedger:
    """An in-memory fallback ledger."""
    return MemoryLedger()


@pytest.fixture
def execution_log() -> MemoryExecutionLog:
    """An in-memory execution log."""
    return MemoryExecutionLog()


@pytest.fixture
def spec() -> PhaseSpec:
    """Phase 3 with the production processor set, triggering phase 4."""
    return PhaseSpec(PHASE, EXPECTED, next_phase="phase4")


@pytest.fixture
def make_tracker(
    store: FaultyStore,
    ledger: MemoryLedger,
    execution_log: MemoryExecutionLog,
    fake_clock: FakeClock,
    spec: PhaseSpec,
) -> MakeTracker:
    """Build trackers sharing the store, ledger, log and clock (one per 'instance')."""

    def make(owner: str = "worker-1", **options: Any) -> CompletionTracker:
        options.setdefault("ledger", ledger)
        options.setdefault("execution_log", execution_log)
        phases = options.pop("phases", [spec])
        return CompletionTracker(
            options.pop("store", store), phases, clock=fake_clock, owner=owner, **options
        )

    return make


@pytest.fixture
def tracker(make_tracker: MakeTracker) -> CompletionTracker:
    """A tracker owned by 'worker-1'."""
    return make_tracker()


@pytest.fixture
def publisher() -> Publisher:
    """A recording publisher that succeeds until told otherwise."""
    return Publisher()
