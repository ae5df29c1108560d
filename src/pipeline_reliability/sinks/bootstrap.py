"""
Create the BigQuery dataset and tables that the library writes to.

The table definitions ship in the package as JSON files under
``pipeline_reliability/sinks/schemas/`` (one table per file, named after the
file). A file is either BigQuery's JSON schema format (the list of fields that
``bq mk --schema`` and ``Client.schema_from_json`` read) or a fragment of the
REST ``Table`` resource: ``{"schema": {"fields": [...]}, "timePartitioning":
{...}, "clustering": {...}, "description": ...}``, which also carries
partitioning and clustering. ``bootstrap`` creates every one of them, then
every view under ``pipeline_reliability/sinks/views/`` (``<name>.sql``, a
``SELECT`` whose ``{dataset}`` stands for ```project.dataset```).
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from typing import Any

from .._telemetry import span
from ..errors import ConfigurationError, InvalidInputError
from ._bigquery import TableId, bigquery_module, make_client, map_bigquery_errors

__all__ = [
    "TableId",  # defined in _bigquery, with the other helpers every sink shares
    "add_missing_columns",
    "bootstrap",
    "create_table_from_schema",
    "create_view",
    "load_schema",
    "schema_names",
    "table_resource",
    "view_names",
    "view_query",
]

logger = logging.getLogger("pipeline_reliability.sinks")

_PACKAGE = "pipeline_reliability.sinks"


def schema_names() -> list[str]:
    """
    Return the names of the shipped tables (the ``*.json`` file stems), sorted.

    .. versionadded:: 0.1.0
    """
    folder = resources.files(_PACKAGE).joinpath("schemas")
    return sorted(
        entry.name[: -len(".json")]
        for entry in folder.iterdir()
        if entry.name.endswith(".json") and entry.is_file()
    )


def table_resource(name: str) -> dict[str, Any]:
    """
    Return the shipped definition of table ``name`` as a REST ``Table`` fragment.

    A plain field list is wrapped as ``{"schema": {"fields": [...]}}``.

    Raises:
        InvalidInputError: No such table is shipped.
        ConfigurationError: The file is not a valid definition.

    .. versionadded:: 0.1.0
    """
    if name not in schema_names():
        raise InvalidInputError(f"no shipped table schema named {name!r}; have {schema_names()}")
    path = resources.files(_PACKAGE).joinpath("schemas", f"{name}.json")
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConfigurationError(f"schema file {name}.json is not valid JSON: {exc}") from exc
    resource = {"schema": {"fields": loaded}} if isinstance(loaded, list) else loaded
    fields = resource.get("schema", {}).get("fields") if isinstance(resource, dict) else None
    if not isinstance(fields, list) or not fields:
        raise ConfigurationError(f"schema file {name}.json defines no fields")
    return dict(resource)


def load_schema(name: str) -> list[Any]:
    """
    Return the ``SchemaField`` list of shipped table ``name``.

    .. versionadded:: 0.1.0
    """
    bigquery = bigquery_module()
    fields = table_resource(name)["schema"]["fields"]
    return [bigquery.SchemaField.from_api_repr(field) for field in fields]


def view_names() -> list[str]:
    """
    Return the names of the shipped views (the ``views/*.sql`` stems), sorted.

    .. versionadded:: 0.2.0
    """
    folder = resources.files(_PACKAGE).joinpath("views")
    return sorted(
        entry.name[: -len(".sql")]
        for entry in folder.iterdir()
        if entry.name.endswith(".sql") and entry.is_file()
    )


def view_query(name: str, dataset: str) -> str:
    """
    Return the SQL of shipped view ``name`` over the tables of ``dataset`` (``project.dataset``).

    Raises:
        InvalidInputError: No such view is shipped.
        ConfigurationError: ``dataset`` is not ``project.dataset``.

    .. versionadded:: 0.2.0
    """
    if name not in view_names():
        raise InvalidInputError(f"no shipped view named {name!r}; have {view_names()}")
    ref = TableId.parse(f"{dataset}.placeholder", "dataset")
    if ref.project is None:
        raise ConfigurationError(f"dataset must be 'project.dataset', got {dataset!r}")
    text = resources.files(_PACKAGE).joinpath("views", f"{name}.sql").read_text(encoding="utf-8")
    # The id was validated by TableId: safe between backticks.
    return text.replace("{dataset}", f"{ref.project}.{ref.dataset}")


def create_view(client: Any, view: str, name: str) -> bool:
    """
    Create ``view`` (``[project.]dataset.view``) from the shipped view ``name`` unless it exists.

    The view reads the tables of its own dataset. An existing view is left
    as it is (drop it to get a newer definition).

    Returns:
        ``True`` if the view was created, ``False`` if it already existed.

    Raises:
        WriteFailedError: BigQuery refused (the cause is chained).

    .. versionadded:: 0.2.0
    """
    from google.api_core import exceptions as gexc

    bigquery = bigquery_module()
    ref = TableId.parse(view)
    project = ref.project or client.project
    table = bigquery.Table(f"{project}.{ref.dataset}.{ref.table}")
    table.view_query = view_query(name, f"{project}.{ref.dataset}")
    table.description = f"pipeline_reliability view {name} (created by bootstrap)"
    attrs = {"table": view, "view": name}
    with span("sinks", "create_view", attrs), map_bigquery_errors(f"creating view {view}"):
        try:
            client.create_table(table)
        except gexc.Conflict:
            return False
    return True


def create_table_from_schema(client: Any, table: str, name: str) -> bool:
    """
    Create ``table`` from the shipped definition ``name`` unless it exists.

    Args:
        client: A ``google.cloud.bigquery.Client``.
        table: ``[project.]dataset.table`` to create.
        name: The shipped definition (see :func:`schema_names`).

    Returns:
        ``True`` if the table was created, ``False`` if it already existed.

    Raises:
        WriteFailedError: BigQuery refused (the cause is chained).

    .. versionadded:: 0.1.0
    """
    from google.api_core import exceptions as gexc

    bigquery = bigquery_module()
    ref = TableId.parse(table)
    resource = table_resource(name)
    resource["tableReference"] = {
        "projectId": ref.project or client.project,
        "datasetId": ref.dataset,
        "tableId": ref.table,
    }
    attrs = {"table": table, "schema": name}
    with span("sinks", "create_table", attrs), map_bigquery_errors(f"creating table {table}"):
        try:
            client.create_table(bigquery.Table.from_api_repr(resource))
        except gexc.Conflict:
            _warn_if_columns_missing(client, ref.qualified(client.project), resource)
            return False
    return True


def bootstrap(client: Any, dataset: str, *, location: str | None = None) -> list[str]:
    """
    Create ``dataset``, every shipped table and every shipped view in it,
    leaving existing ones alone.

    Idempotent: running it again creates nothing and changes nothing (an
    existing table whose schema lacks shipped columns is logged as a warning,
    never altered).

    Args:
        client: A ``google.cloud.bigquery.Client``; ``None`` creates one (it
            honours ``BIGQUERY_EMULATOR_HOST``).
        dataset: ``project.dataset`` or ``dataset`` (the client's project).
        location: Location of a dataset that has to be created (e.g. ``"US"``).

    Returns:
        The fully qualified ids of what was created by this call (the dataset
        first, if it was created, then tables, then views); what already
        existed is logged at INFO.

    Raises:
        ConfigurationError: ``dataset`` is not a valid id.
        WriteFailedError: BigQuery refused a creation.

    .. versionadded:: 0.1.0
    """
    from google.api_core import exceptions as gexc

    bigquery = bigquery_module()
    ref = TableId.parse(f"{dataset}.placeholder", "dataset")
    client = client if client is not None else make_client(ref.project)
    dataset_id = f"{ref.project or client.project}.{ref.dataset}"
    created: list[str] = []
    with span("sinks", "bootstrap", {"dataset": dataset_id}):
        resource = bigquery.Dataset(dataset_id)
        if location is not None:
            resource.location = location
        with map_bigquery_errors(f"creating dataset {dataset_id}"):
            try:
                client.create_dataset(resource)
                created.append(dataset_id)
            except gexc.Conflict:
                logger.info("dataset %s exists", dataset_id)
        for name in schema_names():
            table_id = f"{dataset_id}.{name}"
            if create_table_from_schema(client, table_id, name):
                created.append(table_id)
                logger.info("created table %s", table_id)
            else:
                logger.info("table %s exists", table_id)
        for name in view_names():  # after the tables: a view needs its tables
            view_id = f"{dataset_id}.{name}"
            if create_view(client, view_id, name):
                created.append(view_id)
                logger.info("created view %s", view_id)
            else:
                logger.info("view %s exists", view_id)
    return created


def _warn_if_columns_missing(client: Any, table_id: str, resource: dict[str, Any]) -> None:
    from google.api_core import exceptions as gexc

    try:
        existing = {field.name for field in client.get_table(table_id).schema}
    except gexc.GoogleAPIError:
        return  # only a diagnostic: the table exists, which is what was asked
    missing = [f["name"] for f in resource["schema"]["fields"] if f["name"] not in existing]
    if missing:
        logger.warning(
            "table %s exists without column(s) %s of the shipped schema; "
            "add the NULLABLE ones with `pipeline-reliability bootstrap --add-missing-columns`",
            table_id,
            ", ".join(missing),
        )


def add_missing_columns(client: Any, dataset: str) -> dict[str, list[str]]:
    """
    Add to each existing shipped table the NULLABLE columns its schema lacks.

    Tables made by an older version of the library lack columns added since
    (the ledger's ``completed_at``): reading them would fail. Adding
    a NULLABLE column is the one schema change BigQuery allows in place and
    that old rows satisfy (they read as ``NULL``), so this is all it does: it
    never drops, retypes or reorders a column, and never touches a table that
    does not exist (``bootstrap`` creates those). A missing REQUIRED column
    cannot be added to a table with rows; it is logged as a warning and left
    to the operator.

    Args:
        client: A ``google.cloud.bigquery.Client``.
        dataset: ``project.dataset`` or ``dataset`` (the client's project).

    Returns:
        For each table that was altered, its fully qualified id and the names
        of the columns added (an empty dict when nothing was missing).

    Raises:
        ConfigurationError: ``dataset`` is not a valid id.
        WriteFailedError: BigQuery refused a read or the schema update.

    .. versionadded:: 0.1.0
    """
    from google.api_core import exceptions as gexc

    ref = TableId.parse(f"{dataset}.placeholder", "dataset")
    dataset_id = f"{ref.project or client.project}.{ref.dataset}"
    added: dict[str, list[str]] = {}
    with span("sinks", "add_missing_columns", {"dataset": dataset_id}):
        for name in schema_names():
            table_id = f"{dataset_id}.{name}"
            with map_bigquery_errors(f"reading table {table_id}"):
                try:
                    existing = {field.name for field in client.get_table(table_id).schema}
                except gexc.NotFound:
                    continue
            clauses = _missing_nullable(table_id, existing, table_resource(name))
            if clauses:
                # DDL rather than a schema PATCH: it alters the stored table
                # everywhere (the emulator applies a PATCH to metadata only). One
                # column per statement, as the emulator wants; IF NOT EXISTS makes a
                # run cut short safe to repeat.
                with map_bigquery_errors(f"adding column(s) to {table_id}"):
                    for col, kind in clauses:
                        sql = f"ALTER TABLE `{table_id}` ADD COLUMN IF NOT EXISTS {col} {kind}"
                        client.query(sql).result()
                    _sync_schema_metadata(client, table_id, table_resource(name))
                added[table_id] = [col for col, _ in clauses]
                logger.info("added column(s) %s to %s", ", ".join(added[table_id]), table_id)
    return added


def _sync_schema_metadata(client: Any, table_id: str, resource: dict[str, Any]) -> None:
    """
    Make the table's schema metadata list the columns just added.

    BigQuery does this itself; the BigQuery emulator alters the stored table
    but not the metadata ``get_table`` returns, which would make every later
    run add the columns "again". A no-op where the metadata is already right.
    """
    bigquery = bigquery_module()
    table = client.get_table(table_id)
    have = {field.name for field in table.schema}
    missing = [f for f in resource["schema"]["fields"] if f["name"] not in have
               and f.get("mode", "NULLABLE").upper() == "NULLABLE"]
    if missing:
        table.schema = [*table.schema, *(bigquery.SchemaField.from_api_repr(f) for f in missing)]
        client.update_table(table, ["schema"])


# Legacy type names of the JSON schemas -> their GoogleSQL names in DDL.
_DDL_TYPES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}
_SCALAR_TYPES = {"STRING", "INT64", "FLOAT64", "BOOL", "DATE", "TIMESTAMP", "JSON", "NUMERIC",
                 "BIGNUMERIC", "BYTES", "DATETIME", "TIME", "GEOGRAPHY"}


def _missing_nullable(
    table_id: str, existing: set[str], resource: dict[str, Any]
) -> list[tuple[str, str]]:
    """(name, DDL type) of each shipped NULLABLE scalar field missing; warn about the rest."""
    clauses = []
    for field in resource["schema"]["fields"]:
        if field["name"] in existing:
            continue
        kind = _DDL_TYPES.get(field["type"].upper(), field["type"].upper())
        if field.get("mode", "NULLABLE").upper() != "NULLABLE" or kind not in _SCALAR_TYPES:
            logger.warning(
                "table %s lacks column %s (%s %s): it cannot be added in place",
                table_id,
                field["name"],
                field.get("mode", "NULLABLE"),
                field["type"],
            )
            continue
        clauses.append((field["name"], kind))
    return clauses
