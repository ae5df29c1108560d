"""
``BigQueryExecutionLog``: one row per confirmed trigger in ``phase_execution_log``.

The table has the production ``nba_orchestration.phase_execution_log`` columns
(schema ``phase_execution_log.json``, partitioned by ``game_date`` with a
90-day partition expiry). Rows are streamed with a deterministic ``insertId``
(see :mod:`pipeline_reliability.sinks.ledger` for why streaming).
"""

from __future__ import annotations

import logging
from typing import Any

from .._clock import Clock, SystemClock
from .._telemetry import span
from ..completion._ledger import ExecutionLogRow, check_execution_row
from ..retry import RetryPolicy
from ._bigquery import TableSink, content_id, encode_row, json_text, parse_date
from ._checks import check_clock
from .bootstrap import create_table_from_schema

__all__ = ["BigQueryExecutionLog", "execution_row_to_json"]

logger = logging.getLogger("pipeline_reliability.sinks")


class BigQueryExecutionLog:
    """
    An :class:`~pipeline_reliability.completion.ExecutionLog` in a BigQuery table.

    Args:
        table: ``project.dataset.table`` or ``dataset.table``.
        client: A ``google.cloud.bigquery.Client``; created on first use
            when ``None`` (honouring ``BIGQUERY_EMULATOR_HOST``).
        retry: Retry policy for transient BigQuery errors (default
            :data:`~pipeline_reliability.sinks.DEFAULT_BIGQUERY_RETRY`).
        timeout: Seconds per BigQuery request.
        clock: Stamps ``created_at`` (default: the system clock).

    Raises:
        ConfigurationError: ``table`` is not a valid table id, or ``retry``,
            ``timeout`` or ``clock`` is not what it must be.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        table: str,
        client: Any = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self._sink = TableSink(table, client, retry, timeout)
        self._clock = check_clock(clock) or SystemClock()
        self.table = table

    def __repr__(self) -> str:
        return f"BigQueryExecutionLog({self.table!r})"

    def create_table(self) -> bool:
        """
        Create the ``phase_execution_log`` table unless it exists.

        Returns:
            ``True`` if it was created.
        """
        sink = self._sink
        return create_table_from_schema(sink.client, sink.qualified, "phase_execution_log")

    def write(self, row: ExecutionLogRow) -> None:
        """
        Write one row.

        Raises:
            InvalidInputError: The row does not fit the table
                (``check_execution_row``); nothing was sent.
            WriteFailedError: The row was not written (cause chained).
        """
        check_execution_row(row)
        attrs = {"table": self.table, "phase": row.phase_name, "date": row.game_date}
        with span("sinks", "execution_log_write", attrs):
            record = encode_row("execution-log row", lambda: execution_row_to_json(row))
            record["created_at"] = self._clock.now().isoformat()
            row_id = content_id(
                row.phase_name,
                row.game_date,
                row.correlation_id,
                row.status,
                row.execution_timestamp.isoformat(),
            )
            self._sink.insert([record], [row_id])
        logger.info(
            "execution log: %s %s %s in %.1fs",
            row.phase_name,
            row.game_date,
            row.status,
            row.duration_seconds,
        )


def execution_row_to_json(row: ExecutionLogRow) -> dict[str, Any]:
    """Return ``row`` as a JSON row for ``insert_rows_json`` (``metadata`` as JSON text)."""
    return {
        "execution_timestamp": row.execution_timestamp.isoformat(),
        "phase_name": row.phase_name,
        "game_date": parse_date(row.game_date).isoformat(),
        "correlation_id": row.correlation_id,
        "start_time": row.start_time.isoformat(),
        "duration_seconds": float(row.duration_seconds),
        "status": row.status,
        "metadata": None if row.metadata is None else json_text(row.metadata),
    }
