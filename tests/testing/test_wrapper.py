"""StoreWrapper: a pass-through StateStore that subclasses intercept."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest

from pipeline_reliability import MemoryStore, Outcome, Put, Snapshot, StateStore, StoreStats
from pipeline_reliability.testing import FaultyStore, StoreWrapper

R = TypeVar("R")
C = "docs"


def _inc(snap: Snapshot) -> Outcome[int]:
    value = (snap.data or {}).get("n", 0) + 1
    return Outcome(value, Put({"n": value}))


class Spy(StoreWrapper):
    """Remembers every transaction it passes on."""

    def __init__(self, inner: StateStore) -> None:
        super().__init__(inner)
        self.transacted: list[tuple[str, str]] = []

    def transact(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        """Record, then transact on the wrapped store."""
        self.transacted.append((collection, key))
        return super().transact(collection, key, fn, timeout=timeout)


def test_subclass_intercepting_transact_sees_every_call(memory_store: MemoryStore) -> None:
    """An overridden transact sees each call, and super() still applies the write."""
    spy = Spy(memory_store)

    results = [spy.transact(C, key, _inc) for key in ("a", "b", "a")]

    assert spy.transacted == [(C, "a"), (C, "b"), (C, "a")]
    assert results == [1, 1, 2]
    assert memory_store.get(C, "a").data == {"n": 2}


def test_get_passes_through(memory_store: MemoryStore) -> None:
    """get returns the wrapped store's snapshot of the document."""
    memory_store.transact(C, "d", _inc)
    wrapper = StoreWrapper(memory_store)

    snap = wrapper.get(C, "d")

    assert (snap.collection, snap.key, snap.data) == (C, "d", {"n": 1})
    assert snap.version == memory_store.get(C, "d").version
    assert not wrapper.get(C, "missing").exists


def test_stats_and_reset_stats_pass_through(memory_store: MemoryStore) -> None:
    """stats are the wrapped store's counts, and reset_stats resets them."""
    wrapper = StoreWrapper(memory_store)
    wrapper.transact(C, "d", _inc)
    wrapper.get(C, "d")

    assert wrapper.stats == memory_store.stats
    assert wrapper.stats.transactions == 1
    assert wrapper.stats.reads >= 1

    wrapper.reset_stats()

    assert memory_store.stats == StoreStats()
    assert wrapper.stats == StoreStats()


def test_callback_errors_propagate_unchanged(memory_store: MemoryStore) -> None:
    """An exception raised by the callback reaches the caller as is, and nothing is written."""
    wrapper = StoreWrapper(memory_store)

    def refuse(snap: Snapshot) -> Outcome[None]:
        raise KeyError("no")

    with pytest.raises(KeyError, match="no"):
        wrapper.transact(C, "d", refuse)
    assert memory_store.get(C, "d").data is None


def test_wrappers_are_state_stores(memory_store: MemoryStore) -> None:
    """StoreWrapper, its subclasses and FaultyStore all satisfy the StateStore protocol."""
    assert isinstance(StoreWrapper(memory_store), StateStore)
    assert isinstance(Spy(memory_store), StateStore)
    assert isinstance(FaultyStore(memory_store), StoreWrapper)


def test_the_timeout_keyword_passes_through(memory_store: MemoryStore) -> None:
    """timeout= reaches the wrapped store on get and transact (a bad one is refused there)."""
    from pipeline_reliability import InvalidInputError

    wrapper = StoreWrapper(memory_store)
    assert wrapper.transact(C, "t", _inc, timeout=0.5) == 1
    assert wrapper.get(C, "t", timeout=0.5).data == {"n": 1}
    with pytest.raises(InvalidInputError):
        wrapper.get(C, "t", timeout=0)
    with pytest.raises(InvalidInputError):
        wrapper.transact(C, "t", _inc, timeout=float("nan"))
