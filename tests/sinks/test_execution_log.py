"""BigQueryExecutionLog: one row per confirmed trigger in phase_execution_log."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from pipeline_reliability.completion import ExecutionLog, ExecutionLogRow
from pipeline_reliability.errors import WriteFailedError
from pipeline_reliability.sinks.execution_log import BigQueryExecutionLog, execution_row_to_json
from pipeline_reliability.testing import FakeClock

T0 = datetime(2026, 1, 25, 12, 0, tzinfo=UTC)
ROW = ExecutionLogRow(
    execution_timestamp=datetime(2026, 1, 25, 12, 3, 30, tzinfo=UTC),
    phase_name="phase3_to_phase4",
    game_date="2026-01-25",
    start_time=T0,
    duration_seconds=210.0,
    status="complete",
    correlation_id="5f0c9e21",
    metadata={
        "completed_processors": ["player_game_summary", "team_defense_game_summary"],
        "missing_processors": [],
        "trigger_reason": "complete",
    },
)


def test_row_encoding_matches_the_table() -> None:
    """The JSON row carries the production columns, metadata as JSON text."""
    encoded = execution_row_to_json(ROW)

    assert encoded["game_date"] == "2026-01-25"
    assert json.loads(encoded["metadata"])["trigger_reason"] == "complete"
    assert isinstance(encoded["duration_seconds"], float)


def test_is_an_execution_log() -> None:
    """BigQueryExecutionLog implements the ExecutionLog protocol."""
    assert isinstance(BigQueryExecutionLog("ds.phase_execution_log"), ExecutionLog)


@pytest.mark.bigquery
def test_write_lands_one_row(bigquery_client: Any, bigquery_dataset: str) -> None:
    """A written row reads back column for column, created_at from the injected clock."""
    clock = FakeClock(datetime(2026, 1, 25, 12, 4, tzinfo=UTC))
    log = BigQueryExecutionLog(
        f"{bigquery_dataset}.phase_execution_log", bigquery_client, clock=clock, timeout=10.0
    )
    assert log.create_table() is True

    log.write(ROW)

    [got] = bigquery_client.query(
        f"SELECT * FROM `{bigquery_dataset}.phase_execution_log`"
    ).result()
    assert got["phase_name"] == "phase3_to_phase4"
    assert got["game_date"] == date(2026, 1, 25)
    assert got["start_time"] == T0
    assert got["duration_seconds"] == 210.0
    assert got["status"] == "complete"
    assert got["correlation_id"] == "5f0c9e21"
    assert got["metadata"] == ROW.metadata
    assert got["created_at"] == clock.now()


@pytest.mark.bigquery
def test_write_to_missing_table_raises(bigquery_client: Any, bigquery_dataset: str) -> None:
    """A write BigQuery refuses raises WriteFailedError."""
    log = BigQueryExecutionLog(f"{bigquery_dataset}.nope", bigquery_client, timeout=10.0)

    with pytest.raises(WriteFailedError):
        log.write(ROW)
