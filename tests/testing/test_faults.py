"""FaultyStore: every fault by plan, by seeded probability, during an outage."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from pipeline_reliability import (
    MemoryStore,
    Outcome,
    Put,
    ReliabilityError,
    Snapshot,
    StateStore,
    StoreConflictError,
    StoreStats,
    StoreUnavailableError,
)
from pipeline_reliability.testing import FakeClock, Fault, FaultyStore

C = "docs"


def _inc(snap: Snapshot) -> Outcome[int]:
    value = (snap.data or {}).get("n", 0) + 1
    return Outcome(value, Put({"n": value}))


def _n(store: StateStore) -> int | None:
    data = store.get(C, "d").data
    return None if data is None else int(data["n"])


@pytest.fixture
def inner(fake_clock: FakeClock) -> MemoryStore:
    """The real store behind the faults."""
    return MemoryStore(clock=fake_clock)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.UNAVAILABLE, StoreUnavailableError),
        (Fault.DEADLINE_EXCEEDED, StoreUnavailableError),
        (Fault.CONTENTION, StoreConflictError),
    ],
)
def test_failing_faults_apply_nothing(
    inner: MemoryStore, fault: Fault, error: type[ReliabilityError]
) -> None:
    """UNAVAILABLE, DEADLINE_EXCEEDED and CONTENTION raise and leave the store untouched."""
    store = FaultyStore(inner, plan={0: fault})

    with pytest.raises(error) as info:
        store.transact(C, "d", _inc)

    assert _n(inner) is None
    assert getattr(info.value, "maybe_committed", False) is False
    assert error.transient


def test_planned_fault_hits_only_its_operation(inner: MemoryStore) -> None:
    """Operations are numbered in call order; only the planned one fails."""
    store = FaultyStore(inner, plan={1: Fault.UNAVAILABLE})

    store.transact(C, "d", _inc)  # op 0
    with pytest.raises(StoreUnavailableError):
        store.get(C, "d")  # op 1
    store.transact(C, "d", _inc)  # op 2

    assert _n(inner) == 2
    assert store.injected == [(1, "get", Fault.UNAVAILABLE)]


def test_lost_response_applies_the_write_then_fails(inner: MemoryStore) -> None:
    """LOST_RESPONSE commits, then raises StoreUnavailableError(maybe_committed=True)."""
    store = FaultyStore(inner, plan={0: Fault.LOST_RESPONSE})

    with pytest.raises(StoreUnavailableError) as info:
        store.transact(C, "d", _inc)

    assert info.value.maybe_committed is True
    assert _n(inner) == 1
    assert inner.stats.writes == 1


def test_lost_response_on_get_reads_then_fails(inner: MemoryStore) -> None:
    """A lost read response costs the read but returns nothing."""
    store = FaultyStore(inner, plan={0: Fault.LOST_RESPONSE})

    with pytest.raises(StoreUnavailableError):
        store.get(C, "d")

    assert inner.stats.reads == 1


def test_aborted_reruns_the_callback_and_writes_once(inner: MemoryStore) -> None:
    """ABORTED discards the first attempt's decision; the callback runs again, commits once."""
    store = FaultyStore(inner, plan={0: Fault.ABORTED})
    seen: list[dict[str, Any] | None] = []

    def decide(snap: Snapshot) -> Outcome[int]:
        seen.append(snap.data)
        return _inc(snap)

    result = store.transact(C, "d", decide)

    assert result == 1
    assert seen == [None, None]
    assert _n(inner) == 1
    assert inner.stats.writes == 1


def test_aborted_on_get_is_unavailable(inner: MemoryStore) -> None:
    """A get cannot be aborted; ABORTED there fails like UNAVAILABLE."""
    store = FaultyStore(inner, plan={0: Fault.ABORTED})

    with pytest.raises(StoreUnavailableError):
        store.get(C, "d")


def test_fail_next_takes_precedence_and_counts_down(inner: MemoryStore) -> None:
    """fail_next(fault, times) fails exactly the next `times` operations."""
    store = FaultyStore(inner)
    store.fail_next(Fault.UNAVAILABLE, times=2)

    for _ in range(2):
        with pytest.raises(StoreUnavailableError):
            store.transact(C, "d", _inc)
    store.transact(C, "d", _inc)

    assert _n(inner) == 1


def test_outage_fails_everything_while_it_lasts(inner: MemoryStore) -> None:
    """Inside outage() every operation is unavailable; afterwards the store works again."""
    store = FaultyStore(inner)

    with store.outage():
        with pytest.raises(StoreUnavailableError):
            store.get(C, "d")
        with pytest.raises(StoreUnavailableError):
            store.transact(C, "d", _inc)
    store.transact(C, "d", _inc)
    store.set_outage(True)
    with pytest.raises(StoreUnavailableError):
        store.get(C, "d")
    store.set_outage(False)

    assert _n(store) == 1


