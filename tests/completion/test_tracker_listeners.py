"""Tracker events (issue 15, item 1): one frozen event per decision, after the store decided."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tracker_helpers import DATE, EXPECTED, FIRST, PHASE, MakeTracker, Publisher, record_all

from otel_helpers import metric_points
from pipeline_reliability import ConfigurationError
from pipeline_reliability.completion import (
    CompletionTracker,
    GateResult,
    PhaseSpec,
    TrackerEvent,
    TrackerEventKind,
)
from pipeline_reliability.testing import Fault, FaultyStore

K = TrackerEventKind


class Recorder:
    """A listener that keeps every event."""

    def __init__(self) -> None:
        self.events: list[TrackerEvent] = []

    def __call__(self, event: TrackerEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[TrackerEventKind]:
        return [e.kind for e in self.events]


@pytest.fixture
def heard(tracker: CompletionTracker) -> Recorder:
    recorder = Recorder()
    tracker.add_listener(recorder)
    return recorder


def _count(reader: Any, name: str, **attrs: Any) -> int:
    return sum(
        int(p.value)
        for p in metric_points(reader, f"pipeline_reliability.{name}")
        if all(p.attributes.get(k) == v for k, v in attrs.items())
    )


def test_item1_each_completion_outcome_is_one_event(
    tracker: CompletionTracker, heard: Recorder, store: FaultyStore
) -> None:
    """counted, duplicate, ignored, updated, stale, recorded and degraded: one event each."""
    t0 = datetime(2026, 2, 1, 10, tzinfo=UTC)
    tracker.record_completion(PHASE, DATE, FIRST, execution_id="r2", completed_at=t0)
    tracker.record_completion(PHASE, DATE, FIRST, execution_id="r2", completed_at=t0)
    tracker.record_completion(PHASE, DATE, "stranger", execution_id="r1")
    later = t0 + timedelta(hours=1)
    tracker.record_completion(PHASE, DATE, FIRST, execution_id="r3", completed_at=later)
    tracker.record_completion(
        PHASE, DATE, FIRST, execution_id="r0", completed_at=t0 - timedelta(hours=1)
    )
    other = sorted(EXPECTED)[1]
    tracker.record_completion(PHASE, DATE, other, execution_id="r1", status="failed")
    with store.outage():
        tracker.record_completion(PHASE, "2026-01-30", FIRST, execution_id="r9")

    assert heard.kinds() == [
        K.COUNTED, K.DUPLICATE, K.IGNORED, K.UPDATED, K.STALE, K.RECORDED, K.DEGRADED
    ]
    counted, degraded = heard.events[0], heard.events[-1]
    assert (counted.phase, counted.date, counted.processor, counted.execution_id) == (
        PHASE, DATE, FIRST, "r2"
    )
    assert counted.count == 1
    assert counted.missing == EXPECTED - {FIRST}
    assert degraded.count is None
    assert degraded.error is not None
    assert "unavailable" in degraded.error.lower()


def test_item1_trigger_lifecycle_claimed_published_confirmed(
    tracker: CompletionTracker, heard: Recorder, publisher: Publisher
) -> None:
    """The completion that completes the date is followed by claimed, published, confirmed."""
    for name in sorted(EXPECTED):
        tracker.record_and_trigger(PHASE, DATE, name, execution_id="r", publish=publisher)

    assert heard.kinds()[-4:] == [
        K.COUNTED, K.TRIGGER_CLAIMED, K.TRIGGER_PUBLISHED, K.TRIGGER_CONFIRMED
    ]
    claimed = heard.events[-3]
    assert (claimed.trigger_id, claimed.attempt, claimed.reason) == (
        f"{PHASE}:{DATE}", 1, "complete"
    )


def test_item1_released_then_taken_over_then_lost(
    make_tracker: MakeTracker, publisher: Publisher, fake_clock: Any
) -> None:
    """A failed publish releases (with its error); the next claim takes over; the old is lost."""
    a, b = make_tracker("worker-a"), make_tracker("worker-b")
    heard = Recorder()
    a.add_listener(heard)
    b.add_listener(heard)
    results = record_all(a, EXPECTED)
    claim = results[-1].trigger
    assert claim is not None
    a.release_trigger(claim, "publish failed: boom")
    report = b.sweep(PHASE, [DATE])
    [second] = report.claims
    with pytest.raises(Exception, match="taken over"):
        a.confirm_trigger(claim)

    assert heard.kinds()[-4:] == [
        K.TRIGGER_CLAIMED, K.TRIGGER_RELEASED, K.TRIGGER_TAKEN_OVER, K.TRIGGER_LOST
    ]
    assert heard.events[-3].error == "publish failed: boom"
    assert heard.events[-2].attempt == second.attempt == 2


def test_item1_events_come_once_after_the_store_decided(
    tracker: CompletionTracker, heard: Recorder, store: FaultyStore
) -> None:
    """A transaction that runs twice (aborted, or committed with a lost response) emits once."""
    store.fail_next(Fault.ABORTED)
    tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1")
    store.fail_next(Fault.LOST_RESPONSE)
    tracker.record_completion(PHASE, DATE, sorted(EXPECTED)[1], execution_id="r1")

    assert heard.kinds() == [K.COUNTED, K.COUNTED]


def test_item1_deadline_passed_once_per_date(
    tracker: CompletionTracker, heard: Recorder, metric_reader: Any
) -> None:
    """The sweep that first finds a date overdue emits deadline_passed; later sweeps do not."""
    before = _count(metric_reader, "tracker.deadlines_exceeded", phase=PHASE)
    tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1")
    late = datetime(2030, 1, 1, tzinfo=UTC)
    tracker.sweep(PHASE, [DATE], now=late)
    tracker.sweep(PHASE, [DATE], now=late)

    passed = [e for e in heard.events if e.kind is K.DEADLINE_PASSED]
    assert len(passed) == 1
    assert passed[0].missing == EXPECTED - {FIRST}
    assert _count(metric_reader, "tracker.deadlines_exceeded", phase=PHASE) - before == 1


def test_item1_ledger_rows_replayed_and_quarantined(
    tracker: CompletionTracker, heard: Recorder, store: FaultyStore, ledger: Any
) -> None:
    """Replay emits ledger_replayed (with what the row did) and ledger_quarantined."""
    with store.outage():
        tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1")
    [row] = ledger.read(PHASE, [DATE])
    # An unfit row, as an older version could write it (append refuses it now).
    ledger.rows.append(dataclasses.replace(row, execution_id="r2", record_count=2**64))
    heard.events.clear()

    tracker.replay_ledger(PHASE, [DATE])

    assert heard.kinds() == [K.LEDGER_REPLAYED, K.LEDGER_QUARANTINED]
    replayed, quarantined = heard.events
    assert (replayed.processor, replayed.outcome) == (FIRST, "counted")
    assert quarantined.execution_id == "r2"
    assert quarantined.error is not None


def test_item1_rearm_and_gate_events(
    make_tracker: MakeTracker, publisher: Publisher
) -> None:
    """rearm_trigger emits trigger_rearmed; a closed gate emits gated with its reason."""
    gate_open = False

    def gate(date: str) -> GateResult:
        return GateResult(gate_open, "upstream not loaded")

    tracker = make_tracker(phases=[PhaseSpec(PHASE, EXPECTED, gates=[gate])])
    heard = Recorder()
    tracker.add_listener(heard)
    record_all(tracker, EXPECTED)
    [gated] = [e for e in heard.events if e.kind is K.GATED]
    assert gated.reason is not None
    assert "upstream not loaded" in gated.reason

    gate_open = True
    claim = tracker.sweep(PHASE, [DATE]).claims[0]
    tracker.confirm_trigger(claim)
    tracker.rearm_trigger(PHASE, DATE, "re-run after a fix")
    assert heard.kinds()[-3:] == [K.TRIGGER_CLAIMED, K.TRIGGER_CONFIRMED, K.TRIGGER_REARMED]


def test_item1_a_failing_listener_is_logged_and_never_breaks_the_call(
    tracker: CompletionTracker, heard: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener that raises is logged with its traceback; later listeners still hear."""

    def broken(event: TrackerEvent) -> None:
        raise RuntimeError("listener bug")

    tracker.remove_listener(heard)
    tracker.add_listener(broken)
    tracker.add_listener(heard)
    with caplog.at_level(logging.ERROR, logger="pipeline_reliability.completion"):
        result = tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1")

    assert result.counted
    assert heard.kinds() == [K.COUNTED]
    [record] = [r for r in caplog.records if "listener" in r.getMessage()]
    assert record.exc_info is not None


