"""Document paths: validation of ids and escaping of arbitrary names into safe ids."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote

from ._validate import describe
from .errors import InvalidInputError

__all__ = ["MAX_ID_BYTES", "encode_key", "validate_id"]

# Firestore's documented limits for collection and document ids.
MAX_ID_BYTES = 1500
_RESERVED = re.compile(r"^__.*__$")


def validate_id(value: object, what: str = "document id") -> str:
    """
    Return ``value`` if Firestore accepts it as an id, else raise.

    Raises:
        InvalidInputError: empty, too long, contains ``/``, is ``.``/``..``
            or looks like a reserved ``__name__``.
    """
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{what} must be a non-empty string, got {describe(value)}")
    if "/" in value or value in {".", ".."} or _RESERVED.match(value):
        raise InvalidInputError(f"{what} {value!r} is not a valid Firestore id")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        raise InvalidInputError(f"{what} is longer than {MAX_ID_BYTES} bytes")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{what} {value!r} is not valid UTF-8") from exc
    return value


def encode_key(*parts: str) -> str:
    """
    Turn any strings into one safe document id, injectively.

    Each part is percent-escaped (so ``/`` and the separator cannot collide),
    parts are joined with ``~``; an id that would be too long keeps a readable
    prefix plus a SHA-256 of the whole.
    """
    escaped = "~".join(quote(p, safe="-_.:@+=") for p in parts)
    if escaped in {".", ".."} or _RESERVED.match(escaped):
        escaped = "%" + escaped
    if len(escaped) > 200:
        digest = hashlib.sha256(escaped.encode()).hexdigest()
        escaped = f"{escaped[:100]}#{digest}"
    return escaped
