"""Many instances, one circuit: caching, probe election, leases, generations and the quorum."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from breaker_helpers import BoomError, MakeBreaker, fail, missing_key, ok, state_of, trip

from pipeline_reliability import CircuitOpenError, MemoryStore
from pipeline_reliability.breaker import (
    BreakerEvent,
    BreakerState,
    CircuitBreaker,
    TransitionEvent,
    TripReportEvent,
)
from pipeline_reliability.testing import FakeClock


def test_f6_healthy_fleet_of_11_instances_makes_no_writes(
    make_breaker: MakeBreaker, memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """F6: 11 instances x 255 healthy calls cost 0 writes and ≤ 1 read per cache_ttl each."""
    breakers = [make_breaker(f"worker-{i}", cache_ttl=5) for i in range(11)]

    for _ in range(255):
        for breaker in breakers:
            breaker.call(ok)
        fake_clock.advance(240 / 255)  # the production incident's 4 minutes

    stats = memory_store.stats
    assert stats.writes == 0
    assert stats.transactions == 0
    assert stats.reads <= 11 * (240 // 5 + 1)
    assert memory_store.dump() == {}


def test_f6_reads_are_cached_per_instance(
    make_breaker: MakeBreaker, memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """Within cache_ttl an instance reads the store once, however many calls it makes."""
    breaker = make_breaker("a", cache_ttl=5)

    for _ in range(1000):
        breaker.call(ok)
    assert memory_store.stats.reads == 1
    fake_clock.advance(5)
    breaker.call(ok)

    assert memory_store.stats.reads == 2


def test_other_instances_reject_within_cache_ttl(
    make_breaker: MakeBreaker, fake_clock: FakeClock
) -> None:
    """After A opens the circuit, B admits on its fresh cache, then rejects once it expires."""
    a, b = make_breaker("a", cache_ttl=5), make_breaker("b", cache_ttl=5)
    b.call(ok)
    trip(a)

    fake_clock.advance(4.9)
    assert b.call(ok) == "ok"  # the staleness the cache allows
    fake_clock.advance(0.1)

    with pytest.raises(CircuitOpenError) as info:
        b.call(ok)
    assert info.value.retry_after == timedelta(seconds=25)


def test_one_probe_fleet_wide_after_reset_timeout(
    make_breaker: MakeBreaker, fake_clock: FakeClock, memory_store: MemoryStore
) -> None:
    """After reset_timeout exactly one instance runs a probe; the others reject as half-open."""
    a, b, c = (make_breaker(x, cache_ttl=1) for x in "abc")
    trip(a)
    fake_clock.advance(30)
    started, release = threading.Event(), threading.Event()

    def slow_probe() -> str:
        started.set()
        release.wait(5)
        return "recovered"

    prober = threading.Thread(target=b.call, args=(slow_probe,))
    prober.start()
    assert started.wait(5)
    try:
        for other in (a, c):
            with pytest.raises(CircuitOpenError) as info:
                other.call(ok)
            assert info.value.state is BreakerState.HALF_OPEN
        with pytest.raises(CircuitOpenError):
            b.call(ok)  # the prober's single slot is in use
    finally:
        release.set()
        prober.join()

    assert state_of(b) is BreakerState.CLOSED
    fake_clock.advance(1)
    assert state_of(a) is state_of(c) is BreakerState.CLOSED
    # open, elect, close: three transitions, three writes.
    assert memory_store.stats.writes == 3


def test_failed_probe_reopens_for_another_reset_timeout(
    make_breaker: MakeBreaker, fake_clock: FakeClock
) -> None:
    """A failing probe reopens the circuit at a new generation, with a fresh cool-down."""
    a = make_breaker("a")
    trip(a)
    fake_clock.advance(30)

    with pytest.raises(BoomError):
        a.call(fail)

    status = a.status()
    assert (status.state, status.generation) == (BreakerState.OPEN, 3)
    with pytest.raises(CircuitOpenError) as info:
        a.call(ok)
    assert info.value.retry_after == timedelta(seconds=30)


def test_several_probes_and_a_success_threshold(
    make_breaker: MakeBreaker, fake_clock: FakeClock
) -> None:
    """With 3 probe slots and a success threshold of 2, the second success closes."""
    a = make_breaker("a", half_open_probes=3, success_threshold=2)
    trip(a)
    fake_clock.advance(30)

    a.call(ok)
    assert a.status().state is BreakerState.HALF_OPEN
    a.call(ok)

    assert a.status().state is BreakerState.CLOSED


def test_neutral_probes_use_up_the_slots_until_the_lease_expires(
    make_breaker: MakeBreaker, fake_clock: FakeClock
) -> None:
    """An excluded error uses a probe slot; with none left the circuit waits for the lease."""
    a = make_breaker("a", excluded=(KeyError,))
    trip(a)
    fake_clock.advance(30)
    with pytest.raises(KeyError):
        a.call(missing_key)

    with pytest.raises(CircuitOpenError) as info:
        a.call(ok)
    assert info.value.state is BreakerState.HALF_OPEN
    # The lease (probe_timeout 30) plus a cool-down (reset_timeout 30).
    assert info.value.retry_after == timedelta(seconds=60)
    fake_clock.advance(60)

    assert a.call(ok) == "ok"  # re-elected (generation 3), probe succeeded
    assert a.status().generation == 4


def test_a_crashed_prober_does_not_block_recovery(
    make_breaker: MakeBreaker, fake_clock: FakeClock, events: list[BreakerEvent]
) -> None:
    """
    When the prober never reports, its lease expires; after one more cool-down
    (the lost probe counts as failed) another instance takes over.
    """
    a, b = make_breaker("a", cache_ttl=1), make_breaker("b", cache_ttl=1)
    trip(a)
    fake_clock.advance(30)
    b._admit()  # b wins the probe slot and then "crashes": its call never completes

    fake_clock.advance(59)
    with pytest.raises(CircuitOpenError):
        a.call(ok)
    fake_clock.advance(1)
    assert a.call(ok) == "ok"

    reasons = [e.reason for e in events if isinstance(e, TransitionEvent) and e.local]
    assert reasons == [
        "failure_threshold", "reset_timeout_elapsed", "probe_lease_expired", "probe_succeeded",
    ]


def test_a_result_for_an_older_generation_changes_nothing(
    make_breaker: MakeBreaker, memory_store: MemoryStore
) -> None:
    """A call admitted before a reset that fails afterwards does not count toward a new trip."""
    a = make_breaker("a", failure_threshold=1)
    b = make_breaker("b")
    a.force_open()
    a.force_close()  # generation 2, closed
    started, release = threading.Event(), threading.Event()

    def slow_failure() -> None:
        started.set()
        release.wait(5)
        raise BoomError

    def run() -> None:
        with pytest.raises(BoomError):
            a.call(slow_failure)

    worker = threading.Thread(target=run)
    worker.start()
    assert started.wait(5)
    b.reset()  # no write: already closed without reports
    b.force_open()
    b.force_close()  # generation 4 while a's call is in flight
    a.status(refresh=True)
    release.set()
    worker.join()

    assert state_of(a) is BreakerState.CLOSED
    assert memory_store.stats.writes == 4


def test_concurrent_trips_from_many_instances_write_once(
    make_breaker: MakeBreaker, memory_store: MemoryStore
) -> None:
    """Ten instances tripping at the same time: one write opens it, the rest adopt it."""
    breakers = [make_breaker(f"w{i}", failure_threshold=1) for i in range(10)]
    for breaker in breakers:
        breaker.call(ok)  # everyone has read the closed circuit
    barrier = threading.Barrier(len(breakers))

    def run(breaker: CircuitBreaker) -> None:
        barrier.wait()
        with pytest.raises(BoomError):
            breaker.call(fail)

    threads = [threading.Thread(target=run, args=(b,)) for b in breakers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert memory_store.stats.writes == 1
    assert {b.status().state for b in breakers} == {BreakerState.OPEN}


def test_concurrent_election_has_one_winner(
    make_breaker: MakeBreaker, fake_clock: FakeClock, memory_store: MemoryStore
) -> None:
    """Eight instances racing for the probe after reset_timeout: exactly one is admitted."""
    breakers = [make_breaker(f"w{i}", cache_ttl=60) for i in range(8)]
    trip(breakers[0])
    for breaker in breakers:
        breaker.status(refresh=True)
    fake_clock.advance(30)
    barrier = threading.Barrier(len(breakers))
    admitted: list[str] = []
    lock = threading.Lock()

    def run(breaker: CircuitBreaker) -> None:
        barrier.wait()
        try:
            breaker._admit()
        except CircuitOpenError:
            return
        with lock:
            admitted.append(breaker.instance_id)

    threads = [threading.Thread(target=run, args=(b,)) for b in breakers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(admitted) == 1
    assert memory_store.stats.writes == 2  # open + elect


def test_quorum_one_sick_instance_cannot_open_the_fleet(
    make_breaker: MakeBreaker, memory_store: MemoryStore, events: list[BreakerEvent]
) -> None:
    """With open_quorum=2 one instance's failures write one trip report and open nothing."""
    a = make_breaker("a", open_quorum=2)
    b = make_breaker("b", open_quorum=2)

    trip(a, 10)
    assert state_of(a) is BreakerState.CLOSED
    assert memory_store.stats.writes == 1  # one report, not one per failure
    (report,) = [e for e in events if isinstance(e, TripReportEvent)]
    assert (report.reporters, report.quorum) == (1, 2)

    trip(b)
    assert state_of(b) is BreakerState.OPEN
    assert memory_store.stats.writes == 2
    doc = memory_store.dump()["circuit_breakers"]["billing-api"]
    assert (doc["generation"], doc["trip_reports"], doc["reason"]) == (1, 1, "open_quorum")


