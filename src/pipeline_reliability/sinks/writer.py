"""
``BigQueryWriter``: idempotent, fenced MERGE upserts and partition rebuilds
(DESIGN F8, F9).

One write: deduplicate the batch in Python (the policy of
``deduplicate_rows``), load it into a staging table, run one transaction that
checks the fence, MERGEs the winners into the target and records the fence,
then drop the staging table. The MERGE job's id derives from the batch
content, so a call repeated after a lost response finds the first call's job
and reports it instead of writing again.

An upsert only ever merges rows in. Rows leave a table in one place only:
the one MERGE of ``replace_partition``, which removes the rows of its own
partition that the new set no longer holds, in the same statement that
inserts the set. There is never a separate removal followed by an insert,
however a write fails (F8).
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
from ..dedup._policy import DedupPolicy
from ..dedup._sql import FenceSpec, duplicates_query, iso_date, partition_filter
from ..errors import InvalidInputError
from ..limits import ConcurrencyLimit
from ..retry import RetryPolicy, any_of, is_serialization_conflict
from ._bigquery import TableId, call_mapped, make_client
from ._checks import (
    DATASET_ID,
    PROJECT_ID,
    check_call,
    check_clock,
    check_id,
    check_names,
    check_retry,
    table_arg,
)
from ._concurrency import check_concurrency, statement_slot
from ._merge_jobs import MergeRun
from ._write import WriteCall, WriteSpec, resolve, run_write

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
    What one :meth:`BigQueryWriter.upsert` or
    :meth:`BigQueryWriter.replace_partition` did.

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
        deleted: Rows of the partition a ``replace_partition`` removed
            (stale keys, null keys, extra copies of a key); 0 for an upsert.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``deleted``, for partition rebuilds.
    """

    table: str
    inserted: int = 0
    updated: int = 0
    deduplicated: int = 0
    superseded: int = 0
    null_key_rows: int = 0
    deleted: int = 0
    job_ids: tuple[str, ...] = ()
    already_applied: bool = False
    fence_token: int | None = None
    partition: str | None = None


def _positive(value: object, name: str) -> timedelta:
    return timedelta(seconds=duration_seconds(value, name))


