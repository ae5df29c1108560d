"""
The StateStore contract, run on every backend (``memory`` and ``firestore`` marks).

What a capability may rely on is exactly what passes here on both stores. On
the Firestore emulator, concurrency stays at 2-3 transactions per document:
each conflict costs the emulator's 2 s lock timeout (EMULATORS.md §3).
"""

from __future__ import annotations

import math
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from store_helpers import (
    COLLECTION,
    StaleVersionError,
    compare_and_set,
    increment,
    is_memory,
    put,
    run_threads,
)

from pipeline_reliability import (
    Delete,
    InvalidInputError,
    Outcome,
    Put,
    Snapshot,
    StateStore,
    StoreConflictError,
    StoreStats,
)
from pipeline_reliability.testing import FakeClock


def test_missing_document_reads_as_none(store: StateStore) -> None:
    """A document never written has no data and no version, by get and inside transact."""
    seen: list[Snapshot] = []

    def look(snap: Snapshot) -> Outcome[None]:
        seen.append(snap)
        return Outcome(None)

    snap = store.get(COLLECTION, "absent")
    store.transact(COLLECTION, "absent", look)

    assert (snap.data, snap.version, snap.exists) == (None, None, False)
    assert (seen[0].data, seen[0].version, seen[0].exists) == (None, None, False)
    assert (snap.collection, snap.key) == (COLLECTION, "absent")


def test_round_trip_normalises_values_identically(store: StateStore) -> None:
    """Tuples become lists, datetimes come back tz-aware UTC, nested maps and arrays survive."""
    plus_two = timezone(timedelta(hours=2))
    document: dict[str, Any] = {
        "text": "é✓",
        "int": -(2**63),
        "float": 1.5,
        "bool": True,
        "none": None,
        "bytes": b"\x00\xff",
        "tuple": (1, "a", None),
        "aware": datetime(2026, 1, 31, 14, 0, 0, 123456, tzinfo=plus_two),
        "naive": datetime(2026, 1, 31, 12, 0),
        "nested": {"map": {"deep": [{"tags": ("x", "y")}]}},
        "empty": {},
    }
    expected = {
        **document,
        "tuple": [1, "a", None],
        "aware": datetime(2026, 1, 31, 12, 0, 0, 123456, tzinfo=UTC),
        "naive": datetime(2026, 1, 31, 12, 0, tzinfo=UTC),
        "nested": {"map": {"deep": [{"tags": ["x", "y"]}]}},
    }

    put(store, "doc", document)
    data = store.get(COLLECTION, "doc").data

    assert expected == data
    assert data is not None
    assert data["aware"].utcoffset() == timedelta(0)
    assert data["naive"].utcoffset() == timedelta(0)


def test_snapshot_data_is_a_copy(store: StateStore) -> None:
    """Mutating a snapshot's data changes nothing in the store."""
    put(store, "doc", {"list": [1], "map": {"a": 1}})
    data = store.get(COLLECTION, "doc").data
    assert data is not None

    data["list"].append(2)
    data["map"]["a"] = 99

    assert store.get(COLLECTION, "doc").data == {"list": [1], "map": {"a": 1}}


def test_delete_existing_document(store: StateStore) -> None:
    """Delete removes the document and counts one write."""
    put(store, "doc", {"a": 1})
    store.reset_stats()

    result = store.transact(COLLECTION, "doc", lambda _s: Outcome("gone", Delete()))

    assert result == "gone"
    assert store.get(COLLECTION, "doc").data is None
    assert store.stats.writes == 1


def test_delete_missing_document_costs_no_write(store: StateStore) -> None:
    """Deleting a document that does not exist succeeds and writes nothing."""
    store.transact(COLLECTION, "absent", lambda _s: Outcome(None, Delete()))

    assert StoreStats(reads=1, writes=0, transactions=1, conflicts=0) == store.stats


def test_create_if_absent_race_has_exactly_one_winner(store: StateStore) -> None:
    """Concurrent create-if-absent: exactly one caller creates, the others see its document."""
    threads = 16 if is_memory(store) else 3
    # Every thread reads "absent" before any of them commits.
    all_read = threading.Barrier(threads, timeout=30)
    first_attempt = threading.local()

    def create(index: int) -> bool:
        def decide(snap: Snapshot) -> Outcome[bool]:
            if not getattr(first_attempt, "done", False):
                first_attempt.done = True
                all_read.wait()
            if snap.exists:
                return Outcome(False)
            return Outcome(True, Put({"owner": index}))

        return store.transact(COLLECTION, "claim", decide)

    results = run_threads(threads, create)

    assert results.count(True) == 1
    assert {"owner": results.index(True)} == store.get(COLLECTION, "claim").data
    assert store.stats.writes == 1