def test_remove_listener_stops_delivery_and_ignores_unknown(
    tracker: CompletionTracker, heard: Recorder
) -> None:
    """After remove_listener nothing is delivered; removing an unknown listener is no error."""
    tracker.remove_listener(heard)
    tracker.remove_listener(print)
    tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1")
    assert heard.events == []


def test_events_are_frozen_and_listeners_must_be_callable(
    tracker: CompletionTracker, heard: Recorder
) -> None:
    """Event values cannot be changed; a non-callable listener is refused up front."""
    tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        heard.events[0].phase = "other"  # type: ignore[misc]
    with pytest.raises(ConfigurationError):
        tracker.add_listener("not callable")  # type: ignore[arg-type]


def test_published_is_counted_in_the_triggers_counter(
    tracker: CompletionTracker, publisher: Publisher, metric_reader: Any
) -> None:
    """Each event kind has a counter: publishing counts tracker.triggers{outcome=published}."""
    before = _count(metric_reader, "tracker.triggers", phase=PHASE, outcome="published")
    for name in sorted(EXPECTED):
        tracker.record_and_trigger(PHASE, DATE, name, execution_id="r", publish=publisher)
    after = _count(metric_reader, "tracker.triggers", phase=PHASE, outcome="published")
    assert after - before == 1
