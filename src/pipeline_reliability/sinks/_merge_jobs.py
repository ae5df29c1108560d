"""
The BigQuery jobs of one ``BigQueryWriter`` write (DESIGN F8, F9).

The batch is loaded into a staging table of the call's own, then one script
MERGEs it into the target, under a job id that derives from the write:
``pr_merge_<digest>_<n>`` (``pr_rebuild_<digest>_<n>`` for a partition
rebuild). The digest covers the batch and everything else that shapes the
write; ``n`` counts the runs of it that finished with an error. Ids are
used in order, so a call repeated after a lost response finds the first
call's job by looking at ``_0, _1, ...`` (:meth:`MergeJobs.probe`) and
reports it instead of writing again.
"""

from __future__ import annotations

import hashlib
import io
import logging
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from .._telemetry import log_failure
from ..dedup._sql import stale_fence_current
from ..errors import StaleFenceError, WriteFailedError
from ..retry import RetryPolicy
from ._bigquery import TableId, bigquery_module, call_mapped
from ._concurrency import StatementSlot

__all__ = [
    "MAX_RUNS",
    "STAGING_TTL",
    "MergeJobs",
    "MergeRun",
    "batch_digest",
    "stale_fence_error",
]

logger = logging.getLogger("pipeline_reliability.sinks")

MAX_RUNS = 20  # MERGE job ids tried per batch; each run that failed spends one
STAGING_TTL = timedelta(days=1)


class MergeRun(NamedTuple):
    """A MERGE job's id and its result rows (one row: ``inserted``, ``updated``)."""

    job_id: str
    rows: list[Any]

    def counts(self) -> tuple[int, int]:
        """
        Return ``(inserted, updated)`` from the script's result row.

        Raises:
            WriteFailedError: the script returned no row.
        """
        if not self.rows:
            raise WriteFailedError("the MERGE script returned no counts", job_id=self.job_id)
        return int(self.rows[0]["inserted"]), int(self.rows[0]["updated"])

    def deleted(self) -> int:
        """Rows a partition rebuild removed (0 for an upsert, whose result has no such column)."""
        if not self.rows:
            raise WriteFailedError("the MERGE script returned no counts", job_id=self.job_id)
        return int(self.rows[0].get("deleted") or 0)


def stale_fence_error(
    exc: WriteFailedError, token: int | None, table: str, partition: str | None
) -> Exception:
    """
    Return the ``StaleFenceError`` that a failed fenced MERGE means, else ``exc``.

    The script's fence check fails the job with a marker naming the newer
    token (see ``dedup._sql``); nothing was written then.
    """
    current = stale_fence_current(exc.__cause__)
    if current is None or token is None:
        return exc
    return StaleFenceError(
        f"fencing token {token} is stale for {table} partition "
        f"{partition or '(whole table)'}: token {current} already wrote",
        token=token,
        current=current,
    )


