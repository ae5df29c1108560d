"""Auto-renewal: the renewal step under a fake clock, and the thread on the real clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from lock_helpers import DATE, NAME, TTL

from pipeline_reliability import MemoryStore, Outcome, Put, Snapshot
from pipeline_reliability.lock import DateLock, Lease, break_lock
from pipeline_reliability.lock._renewer import RENEW_FRACTION, Renewer
from pipeline_reliability.testing import FakeClock, Fault, FaultyStore

INTERVAL = TTL * RENEW_FRACTION


class Recorder:
    """Collects on_lost calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[Lease, str]] = []
        self.called = threading.Event()

    def __call__(self, lease: Lease, reason: str) -> None:
        self.calls.append((lease, reason))
        self.called.set()


@pytest.fixture
def faulty(memory_store: MemoryStore) -> FaultyStore:
    """A FaultyStore around the test's MemoryStore."""
    return FaultyStore(memory_store)


def _lease(store: FaultyStore, clock: FakeClock, owner: str = "a") -> Lease:
    return DateLock(store, NAME, DATE, owner=owner, clock=clock, ttl=TTL).acquire()


def _drive(renewer: Renewer, clock: FakeClock, until: Callable[[], bool], limit: int = 100) -> int:
    """Run the renewer's steps, advancing the fake clock by each returned delay."""
    steps = 0
    while not until() and steps < limit:
        delay = renewer.step()
        steps += 1
        if delay is None:
            break
        clock.advance(delay)
    return steps


def test_healthy_renewal_keeps_the_lease_past_many_ttls(
    faulty: FaultyStore, fake_clock: FakeClock
) -> None:
    """Every step renews and asks to be called again a third of the TTL later."""
    lease = _lease(faulty, fake_clock)
    renewer = Renewer(lease, INTERVAL, Recorder())

    for _ in range(10):
        assert renewer.step() == pytest.approx(INTERVAL)
        fake_clock.advance(INTERVAL)

    lease.ensure_held()
    assert fake_clock.monotonic() > 3 * TTL


def test_transient_errors_are_retried_while_the_lease_is_provably_held(
    faulty: FaultyStore, fake_clock: FakeClock
) -> None:
    """A short outage is ridden out: no loss is declared and renewal resumes."""
    lease = _lease(faulty, fake_clock)
    on_lost = Recorder()
    renewer = Renewer(lease, INTERVAL, on_lost)
    fake_clock.advance(INTERVAL)
    faulty.fail_next(Fault.UNAVAILABLE, times=3)

    delays = [renewer.step() for _ in range(3)]
    assert all(d is not None and d < INTERVAL for d in delays)
    assert renewer.step() == pytest.approx(INTERVAL)

    assert on_lost.calls == []
    lease.ensure_held()


def test_loss_is_declared_only_after_the_local_deadline(
    faulty: FaultyStore, fake_clock: FakeClock
) -> None:
    """During a long outage the renewer retries until the TTL has passed, then signals once."""
    lease = _lease(faulty, fake_clock)
    on_lost = Recorder()
    renewer = Renewer(lease, INTERVAL, on_lost)
    start = fake_clock.monotonic()
    faulty.set_outage(True)

    _drive(renewer, fake_clock, until=lambda: bool(on_lost.calls))

    assert fake_clock.monotonic() - start >= TTL
    assert len(on_lost.calls) == 1
    assert on_lost.calls[0][0] is lease
    assert "deadline" in on_lost.calls[0][1]
    assert lease.lost
    assert renewer.step() is None  # stopped for good


def test_last_retry_lands_before_the_deadline(faulty: FaultyStore, fake_clock: FakeClock) -> None:
    """A renewal retried just before expiry saves the lease when the store comes back."""
    lease = _lease(faulty, fake_clock)
    on_lost = Recorder()
    renewer = Renewer(lease, INTERVAL, on_lost)
    faulty.set_outage(True)
    _drive(renewer, fake_clock, until=lambda: lease.local_remaining_seconds() <= 2.0)
    faulty.set_outage(False)

    assert lease.local_remaining_seconds() > 0
    assert renewer.step() == pytest.approx(INTERVAL)
    assert on_lost.calls == []
    lease.ensure_held()


