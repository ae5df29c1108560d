"""
``BigQueryLedger``: the fallback completion ledger in BigQuery (DESIGN F2).

Rows are written with the streaming API (``insert_rows_json``), not load jobs:

- the ledger is written one row at a time, exactly when the state store is
  failing, so the write must be quick and must not spend load-job quota
  (1,500 load jobs per table per day: one Firestore outage during a backfill
  would use it up);
- streamed rows are visible to queries at once, so ``replay_ledger`` can read
  them right after the outage;
- each row carries a deterministic ``insertId``, so a retried insert is
  deduplicated by BigQuery (best effort, about a minute). ``read`` also
  returns each completion once, so what is replayed does not depend on that
  dedup (the BigQuery emulator ignores ``insertId``).

The ledger is append-only: no DML ever touches it, so the streaming buffer's
restrictions on UPDATE/DELETE do not matter.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from datetime import date
from typing import Any

from .._telemetry import span
from ..completion._ledger import LedgerRow, check_ledger_row
from ..retry import RetryPolicy
from ._bigquery import (
    DEFAULT_BIGQUERY_RETRY,
    TableSink,
    bigquery_module,
    content_id,
    encode_row,
    json_text,
    parse_date,
)
from ._checks import check_retry
from .bootstrap import create_table_from_schema

__all__ = ["DEFAULT_BIGQUERY_RETRY", "DEFAULT_LEDGER_RETRY", "BigQueryLedger"]

logger = logging.getLogger("pipeline_reliability.sinks")

DEFAULT_LEDGER_RETRY = RetryPolicy(attempts=4, deadline=10.0, initial=0.25, maximum=4.0)
"""
Default retry of :class:`BigQueryLedger`: 4 attempts within 10 s, transient errors only.

The deadline is a hard bound on an append (each request's timeout is cut to
the time left): it is the ledger's share of the degraded path's budget.
"""


class BigQueryLedger:
    """
    A :class:`~pipeline_reliability.completion.CompletionLedger` in a BigQuery table.

    Create the table with :meth:`create_table` or
    :func:`~pipeline_reliability.sinks.bootstrap.bootstrap` (schema
    ``completion_ledger.json``, partitioned by ``date``).

    Args:
        table: ``project.dataset.table`` or ``dataset.table``.
        client: A ``google.cloud.bigquery.Client``; created on first use
            when ``None`` (honouring ``BIGQUERY_EMULATOR_HOST``).
        retry: Retry policy for transient BigQuery errors (default
            :data:`DEFAULT_LEDGER_RETRY`). Its deadline bounds a whole
            ``append`` or ``read``, requests in flight included.
        timeout: Seconds per BigQuery request (cut to what is left of the
            retry deadline).

    Raises:
        ConfigurationError: ``table`` is not a valid table id, ``retry`` is
            not a ``RetryPolicy`` or ``timeout`` not a positive duration.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        table: str,
        client: Any = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._sink = TableSink(table, client, check_retry(retry) or DEFAULT_LEDGER_RETRY, timeout)
        self.table = table

    def __repr__(self) -> str:
        return f"BigQueryLedger({self.table!r})"

    def create_table(self) -> bool:
        """
        Create the ledger table unless it exists.

        Returns:
            ``True`` if it was created.
        """
        sink = self._sink
        return create_table_from_schema(sink.client, sink.qualified, "completion_ledger")

    def append(self, row: LedgerRow) -> None:
        """
        Append one row.

        The row is checked first (``check_ledger_row``: int64 counts,
        bounded ids and metadata, TIMESTAMP-range times), so every row in
        the ledger can be replayed later.

        Raises:
            InvalidInputError: The row cannot be stored; nothing was sent.
            WriteFailedError: The row was not written (cause chained).
        """
        check_ledger_row(row)
        attrs = {"table": self.table, "phase": row.phase, "date": row.date}
        with span("sinks", "ledger_append", lambda: {**attrs, "processor": row.processor}):
            record = encode_row("ledger row", lambda: ledger_row_to_json(row))
            self._sink.insert([record], [ledger_row_id(row)])
        logger.info(
            "ledger row appended to %s: %s %s %s (primary_ok=%s)",
            self.table,
            row.phase,
            row.date,
            row.processor,
            row.primary_ok,
        )

    def read(self, phase: str, dates: Sequence[str]) -> list[LedgerRow]:
        """
        Return the rows of ``phase`` for ``dates``, oldest first, each completion once.

        Rows with the same :func:`ledger_row_id` (the same completion appended
        again) are returned once, the oldest. BigQuery's own ``insertId``
        dedup is best effort (about a minute) and the emulator has none.

        Raises:
            InvalidInputError: A date is not ``YYYY-MM-DD``.
            WriteFailedError: The query failed (cause chained).
        """
        bigquery = bigquery_module()
        if isinstance(dates, str):
            dates = [dates]
        parsed = [parse_date(d) for d in dates]
        if not parsed:
            return []
        # The table id is validated by TableId (safe between backticks); values are parameters.
        sql = (
            "SELECT phase, `date`, processor, execution_id, message_id, status, record_count, "  # noqa: S608
            "metadata, event_time, recorded_time, primary_ok, correlation_id, completed_at "
            f"FROM {self._sink.table_id.sql(self._sink.client.project)} "
            "WHERE phase = @phase AND `date` IN UNNEST(@dates) "
            "ORDER BY recorded_time, event_time"
        )
        params = [
            bigquery.ScalarQueryParameter("phase", "STRING", phase),
            bigquery.ArrayQueryParameter("dates", "DATE", parsed),
        ]
        with span("sinks", "ledger_read", {"table": self.table, "phase": phase}):
            records = self._sink.query(sql, params)
        rows: dict[str, LedgerRow] = {}
        for record in records:
            row = ledger_row_from_record(record)
            rows.setdefault(ledger_row_id(row), row)
        return list(rows.values())


