"""
Validation of every input the tracker accepts (names, dates, ids, counts,
times, metadata). Everything here runs before anything is written.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .._validate import iso_date
from ..errors import InvalidInputError

__all__ = [
    "DEFAULT_COUNTS",
    "KNOWN_STATUSES",
    "MAX_EXPECTED",
    "MAX_ID_CHARS",
    "MAX_METADATA_BYTES",
    "MAX_METADATA_DEPTH",
    "RECONCILED",
    "encode_metadata",
    "normalise_date",
    "show",
    "validate_completed_at",
    "validate_count",
    "validate_name",
    "validate_text",
]

#: Statuses the library knows. A ``PhaseSpec`` may add its own through
#: ``counts_statuses`` / ``done_empty_statuses``; anything else is a typo.
KNOWN_STATUSES = frozenset({"success", "partial", "no_data", "failed", "skipped", "reconciled"})
DEFAULT_COUNTS = frozenset({"success", "partial"})
#: Status of completions recorded by ``reconcile``: the output exists, so it counts.
RECONCILED = "reconciled"
MAX_METADATA_BYTES = 64 * 1024
#: Deepest nesting of metadata objects/arrays accepted (deeper is a bad input,
#: never a ``RecursionError``).
MAX_METADATA_DEPTH = 64
MAX_ID_CHARS = 512
#: Most expected processors one phase may wait for: the bound that keeps a
#: date's document under Firestore's 1 MiB whatever happens (see ``_bounds``).
MAX_EXPECTED = 50
_INT64 = (-(2**63), 2**63 - 1)

# Names become document ids, map keys and parts of the trigger id
# ("<phase>:<date>"), so they are kept to a charset that is safe everywhere:
# no "/", ".", ":", spaces, and no leading "_" (Firestore reserves "__x__").
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def validate_name(value: object, what: str, error: type[Exception] = InvalidInputError) -> str:
    """
    Return ``value`` if it is a safe phase/processor/status name, else raise ``error``.

    Safe: 1 to 128 characters of ``[A-Za-z0-9_-]``, starting with a letter or digit.
    """
    if not isinstance(value, str) or not _NAME.match(value):
        raise error(
            f"{what} must be 1-128 characters of [A-Za-z0-9_-] starting with a letter "
            f"or digit, got {show(value)}"
        )
    return value


def normalise_date(value: object) -> str:
    """Return ``value`` (a ``date``, or an ISO string naming a real day) as ``YYYY-MM-DD``."""
    if not isinstance(value, str | date):
        raise InvalidInputError(f"date must be a datetime.date or 'YYYY-MM-DD', got {show(value)}")
    return iso_date(value)


def validate_text(value: object, what: str, *, optional: bool = False) -> str | None:
    """Return a non-empty UTF-8 string of at most 512 characters (or ``None`` when optional)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise InvalidInputError(
            f"{what} must be a non-empty string of at most {MAX_ID_CHARS} characters, "
            f"got {show(value)}"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates: no store or sink takes them
        raise InvalidInputError(f"{what} is not valid UTF-8 text") from exc
    return str(value)


def validate_count(value: object, what: str = "record_count") -> int | None:
    """Return ``None`` or an int in ``0..2**63-1`` (what every sink's INT64 holds)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _INT64[1]:
        raise InvalidInputError(f"{what} must be an int in 0..2**63-1, got {show(value)}")
    return int(value)


def validate_completed_at(value: object) -> datetime | None:
    """
    Return ``value`` (a timezone-aware datetime) in UTC, or ``None``.

    Raises:
        InvalidInputError: not a datetime, naive, or not representable in UTC.
    """
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidInputError(f"completed_at must be a datetime, got {show(value)}")
    try:
        if value.utcoffset() is None:
            raise InvalidInputError(f"completed_at must be timezone-aware, got {show(value)}")
        return value.astimezone(UTC)
    except (OverflowError, ValueError, TypeError) as exc:  # year 1 at UTC-x, a broken tzinfo
        raise InvalidInputError(f"completed_at is not a valid UTC time: {show(value)}") from exc


def show(value: object, limit: int = 80) -> str:
    """
    A short description of ``value`` for an error message; never raises, never hangs.

    Only plain scalars are shown by ``repr``: the repr of a container may be
    endless (shared sub-lists) or recurse too deep, and any ``__repr__`` may raise.
    """
    if isinstance(value, str | bytes):
        value = value[: limit + 1]
    elif not isinstance(value, int | float | date | timedelta | type(None)):
        return f"<{type(value).__name__}>"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - e.g. an int too large to print
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def encode_metadata(metadata: Mapping[str, Any] | None) -> str | None:
    """
    Return ``metadata`` as compact JSON (stored as a string: any JSON shape,
    including nested arrays, fits a document that way).

    Raises:
        InvalidInputError: not a mapping with string keys of JSON values
            (finite numbers only), or larger than 64 KiB encoded.
    """
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata must be a mapping, got {type(metadata).__name__}")
    _check_json(metadata)
    encoded = json.dumps(metadata, separators=(",", ":"), sort_keys=True, allow_nan=False)
    if len(encoded.encode("utf-8")) > MAX_METADATA_BYTES:
        raise InvalidInputError(f"metadata is larger than {MAX_METADATA_BYTES} bytes as JSON")
    return encoded


def _check_json(root: Mapping[str, Any]) -> None:
    """
    Check that ``root`` is plain JSON that fits the limits, without recursion.

    json.dumps would quietly turn int keys into strings and tuples into lists,
    recurse until ``RecursionError`` on deep or self-referential values, and
    expand shared sub-objects exponentially; so the walk is iterative, bounded
    in depth (which also stops cycles) and in total size (every value costs at
    least one byte of JSON, a string at least its length).
    """
    budget = MAX_METADATA_BYTES
    stack: list[tuple[object, str, int]] = [(root, "metadata", 0)]
    while stack:
        value, path, depth = stack.pop()
        budget -= 1 + (len(value) if isinstance(value, str) else 0)
        if budget < 0:
            raise InvalidInputError(f"metadata is larger than {MAX_METADATA_BYTES} bytes as JSON")
        if _is_scalar(value, path):
            continue
        if depth >= MAX_METADATA_DEPTH:
            raise InvalidInputError(f"{path} is nested deeper than {MAX_METADATA_DEPTH} levels")
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidInputError(f"{path} has a non-string key {show(key)}")
                budget -= len(key)
                stack.append((item, f"{path}.{key[:40]}", depth + 1))
        elif isinstance(value, list | tuple):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
        else:
            raise InvalidInputError(f"{path} holds a {type(value).__name__}, which is not JSON")


def _is_scalar(value: object, path: str) -> bool:
    """Whether ``value`` is a JSON scalar; raise if it is one that no sink can hold."""
    if value is None or isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise InvalidInputError(f"{path} is an integer outside the int64 range")
        return True
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{path} is not a finite number")
        return True
    return False
