"""
The dedup policy rendered as BigQuery SQL, for ``BigQueryWriter``.

Kept next to the Python rendering (``_rows``) on purpose: the pre-write pass
and the MERGE must pick the same winner (F8), and they are easiest to keep in
step side by side. Only values the writer validated go into the text (table
ids, column names, an ISO date, an integer token), quoted here.
"""

# This module builds SQL text by design, from validated and quoted values only.
# ruff: noqa: S608

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from .._validate import iso_date as _iso_date
from ..errors import ConfigurationError, InvalidInputError
from ._policy import DedupPolicy, quote_ident

__all__ = [
    "STALE_FENCE_MARKER",
    "FenceSpec",
    "MergePlan",
    "check_partition",
    "duplicates_query",
    "fence_token",
    "iso_date",
    "merge_script",
    "partition_filter",
    "partitioning",
    "replace_script",
    "stale_fence_current",
    "string_literal",
]

# The script fails with this text when the fence is stale; the writer looks for it.
STALE_FENCE_MARKER = "pipeline_reliability.stale_fence current="


def string_literal(value: str) -> str:
    """Quote a string literal for BigQuery."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True, slots=True)
class FenceSpec:
    """Where the fence lives and what this write claims."""

    table: str  # quoted `project.dataset.write_fences`
    name: str  # the fenced table, project.dataset.table
    partition: str  # ISO date or ""
    token: int


@dataclass(frozen=True, slots=True)
class MergePlan:
    """Everything the upsert script needs."""

    target: str  # quoted `project.dataset.table`
    staging: str  # quoted
    columns: tuple[str, ...]  # every top-level column of the target, in schema order
    policy: DedupPolicy
    partition_column: str | None = None
    partition_is_date: bool = True
    partition_date: str | None = None
    fence: FenceSpec | None = None

    def partition_predicate(self, alias: str) -> str | None:
        """``alias.col`` restricted to the partition date, or ``None``."""
        return partition_filter(
            alias, self.partition_column, self.partition_is_date, self.partition_date
        )

    def key_match(self, left: str, right: str) -> str:
        return " AND ".join(
            f"{left}.{quote_ident(k)} = {right}.{quote_ident(k)}" for k in self.policy.key
        )


def partition_filter(
    alias: str, column: str | None, is_date: bool, day: str | None
) -> str | None:
    """``alias.column`` equal to the ISO date ``day`` (``DATE(...)`` of a timestamp)."""
    if column is None or day is None:
        return None
    expression = f"{alias}.{quote_ident(column)}"
    if not is_date:
        expression = f"DATE({expression})"
    return f"{expression} = DATE {string_literal(day)}"


def _batch(plan: MergePlan) -> str:
    # The staging rows hold one row per key already (deduplicated in Python);
    # the window is defence in depth, applying the same policy once more.
    keys = ", ".join(quote_ident(k) for k in plan.policy.key)
    order = plan.policy.sql_window_order()
    window = f"PARTITION BY {keys}" + (f" ORDER BY {order}" if order else "")
    return (
        "SELECT * EXCEPT (_pr_rank) FROM (\n"
        f"  SELECT *, ROW_NUMBER() OVER ({window}) AS _pr_rank FROM {plan.staging}\n"
        ") WHERE _pr_rank = 1"
    )


def _on(plan: MergePlan) -> str:
    on = plan.key_match("T", "S")
    where = plan.partition_predicate("T")
    # A constant filter on the target's partition column lets BigQuery prune.
    return f"{on} AND {where}" if where else on


def _counts(plan: MergePlan) -> list[str]:
    # Counted before the MERGE, inside the transaction (one snapshot), reading
    # only key and order_by columns of the target.
    keys = ", ".join(quote_ident(k) for k in plan.policy.key)
    exists = f"SELECT 1 FROM {plan.target} AS T WHERE {_on(plan)}"
    return [
        "SET _pr_inserted = (SELECT COUNT(*) FROM "
        f"(SELECT DISTINCT {keys} FROM {plan.staging}) AS S WHERE NOT EXISTS ({exists}))",
        f"SET _pr_updated = (SELECT COUNT(*) FROM {plan.target} AS T INNER JOIN (\n"
        f"{_batch(plan)}\n) AS S ON {_on(plan)} WHERE {plan.policy.sql_wins('S', 'T')})",
    ]


def _merge(plan: MergePlan) -> str:
    columns = [quote_ident(c) for c in plan.columns]
    keys = set(plan.policy.key)
    updates = ", ".join(
        f"{quote_ident(c)} = S.{quote_ident(c)}" for c in plan.columns if c not in keys
    )
    wins = plan.policy.sql_wins("S", "T")
    matched = ""
    if updates and wins != "FALSE":
        condition = "" if wins == "TRUE" else f" AND {wins}"
        matched = f"WHEN MATCHED{condition} THEN UPDATE SET {updates}\n"
    return (
        f"MERGE {plan.target} AS T\n"
        f"USING (\n{_batch(plan)}\n) AS S\n"
        f"ON {_on(plan)}\n"
        f"{matched}"
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) "
        f"VALUES ({', '.join('S.' + c for c in columns)})"
    )


def _fence_check(fence: FenceSpec) -> str:
    # ERROR() rather than RAISE: both fail the script (and roll the transaction
    # back) in BigQuery; the emulator answers RAISE with an HTTP 500.
    return (
        f"SELECT ERROR(CONCAT({string_literal(STALE_FENCE_MARKER)}, CAST(token AS STRING)))\n"
        f"FROM {fence.table}\n"
        f"WHERE table_name = {string_literal(fence.name)}"
        f" AND `partition` = {string_literal(fence.partition)} AND token > {fence.token}"
    )


def _fence_update(fence: FenceSpec) -> str:
    return (
        f"MERGE {fence.table} AS F\n"
        f"USING (SELECT {string_literal(fence.name)} AS table_name, "
        f"{string_literal(fence.partition)} AS `partition`, {fence.token} AS token) AS S\n"
        "ON F.table_name = S.table_name AND F.`partition` = S.`partition`\n"
        "WHEN MATCHED AND F.token < S.token THEN\n"
        "  UPDATE SET token = S.token, updated_at = CURRENT_TIMESTAMP()\n"
        "WHEN NOT MATCHED THEN INSERT (table_name, `partition`, token, updated_at)\n"
        "  VALUES (S.table_name, S.`partition`, S.token, CURRENT_TIMESTAMP())"
    )


def merge_script(plan: MergePlan) -> str:
    """
    Render the upsert as one multi-statement transaction.

    Fence check (if fenced), the counts, the one MERGE into the target, the
    fence update, commit. The script's result is one row ``(inserted,
    updated)``. Any failure, a stale fence included, rolls everything back.
    """
    statements = [
        "DECLARE _pr_inserted INT64 DEFAULT 0",
        "DECLARE _pr_updated INT64 DEFAULT 0",
        "BEGIN TRANSACTION",
    ]
    if plan.fence is not None:
        statements.append(_fence_check(plan.fence))
    statements += [*_counts(plan), _merge(plan)]
    if plan.fence is not None:
        statements.append(_fence_update(plan.fence))
    statements += [
        "COMMIT TRANSACTION",
        "SELECT _pr_inserted AS inserted, _pr_updated AS updated",
    ]
    return ";\n".join(statements) + ";"


def _replace_merge(plan: MergePlan, day: str) -> str:
    # ON FALSE: no target row matches, so every batch row is inserted and every
    # row of the partition is deleted, in one statement. The partition ends up
    # holding exactly the batch (keys the table held twice included), as a
    # delete-and-insert would leave it, but atomically. The clause's filter is
    # what keeps every other partition untouched.
    columns = [quote_ident(c) for c in plan.columns]
    return (
        f"MERGE {plan.target} AS T\n"
        f"USING (\n{_batch(plan)}\n) AS S\n"
        "ON FALSE\n"
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) "
        f"VALUES ({', '.join('S.' + c for c in columns)})\n"
        f"WHEN NOT MATCHED BY SOURCE AND {day} THEN DELETE"
    )


def replace_script(plan: MergePlan) -> str:
    """
    Render a partition rebuild as one multi-statement transaction.

    Fence check (if fenced), the counts, one MERGE that inserts the batch and
    removes the partition's other rows, the fence update, commit. The result
    is one row ``(inserted, updated, deleted)``: keys new to the partition,
    keys it held (their rows replaced), and its rows that are gone (stale
    keys, null keys, extra copies of a key). Any failure rolls it all back.

    Raises:
        InvalidInputError: the plan names no partition column or date.
    """
    day = plan.partition_predicate("T")
    if day is None:
        raise InvalidInputError("a partition rebuild needs a partition column and a date")
    keys = ", ".join(quote_ident(k) for k in plan.policy.key)
    exists = f"SELECT 1 FROM {plan.target} AS T WHERE {_on(plan)}"
    statements = [
        "DECLARE _pr_old INT64 DEFAULT 0",
        "DECLARE _pr_new INT64 DEFAULT 0",
        "DECLARE _pr_kept INT64 DEFAULT 0",
        "BEGIN TRANSACTION",
    ]
    if plan.fence is not None:
        statements.append(_fence_check(plan.fence))
    # Counted before the MERGE, inside the transaction (one snapshot).
    statements += [
        f"SET _pr_old = (SELECT COUNT(*) FROM {plan.target} AS T WHERE {day})",
        f"SET _pr_new = (SELECT COUNT(*) FROM (SELECT DISTINCT {keys} FROM {plan.staging}))",
        "SET _pr_kept = (SELECT COUNT(*) FROM "
        f"(SELECT DISTINCT {keys} FROM {plan.staging}) AS S WHERE EXISTS ({exists}))",
        _replace_merge(plan, day),
    ]
    if plan.fence is not None:
        statements.append(_fence_update(plan.fence))
    statements += [
        "COMMIT TRANSACTION",
        "SELECT _pr_new - _pr_kept AS inserted, _pr_kept AS updated, "
        "_pr_old - _pr_kept AS deleted",
    ]
    return ";\n".join(statements) + ";"


def duplicates_query(table: str, key: tuple[str, ...], where: str | None) -> str:
    """Keys that occur more than once (null keys excluded), most repeated first."""
    keys = ", ".join(quote_ident(k) for k in key)
    filters = [f"{quote_ident(k)} IS NOT NULL" for k in key]
    if where:
        filters.append(where)
    return (
        f"SELECT {keys}, COUNT(*) AS _pr_count FROM {table} AS T\n"
        f"WHERE {' AND '.join(filters)}\n"
        f"GROUP BY {keys}\n"
        "HAVING COUNT(*) > 1\n"
        f"ORDER BY _pr_count DESC, {keys}"
    )


# --- checks on the values that go into the SQL --------------------------------


def iso_date(value: date | str | None) -> str | None:
    """
    Return ``value`` as ``YYYY-MM-DD`` (``None`` stays ``None``).

    Raises:
        InvalidInputError: not a date or an ISO date string.
    """
    return None if value is None else _iso_date(value, "partition_date")


def fence_token(fence: object) -> int:
    """
    Return the fencing token of ``fence`` (anything with ``token: int``).

    Raises:
        InvalidInputError: no token, or not a non-negative int.
    """
    token = getattr(fence, "token", None)
    if isinstance(token, bool) or not isinstance(token, int) or token < 0:
        raise InvalidInputError(f"a fence needs a non-negative int token, got {token!r}")
    return token


def partitioning(meta: Any, column: str | None) -> tuple[str | None, bool]:
    """
    The partitioning column of a table (``column``, else its time-partitioning
    field) and whether that column is a DATE (else TIMESTAMP or DATETIME).

    Raises:
        InvalidInputError: ``column`` is not a column of the table.
        ConfigurationError: the column is not a date or timestamp.
    """
    tp = getattr(meta, "time_partitioning", None)
    column = column or (getattr(tp, "field", None) if tp is not None else None)
    if column is None:
        return None, True
    types = {f.name: f.field_type for f in meta.schema}
    if column not in types:
        raise InvalidInputError(f"partition column {column!r} is not a column of the table")
    if types[column] not in {"DATE", "TIMESTAMP", "DATETIME"}:
        raise ConfigurationError(f"partition column {column!r} is {types[column]}, not a date")
    return column, types[column] == "DATE"


def check_partition(rows: Sequence[Mapping[str, Any]], column: str, iso: str) -> None:
    """
    Refuse a batch with a row outside the partition date ``iso``.

    Raises:
        InvalidInputError: a row's ``column`` is missing or on another day (UTC).
    """
    day = date.fromisoformat(iso)
    for row in rows:
        if _day_of(row.get(column)) != day:
            raise InvalidInputError(
                f"row outside partition {iso}: {column}={row.get(column)!r}; "
                "an upsert scoped to a date must hold only rows of that date"
            )


def _day_of(value: Any) -> date | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).date()
    return value if isinstance(value, date) else None


def stale_fence_current(exc: BaseException | None) -> int | None:
    """The newer token named by a stale-fence script failure, or ``None``."""
    text = "" if exc is None else str(exc)
    at = text.find(STALE_FENCE_MARKER)
    if at < 0:
        return None
    digits = re.match(r"\d+", text[at + len(STALE_FENCE_MARKER) :])
    return int(digits.group()) if digits else 0
