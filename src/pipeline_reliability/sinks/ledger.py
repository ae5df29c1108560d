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

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from .._telemetry import span
from ..completion._ledger import LedgerRow
from ..errors import (
    ConfigurationError,
    InvalidInputError,
    ReliabilityError,
    RetryExhaustedError,
    SinkUnavailableError,
    WriteFailedError,
)
from ..retry import RetryPolicy, is_transient
from ._bigquery import bigquery_module, make_client
from .bootstrap import TableId, create_table_from_schema

__all__ = ["DEFAULT_BIGQUERY_RETRY", "BigQueryLedger"]

logger = logging.getLogger("pipeline_reliability.sinks")

DEFAULT_BIGQUERY_RETRY = RetryPolicy(attempts=4, deadline=30.0, initial=0.5, maximum=8.0)
"""Default retry of the BigQuery sinks: 4 attempts within 30 s, transient errors only."""

R = TypeVar("R")


class _Sink:
    """A table, a lazily created client, a retry policy and a per-call timeout."""

    def __init__(
        self, table: str, client: Any, retry: RetryPolicy | None, timeout: float
    ) -> None:
        self.table_id = TableId.parse(table)
        self.table = table
        self.timeout = positive_seconds(timeout, "timeout")
        self.retry = retry or DEFAULT_BIGQUERY_RETRY
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The BigQuery client (created on first use)."""
        with self._lock:
            if self._client is None:
                self._client = make_client(self.table_id.project)
            return self._client

    @property
    def qualified(self) -> str:
        """``project.dataset.table``."""
        return self.table_id.qualified(self.client.project)

    def call(self, what: str, fn: Callable[[], R]) -> R:
        """
        Run ``fn`` under the retry policy; any failure becomes a ``WriteFailedError``.

        Transient failures that outlasted the policy raise its transient
        subclass ``SinkUnavailableError``; permanent ones ``WriteFailedError``.
        """
        try:
            return self.retry.call(fn)
        except RetryExhaustedError as exc:
            message = f"{what} failed after {exc.attempts} attempts: {exc}"
            raise SinkUnavailableError(message) from exc
        except ReliabilityError:
            raise
        except Exception as exc:
            cls = SinkUnavailableError if is_transient(exc) else WriteFailedError
            raise cls(f"{what} failed: {exc}") from exc

    def insert(self, rows: Sequence[Mapping[str, Any]], row_ids: Sequence[str]) -> None:
        """Stream ``rows`` with their ``insertId`` s (one policy-level retry layer)."""

        def once() -> None:
            # retry=None: the policy above is the only retry layer (DESIGN F9);
            # the client's default would retry for minutes.
            errors = self.client.insert_rows_json(
                self.qualified,
                list(rows),
                row_ids=list(row_ids),
                retry=None,
                timeout=self.timeout,
            )
            if errors:
                raise WriteFailedError(f"BigQuery rejected rows of {self.qualified}: {errors}")

        self.call(f"insert into {self.table}", once)

    def query(self, sql: str, parameters: Sequence[Any]) -> list[Any]:
        """Run a parameterised query and return its rows."""
        bigquery = bigquery_module()
        config = bigquery.QueryJobConfig(query_parameters=list(parameters))

        def once() -> list[Any]:
            job = self.client.query(sql, job_config=config, timeout=self.timeout)
            return list(job.result(timeout=self.timeout))

        return self.call(f"query of {self.table}", once)


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
            :data:`DEFAULT_BIGQUERY_RETRY`).
        timeout: Seconds per BigQuery request.

    Raises:
        ConfigurationError: ``table`` is not a valid table id.

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
        self._sink = _Sink(table, client, retry, timeout)
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

        Raises:
            WriteFailedError: The row was not written (cause chained).
        """
        attrs = {"table": self.table, "phase": row.phase, "date": row.date}
        with span("sinks", "ledger_append", lambda: {**attrs, "processor": row.processor}):
            try:
                record = ledger_row_to_json(row)
            except (TypeError, ValueError) as exc:
                raise WriteFailedError(f"ledger row cannot be serialised: {exc}") from exc
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
        parsed = [_date(d) for d in dates]
        if not parsed:
            return []
        # The table id is validated by TableId (safe between backticks); values are parameters.
        sql = (
            "SELECT phase, `date`, processor, execution_id, message_id, status, record_count, "  # noqa: S608
            "metadata, event_time, recorded_time, primary_ok, correlation_id "
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
        "date": _date(row.date).isoformat(),
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
    }


def ledger_row_from_record(record: Any) -> LedgerRow:
    """Build a :class:`LedgerRow` from a query result row (a mapping of columns)."""
    metadata = record["metadata"]
    if isinstance(metadata, str | bytes):
        metadata = json.loads(metadata)
    day = record["date"]
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
        record_count=None if record["record_count"] is None else int(record["record_count"]),
        metadata=metadata,
        correlation_id=record.get("correlation_id"),
    )


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


def content_id(*parts: Any) -> str:
    """Return a SHA-256 hex id of ``parts`` (JSON-encoded, so types are distinguished)."""
    return hashlib.sha256(json_text(list(parts)).encode()).hexdigest()


def json_text(value: Any) -> str:
    """Serialise ``value`` as compact, key-sorted JSON (dates/sets/decimals handled)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def positive_seconds(value: object, name: str) -> float:
    """Return ``value`` as float seconds, or raise ``ConfigurationError`` if not positive."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds: {value!r}")
    return float(value)


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        raise InvalidInputError(f"expected a date, got a datetime: {value!r}")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"invalid date {value!r}: expected YYYY-MM-DD") from exc
