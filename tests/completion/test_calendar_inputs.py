"""Issue 11: every new option and argument refuses bad values with the library's own errors."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

import pytest

from pipeline_reliability import MemoryStore
from pipeline_reliability.completion import CompletionTracker, LocalDeadline, PhaseSpec
from pipeline_reliability.errors import ConfigurationError, InvalidInputError

PROCS = ("a", "b")


@pytest.mark.parametrize(
    "options",
    [
        {"on_nothing_scheduled": ["skip"]},
        {"on_nothing_scheduled": "maybe"},
        {"gates": "not-a-list"},
        {"gates": [1]},
        {"gates": None},
        {"timezone": "Mars/Base"},
        {"timezone": 5},
        {"timezone": "x" * 100},
        {"local_deadline": "14:00"},
        {"local_deadline": 14},
    ],
)
def test_bad_calendar_options_are_configuration_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        PhaseSpec("p", PROCS, **options)


@pytest.mark.parametrize(
    ("at", "days"),
    [(time(14, tzinfo=None), -1), (time(14), 32), (time(14), True), ("14:00", 0)],
)
def test_bad_local_deadlines_are_configuration_errors(at: Any, days: Any) -> None:
    with pytest.raises(ConfigurationError):
        LocalDeadline(at, days_after=days)


def test_a_schedule_allows_critical_and_min_beyond_a_day_and_caps_them() -> None:
    spec = PhaseSpec("p", lambda d: {"a"}, min_to_trigger=2, critical={"a", "z"},
                     deadline=timedelta(hours=1))
    day = spec.with_expected(spec.expected_for("2026-01-01"))
    assert day.min_to_trigger == 1
    assert day.critical == {"a"}
    with pytest.raises(ConfigurationError):
        PhaseSpec("p", lambda d: {"a"}, min_to_trigger=51, critical={"a"})


@pytest.fixture
def tracker(memory_store: MemoryStore) -> CompletionTracker:
    return CompletionTracker(memory_store, [PhaseSpec("p", PROCS)], owner="w")


@pytest.mark.parametrize("flag", [None, 1, "no"])
def test_trigger_must_be_a_bool(tracker: CompletionTracker, flag: Any) -> None:
    with pytest.raises(InvalidInputError):
        tracker.record_completion("p", "2026-01-01", "a", execution_id="r", trigger=flag)
    with pytest.raises(InvalidInputError):
        tracker.replay_ledger("p", ["2026-01-01"], trigger=flag)
    with pytest.raises(InvalidInputError):
        tracker.reconcile("p", "2026-01-01", {}, trigger=flag)
    assert not tracker.status("p", "2026-01-01").exists


@pytest.mark.parametrize(
    "kwargs",
    [
        {"reason": ""},
        {"reason": "x" * 513},
        {"reason": None},
        {"reason": "ok", "by": ""},
        {"reason": "ok", "by": 5},
    ],
)
def test_bad_rearm_and_set_expected_arguments_write_nothing(
    tracker: CompletionTracker, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInputError):
        tracker.rearm_trigger("p", "2026-01-01", **kwargs)
    with pytest.raises(InvalidInputError):
        tracker.set_expected("p", "2026-01-01", ["a"], **kwargs)
    assert not tracker.status("p", "2026-01-01").exists


@pytest.mark.parametrize("names", ["a", ["bad name"], [f"p{i}" for i in range(51)], 5])
def test_bad_expected_sets_are_refused(tracker: CompletionTracker, names: Any) -> None:
    with pytest.raises(InvalidInputError):
        tracker.set_expected("p", "2026-01-01", names, reason="why")


@pytest.mark.parametrize("now", [None, "2026-01-01", 0])
def test_recent_dates_needs_an_aware_datetime(now: Any) -> None:
    with pytest.raises(InvalidInputError):
        PhaseSpec("p", PROCS).recent_dates(now)
