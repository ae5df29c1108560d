"""
The argument checks the sinks share, made before any client is created or called.

Options of constructors raise ``ConfigurationError``; arguments of calls
``InvalidInputError`` (DESIGN §4: nothing is sent when either is refused).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .._clock import Clock
from ..errors import ConfigurationError, InvalidInputError
from ..retry import RetryPolicy
from ._bigquery import TableId

__all__ = [
    "DATASET_ID",
    "PROJECT_ID",
    "check_call",
    "check_clock",
    "check_id",
    "check_names",
    "check_retry",
    "rows_arg",
    "table_arg",
]

PROJECT_ID = re.compile(r"[A-Za-z0-9\-.:]{1,128}")
DATASET_ID = re.compile(r"[A-Za-z0-9_]{1,1024}")
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,299}")
_MAX_REQUEST_ID = 512


def check_retry(retry: object) -> RetryPolicy | None:
    """Return ``retry`` if it is ``None`` or a ``RetryPolicy``; or raise."""
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ConfigurationError(f"retry must be a RetryPolicy, got {retry!r:.80}")
    return retry


def check_clock(clock: object) -> Clock | None:
    """Return ``clock`` if it is ``None`` or a ``Clock``; or raise."""
    if clock is not None and not isinstance(clock, Clock):
        raise ConfigurationError(f"clock must implement Clock, got {clock!r:.80}")
    return clock


def check_id(what: str, value: object, pattern: re.Pattern[str]) -> str | None:
    """Return ``value`` if ``None`` or a string ``pattern`` matches, or raise."""
    if value is not None and not (isinstance(value, str) and pattern.fullmatch(value)):
        raise ConfigurationError(f"{what} must be a valid id, got {value!r:.80}")
    return value


def table_arg(table: object) -> TableId:
    """A table id given as a call argument: a malformed one is an ``InvalidInputError``."""
    try:
        return TableId.parse(table)  # type: ignore[arg-type] # TableId.parse checks the type
    except ConfigurationError as exc:
        raise InvalidInputError(str(exc)) from None


def check_call(partition_column: object, request_id: object = None) -> None:
    """Check ``upsert``'s / ``find_duplicates``' optional names before any client call."""
    if partition_column is not None and not (
        isinstance(partition_column, str) and _COLUMN.fullmatch(partition_column)
    ):
        raise InvalidInputError(
            f"partition_column must be a column name, got {partition_column!r:.80}"
        )
    if request_id is not None and not (
        isinstance(request_id, str) and 0 < len(request_id) <= _MAX_REQUEST_ID
    ):
        raise InvalidInputError(
            f"request_id must be a non-empty string of at most {_MAX_REQUEST_ID} characters, "
            f"got {request_id!r:.80}"
        )


def rows_arg(rows: object) -> list[Mapping[str, Any]]:
    """Return ``rows`` as a list of mappings, or raise ``InvalidInputError``."""
    if isinstance(rows, str | bytes | Mapping) or not isinstance(rows, Iterable):
        raise InvalidInputError(f"rows must be an iterable of mappings, got {type(rows).__name__}")
    batch = list(rows)
    for i, row in enumerate(batch):
        if not isinstance(row, Mapping):
            raise InvalidInputError(f"row {i} is a {type(row).__name__}, not a mapping")
    return batch


def check_names(value: object, what: str, *, optional: bool = False) -> None:
    """
    Refuse a ``key``/``order_by`` that is not a name or a flat sequence of names.

    Only the shape is checked here (the dedup policy checks the names), and
    the message never prints the value: a hostile one may not even have a repr.
    """
    if value is None and optional:
        return
    if isinstance(value, str):
        return
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return
    raise InvalidInputError(
        f"{what} must be a column name or a list of them, got a {type(value).__name__}"
    )
