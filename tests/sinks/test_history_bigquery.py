"""BigQueryRunHistory: rows of the run history in BigQuery, written off the completion's path."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from typing import Any

import pytest

from pipeline_reliability import MemoryStore
from pipeline_reliability.completion import (
    CompletionTracker,
    Deployment,
    PhaseSpec,
    RunHistory,
    RunHistoryRow,
)
from pipeline_reliability.errors import ConfigurationError
from pipeline_reliability.sinks import BigQueryRunHistory
from pipeline_reliability.sinks.bootstrap import table_resource
from pipeline_reliability.sinks.history import history_row_to_json
from pipeline_reliability.testing import FakeClock

T0 = datetime(2026, 1, 31, 23, 10, tzinfo=UTC)
ROW = RunHistoryRow(
    phase="phase3", date="2026-01-31", processor="player_game_summary", execution_id="r1",
    status="success", outcome="counted", received_at=T0, completed_at=T0, record_count=250,
    message_id="m1", correlation_id="c1", done_count=3, expected_count=5,
    trigger_state="none", tracker_owner="host:1", library_version="0.2.0",
    deployment=Deployment("svc", "svc-00042-abc", "handle"),
)  # fmt: skip
GENEROUS = 30.0


def test_row_encoding_matches_the_table() -> None:
    """Every column of run_history is written (written_at by the writer), nothing else."""
    columns = {f["name"] for f in table_resource("run_history")["schema"]["fields"]}
    assert set(history_row_to_json(ROW)) | {"written_at"} == columns


def test_is_a_run_history_and_checks_its_options() -> None:
    assert isinstance(BigQueryRunHistory("ds.run_history"), RunHistory)
    with pytest.raises(ConfigurationError):
        BigQueryRunHistory("not a table id")
    with pytest.raises(ConfigurationError):
        BigQueryRunHistory("ds.run_history", max_pending=0)


def test_a_client_that_never_answers_costs_the_tracker_nothing_but_dropped_rows() -> None:
    """The black-holed client holds max_pending rows; the rest are dropped; records return."""

    class Hangs:
        project = "p"
        release = threading.Event()

        def insert_rows_json(self, *args: Any, **kwargs: Any) -> list[Any]:
            self.release.wait()
            return []

    client = Hangs()
    history = BigQueryRunHistory("ds.run_history", client, max_pending=2)
    tracker = CompletionTracker(MemoryStore(), [PhaseSpec("p3", {"a", "b"})], history=history)
    try:
        for n in range(5):
            tracker.record_completion("p3", "2026-01-31", "a", execution_id=f"r{n}")
        assert (history.pending, history.dropped) == (2, 3)
    finally:
        client.release.set()
    assert history.close(GENEROUS)


@pytest.mark.bigquery
def test_tracker_rows_land_in_bigquery(bigquery_client: Any, bigquery_dataset: str) -> None:
    """A tracker's reports are in the table after flush, column for column."""
    clock = FakeClock(datetime(2026, 2, 1, 6, tzinfo=UTC))
    history = BigQueryRunHistory(
        f"{bigquery_dataset}.run_history", bigquery_client, timeout=10.0, clock=clock
    )
    assert history.create_table() is True
    history.record(ROW)
    tracker = CompletionTracker(
        MemoryStore(), [PhaseSpec("phase3", {"a", "b"})], history=history, clock=clock
    )
    tracker.record_completion("phase3", "2026-01-31", "a", execution_id="r2")
    tracker.record_completion("phase3", "2026-01-31", "a", execution_id="r2")
    assert history.close(GENEROUS)

    rows = list(bigquery_client.query(
        f"SELECT * FROM `{bigquery_dataset}.run_history` ORDER BY received_at, outcome"
    ).result())  # fmt: skip
    assert [r["outcome"] for r in rows] == ["counted", "counted", "duplicate"]
    first = rows[0]
    assert first["date"] == date(2026, 1, 31)
    assert (first["processor"], first["execution_id"], first["record_count"]) == (
        "player_game_summary", "r1", 250
    )
    assert (first["service"], first["revision"], first["function_target"]) == (
        "svc", "svc-00042-abc", "handle"
    )
    assert (first["done_count"], first["expected_count"]) == (3, 5)
    assert first["replayed"] is False
    assert first["written_at"] == clock.now()
    assert rows[1]["done_count"] == 1
    assert rows[1]["expected_count"] == 2
