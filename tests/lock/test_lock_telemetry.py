"""Spans and counters of DateLock: acquire/release/renew spans, acquired/contention/lost counts."""

from __future__ import annotations

from typing import Any

import pytest
from lock_helpers import TTL, MakeLock

from otel_helpers import metric_points
from pipeline_reliability.errors import LockLostError, LockNotAcquiredError
from pipeline_reliability.testing import FakeClock


def _count(reader: Any, name: str, lock_name: str) -> float:
    """The cumulative value of counter ``name`` for the lock ``lock_name``."""
    total = 0.0
    for point in metric_points(reader, f"pipeline_reliability.{name}"):
        if point.attributes.get("lock.name") == lock_name:
            total += point.value
    return total


def test_acquire_release_and_renew_are_spans(
    make_lock: MakeLock, span_exporter: Any
) -> None:
    """Each operation is a span named pipeline_reliability.lock.<verb> with the lock's identity."""
    lock = make_lock("a", name="telemetry-spans")
    lease = lock.acquire()
    lease.renew()
    lock.release()

    spans = {s.name: s for s in span_exporter.get_finished_spans()}
    for verb in ("acquire", "renew", "release"):
        assert f"pipeline_reliability.lock.{verb}" in spans
    acquire = spans["pipeline_reliability.lock.acquire"]
    assert acquire.attributes["lock.name"] == "telemetry-spans"
    assert acquire.attributes["lock.owner"] == "a"
    assert acquire.attributes["lock.token"] == lease.token


def test_failed_acquire_marks_its_span(make_lock: MakeLock, span_exporter: Any) -> None:
    """Contention leaves the acquire span with an error status and the exception recorded."""
    make_lock("a", name="telemetry-error").acquire()

    with pytest.raises(LockNotAcquiredError):
        make_lock("b", name="telemetry-error").acquire(blocking=False)

    failed = [s for s in span_exporter.get_finished_spans() if not s.status.is_ok]
    assert [s.name for s in failed] == ["pipeline_reliability.lock.acquire"]
    assert failed[0].events[0].name == "exception"


def test_counters_count_acquired_contention_and_lost(
    make_lock: MakeLock, fake_clock: FakeClock, metric_reader: Any
) -> None:
    """lock.acquired, lock.contention and lock.lost move with what happened."""
    name = "telemetry-counters"
    kinds = ("lock.acquired", "lock.contention", "lock.lost")
    before = {k: _count(metric_reader, k, name) for k in kinds}
    first = make_lock("a", name=name)
    first.acquire()
    with pytest.raises(LockNotAcquiredError):
        make_lock("b", name=name).acquire(blocking=False)
    fake_clock.advance(TTL)
    make_lock("c", name=name).acquire()
    with pytest.raises(LockLostError):
        first.release()

    after = {k: _count(metric_reader, k, name) for k in before}
    assert after["lock.acquired"] - before["lock.acquired"] == 2
    assert after["lock.contention"] - before["lock.contention"] == 1
    assert after["lock.lost"] - before["lock.lost"] == 1
