"""What a document may hold, checked the same way for every backend."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidInputError
from ._protocol import Snapshot

__all__ = ["MAX_DOCUMENT_BYTES", "check_first", "copy_document", "normalise_document"]

# Firestore's maximum document size; the estimate below errs on the large side.
MAX_DOCUMENT_BYTES = 1_048_576
# Firestore's maximum depth of nested maps and arrays. Checking it also stops a
# self-referential value before Python's recursion limit does.
MAX_DEPTH = 20
_INT64 = (-(2**63), 2**63 - 1)


def normalise_document(data: Mapping[str, Any]) -> dict[str, Any]:
    """
    Deep-copy ``data`` into the form Firestore would read back.

    Tuples become lists, naive datetimes are taken as UTC (as the Firestore
    client does). Anything Firestore cannot store raises.

    Raises:
        InvalidInputError: unsupported type, non-string map key, nested
            array, out-of-range integer, nesting deeper than 20 levels (a
            self-referential value included), or a document over 1 MiB.
    """
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"a document must be a mapping, got {type(data).__name__}")
    size = [0]
    out = _map(data, size, "", 0)
    if size[0] > MAX_DOCUMENT_BYTES:
        raise InvalidInputError(f"document is larger than {MAX_DOCUMENT_BYTES} bytes")
    return out


def check_first(first: object, version: type) -> Snapshot:
    """
    Check the ``first`` snapshot of a ``transact_from`` call.

    Args:
        version: The type of the store's versions (``int`` for MemoryStore,
            ``datetime`` for Firestore's update times).

    Raises:
        InvalidInputError: not a :class:`Snapshot`, or not one this kind of
            store returns (data and version disagree on whether the document
            exists, or the version is of another type).
    """
    if not isinstance(first, Snapshot):
        raise InvalidInputError(f"first must be a Snapshot, got {_show(first)}")
    if first.data is None and first.version is None:
        return first
    if not (
        isinstance(first.data, dict)
        and isinstance(first.version, version)
        and not isinstance(first.version, bool)
    ):
        raise InvalidInputError(
            "first is not a snapshot this store returned "
            f"(data {type(first.data).__name__}, version {_show(first.version)})"
        )
    return first


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


def _map(value: Mapping[Any, Any], size: list[int], path: str, depth: int) -> dict[str, Any]:
    if depth >= MAX_DEPTH:
        raise InvalidInputError(
            f"value at {path[:200]!r} is nested deeper than {MAX_DEPTH} levels"
            " (or contains itself)"
        )
    out: dict[str, Any] = {}
    # The running size is kept in a local (written back around each nested
    # walk): this loop is most of a MemoryStore write (issue 13).
    n = size[0]
    for k, v in value.items():
        if type(k) is str and k and k.isascii():
            n += len(k) + 1
        else:
            n += _key_bytes(k, path)
        # Strings and plain scalars are most of a document: taken inline, with
        # no path built.
        t = type(v)
        if (t is str and v.isascii()):
            n += 8 + len(v)
            out[k] = v
        elif t in _PLAIN or (t is datetime and v.tzinfo is UTC) or (
            t is int and _INT64[0] <= v <= _INT64[1]
        ):
            n += 8
            out[k] = v
        else:
            size[0] = n
            out[k] = _value(v, size, f"{path}.{k}" if path else k, in_array=False,
                            depth=depth + 1)
            n = size[0]
        if n > MAX_DOCUMENT_BYTES:
            # Checked as the walk goes, so a huge value is refused without copying it all.
            raise InvalidInputError(f"document is larger than {MAX_DOCUMENT_BYTES} bytes")
    size[0] = n
    return out


def _key_bytes(k: object, path: str) -> int:
    """Bytes of a field name that is not a plain non-empty ASCII string; raises if invalid."""
    if not isinstance(k, str) or not k:
        raise InvalidInputError(
            f"field names must be non-empty strings, got {_show(k)} at {path[:200]!r}"
        )
    try:
        return len(k.encode("utf-8")) + 1
    except UnicodeEncodeError:
        raise InvalidInputError(f"field name at {path[:200]!r} is not valid UTF-8") from None


#: Exact types stored as they are (bool and float; int needs its range check).
_PLAIN = frozenset({type(None), bool, float})


def _check_size(size: list[int]) -> None:
    # Checked as the walk goes, so a huge value is refused without copying it all.
    if size[0] > MAX_DOCUMENT_BYTES:
        raise InvalidInputError(f"document is larger than {MAX_DOCUMENT_BYTES} bytes")


def _show(value: object) -> str:
    try:
        return repr(value)[:100]
    except Exception:  # noqa: BLE001  (huge ints, broken __repr__)
        return f"<{type(value).__name__}>"


def _value(  # noqa: PLR0911, PLR0912
    value: Any, size: list[int], path: str, *, in_array: bool, depth: int
) -> Any:
    size[0] += 8
    # Exact dicts and lists first: the ABC check below is slow on a hot path.
    if type(value) is dict:
        return _map(value, size, path, depth)
    if type(value) is list and not in_array:
        return _array(value, size, path, depth)
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise InvalidInputError(f"integer at {path[:200]!r} does not fit in 64 bits")
        return value
    if isinstance(value, str):
        try:
            size[0] += len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidInputError(f"string at {path[:200]!r} is not valid UTF-8") from None
        _check_size(size)
        return value
    if isinstance(value, bytes):
        size[0] += len(value)
        _check_size(size)
        return bytes(value)
    if isinstance(value, datetime):
        try:
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except (OverflowError, ValueError) as exc:  # e.g. datetime.min at UTC+1
            raise InvalidInputError(f"datetime at {path[:200]!r} is out of range") from exc
    if isinstance(value, Mapping):
        return _map(value, size, path, depth)
    if isinstance(value, list | tuple):
        if in_array:
            raise InvalidInputError(f"arrays cannot directly contain arrays (at {path[:200]!r})")
        return _array(value, size, path, depth)
    raise InvalidInputError(f"cannot store a {type(value).__name__} at {path[:200]!r}")


def _array(
    value: list[Any] | tuple[Any, ...], size: list[int], path: str, depth: int
) -> list[Any]:
    if depth >= MAX_DEPTH:
        raise InvalidInputError(
            f"value at {path[:200]!r} is nested deeper than {MAX_DEPTH} levels"
        )
    out: list[Any] = []
    for i, v in enumerate(value):
        if type(v) is str and v.isascii():
            size[0] += 8 + len(v)
            out.append(v)
        else:
            out.append(_value(v, size, f"{path}[{i}]", in_array=True, depth=depth + 1))
    _check_size(size)
    return out
