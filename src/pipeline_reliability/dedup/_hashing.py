"""Canonical JSON: one text per value, so equal payloads hash equal everywhere."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ..errors import InvalidInputError

__all__ = ["canonical_json", "payload_hash", "to_json"]


def _default(value: Any) -> Any:
    # Values JSON has no type for, written the way BigQuery and our stores take them.
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, set | frozenset):
        # A set has no order; sort its members by their own canonical text.
        return [item for _, item in sorted(((canonical_json(i), i) for i in value), key=_first)]
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _first(pair: tuple[str, Any]) -> str:
    return pair[0]


def to_json(value: Any, *, canonical: bool = False) -> str:
    """
    Serialise ``value`` as JSON text.

    ``datetime``/``date`` become ISO strings, ``Decimal`` a string, bytes
    base64, sets sorted lists, tuples lists. With ``canonical`` the text is
    compact and object keys are sorted, so equal values give equal text.

    Raises:
        InvalidInputError: ``value`` holds something JSON cannot represent
            (another type, NaN or infinity, mixed-type object keys, a string
            with a lone surrogate), refers to itself, or is nested too deeply.
    """
    try:
        text = json.dumps(
            value,
            default=_default,
            allow_nan=False,
            ensure_ascii=False,
            sort_keys=canonical,
            separators=(",", ":") if canonical else None,
        )
        # Stores and hashes take UTF-8: refuse a lone surrogate here, as input.
        text.encode("utf-8")
    except RecursionError as exc:
        raise InvalidInputError("value is nested too deeply to serialise as JSON") from exc
    except (TypeError, ValueError) as exc:
        # ValueError includes "Circular reference detected" and UnicodeEncodeError.
        raise InvalidInputError(f"value is not JSON serialisable: {_short(exc)}") from exc
    return text


def _short(exc: Exception, limit: int = 300) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "…"


def canonical_json(value: Any) -> str:
    """Return the canonical JSON text of ``value`` (see :func:`to_json`)."""
    return to_json(value, canonical=True)


def payload_hash(payload: Any) -> str:
    """
    Return the SHA-256 (hex) of the canonical JSON of ``payload``.

    Raises:
        InvalidInputError: ``payload`` is not JSON serialisable.

    .. versionadded:: 0.1.0
    """
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()
