"""
The one place that creates BigQuery clients and maps BigQuery errors.

Also the helpers every sink module shares: table ids safe to quote in SQL,
the retried and error-mapped call, JSON encoding of rows and content ids,
and :class:`TableSink` (a table the ledger and execution log stream into).

``google.cloud.bigquery`` is imported inside functions only (DESIGN F10).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from .._clock import SystemClock
from .._validate import duration_seconds, iso_date
from ..errors import (
    ConfigurationError,
    MissingDependencyError,
    ReliabilityError,
    RetryExhaustedError,
    SinkUnavailableError,
    WriteFailedError,
)
from ..retry import RetryPolicy, is_transient

__all__ = [
    "DEFAULT_BIGQUERY_RETRY",
    "TableId",
    "TableSink",
    "bigquery_module",
    "call_mapped",
    "content_id",
    "encode_row",
    "json_text",
    "make_client",
    "map_bigquery_errors",
    "ndjson_file",
    "parse_date",
    "positive_seconds",
]

R = TypeVar("R")

DEFAULT_BIGQUERY_RETRY = RetryPolicy(attempts=4, deadline=30.0, initial=0.5, maximum=8.0)
"""Default retry of the BigQuery sinks: 4 attempts within 30 s, transient errors only."""

_DATASET = re.compile(r"[A-Za-z0-9_]{1,1024}")
# Table names allow more than this in BigQuery (unicode, spaces); these are
# the names that are safe to put between backticks in generated SQL.
_TABLE = re.compile(r"[A-Za-z0-9_\-$]{1,1024}")
_PROJECT = re.compile(r"[A-Za-z0-9\-.:]{1,128}")


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

    try:
        yield
    except (gexc.GoogleAPIError, ConnectionError) as exc:
        cls = SinkUnavailableError if is_transient(exc) else WriteFailedError
        raise cls(f"{what} failed: {exc}", job_id=job_id) from exc


def call_mapped(
    retry: RetryPolicy, what: str, fn: Callable[..., R], *args: Any, **kwargs: Any
) -> R:
    """
    Run ``fn`` under ``retry``, its Google errors mapped by :func:`map_bigquery_errors`.

    Exhaustion raises the policy's ``RetryExhaustedError`` unchanged.
    """
    with map_bigquery_errors(what):
        return retry.call(fn, *args, **kwargs)


# --- ids and values ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TableId:
    """
    A parsed ``[project.]dataset.table`` id, validated so it can be quoted in SQL.

    .. versionadded:: 0.1.0
    """

    project: str | None
    dataset: str
    table: str

    @classmethod
    def parse(cls, value: str, what: str = "table") -> TableId:
        """
        Parse ``project.dataset.table`` or ``dataset.table``.

        Raises:
            ConfigurationError: ``value`` is not such an id.
        """
        if not isinstance(value, str):
            raise ConfigurationError(f"{what} id must be a string, got {type(value).__name__}")
        parts = value.rsplit(".", 2)
        if len(parts) == 2:
            parts = ["", *parts]
        if len(parts) != 3 or not (
            (not parts[0] or _PROJECT.fullmatch(parts[0]))
            and _DATASET.fullmatch(parts[1])
            and _TABLE.fullmatch(parts[2])
        ):
            raise ConfigurationError(
                f"{what} id must be 'project.dataset.table' or 'dataset.table', got {value!r}"
            )
        return cls(parts[0] or None, parts[1], parts[2])

    def qualified(self, default_project: str) -> str:
        """Return ``project.dataset.table``, using ``default_project`` if none was given."""
        return f"{self.project or default_project}.{self.dataset}.{self.table}"

    def sql(self, default_project: str) -> str:
        """Return the id quoted for SQL: ```project.dataset.table```."""
        return f"`{self.qualified(default_project)}`"


def positive_seconds(value: object, name: str) -> float:
    """Return a positive duration (seconds or ``timedelta``) as float seconds."""
    return duration_seconds(value, name)


def parse_date(value: Any) -> date:
    """
    Return ``value`` (a ``date`` or ``YYYY-MM-DD``) as a ``date``.

    Raises:
        InvalidInputError: anything else, a ``datetime`` included.
    """
    return date.fromisoformat(iso_date(value))


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        # Sorted, so equal rows give equal text (and equal content ids and job ids).
        return sorted(value, key=str)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def json_text(value: Any) -> str:
    """Serialise ``value`` as compact, key-sorted JSON (dates/sets/decimals handled)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_default)


