"""
BigQuery administration for tools: is BigQuery there and are these tables
(with a short deadline), and a table from a column list
(``simulate --emulators``).

Clients come from :func:`~pipeline_reliability.sinks._bigquery.make_client`;
``google.cloud.bigquery`` is imported inside the functions only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from .._validate import duration_seconds
from ..errors import ConfigurationError, ReliabilityError, SinkUnavailableError
from ..stores._probe import DEFAULT_PROBE_TIMEOUT, call_within
from ._bigquery import bigquery_module, make_client

__all__ = ["create_table", "probe_bigquery"]


def probe_bigquery(
    *,
    tables: Sequence[str] = (),
    dataset: str | None = None,
    project: str | None = None,
    timeout: float = DEFAULT_PROBE_TIMEOUT,
) -> None:
    """
    Check that BigQuery answers within ``timeout`` seconds and that ``tables`` exist.

    With ``dataset`` (``[project.]dataset``) only reachability is checked:
    a missing dataset is fine (``bootstrap`` creates it).

    Raises:
        ConfigurationError: a table does not exist.
        SinkUnavailableError: no answer within ``timeout``, or another error
            (the cause is chained).
    """
    seconds = duration_seconds(timeout, "timeout")

    def check() -> None:
        from google.api_core import exceptions as gexc

        client = make_client(project)
        try:
            # retry=None: one attempt each, so the deadline bounds the wait.
            if dataset is not None:
                # A missing dataset is an answer too (bootstrap creates it).
                with contextlib.suppress(gexc.NotFound):
                    client.get_dataset(dataset, timeout=seconds, retry=None)
            for table in tables:
                try:
                    client.get_table(table, timeout=seconds, retry=None)
                except gexc.NotFound as exc:
                    raise ConfigurationError(
                        f"table {table} does not exist (run bootstrap?)"
                    ) from exc
        except ReliabilityError:
            raise
        except Exception as exc:
            raise SinkUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            client.close()

    def on_timeout() -> ReliabilityError:
        return SinkUnavailableError("the call hangs (a black-holed address?)")

    try:
        call_within(check, seconds, on_timeout)
    except SinkUnavailableError as exc:
        raise SinkUnavailableError(f"no answer from BigQuery within {seconds:g} s: {exc}") from exc


def create_table(client: Any, table: str, columns: Sequence[tuple[str, str]]) -> None:
    """
    Create ``table`` (``dataset.table``) with ``(name, type)`` columns if it is missing.

    Raises:
        WriteFailedError: BigQuery refused (the cause is chained).
    """
    from ._bigquery import map_bigquery_errors

    bigquery = bigquery_module()
    schema = [bigquery.SchemaField(name, kind) for name, kind in columns]
    with map_bigquery_errors(f"creating {table}"):
        client.create_table(
            bigquery.Table(f"{client.project}.{table}", schema=schema), exists_ok=True
        )
