"""The shared argument checks: one meaning of a date and of a duration everywhere."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pytest

from pipeline_reliability import ConfigurationError, InvalidInputError
from pipeline_reliability._validate import duration_seconds, iso_date


@pytest.mark.parametrize("value", ["2026-01-31", date(2026, 1, 31)])
def test_iso_date_accepts_a_date_or_its_iso_form(value: object) -> None:
    """A date object and its exact ISO string give the same text."""
    assert iso_date(value) == "2026-01-31"


@pytest.mark.parametrize(
    "value",
    ["2026-02-30", "2026-1-5", "20260131", "2026-W05-6", "", None, 20260131,
     datetime(2026, 1, 31, tzinfo=UTC)],
)  # fmt: skip
def test_iso_date_refuses_everything_else(value: object) -> None:
    """Impossible days, other ISO forms, non-strings and datetimes raise InvalidInputError."""
    with pytest.raises(InvalidInputError):
        iso_date(value)


@pytest.mark.parametrize(
    ("value", "seconds"), [(2, 2.0), (0.5, 0.5), (timedelta(minutes=1), 60.0)]
)
def test_duration_seconds_accepts_numbers_and_timedeltas(value: object, seconds: float) -> None:
    """Seconds and timedeltas normalise to float seconds."""
    assert seconds == duration_seconds(value, "ttl")


@pytest.mark.parametrize("value", [0, -1, math.inf, math.nan, True, "5", timedelta(0), None])
def test_duration_seconds_refuses_nonsense(value: object) -> None:
    """Zero, negative, non-finite, bool and non-numbers raise ConfigurationError."""
    with pytest.raises(ConfigurationError):
        duration_seconds(value, "ttl")


def test_duration_seconds_allows_zero_only_when_asked() -> None:
    """allow_zero admits 0 but still refuses negatives."""
    assert duration_seconds(0, "delay", allow_zero=True) == 0.0
    with pytest.raises(ConfigurationError):
        duration_seconds(-0.1, "delay", allow_zero=True)


def test_duration_seconds_boundary_at_max_duration() -> None:
    """MAX_DURATION itself is accepted; one microsecond more is refused (item 9)."""
    from pipeline_reliability._validate import MAX_DURATION

    assert duration_seconds(MAX_DURATION, "ttl") == MAX_DURATION.total_seconds()
    for value in (MAX_DURATION + timedelta(microseconds=1), timedelta.max, 8.64e13, 10**400):
        with pytest.raises(ConfigurationError):
            duration_seconds(value, "ttl")


def test_iso_date_boundary_at_the_ends_of_the_range() -> None:
    """DATE_MIN and DATE_MAX are accepted, the day beyond each is refused (item 9)."""
    from pipeline_reliability._validate import DATE_MAX, DATE_MIN

    assert iso_date(DATE_MAX) == DATE_MAX.isoformat()
    assert iso_date(DATE_MIN.isoformat()) == DATE_MIN.isoformat()
    for value in (DATE_MAX + timedelta(days=1), DATE_MIN - timedelta(days=1), "9999-12-31"):
        with pytest.raises(InvalidInputError):
            iso_date(value)
