"""Spans, counters and listener events of ConcurrencyLimit."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from otel_helpers import metric_points
from pipeline_reliability import MemoryStore
from pipeline_reliability.errors import InvalidInputError, SlotNotAcquiredError
from pipeline_reliability.limits import ConcurrencyLimit, SlotEvent
from pipeline_reliability.testing import FakeClock


def _count(reader: Any, name: str, limit_name: str) -> float:
    return float(sum(
        p.value for p in metric_points(reader, f"pipeline_reliability.limits.{name}")
        if p.attributes.get("limit.name") == limit_name
    ))


def test_acquire_renew_and_release_are_spans(
    memory_store: MemoryStore, fake_clock: FakeClock, span_exporter: Any
) -> None:
    limit = ConcurrencyLimit("spans", memory_store, limit=1, clock=fake_clock)
    with limit.slot() as slot:
        slot.renew()

    spans = {s.name: s for s in span_exporter.get_finished_spans()}
    for verb in ("acquire", "renew", "release"):
        assert f"pipeline_reliability.limits.{verb}" in spans
    acquire = spans["pipeline_reliability.limits.acquire"]
    assert acquire.attributes["limit.name"] == "spans"
    assert acquire.attributes["limit.limit"] == 1


def test_counters_follow_the_events(
    memory_store: MemoryStore, fake_clock: FakeClock, metric_reader: Any
) -> None:
    limit = ConcurrencyLimit("counted", memory_store, limit=1, clock=fake_clock, lease=10)
    before = {k: _count(metric_reader, k, "counted")
              for k in ("slots_acquired", "slots_released", "slot_timeouts", "slots_lost")}
    with limit.slot():
        pass
    overrun = limit.acquire()
    with pytest.raises(SlotNotAcquiredError):
        limit.acquire(timeout=1)
    fake_clock.advance(10)
    overrun.release()

    after = {k: _count(metric_reader, k, "counted") - v for k, v in before.items()}
    assert after == {"slots_acquired": 2, "slots_released": 1, "slot_timeouts": 1,
                     "slots_lost": 1}
    assert _count(metric_reader, "wait_polls", "counted") >= 2


def test_events_are_frozen_values_and_a_failing_listener_breaks_nothing(
    memory_store: MemoryStore, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    limit = ConcurrencyLimit("events", memory_store, limit=1, clock=fake_clock, owner="me")
    seen: list[SlotEvent] = []

    def broken(event: SlotEvent) -> None:
        raise RuntimeError("listener bug")

    limit.add_listener(broken)
    limit.add_listener(seen.append)
    with limit.slot() as slot:
        pass
    limit.remove_listener(seen.append)
    with limit.slot():
        pass

    assert [(e.kind, e.owner, e.slot_id) for e in seen] == [
        ("acquired", "me", slot.slot_id), ("released", "me", slot.slot_id)]
    assert seen[0].holders == 1
    assert seen[0].at == fake_clock.now()
    with pytest.raises(dataclasses.FrozenInstanceError):
        seen[0].kind = "lost"  # type: ignore[misc]
    assert "listener bug" in caplog.text
    with pytest.raises(InvalidInputError):
        limit.add_listener("not callable")  # type: ignore[arg-type]