class TestUnderContention:
    """Read-modify-write under real concurrency stays exact."""

    @pytest.fixture
    def store_options(self) -> dict[str, Any]:
        """Enough attempts that contention never exhausts them (the emulator aborts a lot)."""
        return {"max_attempts": 50}

    def test_concurrent_increments_are_exact(self, store: StateStore) -> None:
        """Every increment from every thread is applied exactly once."""
        threads, each = (16, 150) if is_memory(store) else (2, 3)

        def work(_index: int) -> list[int]:
            return [store.transact(COLLECTION, "counter", increment) for _ in range(each)]

        # Switch threads as often as possible so that transactions interleave.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            returned = run_threads(threads, work)
        finally:
            sys.setswitchinterval(interval)

        assert {"n": threads * each} == store.get(COLLECTION, "counter").data
        # Each committed value was returned to exactly one caller.
        assert list(range(1, threads * each + 1)) == sorted(v for vs in returned for v in vs)
        assert threads * each == store.stats.writes

    def test_conflicting_writers_rerun_the_callback(self, store: StateStore) -> None:
        """Two transactions read the same version; both commit, the loser after a re-run."""
        put(store, "counter", {"n": 0})
        store.reset_stats()
        meet = threading.Barrier(2, timeout=30)
        first_attempt = threading.local()
        calls = []

        def decide(snap: Snapshot) -> Outcome[int]:
            calls.append(snap.data)
            if not getattr(first_attempt, "done", False):
                first_attempt.done = True
                # Both threads hold a read of n=0 before either commits.
                meet.wait()
            return increment(snap)

        results = run_threads(2, lambda _i: store.transact(COLLECTION, "counter", decide))

        assert store.get(COLLECTION, "counter").data == {"n": 2}
        assert sorted(results) == [1, 2]
        assert len(calls) >= 3
        assert store.stats.conflicts >= 1
        assert store.stats.writes == 2
        if is_memory(store):
            assert calls == [{"n": 0}, {"n": 0}, {"n": 1}]


class TestAttemptsRunOut:
    """When contention outlasts the attempts, the loser gets StoreConflictError."""

    @pytest.fixture
    def store_options(self) -> dict[str, Any]:
        """One attempt: any conflict is final."""
        return {"max_attempts": 1}

    def test_conflict_without_attempts_left_raises(self, store: StateStore) -> None:
        """A conflicting commit with no attempt left raises StoreConflictError(attempts=1)."""
        put(store, "counter", {"n": 0})
        store.reset_stats()
        meet = threading.Barrier(2, timeout=30)

        def decide(snap: Snapshot) -> Outcome[int]:
            meet.wait()
            return increment(snap)

        def run(_index: int) -> int | StoreConflictError:
            try:
                return store.transact(COLLECTION, "counter", decide)
            except StoreConflictError as exc:
                return exc

        results = run_threads(2, run)
        errors = [r for r in results if isinstance(r, StoreConflictError)]
        committed = [r for r in results if not isinstance(r, StoreConflictError)]

        assert errors
        if is_memory(store):
            # The emulator may time out both commits; MemoryStore always lets one win.
            assert len(errors) == 1
        assert [1] * len(committed) == committed
        assert all(e.attempts == 1 for e in errors)
        assert {"n": len(committed)} == store.get(COLLECTION, "counter").data
        assert len(errors) == store.stats.conflicts


def test_compare_and_set_rejects_a_stale_version(store: StateStore) -> None:
    """A CAS holding an outdated version fails and leaves the newer document in place."""
    put(store, "doc", {"v": 1})
    old = store.get(COLLECTION, "doc").version
    replaced = compare_and_set(store, "doc", old, {"v": 2})
    store.reset_stats()

    with pytest.raises(StaleVersionError):
        compare_and_set(store, "doc", old, {"v": 3})

    assert old == replaced
    assert store.get(COLLECTION, "doc").data == {"v": 2}
    assert store.stats.writes == 0


def test_compare_and_set_on_absent_document_creates_once(store: StateStore) -> None:
    """A CAS expecting no document creates it; a second one expecting none is stale."""
    compare_and_set(store, "doc", None, {"v": 1})

    with pytest.raises(StaleVersionError):
        compare_and_set(store, "doc", None, {"v": 2})

    assert store.get(COLLECTION, "doc").data == {"v": 1}


def test_callback_error_aborts_and_propagates_unchanged(store: StateStore) -> None:
    """An exception from the callback escapes as the same object and nothing is written."""
    put(store, "doc", {"a": 1})
    store.reset_stats()
    error = KeyError("decided not to")

    def decide(snap: Snapshot) -> Outcome[None]:
        raise error

    with pytest.raises(KeyError) as info:
        store.transact(COLLECTION, "doc", decide)

    assert error is info.value
    assert store.get(COLLECTION, "doc").data == {"a": 1}
    assert store.stats.writes == 0


