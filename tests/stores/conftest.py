"""
Fixtures of the store tests: the contract's four backends (the black hole is in tests/conftest.py).

The store contract runs on every backend: the sync stores and their async twins.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pipeline_reliability import StateStore
from pipeline_reliability.testing import FakeClock
from store_backends import ALL_BACKENDS, make_store


@pytest.fixture(params=ALL_BACKENDS)
def store(
    request: pytest.FixtureRequest, fake_clock: FakeClock, store_options: dict[str, Any]
) -> Iterator[StateStore]:
    """
    MemoryStore, FirestoreStore, AsyncMemoryStore, AsyncFirestoreStore in turn.

    The async ones run behind ``store_backends.SyncOverAsync`` (one event loop
    per calling thread), so one suite states the contract for all four.
    """
    yield from make_store(request, request.param, fake_clock, store_options)
