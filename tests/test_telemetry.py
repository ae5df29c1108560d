"""The telemetry helpers, observed with the OpenTelemetry SDK's in-memory exporter and reader."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, StatusCode, TraceFlags

from otel_helpers import metric_points
from pipeline_reliability._telemetry import (
    PACKAGE,
    counter,
    log_failure,
    mark_failure,
    package_version,
    span,
)


def test_span_is_named_after_capability_and_verb(span_exporter: Any) -> None:
    """span("lock", "acquire") records pipeline_reliability.lock.acquire from our tracer."""
    with span("lock", "acquire"):
        pass

    (finished,) = span_exporter.get_finished_spans()
    assert finished.name == "pipeline_reliability.lock.acquire"
    assert finished.instrumentation_scope.name == PACKAGE
    assert finished.instrumentation_scope.version == package_version()
    assert finished.status.status_code is StatusCode.UNSET


def test_attributes_from_a_mapping_or_a_callable(span_exporter: Any) -> None:
    """Attributes may be given as a mapping or built by a callable; None is dropped."""
    with span("a", "mapping", {"phase": "p3", "count": 2, "skip": None}):
        pass
    with span("a", "callable", lambda: {"ratio": 0.5, "ok": True, "date": object}):
        pass

    spans = {s.name: s for s in span_exporter.get_finished_spans()}
    assert dict(spans["pipeline_reliability.a.mapping"].attributes) == {"phase": "p3", "count": 2}
    built = dict(spans["pipeline_reliability.a.callable"].attributes)
    assert built == {"ratio": 0.5, "ok": True, "date": str(object)}


def test_attributes_are_not_built_when_nothing_records(span_exporter: Any) -> None:
    """Under a parent that is not sampled, the attribute callable is never called."""
    calls: list[int] = []
    unsampled = NonRecordingSpan(
        SpanContext(trace_id=1, span_id=2, is_remote=False, trace_flags=TraceFlags(0))
    )

    def build() -> dict[str, Any]:
        calls.append(1)
        return {"expensive": True}

    with trace.use_span(unsampled), span("a", "quiet", build) as current:
        assert not current.is_recording()

    assert calls == []
    assert span_exporter.get_finished_spans() == ()


def test_exception_is_recorded_marked_and_propagated(span_exporter: Any) -> None:
    """An exception leaving the block is recorded on the span, sets ERROR, and propagates."""
    error = RuntimeError("store down")

    with pytest.raises(RuntimeError) as info, span("store", "get"):
        raise error

    assert info.value is error
    (finished,) = span_exporter.get_finished_spans()
    assert finished.status.status_code is StatusCode.ERROR
    assert finished.status.description == "RuntimeError: store down"
    assert [e.name for e in finished.events] == ["exception"]
    assert finished.events[0].attributes["exception.type"] == "RuntimeError"


def test_mark_failure_ignores_a_span_that_does_not_record() -> None:
    """Marking a non-recording span is a no-op, not an error."""
    mark_failure(trace.INVALID_SPAN, ValueError("x"))


def test_log_failure_logs_traceback_fields_and_marks_the_span(
    span_exporter: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """log_failure logs at ERROR with the exception and structured fields, and marks the span."""
    logger = logging.getLogger("pipeline_reliability.test")
    error = ValueError("bad row")

    with caplog.at_level(logging.ERROR, logger="pipeline_reliability"), span("sink", "write"):
        log_failure(logger, "write failed", error, phase="p3", date="2026-01-31", skip=None)

    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "write failed: ValueError: bad row"
    assert record.exc_info is not None
    assert record.exc_info[1] is error
    assert record.pipeline_reliability == {"phase": "p3", "date": "2026-01-31"}  # type: ignore[attr-defined]
    (finished,) = span_exporter.get_finished_spans()
    assert finished.status.status_code is StatusCode.ERROR


def test_counter_is_created_once_and_records(metric_reader: Any) -> None:
    """counter() returns one instrument per name, and additions reach the meter provider."""
    first = counter("test.events", "events seen in a test")

    first.add(2, {"kind": "a"})
    counter("test.events", "events seen in a test").add(3, {"kind": "a"})
    counter("test.events", "events seen in a test").add(1, {"kind": "b"})

    assert counter("test.events", "again") is first
    points = metric_points(metric_reader, f"{PACKAGE}.test.events")
    assert {p.attributes["kind"]: p.value for p in points} == {"a": 5, "b": 1}


def test_package_version_is_a_string() -> None:
    """The tracer and meter are versioned with the installed distribution's version."""
    assert isinstance(package_version(), str)
    assert package_version()
