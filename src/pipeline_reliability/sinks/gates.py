"""
Ready-made BigQuery gates for ``PhaseSpec(gates=[...])`` (issue 11).

"Check the Phase 3 tables have data before running Phase 4": a gate asks a
table for the date before the phase's trigger is claimed. :class:`BigQueryGate`
passes when ``COUNT(*)`` (or ``COUNT(DISTINCT column)``, a coverage check:
"at least 200 distinct players") of the table's rows for the date reaches a
threshold. It is a plain callable ``date -> GateResult``; the tracker asks it
outside any transaction, and a gate that raises counts as closed (fail
closed) and is logged, so every BigQuery error is mapped to the library's
errors here and the reason names the table.

The Google client is imported and created on first use only (DESIGN F10).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from .._telemetry import span
from ..completion import GateResult
from ..errors import ConfigurationError, InvalidInputError, SinkUnavailableError
from ._bigquery import (
    TableId,
    bigquery_module,
    make_client,
    map_bigquery_errors,
    parse_date,
    positive_seconds,
)

__all__ = ["BigQueryGate"]

logger = logging.getLogger("pipeline_reliability.sinks")
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,299}")


class BigQueryGate:
    """
    A gate that passes when a table holds enough rows (or distinct values) for the date.

    Args:
        table: ``[project.]dataset.table``.
        min_rows: The threshold (>= 1): the count must be at least this.
        date_column: The table's ``DATE`` column (default ``game_date``).
        distinct: Count distinct values of this column instead of rows
            (coverage: "every expected player has a row").
        client: A ``google.cloud.bigquery.Client`` (created on first use).
        timeout: Seconds to wait for the query (a bounded deadline on the
            trigger's path).
        name: The gate's name in reasons and logs (default ``rows:<table>``).

    Calling it with a date (``YYYY-MM-DD``) returns a ``GateResult``; its
    reason says what was counted, e.g. ``"12 rows < 100 in nba.pgs"``.

    Raises:
        ConfigurationError: bad table id, column, threshold or timeout.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        table: str,
        *,
        min_rows: int = 1,
        date_column: str = "game_date",
        distinct: str | None = None,
        client: Any = None,
        timeout: float = 30.0,
        name: str | None = None,
    ) -> None:
        self._ref = TableId.parse(table)  # ConfigurationError when malformed
        self.table = table
        for what, column in (("date_column", date_column), ("distinct", distinct)):
            value: object = column
            if value is not None and not (isinstance(value, str) and _COLUMN.fullmatch(value)):
                raise ConfigurationError(f"{what} must be a column name, got {column!r:.80}")
        threshold: object = min_rows
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
            raise ConfigurationError(f"min_rows must be an int >= 1, got {min_rows!r:.80}")
        self.min_rows = min_rows
        self.date_column = date_column
        self.distinct = distinct
        self.timeout = positive_seconds(timeout, "timeout")  # ConfigurationError when bad
        self.name = name or f"rows:{table}"
        self._client = client

    def count(self, date: str) -> int:
        """
        The number of rows (or distinct values) for ``date``.

        Raises:
            InvalidInputError: bad date, or the table does not exist.
            SinkUnavailableError: a transient failure or the timeout.
            WriteFailedError: any other BigQuery failure (cause chained).
        """
        day = parse_date(date)
        client = self._client if self._client is not None else make_client()
        self._client = client
        bigquery = bigquery_module()
        config = bigquery.QueryJobConfig(
            query_parameters=[bigquery.ScalarQueryParameter("date", "DATE", day)]
        )
        what = "*" if self.distinct is None else f"DISTINCT `{self.distinct}`"
        # Identifiers are validated (TableId, _COLUMN); the date is a parameter.
        sql = (
            f"SELECT COUNT({what}) AS n FROM {self._ref.sql(client.project)} "  # noqa: S608
            f"WHERE `{self.date_column}` = @date"
        )
        from google.api_core import exceptions as gexc

        with (
            span("sinks", "gate", {"table": self.table, "date": day.isoformat()}),
            map_bigquery_errors(f"gate query on {self.table}"),
        ):
            try:
                job = client.query(sql, job_config=config, timeout=self.timeout)
                rows = list(job.result(timeout=self.timeout))
            except gexc.NotFound as exc:
                raise InvalidInputError(f"gate table {self.table} not found") from exc
            except TimeoutError as exc:
                raise SinkUnavailableError(
                    f"gate query on {self.table} timed out after {self.timeout}s"
                ) from exc
        return int(rows[0]["n"]) if rows else 0

    def __call__(self, date: str) -> GateResult:
        """Ask the table about ``date``: passes when the count reaches ``min_rows``."""
        n = self.count(date)
        unit = "rows" if self.distinct is None else f"distinct {self.distinct}"
        passed = n >= self.min_rows
        relation = ">=" if passed else "<"
        logger.info("gate %s for %s: %d %s", self.name, date, n, unit)
        return GateResult(passed, f"{n} {unit} {relation} {self.min_rows} in {self.table}")

    def __repr__(self) -> str:
        return f"BigQueryGate({self.table!r}, min_rows={self.min_rows})"
