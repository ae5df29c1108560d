"""Reading what the OpenTelemetry SDK's in-memory metric reader collected."""

from __future__ import annotations

from typing import Any


def metric_points(reader: Any, name: str) -> list[Any]:
    """
    The data points of every metric called ``name`` (the full name) that ``reader`` holds.

    ``reader`` is the ``metric_reader`` fixture (an ``InMemoryMetricReader``);
    before anything was recorded it has no data, and the list is empty.
    """
    data = reader.get_metrics_data()
    found: list[Any] = []
    for resource in data.resource_metrics if data is not None else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found.extend(metric.data.data_points)
    return found
