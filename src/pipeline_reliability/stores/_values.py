"""What a document may hold, checked the same way for every backend."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidInputError

__all__ = ["MAX_DOCUMENT_BYTES", "copy_document", "normalise_document"]

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


def copy_document(data: dict[str, Any]) -> dict[str, Any]:
    """
    A fresh deep copy of a document already in normal form.

    Normal form holds only dicts, lists and immutable scalars, so this is a
    plain walk that shares the scalars: several times faster than
    ``copy.deepcopy``, which the stores' read path paid on every read.
    """
    return {k: _copy(v) if type(v) in _CONTAINERS else v for k, v in data.items()}


def _copy(value: Any) -> Any:
    if type(value) is dict:
        return {k: _copy(v) if type(v) in _CONTAINERS else v for k, v in value.items()}
    return [_copy(v) if type(v) in _CONTAINERS else v for v in value]


_CONTAINERS = frozenset({dict, list})
#: Exact types taken as they are (after a size estimate): checked before the general path.
_PLAIN = frozenset({type(None), bool, float})


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _map(value: Mapping[Any, Any], size: list[int], path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k:
            raise InvalidInputError(
                f"field names must be non-empty strings, got {k!r} at {path!r}"
            )
        size[0] += len(k) + 1
        # Strings, UTC datetimes and plain scalars are most of a document:
        # take them inline, and build a value's path only when it is needed.
        t = type(v)
        if t is str:
            size[0] += 8 + (len(v) if v.isascii() else len(v.encode("utf-8", "surrogatepass")))
            out[k] = v
        elif t in _PLAIN or (t is datetime and v.tzinfo is UTC):
            size[0] += 8
            out[k] = v
        elif t is list:
            out[k] = _list(v, size, path, k)
        else:
            out[k] = _value(v, size, path, k, in_array=False)
    return out


def _list(value: list[Any], size: list[int], parent: str, key: str) -> list[Any]:
    out: list[Any] = []
    size[0] += 8
    for i, v in enumerate(value):
        t = type(v)
        if t is str:
            size[0] += 8 + (len(v) if v.isascii() else len(v.encode("utf-8", "surrogatepass")))
            out.append(v)
        elif t in _PLAIN or (t is datetime and v.tzinfo is UTC):
            size[0] += 8
            out.append(v)
        else:
            out.append(_value(v, size, _join(parent, key), i, in_array=True))
    return out


def _value(  # noqa: PLR0911
    value: Any, size: list[int], parent: str, key: str | int, *, in_array: bool
) -> Any:
    size[0] += 8
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise InvalidInputError(f"integer at {_join(parent, key)!r} does not fit in 64 bits")
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
        return _map(value, size, _join(parent, key))
    if isinstance(value, list | tuple):
        if in_array:
            path = _join(parent, key)
            raise InvalidInputError(f"arrays cannot directly contain arrays (at {path!r})")
        size[0] -= 8  # _list counts the array itself
        return _list(list(value), size, parent, str(key))
    raise InvalidInputError(f"cannot store a {type(value).__name__} at {_join(parent, key)!r}")