class BigQueryWriter:
    """
    Upserts and partition rebuilds in BigQuery, safe to retry and to run concurrently.

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
        concurrency: A :class:`~pipeline_reliability.ConcurrencyLimit` whose
            slot is held around each MERGE statement (each attempt), e.g. to
            keep a fleet under BigQuery's concurrent-DML limit of a table.
            A slot not acquired in time (``SlotNotAcquiredError``, transient)
            is retried by ``retry``; the last one is in ``RetryExhaustedError``.

    Raises:
        ConfigurationError: a malformed project, dataset or table id, a
            ``retry`` that is not a ``RetryPolicy``, a ``replay_window`` that
            is not a positive duration (seconds or ``timedelta``, at most
            100 years), a ``clock`` that is not a ``Clock``, a
            ``concurrency`` that is not a ``ConcurrencyLimit``.

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
        concurrency: ConcurrencyLimit | None = None,
    ) -> None:
        self.concurrency = check_concurrency(concurrency)
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
        call = WriteCall.check(
            table, rows, key, order_by, keep, fence, partition_date, partition_column,
            null_keys, request_id,
        )
        return self._write(call, "upsert", partition_column, request_id)

    def replace_partition(
        self,
        table: str,
        partition_date: date | str,
        rows: Iterable[Mapping[str, Any]],
        *,
        key: str | Sequence[str],
        order_by: str | Sequence[str] | None = None,
        keep: str = "last",
        fence: Fence | None = None,
        partition_column: str | None = None,
        null_keys: str = "reject",
        request_id: str | None = None,
        allow_empty: bool = False,
    ) -> WriteReport:
        """
        Rebuild one partition: afterwards it holds exactly the deduplicated ``rows``.

        One transaction, one MERGE: every batch row is inserted and every
        other row of the partition removed (``WHEN NOT MATCHED BY SOURCE AND
        <partition filter> THEN DELETE``), so the partition is never empty or
        half-written, rows of other partitions are never touched, and two
        rebuilds of one date leave one of them entirely (whichever commits
        last), never a mix. Keys the table held twice end up once. Unlike
        :meth:`upsert`, the table's rows do not compete: the batch replaces
        them whatever their ``order_by`` values (``order_by`` and ``keep``
        pick the winner *within* the batch).

        Retries, fencing, job ids (``pr_rebuild_<digest>_<n>``),
        ``request_id`` and the replay window work as in :meth:`upsert`; the
        fence is the same per (table, partition), so an upsert and a
        rebuild of one date exclude each other's stale holders.

        Args:
            table: ``[project.]dataset.table``; must exist and have a
                partition column (its time-partitioning field, or
                ``partition_column``).
            partition_date: The date to rebuild; every row must be of it.
            rows: The partition's new contents.
            key: Key column(s).
            order_by: Column(s) deciding the winner within the batch.
            keep: ``"last"`` or ``"first"`` (see ``deduplicate_rows``).
            fence: A lease (anything with ``token``): the rebuild applies
                only if no larger token has written to (table, partition).
            partition_column: A DATE/TIMESTAMP/DATETIME column to scope the
                rebuild by, if the table's metadata names none.
            null_keys: ``"reject"`` (default) or ``"drop"`` rows with a null key.
            request_id: Mixed into the job id (see :meth:`upsert`).
            allow_empty: An empty batch (after dedup) empties the partition
                only if this is True; otherwise it is refused, so a bug that
                produced no rows cannot wipe a day.

        Returns:
            A :class:`WriteReport`: ``inserted`` (keys new to the partition),
            ``updated`` (keys it held, rows replaced), ``deleted`` (its rows
            that are gone), ``partition``, ``fence_token``, ``job_ids``.

        Raises:
            InvalidInputError: bad arguments or rows, an empty batch without
                ``allow_empty``, a table with no partition column; nothing
                was written.
            StaleFenceError: a larger token already wrote; nothing changed.
            WriteFailedError: BigQuery refused a step (``job_id`` says which).
            RetryExhaustedError: transient failures outlasted the retry policy.

        .. versionadded:: 0.2.0
        """
        if partition_date is None:
            raise InvalidInputError("replace_partition needs a partition_date")
        if not isinstance(allow_empty, bool):
            raise InvalidInputError(f"allow_empty must be a bool, got {allow_empty!r:.80}")
        call = WriteCall.check(
            table, rows, key, order_by, keep, fence, partition_date, partition_column,
            null_keys, request_id,
        )
        if not call.rows and not allow_empty:
            raise InvalidInputError(
                f"no rows to rebuild partition {call.partition} with; "
                "pass allow_empty=True to empty it on purpose"
            )
        return self._write(call, "replace_partition", partition_column, request_id)

    def _write(
        self, call: WriteCall, kind: str, partition_column: str | None, request_id: str | None
    ) -> WriteReport:
        replace = kind == "replace_partition"
        base = WriteReport(
            call.table.qualified(self.project), deduplicated=call.dropped,
            null_key_rows=call.null_key_rows, fence_token=call.token, partition=call.partition,
        )
        if not call.rows and not replace:
            return base
        attrs = {"table": base.table, "rows": len(call.rows), "fence.token": base.fence_token}
        with span("sinks", kind, attrs):
            target = resolve(self.client, self.retry, call.table, base.table, partition_column)
            if replace and target.partition_column is None:
                raise InvalidInputError(f"{base.table} has no partition column; pass one")
            now = self.clock.now()
            window = int(now.timestamp() // self.replay_window.total_seconds())
            header = (base.table, call.policy, call.token, call.partition, request_id, window)
            spec = WriteSpec(
                self.client, self.retry, self.project, self._staging_dataset, call.policy,
                base.partition, self._fence_spec(call.table, base),
                # An upsert's header is unchanged (its job ids stay what they were).
                (*header, kind) if replace else header,
                now, replace, statement_slot(self.concurrency),
            )
            done, job_ids, reused = run_write(spec, target, call.rows)
        return self._report(base, call.rows, done, job_ids, reused=reused, kind=kind)

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
            name = table_id.qualified(self.project)
            target = resolve(self.client, self.retry, table_id, name, partition_column)
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
        kind: str,
    ) -> WriteReport:
        inserted, updated = done.counts()
        deleted = done.deleted()
        if not reused:
            counter("sinks.rows_upserted", "Rows written by BigQueryWriter").add(
                inserted + updated, {"table": base.table, "kind": kind}
            )
            if deleted:
                counter(
                    "sinks.rows_deleted", "Rows removed by BigQueryWriter.replace_partition"
                ).add(deleted, {"table": base.table})
        return dataclasses.replace(
            base,
            inserted=inserted,
            updated=updated,
            deleted=deleted,
            superseded=max(len(rows) - inserted - updated, 0),
            job_ids=job_ids,
            already_applied=reused,
        )