def test_read_only_transaction_costs_no_write(store: StateStore) -> None:
    """A callback that writes nothing returns its result and costs one read, no write."""
    put(store, "doc", {"a": 1})
    store.reset_stats()

    result = store.transact(COLLECTION, "doc", lambda s: Outcome((s.data or {})["a"]))

    assert result == 1
    assert StoreStats(reads=1, writes=0, transactions=1, conflicts=0) == store.stats


@pytest.mark.parametrize("bad", ["a/b", "..", ".", "__x__", ""])
def test_invalid_ids_are_rejected_before_anything_happens(store: StateStore, bad: str) -> None:
    """Unusable collection or document ids raise InvalidInputError without touching the store."""
    called: list[Snapshot] = []

    def decide(snap: Snapshot) -> Outcome[None]:
        called.append(snap)
        return Outcome(None, Put({"a": 1}))

    for collection, key in [(bad, "doc"), (COLLECTION, bad)]:
        with pytest.raises(InvalidInputError):
            store.get(collection, key)
        with pytest.raises(InvalidInputError):
            store.transact(collection, key, decide)

    assert called == []
    assert StoreStats() == store.stats


@pytest.mark.parametrize(
    "document",
    [
        {"set": {1, 2}},
        {"object": object()},
        {"nested_array": [[1, 2]]},
        {"array_in_tuple": ([1],)},
        {"deep": {"set": frozenset()}},
        {1: "non-string key"},
        {"": "empty key"},
        {"too_big": 2**63},
    ],
    ids=["set", "object", "nested-array", "tuple-array", "deep-set", "int-key", "empty-key",
         "int65"],
)  # fmt: skip
def test_unsupported_values_are_rejected_before_writing(
    store: StateStore, document: dict[Any, Any]
) -> None:
    """A document Firestore cannot hold raises InvalidInputError and nothing is written."""
    with pytest.raises(InvalidInputError):
        store.transact(COLLECTION, "doc", lambda _s: Outcome(None, Put(document)))

    assert store.get(COLLECTION, "doc").data is None
    assert store.stats.writes == 0


def test_oversized_document_is_rejected(store: StateStore) -> None:
    """A document over Firestore's 1 MiB limit raises InvalidInputError and is not written."""
    with pytest.raises(InvalidInputError):
        put(store, "doc", {"blob": "x" * 1_100_000})

    assert store.get(COLLECTION, "doc").data is None


def test_store_time_is_tz_aware_and_never_goes_back(
    store: StateStore, fake_clock: FakeClock
) -> None:
    """Snapshot.now is tz-aware UTC and non-decreasing across reads and transactions."""
    times: list[datetime] = []

    def stamp(snap: Snapshot) -> Outcome[datetime]:
        return Outcome(snap.now, Put({"i": len(times)}))

    for _ in range(4):
        fake_clock.advance(1)
        times.append(store.transact(COLLECTION, "doc", stamp))
        times.append(store.get(COLLECTION, "doc").now)

    assert all(t.utcoffset() == timedelta(0) for t in times)
    assert times == sorted(times)


@pytest.mark.memory
def test_memory_store_time_is_the_injected_clock(fake_clock: FakeClock) -> None:
    """On MemoryStore, Snapshot.now is exactly the injected clock's time."""
    from pipeline_reliability import MemoryStore

    store = MemoryStore(clock=fake_clock)
    before = store.get(COLLECTION, "doc").now
    fake_clock.advance(timedelta(minutes=5))

    inside = store.transact(COLLECTION, "doc", lambda s: Outcome(s.now))

    assert fake_clock.now() - timedelta(minutes=5) == before
    assert fake_clock.now() == inside


def test_versions_change_on_every_write(store: StateStore) -> None:
    """Each write that changes the document gives a new version; a re-created document too."""
    versions = []
    # 1, 1.0 and True are different values to Firestore: each is a change.
    for value in [0, 1, 1.0, True, "1", [1]]:
        put(store, "doc", {"i": value})
        versions.append(store.get(COLLECTION, "doc").version)
    store.transact(COLLECTION, "doc", lambda _s: Outcome(None, Delete()))
    put(store, "doc", {"i": 0})
    versions.append(store.get(COLLECTION, "doc").version)

    assert None not in versions
    assert len(versions) == len(set(versions))


def test_rewriting_identical_data_keeps_the_version(store: StateStore) -> None:
    """A write that changes nothing keeps the version (as Firestore does) but still counts."""
    put(store, "doc", {"a": [1, {"b": 2}]})
    before = store.get(COLLECTION, "doc").version
    store.reset_stats()

    put(store, "doc", {"a": (1, {"b": 2})})

    assert before == store.get(COLLECTION, "doc").version
    assert store.stats.writes == 1


