"""Validation of what a DateLock is built from: bad input raises before any store call."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from .._keys import validate_id
from .._validate import duration_seconds, iso_date
from ..errors import ConfigurationError, InvalidInputError

__all__ = [
    "DEFAULT_COLLECTION",
    "OnStoreError",
    "check_collection",
    "check_on_store_error",
    "check_owner",
    "parse_date",
    "parse_name",
    "to_seconds",
]

OnStoreError = Literal["fail_closed", "proceed"]
DEFAULT_COLLECTION = "date_locks"
_MAX_OWNER = 500


def parse_date(value: object) -> str:
    """Return ``value`` (a ``date``, or an ISO string naming a real day) as ``YYYY-MM-DD``."""
    return iso_date(value)


def parse_name(value: object) -> str:
    """Return the lock name, a non-empty string (any characters: it is escaped into the id)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"lock name must be a non-empty string, got {value!r}")
    return value


def to_seconds(value: float | dt.timedelta | None, what: str, *, allow_zero: bool) -> float | None:
    """Normalise a duration given as seconds or a timedelta (``None`` stays ``None``)."""
    return None if value is None else duration_seconds(value, what, allow_zero=allow_zero)


def check_owner(owner: object) -> str:
    """Return a valid owner id (non-empty string of reasonable length)."""
    if not isinstance(owner, str) or not owner or len(owner) > _MAX_OWNER:
        raise ConfigurationError(
            f"owner must be a non-empty string of at most {_MAX_OWNER} characters, got {owner!r}"
        )
    return owner


def check_collection(collection: object) -> str:
    """Return ``collection`` if it is a valid collection id."""
    try:
        return validate_id(collection, "collection id")
    except InvalidInputError as exc:
        raise ConfigurationError(str(exc)) from exc


def check_on_store_error(value: object) -> OnStoreError:
    """Return the store-error policy, refusing anything but the two spelled-out choices."""
    if value == "fail_closed":
        return "fail_closed"
    if value == "proceed":
        return "proceed"
    raise ConfigurationError(
        f"on_store_error must be 'fail_closed' or 'proceed', got {value!r}"
    )