def test_takeover_is_signalled_at_once(faulty: FaultyStore, fake_clock: FakeClock) -> None:
    """A renewal that finds the lease broken or superseded signals the loss immediately."""
    lease = _lease(faulty, fake_clock)
    on_lost = Recorder()
    renewer = Renewer(lease, INTERVAL, on_lost)
    break_lock(faulty, NAME, DATE)

    assert renewer.step() is None

    assert len(on_lost.calls) == 1
    assert "break" in on_lost.calls[0][1]


def test_a_failing_on_lost_hook_is_logged_not_raised(
    faulty: FaultyStore, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Exceptions from on_lost are logged; the renewer still stops cleanly."""

    def bad_hook(lease: Lease, reason: str) -> None:
        raise RuntimeError("hook broke")

    lease = _lease(faulty, fake_clock)
    renewer = Renewer(lease, INTERVAL, bad_hook)
    break_lock(faulty, NAME, DATE)

    assert renewer.step() is None
    assert "on_lost callback raised" in caplog.text


def test_unexpected_errors_declare_the_lease_lost(
    memory_store: MemoryStore, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed lock document stops renewal and signals the loss, with a logged traceback."""
    lease = DateLock(memory_store, NAME, DATE, owner="a", clock=fake_clock).acquire()
    on_lost = Recorder()
    renewer = Renewer(lease, INTERVAL, on_lost)
    memory_store.transact("date_locks", DateLock(memory_store, NAME, DATE).key, _corrupt)

    assert renewer.step() is None
    assert len(on_lost.calls) == 1
    assert "lease renewal failed unexpectedly" in caplog.text


def _corrupt(snap: Snapshot) -> Outcome[None]:
    return Outcome(None, Put({"token": "not a number"}))


def test_release_stops_the_renewal_thread(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """auto_renew starts one daemon thread per lease, and release stops and joins it."""
    lock = DateLock(memory_store, NAME, DATE, owner="a", clock=fake_clock, auto_renew=True)
    before = threading.active_count()

    lock.acquire()
    assert threading.active_count() == before + 1
    lock.release()

    assert threading.active_count() == before


class CountingStore(MemoryStore):
    """A MemoryStore that signals once it has run a given number of transactions."""

    def __init__(self, target: int) -> None:
        super().__init__()
        self.target = target
        self.reached = threading.Event()

    def transact(
        self, collection: str, key: str, fn: Callable[..., Any], *, timeout: float | None = None
    ) -> Any:
        result = super().transact(collection, key, fn, timeout=timeout)
        if self.stats.transactions >= self.target:
            self.reached.set()
        return result


def test_thread_keeps_a_short_lease_alive_on_the_real_clock() -> None:
    """On the real clock the thread renews a 1.5 s lease so that it outlives its TTL."""
    # 1.5 s (renewed every 0.5 s) rather than less: a busy CI machine can stall a
    # thread for a few hundred milliseconds, which must not look like a lost lease.
    ttl = 1.5
    store = CountingStore(target=1 + 4)  # the acquire, then four renewals
    lock = DateLock(store, NAME, DATE, owner="a", ttl=ttl, auto_renew=True)
    started = time.monotonic()
    lease = lock.acquire()
    first_expiry = lease.expires_at

    assert store.reached.wait(15.0)

    assert time.monotonic() - started > ttl
    lease.ensure_held()
    assert lease.expires_at is not None
    assert first_expiry is not None
    assert lease.expires_at > first_expiry
    lock.release()


def test_thread_signals_on_lost_when_the_lock_is_broken() -> None:
    """The renewal thread calls on_lost once when an operator breaks the lock."""
    store = MemoryStore()
    on_lost = Recorder()
    lock = DateLock(store, NAME, DATE, owner="a", ttl=0.3, auto_renew=True, on_lost=on_lost)
    lease = lock.acquire()

    break_lock(store, NAME, DATE)

    assert on_lost.called.wait(10.0)
    assert on_lost.calls[0][0] is lease
    assert lease.lost
