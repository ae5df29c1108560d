"""
A fake BigQuery client for the parts of BigQueryWriter the emulator cannot show.

bqemulator accepts a duplicate job id (production answers 409 Conflict) and
never loses a response (EMULATORS.md §5.3), so the job-id protocol is proven
here: jobs are kept by id, a second insert of an id raises ``Conflict``, and
faults can be planned per job id. SQL is recorded, not executed: each MERGE
"run" returns the counts the test planned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import bigquery

SCHEMA = [
    bigquery.SchemaField("game_date", "DATE", "REQUIRED"),
    bigquery.SchemaField("player", "STRING"),
    bigquery.SchemaField("points", "INT64"),
    bigquery.SchemaField("processed_at", "TIMESTAMP"),
]


@dataclass
class FakeJob:
    """A finished (or failing) job."""

    job_id: str
    query: str | None = None
    rows: list[dict[str, int]] = field(default_factory=list)
    error: gexc.GoogleAPICallError | None = None
    poll_errors: list[Exception] = field(default_factory=list)

    @property
    def error_result(self) -> dict[str, str] | None:
        """Set once the job finished with an error, as on a real job."""
        if self.error is None:
            return None
        return {"reason": "invalidQuery", "message": str(self.error)}

    def result(self, job_retry: Any = None, **_: Any) -> list[dict[str, int]]:
        """Wait: raise a planned polling error, the job's error, or return rows."""
        if self.poll_errors:
            raise self.poll_errors.pop(0)
        if self.error is not None:
            raise self.error
        return self.rows


def job_error(message: str, code: int = 400) -> gexc.GoogleAPICallError:
    """The exception ``result()`` raises for a job that failed with ``message``."""
    error: gexc.GoogleAPICallError = gexc.from_http_status(  # type: ignore[no-untyped-call]
        code, message, errors=[{"reason": "x", "message": message}]
    )
    return error


class FakeBigQuery:
    """Enough of ``bigquery.Client`` for BigQueryWriter, with a job table and fault plans."""

    def __init__(self, *, partition_field: str | None = "game_date") -> None:
        self.project = "demo-test"
        self.jobs: dict[str, FakeJob] = {}
        self.merges_run: list[str] = []  # ids of MERGE scripts that actually executed
        self.loads: list[bytes] = []
        self.tables: set[str] = set()
        self.dropped: list[str] = []
        self.calls: list[str] = []
        self.counts = {"inserted": 1, "updated": 0}
        # job id -> what happens when that id is inserted / waited on
        self.fail_insert: dict[str, Exception] = {}  # applied *after* the job ran: lost response
        self.fail_job: dict[str, gexc.GoogleAPICallError] = {}
        self.fail_poll: dict[str, list[Exception]] = {}
        self.fail_drop: Exception | None = None
        self.partition_field = partition_field

    def get_table(self, name: str, **_: Any) -> Any:
        self.calls.append("get_table")
        tp = None if self.partition_field is None else SimpleNamespace(field=self.partition_field)
        return SimpleNamespace(schema=SCHEMA, time_partitioning=tp, location="US")

    def create_table(self, table: Any, exists_ok: bool = False) -> Any:
        self.calls.append("create_table")
        self.tables.add(table.table_id)
        return table

    def load_table_from_file(self, file_obj: Any, destination: str, **kwargs: Any) -> FakeJob:
        self.calls.append("load")
        self.loads.append(file_obj.read())
        return FakeJob(f"{kwargs.get('job_id_prefix', 'load_')}{len(self.loads)}")

    def query(self, sql: str, job_id: str | None = None, **_: Any) -> FakeJob:
        self.calls.append("query")
        job_id = job_id or f"adhoc_{len(self.jobs)}"
        if job_id in self.jobs:
            raise gexc.Conflict(  # type: ignore[no-untyped-call]
                f"Already Exists: Job demo-test:US.{job_id}"
            )
        job = FakeJob(job_id, sql, [dict(self.counts)], self.fail_job.pop(job_id, None))
        job.poll_errors = self.fail_poll.pop(job_id, [])
        self.jobs[job_id] = job
        if job.error is None and "MERGE" in sql:
            self.merges_run.append(job_id)
        lost = self.fail_insert.pop(job_id, None)
        if lost is not None:
            raise lost
        return job

    def get_job(self, job_id: str, **_: Any) -> FakeJob:
        self.calls.append("get_job")
        if job_id not in self.jobs:
            raise gexc.NotFound(f"Not found: Job {job_id}")  # type: ignore[no-untyped-call]
        return self.jobs[job_id]

    def delete_table(self, name: str, not_found_ok: bool = False) -> None:
        self.calls.append("delete_table")
        if self.fail_drop is not None:
            raise self.fail_drop
        self.dropped.append(name)


def merge_ids(client: FakeBigQuery) -> list[str]:
    """Ids of the MERGE jobs inserted so far, in order."""
    return [job_id for job_id in client.jobs if job_id.startswith("pr_merge_")]


Hook = Callable[[FakeBigQuery], None]
