"""MemoryStore behaviour beyond the shared contract: options, dump, the default clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from store_helpers import COLLECTION, put

from pipeline_reliability import ConfigurationError, MemoryStore


def test_max_attempts_must_be_positive() -> None:
    """A store that could never commit is rejected at construction."""
    with pytest.raises(ConfigurationError):
        MemoryStore(max_attempts=0)


def test_dump_is_a_sorted_deep_copy() -> None:
    """dump() returns every document by collection and key; changing it changes nothing."""
    store = MemoryStore()
    put(store, "b", {"list": [1]})
    put(store, "a", {"x": 1})

    dumped = store.dump()
    dumped[COLLECTION]["b"]["list"].append(2)

    assert list(dumped[COLLECTION]) == ["a", "b"]
    assert store.dump() == {COLLECTION: {"a": {"x": 1}, "b": {"list": [1]}}}


def test_default_clock_is_the_system_clock() -> None:
    """Without a clock, Snapshot.now is the current UTC time."""
    store = MemoryStore()

    now = store.get(COLLECTION, "doc").now

    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)
