"""Spans, counters, structured logs, and the TriggerEvent wire format."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from tracker_helpers import DATE, EXPECTED, FIRST, PHASE, Publisher, record_all

from otel_helpers import metric_points
from pipeline_reliability.completion import CompletionTracker, TriggerEvent
from pipeline_reliability.testing import FaultyStore


def _points(reader: Any, name: str) -> dict[tuple[tuple[str, Any], ...], int]:
    out: dict[tuple[tuple[str, Any], ...], int] = {}
    for point in metric_points(reader, f"pipeline_reliability.{name}"):
        out[tuple(sorted(point.attributes.items()))] = point.value
    return out


def test_record_span_carries_phase_date_processor_and_execution(
    tracker: CompletionTracker, span_exporter: Any
) -> None:
    """Each record_completion is a span named pipeline_reliability.tracker.record_completion."""
    tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1")

    [span] = [
        s
        for s in span_exporter.get_finished_spans()
        if s.name == "pipeline_reliability.tracker.record_completion"
    ]
    assert dict(span.attributes or {}) == {
        "phase": PHASE,
        "date": DATE,
        "processor": FIRST,
        "execution_id": "r1",
    }


def test_trigger_spans_for_publish_and_confirm(
    tracker: CompletionTracker, span_exporter: Any, publisher: Publisher
) -> None:
    """Publishing and confirming a trigger each leave a span with the trigger id."""
    for name in sorted(EXPECTED):
        tracker.record_and_trigger(PHASE, DATE, name, execution_id="r", publish=publisher)

    names = {s.name: s for s in span_exporter.get_finished_spans()}
    for verb in ("publish", "confirm_trigger"):
        span = names[f"pipeline_reliability.tracker.{verb}"]
        assert (span.attributes or {})["trigger_id"] == f"{PHASE}:{DATE}"


def test_counters_count_outcomes(
    store: FaultyStore, tracker: CompletionTracker, metric_reader: Any, publisher: Publisher
) -> None:
    """completions, duplicates, ignored, degraded and triggers are counted with their outcome."""
    phase = "phase3"
    before = {
        n: _points(metric_reader, n)
        for n in ("tracker.duplicates", "tracker.ignored", "tracker.degraded", "tracker.triggers")
    }
    for name in sorted(EXPECTED):
        tracker.record_and_trigger(phase, DATE, name, execution_id="r", publish=publisher)
    tracker.record_completion(phase, DATE, FIRST, execution_id="r")
    tracker.record_completion(phase, DATE, "stranger", execution_id="r")
    with store.outage():
        tracker.record_completion(phase, "2026-01-30", FIRST, execution_id="r")

    def delta(name: str, **attrs: Any) -> int:
        key = tuple(sorted({"phase": phase, **attrs}.items()))
        return _points(metric_reader, name).get(key, 0) - before[name].get(key, 0)

    assert delta("tracker.duplicates") == 1
    assert delta("tracker.ignored", processor="stranger") == 1
    assert delta("tracker.degraded") == 1
    assert delta("tracker.triggers", outcome="claimed", reason="complete") == 1
    assert delta("tracker.triggers", outcome="confirmed", reason="complete") == 1


def test_structured_log_fields_on_degraded_completion(
    store: FaultyStore, tracker: CompletionTracker, caplog: pytest.LogCaptureFixture
) -> None:
    """Tracker log records carry phase, date, processor and execution_id as structured fields."""
    caplog.set_level(logging.WARNING, logger="pipeline_reliability.completion")
    with store.outage():
        record_all(tracker, [FIRST])

    records = [r for r in caplog.records if r.name == "pipeline_reliability.completion"]
    assert records
    for record in records:
        fields = record.__dict__["pipeline_reliability"]
        assert (fields["phase"], fields["date"], fields["processor"]) == (PHASE, DATE, FIRST)
        assert fields["execution_id"] == f"run-{FIRST}"


def test_trigger_event_body_and_attributes_are_json_safe() -> None:
    """to_dict() is JSON-serialisable and attributes() are all strings with the trigger id."""
    event = TriggerEvent(
        phase=PHASE,
        date=DATE,
        trigger_id=f"{PHASE}:{DATE}",
        reason="deadline_partial",
        completed=frozenset({"b", "a"}),
        missing=frozenset({"c"}),
        correlation_id=None,
        claimed_at=datetime(2026, 1, 31, 12, tzinfo=UTC),
        attempt=2,
        next_phase="phase4",
    )

    body = json.loads(json.dumps(event.to_dict()))
    attrs = event.attributes()

    assert body["completed"] == ["a", "b"]
    assert body["claimed_at"] == "2026-01-31T12:00:00+00:00"
    assert body["correlation_id"] is None
    assert attrs == {
        "trigger_id": "phase3:2026-01-31",
        "phase": PHASE,
        "date": DATE,
        "reason": "deadline_partial",
        "attempt": "2",
        "next_phase": "phase4",
    }
    assert all(isinstance(v, str) for v in attrs.values())


def test_trigger_event_is_frozen() -> None:
    """Events are immutable values."""
    event = TriggerEvent(
        PHASE,
        DATE,
        "t",
        "complete",
        frozenset(),
        frozenset(),
        None,
        datetime(2026, 1, 31, tzinfo=UTC),
        1,
        None,
    )

    with pytest.raises(AttributeError):
        event.attempt = 2  # type: ignore[misc]