def _pattern(seed: int, probability: float, ops: int = 200) -> list[tuple[int, str, Fault]]:
    store = FaultyStore(MemoryStore(), probability=probability, seed=seed)
    for _ in range(ops):
        with contextlib.suppress(StoreUnavailableError, StoreConflictError):
            store.transact(C, "d", _inc)
    return store.injected


def test_probability_with_a_seed_is_reproducible() -> None:
    """The same seed injects the same faults into the same operations."""
    first = _pattern(seed=7, probability=0.3)

    assert first == _pattern(seed=7, probability=0.3)
    assert first != _pattern(seed=8, probability=0.3)
    assert 30 < len(first) < 90
    assert {f for _, _, f in first} == {Fault.UNAVAILABLE, Fault.ABORTED, Fault.LOST_RESPONSE}


def test_probability_bounds() -> None:
    """Probability 0 injects nothing, 1 injects into every operation, others are rejected."""
    assert _pattern(seed=1, probability=0.0, ops=50) == []
    assert len(_pattern(seed=1, probability=1.0, ops=50)) == 50
    with pytest.raises(ValueError, match="probability"):
        FaultyStore(MemoryStore(), probability=1.5)


def test_probability_draws_only_from_the_given_faults(inner: MemoryStore) -> None:
    """`faults` restricts what the random draw can inject."""
    store = FaultyStore(inner, probability=1.0, faults=[Fault.CONTENTION], seed=3)

    for _ in range(5):
        with pytest.raises(StoreConflictError):
            store.transact(C, "d", _inc)

    assert {f for _, _, f in store.injected} == {Fault.CONTENTION}


def test_operations_filter_spares_other_operations(inner: MemoryStore) -> None:
    """With operations=("transact",), reads never fail, even during an outage."""
    store = FaultyStore(inner, operations=("transact",))

    with store.outage():
        assert store.get(C, "d").data is None
        with pytest.raises(StoreUnavailableError):
            store.transact(C, "d", _inc)


def test_stats_are_the_inner_stores(inner: MemoryStore) -> None:
    """stats and reset_stats pass through to the wrapped store."""
    store = FaultyStore(inner)
    store.transact(C, "d", _inc)

    assert store.stats == inner.stats == StoreStats(reads=1, writes=1, transactions=1)
    store.reset_stats()
    assert inner.stats == StoreStats()


def test_faulty_store_is_a_state_store(inner: MemoryStore) -> None:
    """A FaultyStore can stand in wherever a StateStore is expected."""
    assert isinstance(FaultyStore(inner), StateStore)


# --- hangs: a store that does not answer (issue 10, item 5) -----------------------


def test_hang_blocks_until_the_callers_timeout_then_raises(inner: MemoryStore) -> None:
    """A hang waits for the call's own timeout, then fails as a deadline does; no write."""
    import time

    store = FaultyStore(inner)
    store.hang_next()
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        store.transact(C, "d", _inc, timeout=0.05)
    assert 0.04 <= time.monotonic() - started < 5
    assert info.value.maybe_committed is False
    assert _n(inner) is None
    assert store.hangs == [(0, "transact")]
    assert store.injected == []


def test_hang_is_not_a_fault_so_drawing_every_fault_never_blocks() -> None:
    """Machines that draw from list(Fault) keep their behaviour: no Fault hangs."""
    assert "HANG" not in Fault.__members__


def test_hang_without_a_timeout_uses_hang_timeout(inner: MemoryStore) -> None:
    """A call that gives no timeout hangs for the wrapper's hang_timeout."""
    store = FaultyStore(inner, hang_timeout=0.05)
    store.hang_next()
    with pytest.raises(StoreUnavailableError, match="hang"):
        store.get(C, "d")


def test_release_hangs_ends_a_hang_at_once_and_later_ones_hang_again(inner: MemoryStore) -> None:
    """release_hangs() frees blocked calls (they raise); wait_hanging() sees them."""
    import threading

    store = FaultyStore(inner)
    errors: list[BaseException] = []

    def blocked() -> None:
        try:
            store.get(C, "d", timeout=60)
        except StoreUnavailableError as exc:
            errors.append(exc)

    with store.outage(hang=True):
        thread = threading.Thread(target=blocked)
        thread.start()
        assert store.wait_hanging(1, timeout=10)
        assert store.hanging == 1
        store.release_hangs()
        thread.join(timeout=10)
        assert not thread.is_alive()
        assert len(errors) == 1
        assert store.hanging == 0
        assert not store.wait_hanging(1, timeout=0.05)  # nothing hangs now
        with pytest.raises(StoreUnavailableError):
            store.get(C, "d", timeout=0.02)  # a later call hangs again (to its timeout)


def test_the_timeout_is_passed_to_the_inner_store(inner: MemoryStore) -> None:
    """Without a fault, timeout= reaches the wrapped store (checked there)."""
    store = FaultyStore(inner)
    assert store.transact(C, "d", _inc, timeout=1.0) == 1
    assert store.get(C, "d", timeout=1.0).data == {"n": 1}
    with pytest.raises(ReliabilityError):
        store.get(C, "d", timeout=-1)
