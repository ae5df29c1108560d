"""IdempotencyLedger: claim, complete, release, expiry, payload mismatch, store faults."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline_reliability import (
    ConfigurationError,
    InvalidInputError,
    MemoryStore,
    PayloadMismatchError,
    StateStore,
)
from pipeline_reliability.dedup import Claimed, Completed, IdempotencyLedger, InProgress
from pipeline_reliability.testing import FakeClock, Fault, FaultyStore

TTL = timedelta(minutes=1)
WINDOW = timedelta(hours=1)


def ledger(store: StateStore, owner: str, **options: Any) -> IdempotencyLedger:
    """A ledger for one worker."""
    options.setdefault("claim_ttl", TTL)
    options.setdefault("expires_after", WINDOW)
    return IdempotencyLedger(store, owner=owner, **options)


def test_first_claim_wins_and_a_second_worker_sees_in_progress(store: StateStore) -> None:
    """One claimer gets Claimed; another, while it works, gets InProgress naming it."""
    a, b = ledger(store, "a"), ledger(store, "b")

    first = a.claim("msg-1", {"date": "2026-01-31"})
    second = b.claim("msg-1", {"date": "2026-01-31"})

    assert isinstance(first, Claimed)
    assert first.attempt == 1
    assert isinstance(second, InProgress)
    assert second.owner == "a"
    assert second.expires_at == first.expires_at


def test_completed_key_returns_the_stored_result(store: StateStore) -> None:
    """After complete, every claim of the key returns Completed with the result."""
    a, b = ledger(store, "a"), ledger(store, "b")
    claim = a.claim("msg-1", "payload")
    assert isinstance(claim, Claimed)

    done = a.complete(claim, {"rows": 3, "at": datetime(2026, 1, 31, tzinfo=UTC)})
    again = b.claim("msg-1", "payload")

    assert isinstance(again, Completed)
    assert again.result == {"rows": 3, "at": "2026-01-31T00:00:00+00:00"}
    assert done.result == again.result


def test_same_key_with_another_payload_is_a_mismatch(store: StateStore) -> None:
    """Reusing a key with a different payload raises PayloadMismatchError and writes nothing."""
    a = ledger(store, "a")
    claim = a.claim("msg-1", {"n": 1})
    assert isinstance(claim, Claimed)

    with pytest.raises(PayloadMismatchError) as caught:
        a.claim("msg-1", {"n": 2})

    assert caught.value.key == "msg-1"
    assert caught.value.expected_hash == claim.payload_hash
    assert isinstance(a.claim("msg-1", {"n": 1}), InProgress)


def test_payload_hash_ignores_key_order(store: StateStore) -> None:
    """The payload hash is of canonical JSON: dict key order does not matter."""
    a = ledger(store, "a")
    a.claim("msg-1", {"x": 1, "y": [1, 2]})

    assert isinstance(a.claim("msg-1", {"y": [1, 2], "x": 1}), InProgress)


def test_release_lets_the_next_delivery_retry_at_once(store: StateStore) -> None:
    """A released claim is taken over immediately, with the attempt counted."""
    a, b = ledger(store, "a"), ledger(store, "b")
    claim = a.claim("msg-1")
    assert isinstance(claim, Claimed)

    assert a.release(claim) is True
    retry = b.claim("msg-1")

    assert isinstance(retry, Claimed)
    assert retry.attempt == 2


def test_release_never_touches_another_workers_claim(store: StateStore) -> None:
    """A plain-key release by a non-owner, or a stale Claimed, releases nothing (F7)."""
    a, b = ledger(store, "a"), ledger(store, "b")
    claim = a.claim("msg-1")
    assert isinstance(claim, Claimed)

    assert b.release("msg-1") is False
    assert b.release(Claimed("msg-1", "b#9", 1, claim.expires_at, claim.payload_hash)) is False
    assert isinstance(b.claim("msg-1"), InProgress)
    assert a.release("msg-1") is True


def test_a_crashed_workers_claim_expires(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """After claim_ttl (store time) another worker may take the key over."""
    a, b = ledger(memory_store, "a"), ledger(memory_store, "b")
    stale = a.claim("msg-1")
    assert isinstance(stale, Claimed)

    fake_clock.advance(TTL - timedelta(seconds=1))
    assert isinstance(b.claim("msg-1"), InProgress)
    fake_clock.advance(timedelta(seconds=1))
    taken = b.claim("msg-1")

    assert isinstance(taken, Claimed)
    assert taken.attempt == 2
    assert a.release(stale) is False
    assert isinstance(a.claim("msg-1"), InProgress)


def test_a_late_completion_of_a_taken_over_claim_is_still_recorded(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """The work was done: completing a lapsed claim records it, and the first result stays."""
    a, b = ledger(memory_store, "a"), ledger(memory_store, "b")
    slow = a.claim("msg-1")
    fake_clock.advance(TTL)
    fast = b.claim("msg-1")
    assert isinstance(slow, Claimed)
    assert isinstance(fast, Claimed)

    a.complete(slow, "slow")
    second = b.complete(fast, "fast")

    assert second.result == "slow"


def test_completed_entries_are_forgotten_after_the_window(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """expires_after is the dedup window: afterwards the key is new again, any payload."""
    a = ledger(memory_store, "a")
    claim = a.claim("msg-1", 1)
    assert isinstance(claim, Claimed)
    a.complete(claim, "done")

    fake_clock.advance(WINDOW - timedelta(seconds=1))
    assert isinstance(a.claim("msg-1", 1), Completed)
    fake_clock.advance(timedelta(seconds=1))
    fresh = a.claim("msg-1", 2)

    assert isinstance(fresh, Claimed)
    assert fresh.attempt == 1


def test_a_lost_claim_response_is_retried_into_the_same_claim(memory_store: MemoryStore) -> None:
    """A claim whose commit succeeded but whose response was lost is not InProgress to itself."""
    store = FaultyStore(memory_store)
    a = ledger(store, "a")
    store.fail_next(Fault.LOST_RESPONSE)

    claim = a.claim("msg-1")

    assert isinstance(claim, Claimed)
    assert store.injected[0][2] is Fault.LOST_RESPONSE
    assert a.release(claim) is True


def test_lost_complete_and_release_responses_are_safe_to_retry(memory_store: MemoryStore) -> None:
    """complete and release repeat harmlessly after a lost response."""
    store = FaultyStore(memory_store)
    a = ledger(store, "a")
    first = a.claim("m1")
    second = a.claim("m2")
    assert isinstance(first, Claimed)
    assert isinstance(second, Claimed)

    store.fail_next(Fault.LOST_RESPONSE)
    assert a.complete(first, 7).result == 7
    store.fail_next(Fault.LOST_RESPONSE)
    assert a.release(second) is True
    assert isinstance(a.claim("m1"), Completed)


def test_results_must_be_json(store: StateStore) -> None:
    """A result JSON cannot represent raises InvalidInputError and leaves the claim in place."""
    a = ledger(store, "a")
    claim = a.claim("msg-1")
    assert isinstance(claim, Claimed)

    with pytest.raises(InvalidInputError):
        a.complete(claim, object())

    assert isinstance(ledger(store, "b").claim("msg-1"), InProgress)


def test_completing_an_unknown_plain_key_is_refused(store: StateStore) -> None:
    """complete(key) without any entry for it has no payload to record: InvalidInputError."""
    with pytest.raises(InvalidInputError, match="no claim"):
        ledger(store, "a").complete("never-claimed", 1)


def test_unsafe_keys_are_encoded(memory_store: MemoryStore) -> None:
    """Any string works as a key, including slashes and very long ones."""
    a = ledger(memory_store, "a")

    assert isinstance(a.claim("projects/p/subscriptions/s/123"), Claimed)
    assert isinstance(a.claim("k" * 5000), Claimed)
    with pytest.raises(InvalidInputError):
        a.claim("")


@pytest.mark.parametrize(
    "options",
    [
        {"claim_ttl": timedelta(0)},
        {"claim_ttl": timedelta(hours=2), "expires_after": timedelta(hours=1)},
        {"collection": "a/b"},
        {"owner": ""},
    ],
)
def test_bad_configuration_is_refused(memory_store: MemoryStore, options: dict[str, Any]) -> None:
    """Impossible durations, collection ids or owners raise ConfigurationError."""
    with pytest.raises(ConfigurationError):
        IdempotencyLedger(memory_store, **options)


def test_concurrent_claimers_get_exactly_one_claim() -> None:
    """Eight threads claiming one key at once: exactly one Claimed, the rest InProgress."""
    store = MemoryStore(max_attempts=50)
    ledgers = [ledger(store, f"w{i}") for i in range(8)]
    barrier = threading.Barrier(len(ledgers))
    results: list[Any] = []

    def run(worker: IdempotencyLedger) -> None:
        barrier.wait()
        results.append(worker.claim("msg-1", "payload"))

    threads = [threading.Thread(target=run, args=(w,)) for w in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(type(r).__name__ for r in results) == ["Claimed"] + ["InProgress"] * 7


def test_item7_two_ledgers_with_one_owner_never_both_claim(store: StateStore) -> None:
    """The owner is a label: a second ledger with the same owner finds the key in progress."""
    first, second = ledger(store, "worker"), ledger(store, "worker")

    claim = first.claim("msg-1", {"n": 1})
    again = second.claim("msg-1", {"n": 1})

    assert isinstance(claim, Claimed)
    assert isinstance(again, InProgress)
    assert again.owner == "worker"
    assert second.release("msg-1") is False  # not its claim, whatever the label says
    assert isinstance(first.claim("msg-1", {"n": 1}), InProgress)  # nor a re-claim by call
    assert first.release("msg-1") is True


def test_claim_ids_are_unique_per_call_and_per_ledger(store: StateStore) -> None:
    """Claim ids never repeat across ledgers sharing an owner, nor across calls."""
    ids = set()
    for i in range(3):
        worker = ledger(store, "worker")
        for j in range(3):
            claim = worker.claim(f"msg-{i}-{j}")
            assert isinstance(claim, Claimed)
            ids.add(claim.claim_id)

    assert len(ids) == 9
