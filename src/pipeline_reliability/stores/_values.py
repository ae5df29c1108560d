"""What a document may hold, checked the same way for every backend."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidInputError

__all__ = ["MAX_DOCUMENT_BYTES", "normalise_document"]

# Firestore's maximum document size; the estimate below errs on the large side.
MAX_DOCUMENT_BYTES = 1_048_576
_INT64 = (-(2**63), 2**63 - 1)


def normalise_document(data: Mapping[str, Any]) -> dict[str, Any]:
    """
    Deep-copy ``data`` into the form Firestore would read back.

    Tuples become lists, naive datetimes are taken as UTC (as the Firestore
    client does). Anything Firestore cannot store raises.

    Raises:
        InvalidInputError: unsupported type, non-string map key, nested
            array, out-of-range integer, or a document over 1 MiB.
    """
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"a document must be a mapping, got {type(data).__name__}")
    size = [0]
    out = _map(data, size, "")
    if size[0] > MAX_DOCUMENT_BYTES:
        raise InvalidInputError(f"document is larger than {MAX_DOCUMENT_BYTES} bytes")
    return out


def _map(value: Mapping[Any, Any], size: list[int], path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k:
            raise InvalidInputError(
                f"field names must be non-empty strings, got {k!r} at {path!r}"
            )
        size[0] += len(k) + 1
        out[k] = _value(v, size, f"{path}.{k}" if path else k, in_array=False)
    return out


def _value(value: Any, size: list[int], path: str, *, in_array: bool) -> Any:  # noqa: PLR0911
    size[0] += 8
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise InvalidInputError(f"integer at {path!r} does not fit in 64 bits")
        return value
    if isinstance(value, str):
        size[0] += len(value.encode("utf-8", "surrogatepass"))
        return value
    if isinstance(value, bytes):
        size[0] += len(value)
        return bytes(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, Mapping):
        return _map(value, size, path)
    if isinstance(value, list | tuple):
        if in_array:
            raise InvalidInputError(f"arrays cannot directly contain arrays (at {path!r})")
        return [_value(v, size, f"{path}[{i}]", in_array=True) for i, v in enumerate(value)]
    raise InvalidInputError(f"cannot store a {type(value).__name__} at {path!r}")
