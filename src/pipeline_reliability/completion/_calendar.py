"""
Calendars: the pipeline's time zone, local wall-clock deadlines, and the
expected set of one date (static, or from a schedule), fixed in the date's
document the first time it is needed.

Dates stay plain ``YYYY-MM-DD`` labels; the time zone only says when a date's
day ends and when its local deadline falls, as an instant in UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Protocol, runtime_checkable

from ..errors import ConfigurationError

__all__ = [
    "MAX_DAYS_AFTER",
    "LocalDeadline",
    "Schedule",
    "day_end",
    "local_deadline_at",
    "recent_dates",
    "zone",
    "zone_name",
]

#: Furthest a local deadline may lie after its date (days).
MAX_DAYS_AFTER = 31


@runtime_checkable
class Schedule(Protocol):
    """
    A calendar of expected processors: ``expected_for(date) -> set of names``.

    ``PhaseSpec(expected=...)`` takes an object with this method, or a plain
    callable of the same shape. It is asked about a date (a ``datetime.date``)
    the first time the tracker needs that date's set; the answer is then
    fixed in the date's document (see :meth:`CompletionTracker.set_expected`
    to change it deliberately).

    .. versionadded:: 0.2.0
    """

    def expected_for(self, day: date) -> Iterable[str]:
        """The processors expected on ``day`` (empty: nothing scheduled)."""


ScheduleFn = Callable[[date], Iterable[str]]


@dataclass(frozen=True, slots=True)
class LocalDeadline:
    """
    A deadline as a wall-clock time in the phase's time zone, relative to the date.

    ``LocalDeadline(time(14), days_after=1)`` with ``timezone="America/New_York"``
    is "14:00 New York time on the day after the date", whatever the UTC
    offset is that day. A time that does not exist on that day (inside a
    spring-forward gap) is read with the offset before the change (02:30
    becomes 03:30 daylight time); a time that occurs twice (fall-back) is the
    first occurrence.

    Raises:
        ConfigurationError: ``at`` not a naive ``datetime.time``, or
            ``days_after`` outside ``0..31``.

    .. versionadded:: 0.2.0
    """

    at: time
    days_after: int = 0

    def __post_init__(self) -> None:
        at: object = self.at
        if not isinstance(at, time) or at.tzinfo is not None:
            raise ConfigurationError("LocalDeadline.at must be a naive datetime.time")
        # A wall-clock deadline names no occurrence: fold=1 would silently pick
        # the second of an ambiguous time (or the later offset in a gap).
        object.__setattr__(self, "at", at.replace(fold=0))
        days: object = self.days_after
        if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= MAX_DAYS_AFTER:
            raise ConfigurationError(
                f"LocalDeadline.days_after must be within 0..{MAX_DAYS_AFTER}"
            )


def zone(value: object) -> tzinfo:
    """
    Return the time zone of an IANA name (or of a ``ZoneInfo``), else raise.

    ``"UTC"`` is ``datetime.UTC`` (no time zone database needed). ``zoneinfo``
    is imported here, on first use: importing it reads environment variables,
    which ``import pipeline_reliability`` must not do (DESIGN F10).
    """
    if value == "UTC" or value is UTC:
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if isinstance(value, ZoneInfo):
        return value
    if not isinstance(value, str) or not value or len(value) > 64:
        raise ConfigurationError(f"timezone must be an IANA time zone name, got {value!r:.80}")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ConfigurationError(f"unknown time zone {value!r:.80}") from exc


def zone_name(tz: tzinfo) -> str:
    """The IANA name of a zone from :func:`zone`."""
    return str(getattr(tz, "key", "UTC"))


def _utc(day: date, at: time, tz: tzinfo) -> datetime:
    # fold=0: an ambiguous time is its first occurrence, a missing one uses
    # the offset before the change (zoneinfo's documented reading).
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def day_end(day: str, tz: tzinfo) -> datetime:
    """The instant (UTC) the local day ``day`` ends: local midnight after it."""
    return _utc(date.fromisoformat(day) + timedelta(days=1), time(), tz)


def local_deadline_at(day: str, tz: tzinfo, deadline: LocalDeadline) -> datetime:
    """The instant (UTC) of ``deadline`` for ``day`` in ``tz``."""
    return _utc(date.fromisoformat(day) + timedelta(days=deadline.days_after), deadline.at, tz)


def recent_dates(tz: tzinfo, now: datetime, days: int = 2) -> tuple[str, ...]:
    """The last ``days`` dates in ``tz`` at ``now``, newest first ("today and yesterday")."""
    today = now.astimezone(tz).date()
    return tuple((today - timedelta(days=i)).isoformat() for i in range(days))