def ledger_row_to_json(row: LedgerRow) -> dict[str, Any]:
    """
    Return ``row`` as a JSON row for ``insert_rows_json``.

    ``metadata`` is a JSON *string*: that is what the streaming API expects
    for a JSON column (a nested object fails on the emulator).
    """
    return {
        "phase": row.phase,
        "date": parse_date(row.date).isoformat(),
        "processor": row.processor,
        "execution_id": row.execution_id,
        "message_id": row.message_id,
        "status": row.status,
        "record_count": row.record_count,
        "metadata": None if row.metadata is None else json_text(row.metadata),
        "event_time": row.event_time.isoformat(),
        "recorded_time": row.recorded_time.isoformat(),
        "primary_ok": row.primary_ok,
        "correlation_id": row.correlation_id,
        "completed_at": None if row.completed_at is None else row.completed_at.isoformat(),
    }


def ledger_row_from_record(record: Any) -> LedgerRow:
    """
    Build a :class:`LedgerRow` from a query result row (a mapping of columns).

    Never raises for a bad value: a row that older versions (or a hand edit)
    wrote with values no store can take is returned as read, and
    ``replay_ledger`` quarantines it instead of failing the whole replay.
    """
    metadata = record["metadata"]
    if isinstance(metadata, str | bytes):
        # Undecodable text is kept as text: the replay check reports it as not a mapping.
        with contextlib.suppress(ValueError, RecursionError):
            metadata = json.loads(metadata)
    day = record["date"]
    count = record["record_count"]
    return LedgerRow(
        phase=record["phase"],
        date=day.isoformat() if isinstance(day, date) else str(day),
        processor=record["processor"],
        execution_id=record["execution_id"],
        status=record["status"],
        event_time=record["event_time"],
        recorded_time=record["recorded_time"],
        primary_ok=bool(record["primary_ok"]),
        message_id=record["message_id"],
        record_count=count if count is None or isinstance(count, int) else _int(count),
        metadata=metadata,
        correlation_id=record.get("correlation_id"),
        completed_at=record.get("completed_at"),
    )


def _int(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return value  # the replay check reports it


def ledger_row_id(row: LedgerRow) -> str:
    """
    Return the deterministic ``insertId`` of ``row``: the identity of the completion.

    A completion is identified by what was reported (phase, date, processor,
    execution id, message id, status, record count, ``primary_ok``), not by
    when: a retried append, or a redelivery of the same message that was
    degraded again, carries a later ``event_time``/``recorded_time`` but is
    the same completion, and is kept once.
    """
    return content_id(
        row.phase,
        row.date,
        row.processor,
        row.execution_id,
        row.message_id,
        row.status,
        row.record_count,
        row.primary_ok,
    )
