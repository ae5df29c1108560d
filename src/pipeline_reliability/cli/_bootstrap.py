"""``pipeline-reliability bootstrap``: create the BigQuery dataset and tables."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ReliabilityError
from ._common import (
    EXIT_OK,
    CliError,
    add_global_options,
    announce,
    connect_timeout,
    describe_error,
    emit_json,
    emulator_note,
    resolve_project,
)

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add ``bootstrap``."""
    p = commands.add_parser(
        "bootstrap", help="create the BigQuery dataset and tables (idempotent)",
        description="Create the dataset and every table whose schema ships with the package "
        "(fallback ledger, execution log, ...). Existing ones are left alone.",
    )
    add_global_options(p)
    p.add_argument("--dataset", required=True, help="[project.]dataset to create the tables in")
    p.add_argument("--location", default=None, help="location of a new dataset, e.g. US")
    p.add_argument(
        "--add-missing-columns", action="store_true",
        help="also add to existing tables the NULLABLE columns newer versions ship "
        "(e.g. completion_ledger.completed_at); nothing else is altered",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Create what is missing and say what was created."""
    from ..sinks._admin import probe_bigquery
    from ..sinks._bigquery import make_client
    from ..sinks.bootstrap import TableId, add_missing_columns, bootstrap, schema_names

    try:
        ref = TableId.parse(f"{args.dataset}.placeholder", "dataset")
    except ValueError as exc:
        raise CliError(f"--dataset {args.dataset!r}: {exc}") from exc
    project = ref.project or resolve_project(args)
    announce(f"project={project} dataset={ref.dataset}"
             f"{emulator_note('BIGQUERY_EMULATOR_HOST')}")
    try:
        probe_bigquery(dataset=f"{project}.{ref.dataset}", project=project,
                       timeout=connect_timeout(args))
    except ReliabilityError as exc:
        raise CliError(f"BigQuery: {describe_error(exc)}") from exc
    client = make_client(project)
    created = bootstrap(client, args.dataset, location=args.location)
    added = add_missing_columns(client, args.dataset) if args.add_missing_columns else {}
    if args.json:
        emit_json({"dataset": args.dataset, "created": created, "tables": schema_names(),
                   "columns_added": added})
        return EXIT_OK
    for name in created:
        print(f"created {name}")
    for table, columns in added.items():
        print(f"added column(s) {', '.join(columns)} to {table}")
    if not created and not added:
        print(f"nothing to create: {args.dataset} and its {len(schema_names())} tables exist")
    return EXIT_OK
