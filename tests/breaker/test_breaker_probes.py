"""
Probe durations (issue 10, item 6): probes have their own timeout, at most
``half_open_probes`` run within their lease fleet-wide however long they take,
and a probe past its timeout counts as failed.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from breaker_helpers import BoomError, MakeBreaker, fail, ok, trip

from pipeline_reliability import CircuitOpenError, MemoryStore
from pipeline_reliability.breaker import (
    BreakerEvent,
    BreakerState,
    CircuitBreaker,
    TransitionEvent,
)
from pipeline_reliability.testing import FakeClock


def _local_reasons(events: list[BreakerEvent]) -> list[str]:
    return [e.reason for e in events if isinstance(e, TransitionEvent) and e.local]


def test_item6_a_probe_slower_than_reset_timeout_lets_no_other_probe_in(
    make_breaker: MakeBreaker, fake_clock: FakeClock
) -> None:
    """
    half_open_probes=1, reset_timeout=2, a 4 s probe: while it runs, no other
    call on either instance (sharing one store) is admitted.
    """
    options: dict[str, Any] = {"reset_timeout": 2, "probe_timeout": 10, "cache_ttl": 0.5}
    a, b = make_breaker("a", **options), make_breaker("b", **options)
    trip(a)
    fake_clock.advance(2)
    running = [0]
    admitted_meanwhile: list[str] = []

    def slow_probe() -> str:
        running[0] += 1
        for _ in range(8):  # 4 s, in half-second steps
            fake_clock.advance(0.5)
            for breaker in (a, b):
                with contextlib.suppress(CircuitOpenError):
                    breaker.call(lambda: admitted_meanwhile.append("ran"))
        running[0] -= 1
        return "ok"

    assert a.call(slow_probe) == "ok"
    assert admitted_meanwhile == []
    assert a.state is BreakerState.CLOSED  # 4 s < probe_timeout: a success


def test_item6_a_probe_past_its_timeout_counts_as_failed(
    make_breaker: MakeBreaker, fake_clock: FakeClock, events: list[BreakerEvent]
) -> None:
    """A probe that returns after probe_timeout reopens the circuit (probe_timeout)."""
    a = make_breaker("a", reset_timeout=2, probe_timeout=10)
    trip(a)
    fake_clock.advance(2)

    def too_slow() -> str:
        fake_clock.advance(10)
        return "ok"

    assert a.call(too_slow) == "ok"  # the caller still gets its result
    assert a.state is BreakerState.OPEN
    assert _local_reasons(events)[-1] == "probe_timeout"


def test_item6_a_probe_just_inside_its_timeout_closes(
    make_breaker: MakeBreaker, fake_clock: FakeClock
) -> None:
    """The boundary: a probe finishing just before probe_timeout is a success."""
    a = make_breaker("a", reset_timeout=2, probe_timeout=10)
    trip(a)
    fake_clock.advance(2)

    def almost_too_slow() -> str:
        fake_clock.advance(9.999)
        return "ok"

    assert a.call(almost_too_slow) == "ok"
    assert a.state is BreakerState.CLOSED


def test_item6_a_failed_probe_keeps_the_lease_of_probes_still_running(
    make_breaker: MakeBreaker, fake_clock: FakeClock, memory_store: MemoryStore
) -> None:
    """
    half_open_probes=2: one probe fails while the other still runs. The circuit
    reopens, but no instance probes again before that lease ends.
    """
    options: dict[str, Any] = {
        "reset_timeout": 2, "probe_timeout": 10, "half_open_probes": 2, "cache_ttl": 0.5,
    }
    a, b = make_breaker("a", **options), make_breaker("b", **options)
    trip(a)
    fake_clock.advance(2)
    admitted: list[float] = []

    def long_probe() -> str:
        with pytest.raises(BoomError):
            a.call(fail)  # the second probe fails at once: OPEN again
        for _ in range(9):  # the first probe runs on for 9 s (within its lease)
            fake_clock.advance(1)
            for breaker in (a, b):
                with contextlib.suppress(CircuitOpenError):
                    breaker.call(lambda: admitted.append(fake_clock.monotonic()))
        return "ok"

    a.call(long_probe)
    assert admitted == []
    fake_clock.advance(1)  # the lease (10 s from the election) is over
    assert b.call(ok) == "ok"  # b is elected and probes


def test_a_failed_probe_with_nothing_else_running_cools_down_for_reset_timeout(
    make_breaker: MakeBreaker, fake_clock: FakeClock
) -> None:
    """The common case keeps its short cool-down: a lone failed probe waits reset_timeout."""
    a = make_breaker("a", reset_timeout=2, probe_timeout=60)
    trip(a)
    fake_clock.advance(2)
    with pytest.raises(BoomError):
        a.call(fail)
    fake_clock.advance(1.9)
    with pytest.raises(CircuitOpenError):
        a.call(ok)
    fake_clock.advance(0.1)
    assert a.call(ok) == "ok"


@pytest.mark.parametrize("bad", [0, -1, float("nan"), "5", None, 2.5e11])
def test_probe_timeout_is_validated(memory_store: MemoryStore, bad: Any) -> None:
    """A probe_timeout that cannot work is refused when the breaker is built."""
    from pipeline_reliability import ConfigurationError

    with pytest.raises(ConfigurationError):
        CircuitBreaker("x", memory_store, probe_timeout=bad)
