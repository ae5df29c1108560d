"""
The argument checks every capability shares: ISO dates and durations.

One definition each, so a date or a TTL means the same thing to the tracker,
the lock, the sinks and the CLI.
"""

from __future__ import annotations

import math
import re
import reprlib
from datetime import date, datetime, timedelta

from .errors import ConfigurationError, InvalidInputError

__all__ = [
    "DATE_MAX",
    "DATE_MIN",
    "MAX_DURATION",
    "describe",
    "duration_seconds",
    "iso_date",
]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

#: The longest duration any option or argument may be (about 100 years). With
#: the date range below, "a date plus any accepted duration" (a deadline, an
#: expiry, "the day after") is always a representable datetime: no
#: ``OverflowError`` can surface from date arithmetic anywhere in the library.
MAX_DURATION = timedelta(days=36_500)
#: The largest integer every store and sink holds (Firestore and BigQuery INT64).
MAX_INT64 = 2**63 - 1
#: The first and last dates accepted as pipeline dates.
DATE_MIN = date.min + MAX_DURATION
DATE_MAX = date.max - MAX_DURATION


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 80


def describe(value: object) -> str:
    """
    A short ``repr`` of any value, for error messages.

    Plain ``repr`` can itself fail on hostile input (``RecursionError`` for
    deeply nested lists, ``ValueError`` for an int of more than 4300 digits)
    and would then hide the error being reported; this never raises.
    """
    try:
        return _REPR.repr(value)
    except Exception:  # noqa: BLE001 - any failure of a user type's __repr__
        return f"<{type(value).__name__}>"


def iso_date(value: object, what: str = "date") -> str:
    """
    Return ``value`` as ``YYYY-MM-DD``.

    Accepts a ``datetime.date`` or a string of exactly that form naming a real
    calendar day. A ``datetime`` is refused: its time of day would be dropped.

    Raises:
        InvalidInputError: anything else, e.g. ``"2026-02-30"``, ``"2026-1-5"``
            or ``"20260131"``.
    """
    if isinstance(value, datetime):
        raise InvalidInputError(f"{what} must be a date, not a datetime: {value!r}")
    if isinstance(value, date):
        return _in_range(value, what).isoformat()
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            day = date.fromisoformat(value)
        except ValueError as exc:
            raise InvalidInputError(f"{what} {value!r} is not a real date") from exc
        return _in_range(day, what).isoformat()
    raise InvalidInputError(
        f"{what} must be a datetime.date or 'YYYY-MM-DD', got {describe(value)}"
    )


def _in_range(day: date, what: str) -> date:
    if not DATE_MIN <= day <= DATE_MAX:
        raise InvalidInputError(f"{what} {day.isoformat()} is outside {DATE_MIN}..{DATE_MAX}")
    return day


def duration_seconds(value: object, what: str, *, allow_zero: bool = False) -> float:
    """
    Return a duration given as seconds (int or float) or a ``timedelta``, in seconds.

    Raises:
        ConfigurationError: not a number or timedelta (``bool`` included), not
            finite, negative, zero unless ``allow_zero``, or longer than
            :data:`MAX_DURATION`.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise ConfigurationError(f"{what} must be seconds or a timedelta, got {describe(value)}")
    try:
        seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    except OverflowError as exc:  # an int too large for a float
        raise ConfigurationError(f"{what} is not a representable duration") from exc
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        bound = "non-negative" if allow_zero else "positive"
        raise ConfigurationError(f"{what} must be a finite, {bound} duration, got {value!r}")
    if seconds > _MAX_SECONDS:
        raise ConfigurationError(f"{what} must be at most {MAX_DURATION.days} days, got {value!r}")
    return seconds


_MAX_SECONDS = MAX_DURATION.total_seconds()
