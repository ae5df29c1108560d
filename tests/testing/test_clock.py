"""FakeClock: time that moves only when a test moves it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest

from pipeline_reliability import Clock
from pipeline_reliability.testing import FakeClock


def test_default_start_is_a_fixed_utc_instant() -> None:
    """A new FakeClock reads 2026-01-31 12:00 UTC and monotonic 0."""
    clock = FakeClock()

    assert clock.now() == datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert clock.monotonic() == 0.0


def test_time_stands_still_until_advanced() -> None:
    """Reading the clock twice gives the same time."""
    clock = FakeClock()

    assert clock.now() == clock.now()
    assert clock.monotonic() == clock.monotonic()


def test_naive_and_foreign_starts_become_utc() -> None:
    """A naive start is taken as UTC; an aware one is converted to UTC."""
    naive = FakeClock(datetime(2026, 3, 1, 8, 30))
    aware = FakeClock(datetime(2026, 3, 1, 10, 30, tzinfo=timezone(timedelta(hours=2))))

    assert naive.now() == datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    assert aware.now().utcoffset() == timedelta(0)
    assert aware.now() == naive.now()


@pytest.mark.parametrize("delta", [90, 90.0, timedelta(seconds=90)])
def test_advance_moves_wall_and_monotonic_time(delta: float | timedelta) -> None:
    """advance() takes seconds or a timedelta and moves both clocks by it."""
    clock = FakeClock()
    start = clock.now()

    clock.advance(delta)

    assert clock.now() - start == timedelta(seconds=90)
    assert clock.monotonic() == 90.0


def test_sleep_advances_instead_of_blocking_and_is_recorded() -> None:
    """sleep() moves time forward at once and remembers each requested duration."""
    clock = FakeClock()

    clock.sleep(2.5)
    clock.sleep(0)

    assert clock.monotonic() == 2.5
    assert clock.sleeps == [2.5, 0]


def test_negative_sleep_does_not_move_time() -> None:
    """A negative sleep is recorded but leaves the time unchanged."""
    clock = FakeClock()

    clock.sleep(-1)

    assert clock.monotonic() == 0.0
    assert clock.sleeps == [-1]


def test_time_never_goes_backwards() -> None:
    """advance() with a negative delta raises ValueError."""
    clock = FakeClock()

    with pytest.raises(ValueError, match="never goes backwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="never goes backwards"):
        clock.advance(timedelta(seconds=-1))


def test_concurrent_advances_all_count() -> None:
    """Advances from many threads add up exactly."""
    clock = FakeClock()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _i: clock.advance(0.5), range(400)))

    assert clock.monotonic() == 200.0
    assert clock.now() == datetime(2026, 1, 31, 12, 3, 20, tzinfo=UTC)


def test_fake_clock_is_a_clock() -> None:
    """FakeClock satisfies the Clock protocol that every component accepts."""
    assert isinstance(FakeClock(), Clock)
