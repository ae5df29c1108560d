"""
BigQuery sinks: the only place that talks to BigQuery.

The fallback ledger, the execution log, the run history, reconcile evidence, gates and the
MERGE upsert writer. ``google.cloud.bigquery`` is imported on first use only.
``pipeline_reliability.sinks.bootstrap`` creates the shipped tables.
"""

from __future__ import annotations

from .evidence import bigquery_output_counts, bigquery_output_evidence
from .execution_log import BigQueryExecutionLog
from .gates import BigQueryGate
from .history import BigQueryRunHistory
from .ledger import DEFAULT_BIGQUERY_RETRY, BigQueryLedger
from .writer import BigQueryWriter, Fence, WriteReport

__all__ = [
    "BigQueryExecutionLog",
    "BigQueryGate",
    "BigQueryLedger",
    "BigQueryRunHistory",
    "BigQueryWriter",
    "DEFAULT_BIGQUERY_RETRY",
    "Fence",
    "WriteReport",
    "bigquery_output_counts",
    "bigquery_output_evidence",
]
