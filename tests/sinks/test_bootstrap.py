"""Shipped BigQuery schemas and the idempotent bootstrap."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest

from pipeline_reliability.completion import ExecutionLogRow, LedgerRow
from pipeline_reliability.errors import ConfigurationError, InvalidInputError
from pipeline_reliability.sinks.bootstrap import (
    TableId,
    add_missing_columns,
    bootstrap,
    load_schema,
    schema_names,
    table_resource,
    view_names,
)


def test_shipped_schemas_include_ledger_and_execution_log() -> None:
    """The package ships the ledger and execution-log table definitions."""
    assert {"completion_ledger", "phase_execution_log"} <= set(schema_names())


@pytest.mark.parametrize("name", schema_names())
def test_every_shipped_schema_loads(name: str) -> None:
    """Every shipped schema file parses into BigQuery SchemaFields with a mode and a type."""
    fields = load_schema(name)

    assert fields
    assert all(f.field_type and f.mode in {"REQUIRED", "NULLABLE", "REPEATED"} for f in fields)


def test_ledger_schema_has_a_column_per_ledger_row_field() -> None:
    """The completion_ledger columns are exactly the LedgerRow fields."""
    columns = {f.name for f in load_schema("completion_ledger")}

    assert columns == {f.name for f in dataclasses.fields(LedgerRow)}


def test_execution_log_schema_matches_production_columns() -> None:
    """phase_execution_log has every ExecutionLogRow field plus the production extras."""
    columns = {f.name for f in load_schema("phase_execution_log")}

    assert columns == {f.name for f in dataclasses.fields(ExecutionLogRow)} | {
        "games_processed",
        "created_at",
    }


def test_unknown_schema_is_rejected() -> None:
    """Asking for a table that is not shipped raises InvalidInputError."""
    with pytest.raises(InvalidInputError, match="no shipped table schema"):
        table_resource("nope")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ds.t", TableId(None, "ds", "t")),
        ("proj-1.ds_2.table_3", TableId("proj-1", "ds_2", "table_3")),
        ("example.com:proj.ds.t", TableId("example.com:proj", "ds", "t")),
    ],
)
def test_table_ids_parse(value: str, expected: TableId) -> None:
    """Table ids with and without a project (domain-scoped too) parse."""
    assert TableId.parse(value) == expected


@pytest.mark.parametrize("value", ["t", "ds.t`; DROP TABLE x; --", "a.b.c.d e", "ds.", ".t", ""])
def test_unsafe_table_ids_are_rejected(value: str) -> None:
    """Ids that are malformed or unsafe to quote in SQL raise ConfigurationError."""
    with pytest.raises(ConfigurationError):
        TableId.parse(value)


# --- on the BigQuery emulator -------------------------------------------------


@pytest.mark.bigquery
def test_bootstrap_creates_dataset_and_tables_once(
    bigquery_client: Any, bigquery_dataset: str
) -> None:
    """The first bootstrap creates the dataset and every table; the second creates nothing."""
    dataset = f"{bigquery_dataset}_boot"
    try:
        first = bootstrap(bigquery_client, dataset, location="US")
        second = bootstrap(bigquery_client, dataset)
        ledger = bigquery_client.get_table(f"{dataset}.completion_ledger")
    finally:
        bigquery_client.delete_dataset(dataset, delete_contents=True, not_found_ok=True)

    project = bigquery_client.project
    assert first == [
        f"{project}.{dataset}",
        *(f"{project}.{dataset}.{name}" for name in schema_names()),
        *(f"{project}.{dataset}.{name}" for name in view_names()),
    ]
    assert second == []
    assert ledger.time_partitioning.field == "date"
    assert ledger.clustering_fields == ["phase", "processor"]


@pytest.mark.bigquery
def test_bootstrap_in_existing_dataset_creates_only_tables(
    bigquery_client: Any, bigquery_dataset: str
) -> None:
    """In a dataset that exists, bootstrap creates just the missing tables."""
    bigquery_client.query(
        f"CREATE TABLE `{bigquery_dataset}.completion_ledger` (phase STRING)"
    ).result()

    created = bootstrap(bigquery_client, bigquery_dataset)

    expected = [n for n in schema_names() if n != "completion_ledger"] + view_names()
    assert created == [f"{bigquery_client.project}.{bigquery_dataset}.{n}" for n in expected]


@pytest.mark.bigquery
def test_existing_table_missing_columns_is_warned_not_altered(
    bigquery_client: Any, bigquery_dataset: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An existing table lacking shipped columns is reported and left unchanged."""
    table = f"{bigquery_dataset}.completion_ledger"
    bigquery_client.query(f"CREATE TABLE `{table}` (phase STRING)").result()

    with caplog.at_level(logging.WARNING, logger="pipeline_reliability.sinks"):
        bootstrap(bigquery_client, bigquery_dataset)

    assert "without column(s) date" in caplog.text
    assert [f.name for f in bigquery_client.get_table(table).schema] == ["phase"]


@pytest.mark.bigquery
def test_a_v1_ledger_gets_completed_at_and_stays_readable(
    bigquery_client: Any, bigquery_dataset: str
) -> None:
    """A ledger made by 0.1 (no ``completed_at``) gains the column; its old rows read as NULL."""
    from pipeline_reliability.sinks.ledger import BigQueryLedger

    bootstrap(bigquery_client, bigquery_dataset)
    table = f"{bigquery_dataset}.completion_ledger"
    old = bigquery_client.get_table(table)
    old.schema = [f for f in old.schema if f.name != "completed_at"]
    bigquery_client.delete_table(table)
    bigquery_client.create_table(old)
    assert "completed_at" not in {f.name for f in bigquery_client.get_table(table).schema}

    added = add_missing_columns(bigquery_client, bigquery_dataset)
    again = add_missing_columns(bigquery_client, bigquery_dataset)

    project = bigquery_client.project
    assert added == {f"{project}.{table}": ["completed_at"]}
    assert again == {}
    fields = {f.name: f.mode for f in bigquery_client.get_table(table).schema}
    assert fields["completed_at"] == "NULLABLE"
    ledger = BigQueryLedger(table, client=bigquery_client)
    assert ledger.read("phase1", ["2026-01-05"]) == []  # selects completed_at


@pytest.mark.bigquery
def test_required_columns_are_not_added_and_nothing_else_changes(
    bigquery_client: Any, bigquery_dataset: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A table lacking REQUIRED columns gets only the NULLABLE ones, and a warning."""
    table = f"{bigquery_dataset}.completion_ledger"
    bigquery_client.query(f"CREATE TABLE `{table}` (phase STRING, extra INT64)").result()

    with caplog.at_level(logging.WARNING, logger="pipeline_reliability.sinks"):
        added = add_missing_columns(bigquery_client, bigquery_dataset)

    names = [f.name for f in bigquery_client.get_table(table).schema]
    assert names[:2] == ["phase", "extra"]  # nothing dropped or reordered
    assert "date" not in names
    assert "lacks column date (REQUIRED DATE)" in caplog.text
    assert "completed_at" in added[f"{bigquery_client.project}.{table}"]


@pytest.mark.bigquery
def test_missing_tables_are_left_to_bootstrap(bigquery_client: Any, bigquery_dataset: str) -> None:
    """``add_missing_columns`` creates nothing."""
    assert add_missing_columns(bigquery_client, bigquery_dataset) == {}
    assert list(bigquery_client.list_tables(bigquery_dataset)) == []
