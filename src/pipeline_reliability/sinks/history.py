"""
``BigQueryRunHistory``: the tracker's run history in a BigQuery table.

Rows are streamed (``insert_rows_json``) in batches by the background thread
of :class:`~pipeline_reliability.completion.BufferedRunHistory`, never on the
completion's path; each carries a deterministic ``insertId`` so a retried
batch is deduplicated (best effort, as for the ledger).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._clock import Clock, SystemClock
from .._telemetry import span
from ..completion._history import RunHistoryRow
from ..completion._history_buffer import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_PENDING,
    BufferedRunHistory,
)
from ..retry import RetryPolicy
from ._bigquery import TableSink, content_id, parse_date
from ._checks import check_clock, check_retry
from .bootstrap import create_table_from_schema

__all__ = ["DEFAULT_HISTORY_RETRY", "BigQueryRunHistory", "history_row_to_json"]

DEFAULT_HISTORY_RETRY = RetryPolicy(attempts=3, deadline=20.0, initial=0.5, maximum=4.0)
"""Default retry of :class:`BigQueryRunHistory`: 3 attempts within 20 s per batch."""


class BigQueryRunHistory(BufferedRunHistory):
    """
    A :class:`~pipeline_reliability.completion.RunHistory` in a BigQuery table.

    Create the table with :meth:`create_table` or ``bootstrap`` (schema
    ``run_history.json``, partitioned by ``date``). ``record`` only appends
    to a bounded buffer (``max_pending`` rows, default 1000, the batch being
    written included) and returns; a daemon thread streams batches of up to
    ``batch_size`` rows. When BigQuery is slow or unreachable the buffer
    fills and further rows are dropped and counted (``dropped``, counter
    ``pipeline_reliability.tracker.history_dropped``): the completion never
    waits. Call :meth:`close` at shutdown to give pending rows a few seconds.

    Args:
        table: ``project.dataset.table`` or ``dataset.table``.
        client: A ``google.cloud.bigquery.Client``; created on first use
            (on the background thread) when ``None``.
        retry: Retry of one batch (default :data:`DEFAULT_HISTORY_RETRY`);
            its deadline bounds a batch, requests in flight included.
        timeout: Seconds per BigQuery request.
        max_pending: The buffer's bound, in rows.
        batch_size: Rows per insert, at most.
        clock: Stamps ``written_at`` (default: the system clock).

    Raises:
        ConfigurationError: a bad table id, retry, timeout, bound or clock.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        table: str,
        client: Any = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        max_pending: int = DEFAULT_MAX_PENDING,
        batch_size: int = DEFAULT_BATCH_SIZE,
        clock: Clock | None = None,
    ) -> None:
        self._sink = TableSink(table, client, check_retry(retry) or DEFAULT_HISTORY_RETRY, timeout)
        self._clock = check_clock(clock) or SystemClock()
        self.table = table
        super().__init__(self._insert, max_pending=max_pending, batch_size=batch_size)

    def __repr__(self) -> str:
        return f"BigQueryRunHistory({self.table!r})"

    def create_table(self) -> bool:
        """
        Create the ``run_history`` table unless it exists.

        Returns:
            ``True`` if it was created.
        """
        sink = self._sink
        return create_table_from_schema(sink.client, sink.qualified, "run_history")

    def _insert(self, rows: Sequence[RunHistoryRow]) -> None:
        written_at = self._clock.now().isoformat()
        with span("sinks", "history_write", {"table": self.table, "rows": len(rows)}):
            records = [{**history_row_to_json(row), "written_at": written_at} for row in rows]
            ids = [history_row_id(row) for row in rows]
            self._sink.insert(records, ids)


def history_row_to_json(row: RunHistoryRow) -> dict[str, Any]:
    """Return ``row`` as a JSON row of the ``run_history`` table."""
    return {
        "phase": row.phase,
        "date": parse_date(row.date).isoformat(),
        "processor": row.processor,
        "execution_id": row.execution_id,
        "status": row.status,
        "outcome": row.outcome,
        "received_at": row.received_at.isoformat(),
        "completed_at": None if row.completed_at is None else row.completed_at.isoformat(),
        "record_count": row.record_count,
        "message_id": row.message_id,
        "correlation_id": row.correlation_id,
        "done_count": row.done_count,
        "expected_count": row.expected_count,
        "trigger_state": row.trigger_state,
        "replayed": row.replayed,
        "backfill": row.backfill,
        "error": row.error,
        "tracker_owner": row.tracker_owner,
        "library_version": row.library_version,
        "service": row.deployment.service,
        "revision": row.deployment.revision,
        "function_target": row.deployment.function_target,
    }


def history_row_id(row: RunHistoryRow) -> str:
    """The deterministic ``insertId`` of ``row``: one report handled by one tracker."""
    return content_id(
        row.phase, row.date, row.processor, row.execution_id, row.message_id,
        row.outcome, row.received_at.isoformat(), row.replayed, row.tracker_owner,
    )  # fmt: skip