def test_stats_count_the_same_on_every_backend(store: StateStore) -> None:
    """A fixed sequence of operations gives identical counts on every backend."""
    store.get(COLLECTION, "a")  # 1 read
    put(store, "a", {"n": 1})  # 1 transaction, 1 read, 1 write
    store.transact(COLLECTION, "a", increment)  # 1 transaction, 1 read, 1 write
    store.transact(COLLECTION, "a", lambda _s: Outcome(None))  # 1 transaction, 1 read
    store.get(COLLECTION, "a")  # 1 read
    store.transact(COLLECTION, "a", lambda _s: Outcome(None, Delete()))  # 1 txn, 1 read, 1 write
    store.transact(COLLECTION, "a", lambda _s: Outcome(None, Delete()))  # 1 txn, 1 read
    with pytest.raises(ZeroDivisionError):
        store.transact(COLLECTION, "a", lambda _s: Outcome(1 // 0))  # 1 txn, 1 read

    assert StoreStats(reads=8, writes=3, transactions=6, conflicts=0) == store.stats

    store.reset_stats()
    assert StoreStats() == store.stats


# --- the per-call deadline (issue 10, item 5) ------------------------------------


def test_get_and_transact_take_a_timeout_keyword(store: StateStore) -> None:
    """Both backends accept ``timeout=`` (seconds) on get and transact, and None."""
    assert store.transact(COLLECTION, "t", increment, timeout=5.0) == 1
    assert store.transact(COLLECTION, "t", increment, timeout=None) == 2
    assert store.get(COLLECTION, "t", timeout=5).data == {"n": 2}
    assert store.get(COLLECTION, "t", timeout=None).data == {"n": 2}


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "1", True, 10**400, 1e12])
def test_a_bad_timeout_is_invalid_input_and_writes_nothing(store: StateStore, bad: Any) -> None:
    """A timeout that is not a positive, finite number of seconds is refused up front."""
    before = store.stats.writes
    with pytest.raises(InvalidInputError):
        store.get(COLLECTION, "t", timeout=bad)
    with pytest.raises(InvalidInputError):
        store.transact(COLLECTION, "t", increment, timeout=bad)
    assert store.stats.writes == before
    assert store.get(COLLECTION, "t").data is None


# --- hostile documents (issue 10, item 9) -----------------------------------------


def _recursive() -> dict[str, Any]:
    data: dict[str, Any] = {"a": 1}
    data["self"] = data
    return data


def _deep(levels: int) -> dict[str, Any]:
    data: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        data = {"x": data}
    return data


@pytest.mark.parametrize(
    "data",
    [
        _recursive(),
        {"list": [1, [2]]},
        _deep(1000),
        {"n": 2**63},
        {"n": -(2**63) - 1},
        {"s": "x" * (1 << 20)},
        {"s": "\ud800"},
        {"\ud800": 1},
        {"": 1},
        {1: 1},
        {"o": object()},
        {"when": datetime.min.replace(tzinfo=timezone(timedelta(hours=1)))},
    ],
    ids=["recursive", "nested-array", "deep", "int64+1", "int64-2", "oversize", "surrogate",
         "surrogate-key", "empty-key", "int-key", "object", "datetime-overflow"],
)
def test_hostile_documents_are_invalid_input_and_write_nothing(
    store: StateStore, data: dict[Any, Any]
) -> None:
    """What a store cannot hold is refused as InvalidInputError, before anything is written."""
    before = store.stats.writes

    def write(snap: Snapshot) -> Outcome[None]:
        return Outcome(None, Put(data))

    with pytest.raises(InvalidInputError):
        store.transact(COLLECTION, "hostile", write)
    assert store.stats.writes == before
    assert store.get(COLLECTION, "hostile").data is None


def test_nesting_up_to_the_limit_is_stored(store: StateStore) -> None:
    """The depth bound's boundary: 20 levels are stored, 21 are refused."""
    put(store, "deep", _deep(19))
    assert store.get(COLLECTION, "deep").data == _deep(19)
    with pytest.raises(InvalidInputError):
        put(store, "deeper", _deep(21))


def test_nan_and_extreme_floats_round_trip(store: StateStore) -> None:
    """Firestore stores NaN and infinities as doubles; MemoryStore does the same."""
    put(store, "floats", {"inf": float("inf"), "max": sys.float_info.max})
    assert store.get(COLLECTION, "floats").data == {"inf": float("inf"), "max": sys.float_info.max}
    put(store, "nan", {"nan": float("nan")})
    value = (store.get(COLLECTION, "nan").data or {})["nan"]
    assert math.isnan(value)
