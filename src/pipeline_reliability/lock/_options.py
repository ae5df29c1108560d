"""
Validation of what a DateLock is built from and called with.

Bad input raises before any store call: ``ConfigurationError`` for a
constructor option, ``InvalidInputError`` for a call argument (and for the
lock's name and date, which say *what* is locked).
"""

from __future__ import annotations

import datetime as dt
import inspect
from typing import Literal

from .._clock import Clock
from .._keys import MAX_ID_BYTES, validate_id
from .._validate import MAX_INT64, describe, duration_seconds, iso_date
from ..errors import ConfigurationError, InvalidInputError
from ..stores import AsyncStateStore, StateStore

__all__ = [
    "DEFAULT_COLLECTION",
    "OnStoreError",
    "check_async_store",
    "check_clock",
    "check_collection",
    "check_flag",
    "check_on_store_error",
    "check_owner",
    "check_store",
    "check_token",
    "check_ttl",
    "is_async_store",
    "parse_date",
    "parse_name",
    "parse_timeout",
]

OnStoreError = Literal["fail_closed", "proceed"]
DEFAULT_COLLECTION = "date_locks"
_MAX_OWNER = 500


def parse_date(value: object) -> str:
    """Return ``value`` (a ``date``, or an ISO string naming a real day) as ``YYYY-MM-DD``."""
    return iso_date(value)


def parse_name(value: object) -> str:
    """Return the lock name: a non-empty UTF-8 string (escaped into the id, so any characters)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"lock name must be a non-empty string, got {describe(value)}")
    _check_text(value, "lock name", MAX_ID_BYTES, InvalidInputError)
    return value


def check_ttl(value: object) -> dt.timedelta:
    """Return the lease duration: positive, at most MAX_DURATION, at least a microsecond."""
    ttl = dt.timedelta(seconds=duration_seconds(value, "ttl"))
    if not ttl:
        raise ConfigurationError(f"ttl must be at least one microsecond, got {describe(value)}")
    return ttl


def parse_timeout(value: object) -> float | None:
    """Return an acquire timeout in seconds (``None``: wait for ever)."""
    if value is None:
        return None
    try:
        return duration_seconds(value, "timeout", allow_zero=True)
    except ConfigurationError as exc:
        raise InvalidInputError(str(exc)) from exc


def check_flag(value: object, what: str, error: type[Exception]) -> bool:
    """Return ``value`` if it is a ``bool``; anything else raises ``error``."""
    if not isinstance(value, bool):
        raise error(f"{what} must be True or False, got {describe(value)}")
    return value


def check_token(value: object, what: str) -> int | None:
    """Return a fencing token given as an argument: ``None`` or an int in 0..2**63-1."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT64
    ):
        # Tokens are stored as INT64 by every store and sink: a larger one can never be real.
        raise InvalidInputError(
            f"{what} must be an int in 0..2**63-1 or None, got {describe(value)}"
        )
    return value


def check_owner(owner: object) -> str:
    """Return a valid owner id (non-empty UTF-8 string of reasonable length)."""
    if not isinstance(owner, str) or not owner or len(owner) > _MAX_OWNER:
        raise ConfigurationError(
            f"owner must be a non-empty string of at most {_MAX_OWNER} characters, "
            f"got {describe(owner)}"
        )
    _check_text(owner, "owner", _MAX_OWNER * 4, ConfigurationError)
    return owner


def check_store(store: object, error: type[Exception]) -> StateStore:
    """Return ``store`` if it implements the (blocking) StateStore protocol."""
    if not isinstance(store, StateStore) or is_async_store(store):
        raise error(
            f"store must be a StateStore (MemoryStore, FirestoreStore), got {describe(store)}"
            + (": use AsyncDateLock with an async store" if is_async_store(store) else "")
        )
    return store


def check_async_store(store: object, error: type[Exception]) -> AsyncStateStore:
    """Return ``store`` if it implements the AsyncStateStore protocol (coroutines)."""
    awaited = all(
        inspect.iscoroutinefunction(getattr(store, op, None)) for op in ("get", "transact")
    )
    if not isinstance(store, AsyncStateStore) or not awaited:
        raise error(
            "store must be an AsyncStateStore (AsyncMemoryStore, AsyncFirestoreStore), "
            f"got {describe(store)}"
        )
    return store


def is_async_store(store: object) -> bool:
    """
    Whether any of ``store``'s operations is a coroutine function.

    Both protocols have the same method names, so ``isinstance`` alone cannot
    tell a ``MemoryStore`` from an ``AsyncMemoryStore``.
    """
    return any(
        inspect.iscoroutinefunction(getattr(store, op, None)) for op in ("get", "transact")
    )


def check_clock(clock: object) -> Clock | None:
    """Return ``clock`` (``None``: the system clock) if it implements the Clock protocol."""
    if clock is not None and not isinstance(clock, Clock):
        raise ConfigurationError(
            f"clock must implement now/monotonic/sleep, got {describe(clock)}"
        )
    return clock


def check_collection(collection: object, error: type[Exception] = ConfigurationError) -> str:
    """Return ``collection`` if it is a valid collection id."""
    try:
        return validate_id(collection, "collection id")
    except InvalidInputError as exc:
        if error is InvalidInputError:
            raise
        raise error(str(exc)) from exc


def check_on_store_error(value: object) -> OnStoreError:
    """Return the store-error policy, refusing anything but the two spelled-out choices."""
    if isinstance(value, str) and value == "fail_closed":
        return "fail_closed"
    if isinstance(value, str) and value == "proceed":
        return "proceed"
    raise ConfigurationError(
        f"on_store_error must be 'fail_closed' or 'proceed', got {describe(value)}"
    )


def _check_text(value: str, what: str, max_bytes: int, error: type[Exception]) -> None:
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise error(f"{what} is not valid UTF-8 (it holds a lone surrogate)") from exc
    if size > max_bytes:
        raise error(f"{what} is longer than {max_bytes} bytes")
