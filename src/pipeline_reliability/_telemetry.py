"""
OpenTelemetry instrumentation through the API only: the application brings the
SDK. One tracer and one meter, named after the package; spans are
``pipeline_reliability.<capability>.<verb>``; attributes are built only when
the span records.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, Status, StatusCode

__all__ = [
    "PACKAGE",
    "counter",
    "log_failure",
    "mark_failure",
    "meter",
    "package_version",
    "span",
]

PACKAGE = "pipeline_reliability"
_Attrs = Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None
_counters: dict[str, metrics.Counter] = {}
_counters_lock = threading.Lock()


@functools.cache
def package_version() -> str:
    """The installed distribution's version (``0+unknown`` when run from a source tree)."""
    # Imported on first use: importlib.metadata is slow to import, and the
    # version is needed only when the first span or counter is created.
    from importlib import metadata

    try:
        return metadata.version("pipeline-reliability")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@functools.cache
def _tracer() -> trace.Tracer:
    # A tracer taken before the application installs its SDK is a proxy that
    # starts recording once a provider is set, so caching it is safe.
    return trace.get_tracer(PACKAGE, package_version())


@functools.cache
def meter() -> metrics.Meter:
    """The package's meter."""
    return metrics.get_meter(PACKAGE, package_version())


def counter(name: str, description: str, unit: str = "1") -> metrics.Counter:
    """Return the counter ``pipeline_reliability.<name>``, creating it once."""
    full = f"{PACKAGE}.{name}"
    with _counters_lock:
        found = _counters.get(full)
        if found is None:
            found = meter().create_counter(full, unit=unit, description=description)
            _counters[full] = found
        return found


def _clean(attrs: Mapping[str, Any]) -> dict[str, Any]:
    # OTel accepts only primitives (and sequences of them); drop None, stringify the rest.
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        if v is None:
            continue
        out[k] = v if isinstance(v, str | bool | int | float) else str(v)
    return out


@contextmanager
def span(capability: str, verb: str, attributes: _Attrs = None) -> Iterator[Span]:
    """
    Run the block in the span ``pipeline_reliability.<capability>.<verb>``.

    ``attributes`` may be a callable so that nothing is built when no SDK
    records. An exception leaving the block is recorded and marks the span
    as an error, then propagates.
    """
    name = f"{PACKAGE}.{capability}.{verb}"
    with _tracer().start_as_current_span(
        name, record_exception=False, set_status_on_exception=False
    ) as current:
        if attributes is not None and current.is_recording():
            built = attributes() if callable(attributes) else attributes
            current.set_attributes(_clean(built))
        try:
            yield current
        except BaseException as exc:
            mark_failure(current, exc)
            raise


def mark_failure(current: Span, exc: BaseException) -> None:
    """Record ``exc`` on ``current`` and set its status to error."""
    if current.is_recording():
        current.record_exception(exc)
        current.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


def log_failure(
    logger: logging.Logger, message: str, exc: BaseException, **fields: Any
) -> None:
    """
    Log a failure with its traceback and structured fields, and mark the
    current span. Never a substitute for raising: callers still raise or
    report the failure to their caller.
    """
    mark_failure(trace.get_current_span(), exc)
    logger.error(
        "%s: %s: %s",
        message,
        type(exc).__name__,
        exc,
        exc_info=exc,
        extra={"pipeline_reliability": _clean(fields)},
    )