def test_quorum_reports_expire_with_the_window(
    make_breaker: MakeBreaker, fake_clock: FakeClock, memory_store: MemoryStore
) -> None:
    """Reports older than the window no longer count; a sick instance re-reports per window."""
    options = {"open_quorum": 2, "window": 10, "cache_ttl": 1}
    a, b = make_breaker("a", **options), make_breaker("b", **options)
    trip(a)
    fake_clock.advance(10)
    trip(a)  # a fresh report replaces the expired one
    assert memory_store.stats.writes == 2
    fake_clock.advance(10)

    trip(b)

    assert state_of(b) is BreakerState.CLOSED  # a's report is 10 s old: expired
    assert memory_store.dump()["circuit_breakers"]["billing-api"]["trip_reports"] == 3


def test_names_can_be_any_string(memory_store: MemoryStore, fake_clock: FakeClock) -> None:
    """Slashes, dots, reserved-looking and very long names are escaped into distinct ids."""
    names = ["a/b", "..", "__x__", "ünï cødé", "x" * 5000, "a%2Fb"]
    for name in names:
        breaker = CircuitBreaker(name, memory_store, clock=fake_clock, failure_threshold=1)
        trip(breaker, 1)

    docs = memory_store.dump()["circuit_breakers"]
    assert len(docs) == len(names)
    assert sorted(d["name"] for d in docs.values()) == sorted(names)


def test_missing_document_is_closed_generation_zero(
    make_breaker: MakeBreaker, memory_store: MemoryStore
) -> None:
    """A circuit never written reads as CLOSED at generation 0 and is not created by reading."""
    status = make_breaker("a").status(refresh=True)

    assert (status.state, status.generation, status.read_at) == (
        BreakerState.CLOSED, 0, memory_store.clock.now()
    )
    assert memory_store.dump() == {}


def test_item19_a_live_trip_report_is_not_rewritten_by_further_failures(
    make_breaker: MakeBreaker, memory_store: MemoryStore
) -> None:
    """
    open_quorum=2: ten failures on one instance cost ONE transaction (its trip
    report), not one per failure past the threshold; the others are counted here.
    """
    a = make_breaker("a", open_quorum=2)
    a.call(ok)  # the view is read once
    memory_store.reset_stats()

    trip(a, times=10)

    stats = memory_store.stats
    assert (stats.transactions, stats.writes) == (1, 1)
    assert a.status().reporters == 1
