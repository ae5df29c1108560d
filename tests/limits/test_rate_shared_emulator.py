"""
The fleet-wide budget: shares that add up to the fleet rate, one heartbeat per
period, throttles that travel, and a store that fails. On MemoryStore with a
FakeClock, then three instances on the Firestore emulator in real time.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from rate_helpers import FakeApi, ThrottledError

from pipeline_reliability import MemoryStore, RateLimitTimeoutError
from pipeline_reliability.limits import (
    AdaptiveRateLimiter,
    RateChangeEvent,
    RateLimiterEvent,
    RateStoreErrorEvent,
)
from pipeline_reliability.stores import Outcome, Snapshot, StateStore
from pipeline_reliability.testing import FakeClock, FaultyStore

R = TypeVar("R")
FLEET = 30.0
SHARE = 10.0
TICK = 0.01


class Counted(FaultyStore):
    """One instance's view of the shared store: counts its own transactions."""

    def __init__(self, inner: StateStore) -> None:
        super().__init__(inner)
        self.transactions = 0
        self.timeouts: list[float | None] = []

    def transact(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        self.transactions += 1
        self.timeouts.append(timeout)
        return super().transact(collection, key, fn, timeout=timeout)


def _fleet(
    memory_store: MemoryStore, clock: FakeClock, names: str = "abc", **options: Any
) -> tuple[list[AdaptiveRateLimiter], list[Counted]]:
    stores = [Counted(memory_store) for _ in names]
    limiters = [
        AdaptiveRateLimiter(
            "bigquery-dml", rate=FLEET, min_rate=0.3, share=SHARE, store=store,
            instance_id=name, clock=clock, **options,
        )
        for name, store in zip(names, stores, strict=True)
    ]
    return limiters, stores


def _drive(clock: FakeClock, limiters: list[AdaptiveRateLimiter], seconds: float) -> list[int]:
    """Greedy callers: every tick each instance takes every token it can without waiting."""
    admitted = [0] * len(limiters)
    end = clock.monotonic() + seconds
    while clock.monotonic() < end:
        for i, limiter in enumerate(limiters):
            while True:
                try:
                    limiter.acquire(timeout=0)
                except RateLimitTimeoutError:
                    break
                admitted[i] += 1
        clock.advance(TICK)
    return admitted


def test_three_instances_together_stay_within_the_fleet_rate(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """Shares add up to the fleet rate (+ a burst each + the min_rate floors); R/3 each at last."""
    limiters, stores = _fleet(memory_store, fake_clock)
    seconds = 12 * SHARE
    admitted = _drive(fake_clock, limiters, seconds)

    slack = len(limiters) * 1 + 0.3 * seconds  # one token each, and the newcomers' floors
    assert sum(admitted) <= FLEET * seconds + slack
    assert sum(admitted) >= 0.9 * FLEET * seconds
    assert [x.rate for x in limiters] == [pytest.approx(FLEET / 3)] * 3
    assert [x.members for x in limiters] == [3, 3, 3]
    # Store operations: one transaction (one read, one write) per instance per period.
    periods = seconds / SHARE
    assert [s.transactions for s in stores] == [periods] * 3
    assert memory_store.stats.writes == 3 * periods
    assert memory_store.stats.reads == 3 * periods
    assert {t for s in stores for t in s.timeouts} == {0.25}


def test_a_newcomer_admits_its_floor_until_the_others_make_room(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """A alone takes the fleet rate; B joining takes min_rate/2 until A's next heartbeat."""
    (a, b), _ = _fleet(memory_store, fake_clock, "ab")
    a.acquire()
    assert a.rate == FLEET
    b.acquire()
    assert b.rate == pytest.approx(0.3 / 2)
    assert a.rate == FLEET  # A has not heard of B yet: B must not take A's share
    fake_clock.advance(SHARE)
    a.acquire()
    assert a.rate == FLEET / 2
    b.acquire()
    assert b.rate == FLEET / 2


def test_a_heartbeat_is_due_exactly_one_period_after_the_last(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """Boundary: at ``share`` after a heartbeat the next one runs; 1 µs before, none."""
    (a,), (store,) = _fleet(memory_store, fake_clock, "a", burst=100)
    a.acquire()
    fake_clock.advance(SHARE - 1e-6)
    a.acquire()
    assert store.transactions == 1
    fake_clock.advance(1e-6)
    a.acquire()
    assert store.transactions == 2


def test_a_throttle_seen_by_one_instance_reaches_the_others_once(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """B decreases at once; A and C within two periods, once; nobody hears its own throttle."""
    limiters, _ = _fleet(memory_store, fake_clock)
    _drive(fake_clock, limiters, 3 * SHARE)
    b = limiters[1]
    events: list[RateLimiterEvent] = []
    for limiter in limiters:
        limiter.add_listener(events.append)
    b.throttled()
    assert b.fleet_rate == FLEET / 2
    _drive(fake_clock, limiters, 2 * SHARE)

    assert [x.fleet_rate for x in limiters] == [FLEET / 2] * 3
    reasons = sorted(
        (e.instance_id, e.reason) for e in events
        if isinstance(e, RateChangeEvent) and e.reason != "share"
    )
    assert reasons == [("a", "fleet_throttled"), ("b", "throttled"), ("c", "fleet_throttled")]


def test_a_silent_members_share_returns_after_its_lease(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """C stops calling: after three periods A and B share the fleet rate between two."""
    limiters, _ = _fleet(memory_store, fake_clock)
    _drive(fake_clock, limiters, 3 * SHARE)
    assert limiters[0].rate == pytest.approx(FLEET / 3)
    _drive(fake_clock, limiters[:2], 6 * SHARE)
    assert [x.members for x in limiters[:2]] == [2, 2]
    assert [x.rate for x in limiters[:2]] == [FLEET / 2] * 2


def test_a_store_outage_keeps_the_last_share_then_falls_back_to_the_floor(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """
    Store down: calls go on (no wait on the store beyond its timeout) at the
    last share while the lease lasts, then at min_rate / members; one event
    per failed heartbeat; the share comes back with the store.
    """
    limiters, stores = _fleet(memory_store, fake_clock)
    _drive(fake_clock, limiters, 3 * SHARE)
    a = limiters[0]
    events: list[RateLimiterEvent] = []
    a.add_listener(events.append)
    with stores[0].outage():
        _drive(fake_clock, [a], 2 * SHARE)
        assert a.rate == pytest.approx(FLEET / 3)
        _drive(fake_clock, [a], 1.5 * SHARE)
        assert a.rate == pytest.approx(0.3 / 3)
    errors = [e for e in events if isinstance(e, RateStoreErrorEvent)]
    assert len(errors) == 4  # one per period, never per call
    assert [e.reason for e in events if isinstance(e, RateChangeEvent)] == ["store_fallback"]
    _drive(fake_clock, limiters, 3 * SHARE)
    assert a.rate == pytest.approx(FLEET / 3)


def test_a_hanging_store_delays_one_caller_by_store_timeout_and_nobody_else() -> None:
    """
    A heartbeat on a store that does not answer ends after ``store_timeout``
    (real time, bounded waits); meanwhile another thread of the same instance
    is admitted at once on the last share (single flight).
    """
    memory = MemoryStore()
    store = FaultyStore(memory)
    limiter = AdaptiveRateLimiter(
        "api", rate=1000, burst=1000, share=0.5, store=store, store_timeout=0.3,
        instance_id="i",
    )
    limiter.acquire()  # joined: a full share
    time.sleep(0.51)  # the next heartbeat is due
    store.hang_next()
    blocked = threading.Thread(target=limiter.acquire)
    started = time.monotonic()
    blocked.start()
    assert store.wait_hanging(timeout=10)
    other_started = time.monotonic()
    limiter.acquire(timeout=0)  # not held up by the heartbeat in flight
    assert time.monotonic() - other_started < 0.2
    blocked.join(timeout=10)
    assert not blocked.is_alive()
    assert 0.25 <= time.monotonic() - started < 5
    assert limiter.rate == 1000  # the lease (1.5 s) still runs: the last share is kept


# --- the Firestore emulator, real time ------------------------------------------------


@pytest.mark.firestore
def test_item2_three_instances_share_a_fleet_rate_on_the_firestore_emulator(
    firestore_project: str,
) -> None:
    """
    Three instances (each with its own FirestoreStore, so each counts its own
    operations) call greedily for 6 s at a fleet rate of 30/s with a 1.5 s
    share: together they admit at most 30/s x 6 s + one token each + the
    min_rate floors, each ends with a third, and each writes at most once per
    period (on the emulator's server time for the leases).

    One thread drives the three in turn (``acquire(timeout=0)``, a few ms
    apart): the emulator locks a document pessimistically, and overlapping
    transactions on it wait seconds or time out (EMULATORS.md), which real
    instances, whose heartbeats are spread over the period, do not meet. The
    limiter's own thread safety is shown in test_rate_limiter.py.
    """
    from pipeline_reliability.stores.firestore import FirestoreStore

    fleet, share, seconds, floor = 30.0, 1.5, 6.0, 0.3
    stores = [FirestoreStore(project=firestore_project) for _ in range(3)]
    limiters = [
        AdaptiveRateLimiter(
            "scraper", rate=fleet, min_rate=floor, share=share, store=store, instance_id=name,
            store_timeout=10,  # the emulator on a shared CI machine is slow; production: 250 ms
        )
        for name, store in zip("abc", stores, strict=True)
    ]
    events: list[RateLimiterEvent] = []
    for limiter in limiters:
        limiter.add_listener(events.append)
    for store in stores:
        store.get("warm-up", "channel")  # the client's first RPC opens its channel: seconds
        store.reset_stats()
    admitted = [0, 0, 0]
    start = time.monotonic()
    try:
        while time.monotonic() - start < seconds:
            for i, limiter in enumerate(limiters):
                try:
                    limiter.acquire(timeout=0)
                except RateLimitTimeoutError:
                    continue
                if time.monotonic() - start < seconds:
                    admitted[i] += 1
            time.sleep(0.003)
        elapsed = time.monotonic() - start

        errors = [e for e in events if isinstance(e, RateStoreErrorEvent)]
        assert sum(admitted) <= fleet * elapsed + 3 + floor * elapsed, (admitted, errors)
        assert sum(admitted) >= 0.3 * fleet * seconds, (admitted, errors)
        assert [x.members for x in limiters] == [3, 3, 3], errors
        assert [x.rate for x in limiters] == [pytest.approx(fleet / 3)] * 3, errors
        for store in stores:
            stats = store.stats
            assert 2 <= stats.writes <= elapsed / share + 1, stats
            assert stats.writes == stats.transactions == stats.reads - stats.conflicts
    finally:
        for store in stores:
            store.close()


@pytest.mark.firestore
def test_item2_a_fleet_sharing_a_budget_converges_under_a_fake_429_source(
    firestore_project: str,
) -> None:
    """
    Must show, on the Firestore emulator: three instances sharing one budget
    through the store start at 3x an API's fleet-wide capacity C; the 429s
    travel in the heartbeats, and the fleet settles around C with few 429s.

    The limiters' time is one FakeClock (the instances take turns, each
    waiting on it as a real caller would); the store is the emulator, whose
    server time judges the members' leases (all stay alive: their heartbeats
    come every few hundred milliseconds of real time).
    """
    from pipeline_reliability.stores.firestore import FirestoreStore

    clock = FakeClock()
    capacity, share = 30, 5.0
    api = FakeApi(clock, capacity)
    stores = [FirestoreStore(project=firestore_project) for _ in range(3)]
    limiters = [
        AdaptiveRateLimiter(
            "fleet-429", rate=3 * capacity, min_rate=3.0, cooldown=1.0, share=share, store=store,
            instance_id=name, clock=clock, store_timeout=10,
        )
        for name, store in zip("abc", stores, strict=True)
    ]
    for store in stores:
        store.get("warm-up", "channel")  # the first RPC opens the channel: seconds
        store.reset_stats()
    try:
        while clock.monotonic() < 120:
            for limiter in limiters:
                with contextlib.suppress(ThrottledError):
                    limiter.call(api)
    finally:
        for store in stores:
            store.close()

    late = [ok for at, ok in api.log if at >= 60]  # the second half, after the back-off
    assert 0.5 * capacity <= sum(late) / 60 <= capacity + 1
    assert late.count(False) / len(late) < 0.1
    assert [x.members for x in limiters] == [3, 3, 3]
    assert sum(x.fleet_rate for x in limiters) / 3 <= 1.5 * capacity
    for store in stores:
        assert store.stats.writes <= 120 / share + 1  # a heartbeat per period, never per call
