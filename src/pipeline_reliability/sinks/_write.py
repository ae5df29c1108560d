"""
The steps one ``BigQueryWriter`` write shares between ``upsert`` and
``replace_partition``: resolve the target, check the batch against it, find an
earlier run of the same write, stage the batch, run the one script.

Only the script differs between the two (``dedup._sql.merge_script`` or
``replace_script``); everything that makes a write safe to retry and to run
concurrently (deterministic job ids, own staging table, one transaction,
the fence) is here once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..dedup._policy import DedupPolicy, check_null_keys
from ..dedup._rows import dedupe
from ..dedup._sql import (
    FenceSpec,
    MergePlan,
    check_partition,
    fence_token,
    iso_date,
    merge_script,
    partitioning,
    replace_script,
)
from ..errors import InvalidInputError, WriteFailedError
from ..retry import RetryPolicy
from ._bigquery import TableId, call_mapped, ndjson_file
from ._checks import check_call, check_names, rows_arg, table_arg
from ._concurrency import StatementSlot
from ._merge_jobs import MergeJobs, MergeRun, batch_digest, stale_fence_error

__all__ = ["Target", "WriteCall", "WriteSpec", "resolve", "run_write"]


@dataclass(frozen=True, slots=True)
class WriteCall:
    """A write's arguments, checked, and its batch deduplicated (no client involved)."""

    table: TableId
    policy: DedupPolicy
    rows: list[Mapping[str, Any]]
    dropped: int
    null_key_rows: int
    token: int | None
    partition: str | None

    @classmethod
    def check(  # noqa: PLR0917 - one argument per writer keyword
        cls,
        table: object,
        rows: object,
        key: object,
        order_by: object,
        keep: object,
        fence: object,
        partition_date: object,
        partition_column: object,
        null_keys: object,
        request_id: object,
    ) -> WriteCall:
        """
        Check every argument and dedupe the batch, before any client call.

        Raises:
            InvalidInputError: any argument or row refused.
        """
        check_names(key, "key")
        check_names(order_by, "order_by", optional=True)
        policy = DedupPolicy.build(key, order_by, keep)  # type: ignore[arg-type]
        policy.check_sql_names()
        mode = check_null_keys(null_keys, ("reject", "drop"))  # type: ignore[arg-type]
        table_id = table_arg(table)
        check_call(partition_column, request_id)
        batch_rows = rows_arg(rows)
        token = None if fence is None else fence_token(fence)
        partition = iso_date(partition_date)  # type: ignore[arg-type]
        batch = dedupe(batch_rows, policy, mode)
        return cls(
            table_id, policy, list(batch.rows), batch.dropped, len(batch.null_key_rows),
            token, partition,
        )


@dataclass(frozen=True, slots=True)
class Target:
    """One write's resolved target: ids, schema, partitioning."""

    table: TableId
    name: str
    schema: Any
    columns: tuple[str, ...]
    location: str | None
    partition_column: str | None
    partition_is_date: bool


def resolve(client: Any, retry: RetryPolicy, table: TableId, name: str,
            partition_column: str | None) -> Target:
    """Read the target's metadata (one ``get_table``) into a :class:`Target`."""
    meta = call_mapped(retry, "reading the table", client.get_table, name)
    column, is_date = partitioning(meta, partition_column)
    return Target(
        table, name, meta.schema, tuple(f.name for f in meta.schema),
        getattr(meta, "location", None), column, is_date,
    )


@dataclass(frozen=True, slots=True)
class WriteSpec:
    """
    Everything about one write but its rows.

    ``header`` is mixed into the job-id digest: whatever shapes the write
    (table, policy, fence token, partition, request id, replay window, and
    the kind of write for a rebuild).
    """

    client: Any
    retry: RetryPolicy
    project: str
    staging_dataset: str | None
    policy: DedupPolicy
    partition: str | None
    fence: FenceSpec | None
    header: tuple[Any, ...]
    now: datetime
    replace: bool = False
    slot: StatementSlot = nullcontext


def run_write(
    spec: WriteSpec, target: Target, rows: Sequence[Mapping[str, Any]]
) -> tuple[MergeRun, tuple[str, ...], bool]:
    """
    Run one write: ``(the MERGE run, job ids, reused)``.

    ``reused`` is True when this exact write had run before (a repeated
    call): its run is returned and nothing is written now.

    Raises:
        InvalidInputError: key/order_by columns missing, a row outside the
            partition, or a value JSON cannot hold; nothing was sent.
        StaleFenceError: a larger token already wrote; nothing changed.
        WriteFailedError: BigQuery refused a step.
    """
    policy = spec.policy
    missing = [c for c in (*policy.key, *policy.order_by) if c not in target.columns]
    if missing:
        raise InvalidInputError(f"{target.name} has no column(s) {missing}")
    if spec.partition is not None and target.partition_column is not None:
        check_partition(rows, target.partition_column, spec.partition)
    try:
        payload = ndjson_file(rows).getvalue()
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"rows are not JSON serialisable: {exc}") from exc
    prefix = "pr_rebuild_" if spec.replace else "pr_merge_"
    jobs = MergeJobs(
        spec.client, spec.retry, batch_digest(spec.header, payload), target.location, prefix,
        spec.slot,
    )
    first, done = jobs.probe()
    if done is not None:
        return done, (done.job_id,), True
    staging = jobs.staging_table(
        target.table.project or spec.project, spec.staging_dataset or target.table.dataset
    )
    staging_name = staging.qualified(spec.project)
    plan = MergePlan(
        target.table.sql(spec.project), staging.sql(spec.project), target.columns,
        policy, target.partition_column, target.partition_is_date, spec.partition, spec.fence,
    )
    script = replace_script(plan) if spec.replace else merge_script(plan)
    jobs.create_staging(staging_name, target.schema, spec.now)
    try:
        # An empty rebuild (allowed on purpose) merges from the empty staging table.
        load_ids = (jobs.load(staging_name, target.schema, payload),) if rows else ()
        done = jobs.run(first, script)
    except WriteFailedError as exc:
        token = None if spec.fence is None else spec.fence.token
        stale = stale_fence_error(exc, token, target.name, spec.partition)
        raise stale from exc.__cause__
    finally:
        jobs.drop_staging(staging_name)
    return done, (*load_ids, done.job_id), False