def batch_digest(header: tuple[Any, ...], payload: bytes) -> str:
    """Return the digest of a write (40 hex digits): ``repr(header)``, then the payload."""
    return hashlib.sha256(repr(header).encode() + b"\n" + payload).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class MergeJobs:
    """
    The jobs of one batch: staging table, load, and the MERGE job ids.

    Attributes:
        client: The ``google.cloud.bigquery.Client``.
        retry: The policy of every step.
        digest: The write's :func:`batch_digest`.
        location: Location of the target (and so of its jobs).
        prefix: Of the MERGE job ids: ``pr_merge_`` (upsert) or
            ``pr_rebuild_`` (partition rebuild), so operators tell them apart.
        slot: Entered around each statement attempt (a concurrency-limit slot).
    """

    client: Any
    retry: RetryPolicy
    digest: str
    location: str | None
    prefix: str = "pr_merge_"
    slot: StatementSlot = nullcontext

    def job_id(self, n: int) -> str:
        """The ``n``-th MERGE job id of this batch."""
        return f"{self.prefix}{self.digest}_{n}"

    def staging_table(self, project: str, dataset: str) -> TableId:
        """Return a new staging table id for this batch, unique to the call."""
        # A fresh staging table per call: a MERGE that runs now always reads data
        # this call loaded, never a table that an earlier call may have dropped.
        return TableId(project, dataset, f"_pr_stage_{self.digest}_{uuid.uuid4().hex[:12]}")

    def create_staging(self, name: str, schema: Any, now: datetime) -> None:
        """Create the staging table ``name``; it expires by itself if its drop fails."""
        table = bigquery_module().Table(name, schema=schema)
        table.expires = now + STAGING_TTL
        call_mapped(
            self.retry, "creating the staging table", self.client.create_table, table,
            exists_ok=True,
        )

    def load(self, name: str, schema: Any, payload: bytes) -> str:
        """Load the NDJSON batch into the staging table ``name``; return the load job id."""
        from google.api_core import exceptions as gexc

        bigquery = bigquery_module()
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            schema=schema,
            # The staging table is this call's own: a load repeated after a lost
            # response may double its rows, which the MERGE's window absorbs.
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        )
        last: list[str] = []

        def load() -> str:
            job = self.client.load_table_from_file(
                io.BytesIO(payload), name,
                job_id_prefix="pr_load_", job_config=config, location=self.location,
            )
            last.append(job.job_id)
            job.result()
            return str(job.job_id)

        try:
            return self.retry.call(load)
        except gexc.GoogleAPIError as exc:
            job_id = last[-1] if last else None
            raise WriteFailedError(f"loading the batch failed: {exc}", job_id=job_id) from exc

    def drop_staging(self, name: str) -> None:
        """Drop the staging table ``name``; a failure is logged, never raised."""
        try:
            call_mapped(
                self.retry, "dropping the staging table", self.client.delete_table, name,
                not_found_ok=True,
            )
        except Exception as exc:  # noqa: BLE001
            # The write itself succeeded or is already raising; the staging table
            # expires by itself within a day. Logged with traceback, never silent.
            log_failure(logger, "dropping a staging table failed", exc, table=name)

    def probe(self) -> tuple[int, MergeRun | None]:
        """
        Find an earlier run of this MERGE: ``(first unused id number, run | None)``.

        Ids are used in order, so the first id that does not exist ends the
        search. A run that finished with an error changed nothing (its
        transaction rolled back): the search goes past it.
        """
        from google.api_core import exceptions as gexc

        for n in range(MAX_RUNS):
            job_id = self.job_id(n)
            try:
                job = self.retry.call(self.client.get_job, job_id, location=self.location)
            except gexc.NotFound:
                return n, None
            except gexc.GoogleAPIError as exc:
                raise WriteFailedError(f"reading job {job_id} failed", job_id=job_id) from exc
            try:
                return n, MergeRun(job_id, list(job.result(job_retry=None)))
            except gexc.GoogleAPIError as exc:
                if not getattr(job, "error_result", None):
                    raise WriteFailedError(f"waiting for {job_id} failed", job_id=job_id) from exc
        return MAX_RUNS, None

    def run(self, first: int, script: str) -> MergeRun:
        """
        Run ``script`` under id number ``n``, from ``n = first``.

        409 on insert means another call created the id meanwhile: use that
        job's outcome. A job that *finished with an error* can never run again
        under its id, so a retry moves to ``n + 1``; any other failure (insert
        or polling) keeps the id, so a job that may exist is found again
        rather than run twice.
        """
        from google.api_core import exceptions as gexc

        ids = [first]
        tried: list[str] = []

        def attempt() -> MergeRun:
            job_id = self.job_id(ids[-1])
            tried.append(job_id)
            with self.slot():
                try:
                    job = self.client.query(
                        script, job_id=job_id, location=self.location, job_retry=None
                    )
                except gexc.Conflict:
                    job = self.client.get_job(job_id, location=self.location)
                try:
                    return MergeRun(job_id, list(job.result(job_retry=None)))
                except gexc.GoogleAPIError:
                    if getattr(job, "error_result", None) and ids[-1] + 1 < MAX_RUNS:
                        ids.append(ids[-1] + 1)
                    raise

        try:
            return self.retry.call(attempt)
        except gexc.GoogleAPIError as exc:
            raise WriteFailedError(f"the MERGE failed: {exc}", job_id=tried[-1]) from exc
