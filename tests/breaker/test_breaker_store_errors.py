"""When the store fails: fail_open, fail_closed, lost responses, malformed documents."""

from __future__ import annotations

import logging

import pytest
from breaker_helpers import BoomError, MakeBreaker, fail, ok, state_of, trip

from pipeline_reliability import (
    CircuitOpenError,
    MemoryStore,
    StoreError,
    StoreUnavailableError,
)
from pipeline_reliability.breaker import BreakerEvent, BreakerState, TransitionEvent
from pipeline_reliability.stores import Outcome, Put
from pipeline_reliability.testing import FakeClock, Fault, FaultyStore


@pytest.fixture
def faulty(memory_store: MemoryStore) -> FaultyStore:
    """The shared memory store behind fault injection."""
    return FaultyStore(memory_store)


def _store_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "store" in r.getMessage() and r.levelno == logging.ERROR]


def test_fail_open_serves_with_the_local_view_and_logs(
    make_breaker: MakeBreaker, faulty: FaultyStore, caplog: pytest.LogCaptureFixture
) -> None:
    """An unreachable store does not stop calls under fail_open; the failure is logged loudly."""
    breaker = make_breaker("a", faulty)

    with faulty.outage():
        assert breaker.call(ok) == "ok"

    (record,) = _store_errors(caplog)
    assert record.exc_info is not None
    assert "serving with the local view" in record.getMessage()
    assert breaker.status().store_error is not None


def test_fail_open_backs_off_the_failing_store(
    make_breaker: MakeBreaker, faulty: FaultyStore, fake_clock: FakeClock
) -> None:
    """During an outage the store is tried once per cache_ttl, not once per call."""
    breaker = make_breaker("a", faulty, cache_ttl=5)

    with faulty.outage():
        for _ in range(100):
            breaker.call(ok)
        assert len(faulty.injected) == 1
        fake_clock.advance(5)
        breaker.call(ok)
        assert len(faulty.injected) == 2
    fake_clock.advance(5)
    breaker.call(ok)

    assert breaker.status().store_error is None


def test_fail_closed_rejects_chained_from_the_store_error(
    make_breaker: MakeBreaker, faulty: FaultyStore, fake_clock: FakeClock
) -> None:
    """Under fail_closed an unreachable store rejects calls; the store error is the cause."""
    breaker = make_breaker("a", faulty, on_store_error="fail_closed", cache_ttl=5)
    ran: list[int] = []

    with faulty.outage(), pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: ran.append(1))

    assert ran == []
    assert isinstance(info.value.__cause__, StoreUnavailableError)
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)  # still backing off: no new store call
    assert len(faulty.injected) == 1
    fake_clock.advance(5)
    assert breaker.call(ok) == "ok"


def test_fail_open_trip_that_cannot_be_written_is_retried(
    make_breaker: MakeBreaker, faulty: FaultyStore, fake_clock: FakeClock,
    memory_store: MemoryStore,
) -> None:
    """A trip whose write fails keeps serving, then opens once the store is back."""
    breaker = make_breaker("a", faulty, failure_threshold=2, cache_ttl=5)
    breaker.call(ok)
    faulty.fail_next(Fault.UNAVAILABLE)
    trip(breaker, 2)
    assert memory_store.stats.writes == 0
    assert breaker.call(ok) == "ok"

    fake_clock.advance(5)
    trip(breaker, 1)

    assert state_of(breaker) is BreakerState.OPEN
    assert memory_store.stats.writes == 1


def test_lost_response_on_a_transition_is_adopted_as_our_own(
    make_breaker: MakeBreaker, faulty: FaultyStore, fake_clock: FakeClock,
    memory_store: MemoryStore, events: list[BreakerEvent],
) -> None:
    """A trip applied but unacknowledged is found on the next read and announced as local."""
    breaker = make_breaker("a", faulty, failure_threshold=1, cache_ttl=5)
    breaker.call(ok)
    faulty.fail_next(Fault.LOST_RESPONSE)
    trip(breaker, 1)
    assert memory_store.stats.writes == 1
    assert breaker.status().state is BreakerState.CLOSED  # it does not know yet

    fake_clock.advance(5)

    assert state_of(breaker) is BreakerState.OPEN
    (event,) = [e for e in events if isinstance(e, TransitionEvent)]
    assert (event.local, event.reason, event.generation) == (True, "failure_threshold", 1)
    assert memory_store.stats.writes == 1


def test_aborted_transaction_is_rerun_and_written_once(
    make_breaker: MakeBreaker, faulty: FaultyStore, memory_store: MemoryStore
) -> None:
    """An aborted attempt re-runs the decision; only one write lands."""
    breaker = make_breaker("a", faulty, failure_threshold=1)
    breaker.call(ok)
    faulty.fail_next(Fault.ABORTED)

    trip(breaker, 1)

    assert memory_store.stats.writes == 1
    assert state_of(breaker) is BreakerState.OPEN


def test_operator_actions_raise_store_errors(
    make_breaker: MakeBreaker, faulty: FaultyStore
) -> None:
    """force_open, force_close and reset report a failing store instead of hiding it."""
    breaker = make_breaker("a", faulty)

    for action in (breaker.force_open, breaker.force_close, breaker.reset):
        faulty.fail_next(Fault.CONTENTION)
        with pytest.raises(StoreError):
            action()


def test_a_malformed_document_is_a_store_error(
    make_breaker: MakeBreaker, memory_store: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A document this library did not write is reported, and fail_open keeps serving."""
    memory_store.transact(
        "circuit_breakers", "billing-api",
        lambda snap: Outcome(None, Put({"state": "sideways", "generation": 1})),
    )
    breaker = make_breaker("a")

    assert breaker.call(ok) == "ok"
    (record,) = _store_errors(caplog)
    assert record.exc_info is not None
    assert "malformed" in str(record.exc_info[1])


def test_a_failing_downstream_and_a_failing_store_keep_the_user_error(
    make_breaker: MakeBreaker, faulty: FaultyStore
) -> None:
    """When the trip write fails, the caller still sees the downstream's own exception."""
    breaker = make_breaker("a", faulty, failure_threshold=1)
    breaker.call(ok)
    faulty.fail_next(Fault.DEADLINE_EXCEEDED)

    with pytest.raises(BoomError) as info:
        breaker.call(fail)

    assert info.value.__context__ is None
    assert faulty.injected[-1][2] is Fault.DEADLINE_EXCEEDED


def test_fail_open_steps_aside_when_no_probe_can_be_elected(
    make_breaker: MakeBreaker, faulty: FaultyStore, fake_clock: FakeClock
) -> None:
    """Open, cool-down over, store down: fail_open admits the call rather than block forever."""
    breaker = make_breaker("a", faulty, reset_timeout=30)
    trip(breaker)
    fake_clock.advance(10)
    with faulty.outage():
        with pytest.raises(CircuitOpenError):
            breaker.call(ok)  # the cool-down is not over: the local view still rejects
        fake_clock.advance(20)

        assert breaker.call(ok) == "ok"


def test_fail_closed_keeps_rejecting_an_open_circuit_while_the_store_fails(
    make_breaker: MakeBreaker, faulty: FaultyStore, fake_clock: FakeClock
) -> None:
    """Under fail_closed nothing passes while the store is down, even after the cool-down."""
    breaker = make_breaker("a", faulty, reset_timeout=30, on_store_error="fail_closed")
    trip(breaker)
    fake_clock.advance(30)

    with faulty.outage(), pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)

    assert isinstance(info.value.__cause__, StoreUnavailableError)