def content_id(*parts: Any) -> str:
    """Return a SHA-256 hex id of ``parts`` (JSON-encoded, so types are distinguished)."""
    return hashlib.sha256(json_text(list(parts)).encode()).hexdigest()


def encode_row(what: str, encode: Callable[[], R]) -> R:
    """
    Return ``encode()``; its ``TypeError``/``ValueError`` become ``WriteFailedError``.

    Raises:
        WriteFailedError: "``what`` cannot be serialised" (cause chained).
    """
    try:
        return encode()
    except (TypeError, ValueError) as exc:
        raise WriteFailedError(f"{what} cannot be serialised: {exc}") from exc


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


# --- a table streamed into -----------------------------------------------------


class TableSink:
    """
    A table, a lazily created client, a retry policy and a per-call timeout.

    The policy's deadline is a hard bound on a whole call: each request's
    timeout is cut to the time left, and no request starts once it is gone.
    So a ledger append that BigQuery never answers costs at most the
    deadline (the degraded path's budget depends on it).
    """

    def __init__(
        self, table: str, client: Any, retry: RetryPolicy | None, timeout: float
    ) -> None:
        self.table_id = TableId.parse(table)
        self.table = table
        self.timeout = positive_seconds(timeout, "timeout")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError(f"retry must be a RetryPolicy, got {retry!r:.80}")
        self.retry = retry or DEFAULT_BIGQUERY_RETRY
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The BigQuery client (created on first use)."""
        with self._lock:
            if self._client is None:
                self._client = make_client(self.table_id.project)
            return self._client

    @property
    def qualified(self) -> str:
        """``project.dataset.table``."""
        return self.table_id.qualified(self.client.project)

    def call(self, what: str, fn: Callable[[float], R]) -> R:
        """
        Run ``fn(timeout)`` under the retry policy; any failure becomes a ``WriteFailedError``.

        ``timeout`` is the per-request timeout, cut to what is left of the
        policy's deadline. Transient failures that outlasted the policy raise
        its transient subclass ``SinkUnavailableError``; permanent ones
        ``WriteFailedError``.
        """
        clock = self.retry.clock or _SYSTEM_CLOCK
        start = clock.monotonic()
        deadline = self.retry.deadline_seconds

        def attempt() -> R:
            timeout = self.timeout
            if deadline is not None:
                left = deadline - (clock.monotonic() - start)
                if left <= 0:
                    raise SinkUnavailableError(f"{what}: the {deadline:g}s deadline ran out")
                timeout = min(timeout, left)
            return fn(timeout)

        try:
            return self.retry.call(attempt)
        except RetryExhaustedError as exc:
            message = f"{what} failed after {exc.attempts} attempts: {exc}"
            raise SinkUnavailableError(message) from exc
        except ReliabilityError:
            raise
        except Exception as exc:
            cls = SinkUnavailableError if is_transient(exc) else WriteFailedError
            raise cls(f"{what} failed: {exc}") from exc

    def insert(self, rows: Sequence[Mapping[str, Any]], row_ids: Sequence[str]) -> None:
        """Stream ``rows`` with their ``insertId`` s (one policy-level retry layer)."""

        def once(timeout: float) -> None:
            # retry=None: the policy above is the only retry layer (DESIGN F9);
            # the client's default would retry for minutes.
            errors = self.client.insert_rows_json(
                self.qualified,
                list(rows),
                row_ids=list(row_ids),
                retry=None,
                timeout=timeout,
            )
            if errors:
                raise WriteFailedError(f"BigQuery rejected rows of {self.qualified}: {errors}")

        self.call(f"insert into {self.table}", once)

    def query(self, sql: str, parameters: Sequence[Any]) -> list[Any]:
        """Run a parameterised query and return its rows."""
        bigquery = bigquery_module()
        config = bigquery.QueryJobConfig(query_parameters=list(parameters))

        def once(timeout: float) -> list[Any]:
            job = self.client.query(sql, job_config=config, timeout=timeout)
            return list(job.result(timeout=timeout))

        return self.call(f"query of {self.table}", once)


_SYSTEM_CLOCK = SystemClock()
