"""Every retry is a span event, a counter increment and a WARNING; exhaustion an ERROR."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from retry_helpers import Flaky, gexc

from otel_helpers import metric_points
from pipeline_reliability._telemetry import span
from pipeline_reliability.errors import RetryExhaustedError
from pipeline_reliability.retry import RetryPolicy, retrying
from pipeline_reliability.testing import FakeClock

LOGGER = "pipeline_reliability.retry"


def test_each_retry_logs_a_warning_with_the_error(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A retry logs one WARNING on pipeline_reliability.retry with error type and exc_info."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    error = gexc.ServiceUnavailable("backend busy")
    fn = Flaky(error, gexc.TooManyRequests("slow down"))

    RetryPolicy(clock=fake_clock).call(fn)

    warnings = [r for r in caplog.records if r.name == LOGGER]
    assert [r.levelno for r in warnings] == [logging.WARNING, logging.WARNING]
    first: Any = warnings[0]
    assert first.exc_info[1] is error
    assert first.pipeline_reliability["error.type"] == (
        "google.api_core.exceptions.ServiceUnavailable"
    )
    assert first.pipeline_reliability["attempt"] == 1
    assert first.pipeline_reliability["delay"] == fake_clock.sleeps[0]
    assert "TooManyRequests" in warnings[1].getMessage()


def test_exhaustion_is_logged_at_error_with_traceback(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Running out of attempts logs an ERROR carrying the last error's traceback."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    last = gexc.ServiceUnavailable("still down")

    with pytest.raises(RetryExhaustedError):
        RetryPolicy(attempts=2, clock=fake_clock).call(Flaky(gexc.ServiceUnavailable("1"), last))

    [exhausted] = [r for r in caplog.records if r.levelno == logging.ERROR]
    record: Any = exhausted
    assert exhausted.name == LOGGER
    assert record.exc_info[1] is last
    assert record.exc_info[2] is not None
    assert record.pipeline_reliability["attempts"] == 2


def test_permanent_errors_are_not_logged_as_retries(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A permanent error is left to the caller: no retry warning, no exhaustion error."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    with pytest.raises(gexc.NotFound):
        RetryPolicy(clock=fake_clock).call(Flaky(gexc.NotFound("gone")))

    assert [r for r in caplog.records if r.name == LOGGER] == []


def test_each_retry_adds_a_span_event(span_exporter: Any, fake_clock: FakeClock) -> None:
    """Retries inside a span add retry events with attempt, error type, delay and name."""
    fn = Flaky(gexc.ServiceUnavailable("1"), ConnectionResetError("2"))

    with span("test", "outer"):
        for attempt in retrying(clock=fake_clock, name="merge-scores"):
            with attempt:
                fn()

    [outer] = [s for s in span_exporter.get_finished_spans() if s.name.endswith("test.outer")]
    events = [e for e in outer.events if e.name == "pipeline_reliability.retry"]
    assert [dict(e.attributes) for e in events] == [
        {
            "name": "merge-scores",
            "attempt": 1,
            "error.type": "google.api_core.exceptions.ServiceUnavailable",
            "delay": fake_clock.sleeps[0],
        },
        {
            "name": "merge-scores",
            "attempt": 2,
            "error.type": "ConnectionResetError",
            "delay": fake_clock.sleeps[1],
        },
    ]


def test_exhaustion_marks_the_span_as_failed(span_exporter: Any, fake_clock: FakeClock) -> None:
    """When retries run out, the current span records the last error and error status."""
    with span("test", "exhausted"), pytest.raises(RetryExhaustedError):
        RetryPolicy(attempts=1, clock=fake_clock).call(Flaky(gexc.ServiceUnavailable("x")))

    [outer] = [s for s in span_exporter.get_finished_spans() if s.name.endswith("test.exhausted")]
    assert not outer.status.is_ok
    assert any(e.name == "exception" for e in outer.events)


def test_retries_are_counted(metric_reader: Any, fake_clock: FakeClock) -> None:
    """The retry.attempts counter grows by one per retry, labelled by name and error type."""
    fn = Flaky(*(gexc.ServiceUnavailable(str(i)) for i in range(3)))
    for attempt in retrying(clock=fake_clock, name="counted-block"):
        with attempt:
            fn()

    points = [
        point
        for point in metric_points(metric_reader, "pipeline_reliability.retry.attempts")
        if point.attributes.get("name") == "counted-block"
    ]
    assert [(p.value, p.attributes["error.type"]) for p in points] == [
        (3, "google.api_core.exceptions.ServiceUnavailable")
    ]
