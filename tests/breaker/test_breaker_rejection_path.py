"""The OPEN rejection hot path (issue 13): cheap, yet the same error, metric and timing."""

from __future__ import annotations

import contextlib
import pickle
import uuid
from datetime import timedelta
from typing import Any

import pytest

from otel_helpers import metric_points
from pipeline_reliability import BreakerState, CircuitOpenError, MemoryStore
from pipeline_reliability.breaker import BreakerEvent, CircuitBreaker, RejectionEvent
from pipeline_reliability.testing import FakeClock


def _tripped(clock: FakeClock, name: str = "fast") -> CircuitBreaker:
    breaker = CircuitBreaker(name, MemoryStore(clock=clock), failure_threshold=3,
                             minimum_calls=3, reset_timeout=60.0, cache_ttl=5.0, clock=clock)
    for _ in range(3):
        with contextlib.suppress(RuntimeError):
            breaker.call(_down)
    assert breaker.state is BreakerState.OPEN
    return breaker


def _down() -> None:
    raise RuntimeError("down")


def test_circuit_open_error_builds_its_message_and_timedelta_on_demand() -> None:
    """Fields live in args; str, retry_after and pickling give what the old error gave."""
    exc = CircuitOpenError("svc", BreakerState.OPEN, retry_after=timedelta(seconds=2.5))

    assert (exc.name, exc.state, exc.retry_after) == ("svc", BreakerState.OPEN,
                                                       timedelta(seconds=2.5))
    assert str(exc) == "circuit 'svc' is open; retry after 2.5s"
    copy = pickle.loads(pickle.dumps(exc))
    assert (type(copy), str(copy), copy.retry_after) == (CircuitOpenError, str(exc),
                                                         exc.retry_after)
    assert str(CircuitOpenError("svc", "open")) == "circuit 'svc' is open"
    assert CircuitOpenError("svc", "open").retry_after is None


def test_a_tripped_breaker_rejects_on_the_fast_path_with_the_full_error(
    fake_clock: FakeClock, metric_reader: Any
) -> None:
    """Every rejection is counted, says when to retry, and fn never runs."""
    breaker = _tripped(fake_clock, f"fast-{uuid.uuid4().hex}")  # its own metric series
    fake_clock.advance(timedelta(seconds=1))
    ran: list[int] = []

    for _ in range(5):
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(lambda: ran.append(1))

    assert ran == []
    assert info.value.state is BreakerState.OPEN
    assert info.value.retry_after == timedelta(seconds=59)
    points = metric_points(metric_reader, "pipeline_reliability.breaker.rejections")
    mine = [p.value for p in points
            if p.attributes["breaker"] == breaker.name and p.attributes["reason"] == "open"]
    assert sum(mine) == 5


def test_listeners_still_get_every_rejection(fake_clock: FakeClock) -> None:
    """With a listener the slow path runs: one RejectionEvent per rejected call."""
    breaker = _tripped(fake_clock, "listened")
    events: list[BreakerEvent] = []
    breaker.add_listener(events.append)

    for _ in range(3):
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: None)

    assert [type(e) for e in events] == [RejectionEvent] * 3


def test_the_fast_path_ends_with_the_cache(fake_clock: FakeClock) -> None:
    """At exactly the cool-down's end the call is no longer rejected from the cache."""
    breaker = _tripped(fake_clock, "boundary")
    fake_clock.advance(timedelta(seconds=60) - timedelta(microseconds=1))
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: None)
    fake_clock.advance(timedelta(microseconds=1))
    assert breaker.call(lambda: "probe") == "probe"  # the probe is admitted
