"""
Evidence for ``CompletionTracker.reconcile``: does each processor's output exist?

One parameterised ``COUNT(*)`` query per output table for the date; a table
with at least one row for the date is evidence that its processor ran, even if
its completion message was lost (DESIGN F1: Firestore said 3/5 while BigQuery
held all 5 outputs). The queries are submitted together and run in parallel.

A table that does not exist raises ``InvalidInputError`` rather than counting
as "no output": a missing table is almost always a misconfigured mapping, and
reconcile must not conclude anything from a typo.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date as date_type
from typing import Any

from .._telemetry import span
from ..errors import ConfigurationError, InvalidInputError, SinkUnavailableError
from ._bigquery import (
    TableId,
    bigquery_module,
    make_client,
    map_bigquery_errors,
    parse_date,
    positive_seconds,
)

__all__ = ["bigquery_output_counts", "bigquery_output_evidence"]

logger = logging.getLogger("pipeline_reliability.sinks")

_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,299}")


def bigquery_output_counts(
    tables: Mapping[str, str],
    date: str | date_type,
    *,
    date_column: str = "game_date",
    client: Any = None,
    timeout: float = 60.0,
) -> dict[str, int]:
    """
    Count each processor's output rows for ``date``.

    Runs ``SELECT COUNT(*) FROM <table> WHERE <date_column> = @date`` once per
    table (the date is a query parameter; the table and column names are
    validated identifiers). ``date_column`` must be a ``DATE`` column.

    Args:
        tables: Processor name -> output table (``[project.]dataset.table``).
        date: The date, ``YYYY-MM-DD`` or a ``datetime.date``.
        date_column: The output tables' date column.
        client: A ``google.cloud.bigquery.Client`` (created when ``None``).
        timeout: Seconds to wait for each query.

    Returns:
        Processor name -> number of rows for the date.

    Raises:
        ConfigurationError: A table id or ``date_column`` is not a valid identifier.
        InvalidInputError: ``date`` is invalid, or a table does not exist
            (the ``NotFound`` is chained).
        WriteFailedError: A query failed for another reason (cause chained);
            ``SinkUnavailableError`` when the failure is transient.

    .. versionadded:: 0.1.0
    """
    column: object = date_column
    if not isinstance(column, str) or not _COLUMN.fullmatch(column):
        raise ConfigurationError(f"date_column must be a column name, got {date_column!r}")
    given: object = tables
    if not isinstance(given, Mapping) or not all(isinstance(p, str) for p in given):
        raise InvalidInputError("tables must be a mapping of processor name -> table id")
    ids = {processor: TableId.parse(table) for processor, table in tables.items()}
    day = parse_date(date)
    timeout = positive_seconds(timeout, "timeout")
    if not ids:
        return {}
    client = client if client is not None else make_client()
    bigquery = bigquery_module()
    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("date", "DATE", day)]
    )
    with span("sinks", "output_counts", {"date": day.isoformat(), "tables": len(ids)}):
        # Submit every query first so BigQuery runs them in parallel.
        jobs = {
            processor: _submit(client, ref, tables[processor], date_column, config)
            for processor, ref in ids.items()
        }
        counts = {
            processor: _count(job, tables[processor], timeout) for processor, job in jobs.items()
        }
    logger.info("output rows for %s: %s", day.isoformat(), counts)
    return counts


def bigquery_output_evidence(
    tables: Mapping[str, str],
    date: str | date_type,
    *,
    date_column: str = "game_date",
    client: Any = None,
    timeout: float = 60.0,
) -> dict[str, bool]:
    """
    Say, per processor, whether its output table has rows for ``date``.

    The same queries as :func:`bigquery_output_counts`; a count above zero
    means the output exists. Pass the result (or ``result.get``) to
    ``CompletionTracker.reconcile`` as its evidence.

    Returns:
        Processor name -> ``True`` if its table has a row for the date.

    Raises:
        ConfigurationError, InvalidInputError, WriteFailedError: As
            :func:`bigquery_output_counts`.

    .. versionadded:: 0.1.0
    """
    counts = bigquery_output_counts(
        tables, date, date_column=date_column, client=client, timeout=timeout
    )
    return {processor: count > 0 for processor, count in counts.items()}


def _submit(client: Any, ref: TableId, table: str, column: str, config: Any) -> Any:
    # Identifiers are validated (TableId, _COLUMN); the date is a parameter.
    sql = f"SELECT COUNT(*) AS n FROM {ref.sql(client.project)} WHERE `{column}` = @date"  # noqa: S608
    with _errors(table):
        return client.query(sql, job_config=config)


def _count(job: Any, table: str, timeout: float) -> int:
    with _errors(table, job.job_id):
        try:
            rows = list(job.result(timeout=timeout))
        except TimeoutError as exc:
            message = f"counting rows of {table} timed out after {timeout}s"
            raise SinkUnavailableError(message, job_id=job.job_id) from exc
    return int(rows[0]["n"]) if rows else 0


@contextmanager
def _errors(table: str, job_id: str | None = None) -> Iterator[None]:
    """A missing table is an input error; other failures map as every BigQuery error does."""
    from google.api_core import exceptions as gexc

    with map_bigquery_errors(f"counting rows of {table}", job_id):
        try:
            yield
        except gexc.NotFound as exc:
            raise InvalidInputError(f"output table {table} not found") from exc
