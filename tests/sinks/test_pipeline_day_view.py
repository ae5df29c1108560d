"""The pipeline_day view (issue 15, item 3): one row per (phase, date) on the BigQuery emulator."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from pipeline_reliability.completion import Deployment, ExecutionLogRow, LedgerRow, RunHistoryRow
from pipeline_reliability.errors import ConfigurationError, InvalidInputError
from pipeline_reliability.sinks import BigQueryExecutionLog, BigQueryLedger, BigQueryRunHistory
from pipeline_reliability.sinks.bootstrap import bootstrap, view_names, view_query

PHASE = "phase3"
DAY, PREV = "2026-01-31", "2026-01-30"
T0 = datetime(2026, 2, 1, 10, tzinfo=UTC)
GENEROUS = 30.0

# The how-to's query (docs/how-to/run-history.md): how often a phase ends 3/5 vs 5/5.
HOW_OFTEN = """
SELECT phase, final_count, expected_count, COUNT(*) AS dates
FROM (
  SELECT phase, `date`, MAX(done_count) AS final_count, MAX(expected_count) AS expected_count
  FROM `{dataset}.run_history`
  WHERE outcome != 'degraded'
  GROUP BY phase, `date`
)
GROUP BY phase, final_count, expected_count
ORDER BY phase, final_count
"""

# The how-to's query: which revision processed this date.
WHICH_REVISION = """
SELECT processor, service, revision, outcome, received_at
FROM `{dataset}.run_history`
WHERE phase = @phase AND `date` = @date
ORDER BY received_at
"""


def _report(
    processor: str, day: str, minutes: int, *, outcome: str = "counted", done: int | None = 1,
    revision: str = "svc-00001", replayed: bool = False,
) -> RunHistoryRow:  # fmt: skip
    return RunHistoryRow(
        PHASE, day, processor, f"run-{processor}", "success", outcome,
        received_at=T0 + timedelta(minutes=minutes), done_count=done,
        expected_count=None if done is None else 3, replayed=replayed,
        trigger_state=None if done is None else "none",
        deployment=Deployment("svc", revision),
    )  # fmt: skip


def _ledger_row(processor: str, day: str, minutes: int) -> LedgerRow:
    at = T0 + timedelta(minutes=minutes)
    return LedgerRow(PHASE, day, processor, f"run-{processor}", "success", at, at, False)


def _log_row(day: str, status: str, minutes: int) -> ExecutionLogRow:
    at = T0 + timedelta(minutes=minutes)
    return ExecutionLogRow(at, PHASE, day, T0, 60.0, status)


@pytest.fixture
def day_view(bigquery_client: Any, bigquery_dataset: str) -> str:
    """A bootstrapped dataset holding one complete date and one stalled date."""
    created = bootstrap(bigquery_client, bigquery_dataset)
    assert f"{bigquery_client.project}.{bigquery_dataset}.pipeline_day" in created
    history = BigQueryRunHistory(f"{bigquery_dataset}.run_history", bigquery_client, timeout=10.0)
    ledger = BigQueryLedger(f"{bigquery_dataset}.completion_ledger", bigquery_client)
    log = BigQueryExecutionLog(f"{bigquery_dataset}.phase_execution_log", bigquery_client)
    # PREV: a and b counted, c degraded and later replayed; the trigger confirmed.
    for row in (
        _report("a", PREV, 0, done=1),
        _report("b", PREV, 5, done=2),
        _report("c", PREV, 9, outcome="degraded", done=None),
        _report("c", PREV, 30, done=3, replayed=True),
        # DAY: a and b counted (b on a new revision), c degraded, never replayed.
        _report("a", DAY, 60, done=1),
        _report("b", DAY, 70, done=2, revision="svc-00002"),
        _report("c", DAY, 80, outcome="degraded", done=None),
    ):
        history.record(row)
    assert history.close(GENEROUS)
    ledger.append(_ledger_row("c", PREV, 9))
    ledger.append(_ledger_row("c", DAY, 80))
    log.write(_log_row(PREV, "complete", 31))
    log.write(_log_row(DAY, "deadline_exceeded", 400))
    return bigquery_dataset


def _query(client: Any, sql: str, **params: Any) -> list[Any]:
    from google.cloud import bigquery

    config = bigquery.QueryJobConfig(query_parameters=[
        bigquery.ScalarQueryParameter(k, "DATE" if k == "date" else "STRING", v)
        for k, v in params.items()
    ])  # fmt: skip
    return list(client.query(sql, job_config=config, retry=None, timeout=30).result(timeout=30))


@pytest.mark.bigquery
def test_item3_view_shows_reports_trigger_and_degraded_rows_per_date(
    bigquery_client: Any, day_view: str
) -> None:
    """Per (phase, date): who reported when, the trigger's state, the degraded rows."""
    rows = _query(
        bigquery_client, f"SELECT * FROM `{day_view}.pipeline_day` ORDER BY `date`"
    )
    prev, day = rows
    assert (prev["phase"], prev["date"], day["date"]) == (PHASE, date(2026, 1, 30),
                                                         date(2026, 1, 31))
    assert (prev["done_count"], prev["expected_count"], prev["complete"]) == (3, 3, True)
    assert prev["trigger_status"] == "complete"
    assert prev["triggered_at"] == T0 + timedelta(minutes=31)
    assert (prev["degraded_count"], prev["unreplayed_count"]) == (1, 0)
    assert [r["replayed"] for r in prev["degraded_rows"]] == [True]

    assert (day["done_count"], day["complete"], day["degraded_reports"]) == (2, False, 1)
    assert day["trigger_status"] == "deadline_exceeded"
    assert day["triggered_at"] is None
    assert day["deadline_exceeded_at"] == T0 + timedelta(minutes=400)
    assert (day["degraded_count"], day["unreplayed_count"]) == (1, 1)
    assert [(r["processor"], r["outcome"]) for r in day["reports"]] == [
        ("a", "counted"), ("b", "counted"), ("c", "degraded")
    ]
    assert [r["received_at"] for r in day["reports"]] == [
        T0 + timedelta(minutes=m) for m in (60, 70, 80)
    ]
    assert day["first_report_at"] == T0 + timedelta(minutes=60)
    assert day["last_trigger_state"] == "none"


@pytest.mark.bigquery
def test_how_to_queries_answer_how_often_and_which_revision(
    bigquery_client: Any, day_view: str
) -> None:
    """The how-to's SQL: 2/3 once and 3/3 once; DAY's b ran on revision svc-00002."""
    counts = _query(bigquery_client, HOW_OFTEN.replace("{dataset}", day_view))
    assert [(r["final_count"], r["expected_count"], r["dates"]) for r in counts] == [
        (2, 3, 1), (3, 3, 1)
    ]
    revisions = _query(
        bigquery_client, WHICH_REVISION.replace("{dataset}", day_view), phase=PHASE, date=DAY
    )
    assert [(r["processor"], r["revision"]) for r in revisions] == [
        ("a", "svc-00001"), ("b", "svc-00002"), ("c", "svc-00001")
    ]


def test_view_sql_names_the_dataset_and_refuses_unknown_views() -> None:
    assert "pipeline_day" in view_names()
    sql = view_query("pipeline_day", "proj.ds")
    assert "`proj.ds.run_history`" in sql
    assert "`proj.ds.completion_ledger`" in sql
    assert "`proj.ds.phase_execution_log`" in sql
    assert "{dataset}" not in sql
    with pytest.raises(InvalidInputError):
        view_query("nope", "proj.ds")
    with pytest.raises(ConfigurationError):
        view_query("pipeline_day", "ds")
