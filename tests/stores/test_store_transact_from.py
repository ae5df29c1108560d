"""
``transact_from``: a transaction whose first attempt decides on a snapshot the
caller just read (issue 13). The same contract on both stores; on Firestore the
first attempt is one commit with a precondition, so the emulator decides.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from store_helpers import COLLECTION, increment, put

from pipeline_reliability import (
    Delete,
    InvalidInputError,
    MemoryStore,
    Outcome,
    Put,
    Snapshot,
    StateStore,
    StoreStats,
)
from pipeline_reliability.stores.firestore import FirestoreStore
from store_backends import SyncOverAsync

NOW = datetime(2026, 1, 31, tzinfo=UTC)


def _from(store: StateStore, first: Any, fn: Any, **kwargs: Any) -> Any:
    assert isinstance(store, MemoryStore | FirestoreStore | SyncOverAsync)
    return store.transact_from(first, fn, **kwargs)


def test_unchanged_document_commits_on_the_snapshot_read(store: StateStore) -> None:
    """One decision, on the very snapshot given; no second read; one transaction."""
    put(store, "d", {"n": 1})
    first = store.get(COLLECTION, "d")
    seen: list[Snapshot] = []

    def bump(snap: Snapshot) -> Outcome[int]:
        seen.append(snap)
        return increment(snap)

    store.reset_stats()
    assert _from(store, first, bump) == 2

    assert seen == [first]
    assert seen[0] is first
    assert store.get(COLLECTION, "d").data == {"n": 2}
    assert store.stats == StoreStats(reads=1, writes=1, transactions=1, conflicts=0)


def test_missing_document_is_created_when_still_missing(store: StateStore) -> None:
    """A snapshot of a missing document commits only while it is missing."""
    first = store.get(COLLECTION, "new")
    assert _from(store, first, increment) == 1
    assert store.get(COLLECTION, "new").data == {"n": 1}


def test_a_write_after_the_read_reruns_the_callback_on_fresh_state(store: StateStore) -> None:
    """The first attempt is discarded: the count is exact (2 + 1, not 1 + 1)."""
    put(store, "d", {"n": 1})
    first = store.get(COLLECTION, "d")
    put(store, "d", {"n": 2})  # another writer, between the read and the commit
    calls: list[Any] = []

    def bump(snap: Snapshot) -> Outcome[int]:
        calls.append((snap.data or {}).get("n"))
        return increment(snap)

    store.reset_stats()
    assert _from(store, first, bump) == 3

    assert calls == [1, 2]
    assert store.get(COLLECTION, "d").data == {"n": 3}
    stats = store.stats
    assert (stats.transactions, stats.conflicts, stats.writes) == (1, 1, 1)


def test_a_document_created_after_a_missing_read_is_not_overwritten(store: StateStore) -> None:
    """``exists=False`` side of the precondition: the creator's write survives."""
    first = store.get(COLLECTION, "race")
    put(store, "race", {"n": 10})
    assert _from(store, first, increment) == 11
    assert store.get(COLLECTION, "race").data == {"n": 11}


def test_a_document_deleted_after_the_read_is_not_resurrected_from_old_data(
    store: StateStore,
) -> None:
    """Deleted between read and commit: the callback runs again and sees it missing."""
    put(store, "gone", {"n": 5})
    first = store.get(COLLECTION, "gone")
    store.transact(COLLECTION, "gone", lambda _s: Outcome(None, Delete()))
    assert _from(store, first, increment) == 1
    assert store.get(COLLECTION, "gone").data == {"n": 1}


def test_identical_rewrite_after_the_read_still_commits(store: StateStore) -> None:
    """A write that changed nothing keeps the version: the decision is still valid."""
    put(store, "same", {"n": 1})
    first = store.get(COLLECTION, "same")
    put(store, "same", {"n": 1})
    store.reset_stats()
    assert _from(store, first, increment) == 2
    assert store.stats.conflicts == 0


def test_delete_commits_only_if_unchanged(store: StateStore) -> None:
    """A Delete decided on the snapshot is conditional too."""
    put(store, "del", {"n": 1})
    first = store.get(COLLECTION, "del")
    put(store, "del", {"n": 2})

    def delete_if_one(snap: Snapshot) -> Outcome[bool]:
        if (snap.data or {}).get("n") == 1:
            return Outcome(True, Delete())
        return Outcome(False)

    assert _from(store, first, delete_if_one) is False
    assert store.get(COLLECTION, "del").data == {"n": 2}
    put(store, "del", {"n": 1})
    assert _from(store, store.get(COLLECTION, "del"), delete_if_one) is True
    assert store.get(COLLECTION, "del").exists is False


def test_read_only_decision_writes_nothing(store: StateStore) -> None:
    """``Outcome`` without a write returns at once and costs no write."""
    put(store, "ro", {"n": 1})
    first = store.get(COLLECTION, "ro")
    store.reset_stats()
    assert _from(store, first, lambda s: Outcome((s.data or {})["n"])) == 1
    assert store.stats.writes == 0


def test_callback_error_and_bad_data_write_nothing(store: StateStore) -> None:
    """As in ``transact``: the callback's error propagates; bad data is invalid input."""
    put(store, "bad", {"n": 1})

    def boom(_snap: Snapshot) -> Outcome[None]:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        _from(store, store.get(COLLECTION, "bad"), boom)
    with pytest.raises(InvalidInputError):
        _from(store, store.get(COLLECTION, "bad"), lambda _s: Outcome(None, Put({"x": object()})))
    assert store.get(COLLECTION, "bad").data == {"n": 1}


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {"n": 1},
        "snapshot",
        Snapshot(COLLECTION, "k", {"n": 1}, None, NOW),
        Snapshot(COLLECTION, "k", None, 3, NOW),
        Snapshot(COLLECTION, "k", {"n": 1}, "v1", NOW),
        Snapshot(COLLECTION, "k", {"n": 1}, True, NOW),
        Snapshot(COLLECTION, "k", {"n": 1}, 1.5, NOW),
        Snapshot(COLLECTION, "k", ["n"], 3, NOW),  # type: ignore[arg-type]
    ],
)
def test_a_first_that_is_not_a_snapshot_is_invalid_input(store: StateStore, bad: Any) -> None:
    """Nothing is read or written for a bad ``first``."""
    store.reset_stats()
    with pytest.raises(InvalidInputError):
        _from(store, bad, increment)
    assert store.stats.writes == 0


def test_a_version_of_another_kind_of_store_is_invalid_input(store: StateStore) -> None:
    """A MemoryStore snapshot on Firestore and the reverse: refused, nothing written."""
    put(store, "x", {"n": 1})
    own = store.get(COLLECTION, "x")
    foreign = 7 if isinstance(own.version, datetime) else NOW
    with pytest.raises(InvalidInputError):
        _from(store, Snapshot(COLLECTION, "x", {"n": 1}, foreign, NOW), increment)
    assert store.get(COLLECTION, "x").data == {"n": 1}


def test_a_bad_timeout_is_invalid_input(store: StateStore) -> None:
    """``timeout`` is checked as in ``transact``."""
    first = store.get(COLLECTION, "t")
    with pytest.raises(InvalidInputError):
        _from(store, first, increment, timeout=-1)
    assert store.get(COLLECTION, "t").exists is False
