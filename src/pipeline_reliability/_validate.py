"""
The argument checks every capability shares: ISO dates and durations.

One definition each, so a date or a TTL means the same thing to the tracker,
the lock, the sinks and the CLI.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta

from .errors import ConfigurationError, InvalidInputError

__all__ = ["duration_seconds", "iso_date"]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


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
        return value.isoformat()
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError as exc:
            raise InvalidInputError(f"{what} {value!r} is not a real date") from exc
    raise InvalidInputError(f"{what} must be a datetime.date or 'YYYY-MM-DD', got {value!r}")


def duration_seconds(value: object, what: str, *, allow_zero: bool = False) -> float:
    """
    Return a duration given as seconds (int or float) or a ``timedelta``, in seconds.

    Raises:
        ConfigurationError: not a number or timedelta (``bool`` included), not
            finite, negative, or zero unless ``allow_zero``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise ConfigurationError(f"{what} must be seconds or a timedelta, got {value!r}")
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        bound = "non-negative" if allow_zero else "positive"
        raise ConfigurationError(f"{what} must be a finite, {bound} duration, got {value!r}")
    return seconds
