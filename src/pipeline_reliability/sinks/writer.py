"""
``BigQueryWriter``: idempotent, fenced MERGE upserts (DESIGN F8, F9).

One upsert: deduplicate the batch in Python (the policy of
``deduplicate_rows``), load it into a staging table, run one transaction that
checks the fence, MERGEs the winners into the target and records the fence,
then drop the staging table. The MERGE job's id derives from the batch
content, so a call repeated after a lost response finds the first call's job
and reports it instead of writing again.

Rows are only ever merged in. Nothing here removes rows from a target: there
is no delete-and-insert path, however the MERGE fails (F8).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Protocol

from .._clock import Clock, SystemClock
from .._telemetry import counter, span
from .._validate import duration_seconds
from ..dedup._policy import DedupPolicy, check_null_keys
from ..dedup._rows import dedupe
from ..dedup._sql import (
    FenceSpec,
    MergePlan,
    check_partition,
    duplicates_query,
    fence_token,
    iso_date,
    merge_script,
    partition_filter,
    partitioning,
)
from ..errors import InvalidInputError, WriteFailedError
from ..retry import RetryPolicy, any_of, is_serialization_conflict
from ._bigquery import TableId, call_mapped, make_client, ndjson_file
from ._checks import (
    DATASET_ID,
    PROJECT_ID,
    check_call,
    check_clock,
    check_id,
    check_names,
    check_retry,
    rows_arg,
    table_arg,
)
from ._merge_jobs import MergeJobs, MergeRun, batch_digest, stale_fence_error

__all__ = ["BigQueryWriter", "Fence", "WriteReport"]


class Fence(Protocol):
    """Anything with a fencing token, such as the ``Lease`` of a ``DateLock``."""

    @property
    def token(self) -> int:
        """The fencing token."""
        ...


@dataclass(frozen=True, slots=True)
class WriteReport:
    """
    What one :meth:`BigQueryWriter.upsert` did.

    Attributes:
        table: The target, ``project.dataset.table``.
        inserted: Rows added for keys the table did not hold.
        updated: Rows that replaced the table's row of the same key.
        deduplicated: Batch rows dropped by the pre-write dedup.
        superseded: Batch rows not written because the table's row for the
            key wins under the policy (e.g. it has a newer ``order_by``).
        null_key_rows: Rows left out for a null key (``null_keys="drop"``).
        job_ids: The load and MERGE job ids (only the MERGE's when reused).
        already_applied: This exact write had run before (a repeated call):
            nothing was written now; the counts are the earlier run's.
        fence_token: The token the write was fenced with, if any.
        partition: The partition date the write was scoped to, if any.

    .. versionadded:: 0.1.0
    """

    table: str
    inserted: int = 0
    updated: int = 0
    deduplicated: int = 0
    superseded: int = 0
    null_key_rows: int = 0
    job_ids: tuple[str, ...] = ()
    already_applied: bool = False
    fence_token: int | None = None
    partition: str | None = None


def _positive(value: object, name: str) -> timedelta:
    return timedelta(seconds=duration_seconds(value, name))


@dataclass(frozen=True, slots=True)
class _Target:
    """One upsert's resolved target: ids, schema, partitioning."""

    table: TableId
    name: str
    schema: Any
    columns: tuple[str, ...]
    location: str | None
    partition_column: str | None
    partition_is_date: bool


class BigQueryWriter:
    """
    Upserts into BigQuery that are safe to retry and to run concurrently.

    Args:
        client: A ``google.cloud.bigquery.Client``; created on first use when
            ``None`` (honouring ``BIGQUERY_EMULATOR_HOST``).
        project: Project of the client and of table ids that name none.
        retry: Retry policy of every step. Transient errors and concurrent-
            update conflicts are retried; permanent ones raise at once.
            Default: 6 attempts within 5 minutes.
        staging_dataset: Dataset of the staging tables (default: the
            target's). A staging table expires after a day if its drop fails.
        fence_table: ``[project.]dataset.table`` of the fence table (created
            by ``pipeline-reliability bootstrap`` from ``write_fences.json``);
            default: ``write_fences`` in the target's dataset.
        replay_window: How long an identical call counts as a repeat of the
            first (its MERGE job is reused, nothing is written). The job id
            includes the window's number, so an identical batch sent again
            later is written again (harmless: the MERGE is idempotent), and a
            table recreated meanwhile is not skipped for ever. Default 1 h.
        clock: Time source of the window (default: the system clock).

    Raises:
        ConfigurationError: a malformed project, dataset or table id, a
            ``retry`` that is not a ``RetryPolicy``, a ``replay_window`` that
            is not a positive duration (seconds or ``timedelta``, at most
            100 years), a ``clock`` that is not a ``Clock``.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        client: Any = None,
        *,
        project: str | None = None,
        retry: RetryPolicy | None = None,
        staging_dataset: str | None = None,
        fence_table: str | None = None,
        replay_window: timedelta | float = timedelta(hours=1),
        clock: Clock | None = None,
    ) -> None:
        self.replay_window = _positive(replay_window, "replay_window")
        self.clock: Clock = check_clock(clock) or SystemClock()
        check_id("project", project, PROJECT_ID)
        check_id("staging_dataset", staging_dataset, DATASET_ID)
        self._fence_table = None if fence_table is None else TableId.parse(fence_table, "fence")
        self._client = client
        self._project = project
        self._staging_dataset = staging_dataset
        policy = check_retry(retry) or RetryPolicy(
            attempts=6, deadline=300.0, initial=1.0, maximum=30.0
        )
        # Lost races are always worth re-running: the script is one transaction and
        # the MERGE is idempotent, whatever predicate the caller chose.
        self.retry = policy.with_(predicate=any_of(policy.predicate, is_serialization_conflict))

    @property
    def client(self) -> Any:
        """The BigQuery client (created on first use)."""
        if self._client is None:
            self._client = make_client(self._project)
        return self._client

    @property
    def project(self) -> str:
        """The project of table ids that name none."""
        return str(self._project or self.client.project)

    def upsert(
        self,
        table: str,
        rows: Iterable[Mapping[str, Any]],
        *,
        key: str | Sequence[str],
        order_by: str | Sequence[str] | None = None,
        keep: str = "last",
        fence: Fence | None = None,
        partition_date: date | str | None = None,
        partition_column: str | None = None,
        null_keys: str = "reject",
        request_id: str | None = None,
    ) -> WriteReport:
        """
        Merge ``rows`` into ``table``: one row per key, the winner by ``order_by``.

        The winner rule is :func:`~pipeline_reliability.deduplicate_rows`'s,
        applied to the batch *and* to the table's row of each key (which
        counts as earlier than the batch): with ``order_by``, an older row
        never overwrites a newer one, whatever order writers commit in.

        The MERGE job id derives from the table, the deduplicated batch, the
        policy, the fence token, ``partition_date``, ``request_id`` and the
        ``replay_window``. An identical call within the window (a retry after
        a lost response) finds the first call's job and returns its counts
        with ``already_applied=True``. Pass a new ``request_id`` to write an
        identical batch again within the window on purpose.

        Args:
            table: ``[project.]dataset.table``; must exist.
            rows: The rows (mappings of column to value).
            key: Key column(s).
            order_by: Column(s) deciding the winner (``None``: the last row wins).
            keep: ``"last"`` or ``"first"`` (see ``deduplicate_rows``).
            fence: A lease (anything with ``token``): the write applies only
                if no larger token has written to (table, partition).
            partition_date: Scope of the fence and, when the table has a
                partition column, of the MERGE (every row must be of that date).
            partition_column: The partition column, if the table's metadata
                does not name one.
            null_keys: ``"reject"`` (default) or ``"drop"`` rows with a null key:
                a NULL never equals anything in a MERGE, so they cannot be upserted.
            request_id: Mixed into the job id (see above).

        Raises:
            InvalidInputError: bad arguments or rows; nothing was written.
            StaleFenceError: a larger token already wrote; nothing changed.
            WriteFailedError: BigQuery refused a step (``job_id`` says which).
            RetryExhaustedError: transient failures outlasted the retry policy.
        """
        check_names(key, "key")
        check_names(order_by, "order_by", optional=True)
        policy = DedupPolicy.build(key, order_by, keep)
        policy.check_sql_names()
        mode = check_null_keys(null_keys, ("reject", "drop"))
        table_id = table_arg(table)
        check_call(partition_column, request_id)
        rows = rows_arg(rows)
        base = WriteReport(
            table_id.qualified(self.project),
            fence_token=None if fence is None else fence_token(fence),
            partition=iso_date(partition_date),
        )
        batch = dedupe(rows, policy, mode)
        base = dataclasses.replace(
            base, deduplicated=batch.dropped, null_key_rows=len(batch.null_key_rows)
        )
        if not batch.rows:
            return base
        attrs = {"table": base.table, "rows": len(batch.rows), "fence.token": base.fence_token}
        with span("sinks", "upsert", attrs):
            target = self._resolve(table_id, base.table, partition_column)
            return self._upsert(target, batch.rows, policy, base, request_id)

    def _upsert(
        self,
        target: _Target,
        rows: Sequence[Mapping[str, Any]],
        policy: DedupPolicy,
        base: WriteReport,
        request_id: str | None,
    ) -> WriteReport:
        missing = [c for c in (*policy.key, *policy.order_by) if c not in target.columns]
        if missing:
            raise InvalidInputError(f"{base.table} has no column(s) {missing}")
        if base.partition is not None and target.partition_column is not None:
            check_partition(rows, target.partition_column, base.partition)
        try:
            payload = ndjson_file(rows).getvalue()
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"rows are not JSON serialisable: {exc}") from exc
        window = int(self.clock.now().timestamp() // self.replay_window.total_seconds())
        header = (base.table, policy, base.fence_token, base.partition, request_id, window)
        jobs = MergeJobs(self.client, self.retry, batch_digest(header, payload), target.location)
        first, done = jobs.probe()
        if done is not None:
            # This exact write ran before (a repeated call): report it, write nothing.
            return self._report(base, rows, done, (done.job_id,), reused=True)
        staging = jobs.staging_table(
            target.table.project or self.project, self._staging_dataset or target.table.dataset
        )
        staging_name = staging.qualified(self.project)
        script = merge_script(
            MergePlan(
                target.table.sql(self.project), staging.sql(self.project), target.columns,
                policy, target.partition_column, target.partition_is_date, base.partition,
                self._fence_spec(target.table, base),
            )
        )
        jobs.create_staging(staging_name, target.schema, self.clock.now())
        try:
            load_id = jobs.load(staging_name, target.schema, payload)
            done = jobs.run(first, script)
        except WriteFailedError as exc:
            stale = stale_fence_error(exc, base.fence_token, base.table, base.partition)
            raise stale from exc.__cause__
        finally:
            jobs.drop_staging(staging_name)
        return self._report(base, rows, done, (load_id, done.job_id), reused=False)

    def find_duplicates(
        self,
        table: str,
        key: str | Sequence[str],
        partition_date: date | str | None = None,
        *,
        partition_column: str | None = None,
    ) -> list[tuple[tuple[Any, ...], int]]:
        """
        Return the keys that occur more than once in ``table``, with their counts.

        The daily check that a table holds one row per key. Rows with a NULL
        key field are not duplicates of each other and are left out. Most
        repeated keys first.

        Args:
            table: ``[project.]dataset.table``.
            key: Key column(s).
            partition_date: Look at this date only (needs a partition column:
                the table's time-partitioning field or ``partition_column``).
            partition_column: A DATE/TIMESTAMP/DATETIME column to filter on.

        Raises:
            InvalidInputError: bad key or date, or a date but no partition column.
            WriteFailedError: the query failed.

        .. versionadded:: 0.1.0
        """
        check_names(key, "key")
        policy = DedupPolicy.build(key)
        policy.check_sql_names()
        table_id = table_arg(table)
        check_call(partition_column)
        partition = iso_date(partition_date)
        where = None
        if partition is not None:
            target = self._resolve(table_id, table_id.qualified(self.project), partition_column)
            if target.partition_column is None:
                raise InvalidInputError(f"{table} has no partition column; pass partition_column")
            where = partition_filter(
                "T", target.partition_column, target.partition_is_date, partition
            )
        sql = duplicates_query(table_id.sql(self.project), policy.key, where)

        def run() -> list[Any]:
            return list(self.client.query(sql, job_retry=None).result(job_retry=None))

        with span("sinks", "find_duplicates", {"table": table}):
            found = call_mapped(self.retry, "finding duplicates", run)
        return [(tuple(row[k] for k in policy.key), int(row["_pr_count"])) for row in found]

    # --- steps -----------------------------------------------------------------

    def _resolve(self, table: TableId, name: str, partition_column: str | None) -> _Target:
        meta = call_mapped(self.retry, "reading the table", self.client.get_table, name)
        column, is_date = partitioning(meta, partition_column)
        return _Target(
            table, name, meta.schema, tuple(f.name for f in meta.schema),
            getattr(meta, "location", None), column, is_date,
        )

    def _fence_spec(self, table: TableId, base: WriteReport) -> FenceSpec | None:
        if base.fence_token is None:
            return None
        fences = self._fence_table or TableId(table.project, table.dataset, "write_fences")
        return FenceSpec(
            fences.sql(self.project), base.table, base.partition or "", base.fence_token
        )

    def _report(
        self,
        base: WriteReport,
        rows: Sequence[Mapping[str, Any]],
        done: MergeRun,
        job_ids: tuple[str, ...],
        *,
        reused: bool,
    ) -> WriteReport:
        inserted, updated = done.counts()
        if not reused:
            counter("sinks.rows_upserted", "Rows written by BigQueryWriter.upsert").add(
                inserted + updated, {"table": base.table}
            )
        return dataclasses.replace(
            base,
            inserted=inserted,
            updated=updated,
            superseded=max(len(rows) - inserted - updated, 0),
            job_ids=job_ids,
            already_applied=reused,
        )
