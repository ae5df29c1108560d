"""
Issue 11, item 2: a local wall-clock deadline is the right UTC instant on
every day around the DST changes of America/New_York, and the sweep fires it
exactly at that instant (not a microsecond before).

The oracle is independent of zoneinfo's fold rules: of the two UTC instants
a New York wall time can stand for (UTC-4 or UTC-5), the valid ones are those
that read back as that wall time; an ambiguous time (fall back) is the first
of them; a time that does not exist (spring forward) uses the offset before
the change (UTC-5).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline_reliability import MemoryStore
from pipeline_reliability.completion import CompletionTracker, LocalDeadline, PhaseSpec
from pipeline_reliability.testing import FakeClock

NY = ZoneInfo("America/New_York")


def _nth_sunday(year: int, month: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(6 - first.weekday()) % 7 + 7 * (n - 1))


TRANSITIONS = [
    day
    for year in range(2020, 2031)
    for day in (_nth_sunday(year, 3, 2), _nth_sunday(year, 11, 1))
]


def _oracle(naive: datetime) -> datetime:
    candidates = [(naive + timedelta(hours=h)).replace(tzinfo=UTC) for h in (4, 5)]
    valid = [u for u in candidates if u.astimezone(NY).replace(tzinfo=None) == naive]
    return min(valid) if valid else candidates[1]


@settings(max_examples=300, deadline=None)
@given(
    transition=st.sampled_from(TRANSITIONS),
    shift=st.integers(-3, 1),
    days_after=st.integers(0, 2),
    at=st.one_of(
        st.times(),
        st.builds(time, st.integers(0, 3), st.sampled_from([0, 30, 59])),
    ),
)
def test_item2_local_deadline_is_the_right_instant_across_dst(
    transition: date, shift: int, days_after: int, at: time
) -> None:
    day = transition + timedelta(days=shift)
    deadline = LocalDeadline(at, days_after=days_after)
    spec = PhaseSpec("p", {"a"}, timezone="America/New_York", local_deadline=deadline)
    expected = _oracle(datetime.combine(day + timedelta(days=days_after), at))

    clock = FakeClock(expected - timedelta(days=5))
    tracker = CompletionTracker(MemoryStore(clock=clock), [spec], clock=clock, owner="w")

    assert tracker.status("p", day).deadline_at == expected
    before = tracker.sweep("p", [day], now=expected - timedelta(microseconds=1))
    at_deadline = tracker.sweep("p", [day], now=expected)
    assert before.outcomes[0].action == "waiting"
    assert at_deadline.outcomes[0].action == "deadline_exceeded"
