"""
The one place that creates BigQuery clients and maps BigQuery errors.

``google.cloud.bigquery`` is imported inside functions only (DESIGN F10).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ..errors import MissingDependencyError, SinkUnavailableError, WriteFailedError

__all__ = ["bigquery_module", "make_client", "map_bigquery_errors", "ndjson_file"]


def bigquery_module() -> Any:
    """Import ``google.cloud.bigquery`` or explain which extra is missing."""
    try:
        from google.cloud import bigquery
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError("google-cloud-bigquery", "bigquery") from exc
    return bigquery


def make_client(project: str | None = None) -> Any:
    """
    Create a BigQuery client.

    With ``BIGQUERY_EMULATOR_HOST`` set (read now, not at import), the client
    talks to that endpoint with anonymous credentials, as the emulator needs.
    """
    bigquery = bigquery_module()
    host = os.environ.get("BIGQUERY_EMULATOR_HOST")
    if not host:
        return bigquery.Client(project=project)
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    endpoint = host if host.startswith("http") else f"http://{host}"
    return bigquery.Client(
        project=project or os.environ.get("GOOGLE_CLOUD_PROJECT", "demo-test"),
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options=ClientOptions(api_endpoint=endpoint),
    )


@contextmanager
def map_bigquery_errors(what: str, job_id: str | None = None) -> Iterator[None]:
    """
    Translate Google API errors raised in the block (chained).

    Transient ones (as :func:`~pipeline_reliability.retry.is_transient` judges)
    become :class:`SinkUnavailableError`, so a retry around this block still
    retries them; the rest become :class:`WriteFailedError`.
    """
    from google.api_core import exceptions as gexc

    from ..retry import is_transient

    try:
        yield
    except (gexc.GoogleAPIError, ConnectionError) as exc:
        cls = SinkUnavailableError if is_transient(exc) else WriteFailedError
        raise cls(f"{what} failed: {exc}", job_id=job_id) from exc


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def ndjson_file(rows: Iterable[Mapping[str, Any]]) -> io.BytesIO:
    """
    Serialise rows as newline-delimited JSON for ``load_table_from_file``.

    (``load_table_from_json`` is avoided: the emulator rejects its multipart
    upload, and NDJSON through a file object behaves the same in production.)
    """
    buf = io.BytesIO()
    for row in rows:
        buf.write(json.dumps(row, default=_default, sort_keys=True).encode())
        buf.write(b"\n")
    buf.seek(0)
    return buf
