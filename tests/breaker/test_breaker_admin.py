"""Operator actions, status, listeners, telemetry and configuration."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from breaker_helpers import MakeBreaker, ok, state_of, trip

from otel_helpers import metric_points
from pipeline_reliability import CircuitOpenError, ConfigurationError, MemoryStore
from pipeline_reliability.breaker import (
    BreakerEvent,
    BreakerState,
    CircuitBreaker,
    RejectionEvent,
    TransitionEvent,
)
from pipeline_reliability.testing import FakeClock


def test_force_open_rejects_everywhere_and_never_probes(
    make_breaker: MakeBreaker, fake_clock: FakeClock
) -> None:
    """A forced-open circuit rejects with no retry hint and never elects a probe."""
    a, b = make_breaker("a"), make_breaker("b")
    a.force_open()
    fake_clock.advance(3600)

    with pytest.raises(CircuitOpenError) as info:
        b.call(ok)

    assert info.value.retry_after is None
    assert b.status().forced


def test_force_open_twice_writes_once(
    make_breaker: MakeBreaker, memory_store: MemoryStore
) -> None:
    """Forcing an already forced-open circuit writes nothing."""
    breaker = make_breaker("a")

    breaker.force_open()
    breaker.force_open()

    assert memory_store.stats.writes == 1


def test_force_open_on_an_open_circuit_pins_it(
    make_breaker: MakeBreaker, memory_store: MemoryStore
) -> None:
    """Forcing an automatically opened circuit is a transition (OPEN -> forced OPEN)."""
    breaker = make_breaker("a")
    trip(breaker)

    breaker.force_open()

    assert memory_store.stats.writes == 2
    assert breaker.status().forced


def test_force_close_and_reset(make_breaker: MakeBreaker, memory_store: MemoryStore) -> None:
    """force_close closes an open circuit; both are no-ops on a closed one without reports."""
    breaker = make_breaker("a")
    breaker.force_close()
    breaker.reset()
    assert memory_store.stats.writes == 0
    breaker.force_open()

    breaker.force_close()

    assert state_of(breaker) is BreakerState.CLOSED
    assert memory_store.stats.writes == 2


def test_reset_clears_pending_trip_reports_and_the_local_window(
    make_breaker: MakeBreaker, memory_store: MemoryStore
) -> None:
    """reset() drops the quorum's reports (a write) and this instance's failures."""
    a = make_breaker("a", open_quorum=2)
    trip(a)
    a.force_close()  # closed already: reports stay
    assert memory_store.stats.writes == 1

    a.reset()
    trip(a, 2)

    doc = memory_store.dump()["circuit_breakers"]["billing-api"]
    assert (doc["generation"], doc["reports"], doc["reason"]) == (1, [], "reset")
    assert memory_store.stats.writes == 2


def test_status_describes_the_probe_lease(
    make_breaker: MakeBreaker, fake_clock: FakeClock
) -> None:
    """status() shows the holder and expiry of the half-open lease, and whether we hold it."""
    breaker = make_breaker("a", half_open_probes=2, success_threshold=2)
    trip(breaker)
    fake_clock.advance(30)
    breaker.call(ok)

    status = breaker.status()

    assert status.state is BreakerState.HALF_OPEN
    assert (status.probe_holder, status.is_prober) == ("a", True)
    assert status.probe_expires_at == fake_clock.now() + timedelta(seconds=30)
    assert "half_open" in repr(breaker)


def test_listeners_get_typed_events(
    make_breaker: MakeBreaker, fake_clock: FakeClock, events: list[BreakerEvent]
) -> None:
    """Transitions (local and adopted) and rejections reach listeners as frozen events."""
    a, b = make_breaker("a", cache_ttl=1), make_breaker("b", cache_ttl=1)
    b.call(ok)
    trip(a)
    fake_clock.advance(1)
    with pytest.raises(CircuitOpenError):
        b.call(ok)

    transitions = [e for e in events if isinstance(e, TransitionEvent)]
    assert [(e.instance_id, e.local, e.new_state) for e in transitions] == [
        ("a", True, BreakerState.OPEN), ("b", False, BreakerState.OPEN),
    ]
    (rejection,) = [e for e in events if isinstance(e, RejectionEvent)]
    assert (rejection.instance_id, rejection.reason) == ("b", "open")
    with pytest.raises(AttributeError):
        rejection.reason = "x"  # type: ignore[misc]


def test_a_failing_listener_is_logged_and_never_breaks_the_call(
    make_breaker: MakeBreaker, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception in a listener is logged with traceback; the call's outcome stands."""
    breaker = make_breaker("a")

    def broken(event: BreakerEvent) -> None:
        raise RuntimeError("listener bug")

    breaker.add_listener(broken)
    trip(breaker)
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)
    breaker.remove_listener(broken)
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)

    failures = [r for r in caplog.records if "listener" in r.getMessage()]
    assert len(failures) == 2  # the transition and the first rejection
    assert all(r.exc_info is not None and r.levelno == logging.ERROR for r in failures)


def test_counters_for_transitions_rejections_reads_and_writes(
    make_breaker: MakeBreaker, metric_reader: Any
) -> None:
    """OTel counters count transitions, rejections, store reads and store writes per breaker."""
    breaker = make_breaker("a", name="metrics-test")
    breaker.call(ok)
    trip(breaker)
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)

    def total(metric: str) -> int:
        return sum(
            p.value for p in metric_points(metric_reader, f"pipeline_reliability.breaker.{metric}")
            if p.attributes.get("breaker") == "metrics-test"
        )

    assert (total("transitions"), total("rejections")) == (1, 1)
    assert (total("store_reads"), total("store_writes")) == (2, 1)


def test_spans_only_for_store_round_trips(
    make_breaker: MakeBreaker, span_exporter: Any
) -> None:
    """Healthy calls make no spans; reads and transitions make one each."""
    breaker = make_breaker("a")
    for _ in range(100):
        breaker.call(ok)
    trip(breaker)

    names = [s.name for s in span_exporter.get_finished_spans()]
    assert names == [
        "pipeline_reliability.breaker.refresh", "pipeline_reliability.breaker.transition",
    ]


@pytest.mark.parametrize(
    "options",
    [
        {"failure_threshold": 0},
        {"minimum_calls": 0},
        {"window": 0},
        {"window": timedelta(seconds=-1)},
        {"reset_timeout": float("nan")},
        {"cache_ttl": -1},
        {"half_open_probes": 1, "success_threshold": 2},
        {"on_store_error": "ignore"},
        {"open_quorum": 0},
        {"excluded": ("not a type",)},
        {"failure_predicate": 3},
        {"collection": "a/b"},
        {"instance_id": ""},
        {"failure_threshold": True},
    ],
)
def test_invalid_options_raise_configuration_error(options: dict[str, Any]) -> None:
    """Options that cannot work are rejected when the breaker is built."""
    with pytest.raises(ConfigurationError):
        CircuitBreaker("x", MemoryStore(), **options)


def test_empty_name_is_rejected() -> None:
    """A breaker needs a non-empty name."""
    with pytest.raises(ConfigurationError):
        CircuitBreaker("", MemoryStore())


def test_config_is_normalised_and_frozen() -> None:
    """Durations become seconds; the config cannot be changed afterwards."""
    breaker = CircuitBreaker("x", MemoryStore(), window=timedelta(minutes=2), cache_ttl=0)

    assert (breaker.config.window, breaker.config.cache_ttl) == (120.0, 0.0)
    assert breaker.config.minimum_calls == breaker.config.failure_threshold == 5
    with pytest.raises(AttributeError):
        breaker.config.window = 1  # type: ignore[misc]


def test_default_instance_ids_are_unique() -> None:
    """Two breakers built without an instance_id never share one."""
    store = MemoryStore()

    assert CircuitBreaker("x", store).instance_id != CircuitBreaker("x", store).instance_id
