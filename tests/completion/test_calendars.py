"""
Issue 11: real calendars on the tracker, on MemoryStore and on the Firestore emulator.

Schedules (a no-games date completes with ``nothing_scheduled`` and raises no
alarm; a schedule change after a date started does not change that date),
local-time deadlines on both sides of a DST change, gates (block, then pass
after rows arrive, trigger exactly once), backfills (``trigger=False`` never
publishes) and ``rearm_trigger`` (exactly one new trigger, higher attempt).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from pipeline_reliability import MemoryStore, StateStore
from pipeline_reliability.completion import (
    CompletionTracker,
    GateResult,
    LocalDeadline,
    MemoryExecutionLog,
    PhaseSpec,
    TriggerEvent,
)
from pipeline_reliability.errors import ConfigurationError, InvalidInputError
from pipeline_reliability.testing import FakeClock

GAME_DAY, NO_GAMES = "2026-03-07", "2026-03-08"
PROCS = ("player_game_summary", "team_defense_game_summary")


class Calendar:
    """A game calendar whose days can change under the tracker (as real ones do)."""

    def __init__(self) -> None:
        self.games: set[str] = {GAME_DAY, "2026-11-01", "2026-03-09"}
        self.asked: list[date] = []

    def expected_for(self, day: date) -> set[str]:
        self.asked.append(day)
        return set(PROCS) if day.isoformat() in self.games else set()


class Publisher:
    def __init__(self) -> None:
        self.events: list[TriggerEvent] = []

    def __call__(self, event: TriggerEvent) -> None:
        self.events.append(event)


def tracker_of(
    store: StateStore, clock: FakeClock, *specs: PhaseSpec, **kw: Any
) -> CompletionTracker:
    return CompletionTracker(store, list(specs), clock=clock, owner="worker-1", **kw)


def record_all(tracker: CompletionTracker, day: str, **kw: Any) -> list[Any]:
    return [
        tracker.record_completion("p3", day, p, execution_id=f"run-{p}", **kw) for p in PROCS
    ]


# -- schedules ------------------------------------------------------------------------------


def test_item1_no_games_date_completes_with_nothing_scheduled_and_raises_no_alarm(
    backend: StateStore, fake_clock: FakeClock
) -> None:
    log = MemoryExecutionLog()
    spec = PhaseSpec("p3", Calendar(), deadline=timedelta(minutes=1))
    tracker = tracker_of(backend, fake_clock, spec, execution_log=log)

    far_later = datetime(2026, 4, 1, tzinfo=UTC)
    report = tracker.sweep("p3", [NO_GAMES], now=far_later)

    assert [(o.action, o.reason) for o in report.outcomes] == [("skipped", "nothing_scheduled")]
    assert report.exceeded == ()
    assert report.claims == ()
    status = tracker.status("p3", NO_GAMES)
    assert status.nothing_scheduled
    assert status.trigger_state == "skipped"
    assert status.trigger_reason == "nothing_scheduled"
    assert not status.deadline_exceeded
    again = tracker.sweep("p3", [NO_GAMES], now=far_later + timedelta(days=30))
    assert again.outcomes[0].action == "skipped"
    assert log.rows == []


def test_no_games_date_with_on_nothing_scheduled_trigger_triggers_once(
    backend: StateStore, fake_clock: FakeClock
) -> None:
    spec = PhaseSpec("p3", Calendar(), on_nothing_scheduled="trigger", next_phase="p4")
    tracker = tracker_of(backend, fake_clock, spec)
    publish = Publisher()

    first = tracker.sweep_and_trigger("p3", [NO_GAMES], publish)
    second = tracker.sweep_and_trigger("p3", [NO_GAMES], publish)

    assert [e.reason for e in publish.events] == ["nothing_scheduled"]
    assert first.outcomes[0].reason == "nothing_scheduled"
    assert second.outcomes[0].action == "triggered"


def test_status_of_an_untouched_no_games_date_says_nothing_scheduled(
    backend: StateStore, fake_clock: FakeClock
) -> None:
    tracker = tracker_of(backend, fake_clock, PhaseSpec("p3", Calendar()))
    status = tracker.status("p3", NO_GAMES)
    assert status.nothing_scheduled
    assert status.trigger_reason == "nothing_scheduled"
    assert not status.exists
    assert not status.expected_fixed


def test_item1_schedule_change_after_a_date_started_does_not_change_that_date(
    backend: StateStore, fake_clock: FakeClock
) -> None:
    calendar = Calendar()
    spec = PhaseSpec("p3", calendar)
    tracker = tracker_of(backend, fake_clock, spec)
    first = tracker.record_completion("p3", GAME_DAY, PROCS[0], execution_id="r1")
    assert first.counted
    assert first.missing == {PROCS[1]}

    # The calendar now says the game was cancelled; a fresh process (new spec, no cache).
    calendar.games.discard(GAME_DAY)
    tracker = tracker_of(backend, fake_clock, PhaseSpec("p3", calendar))
    assert tracker.sweep("p3", [GAME_DAY]).outcomes[0].action == "waiting"
    last = tracker.record_completion("p3", GAME_DAY, PROCS[1], execution_id="r2")

    assert last.trigger is not None
    assert last.trigger.reason == "complete"
    assert tracker.status("p3", GAME_DAY).expected == frozenset(PROCS)
    # And the other way round: a date fixed as empty stays skipped after games are added.
    tracker.sweep("p3", [NO_GAMES])
    calendar.games.add(NO_GAMES)
    tracker = tracker_of(backend, fake_clock, PhaseSpec("p3", calendar))
    late = tracker.record_completion("p3", NO_GAMES, PROCS[0], execution_id="r3")
    assert late.ignored
    assert late.trigger is None
    assert late.trigger_state == "skipped"


def test_item1_set_expected_is_the_audited_way_to_change_a_date(
    backend: StateStore, fake_clock: FakeClock
) -> None:
    calendar = Calendar()
    tracker = tracker_of(backend, fake_clock, PhaseSpec("p3", calendar))
    tracker.sweep("p3", [NO_GAMES])  # fixed as nothing scheduled, skipped

    status = tracker.set_expected(
        "p3", NO_GAMES, [PROCS[0]], reason="late game added", by="ops@example.com"
    )

    assert status.expected == {PROCS[0]}
    assert status.trigger_state == "none"
    [entry] = status.audit
    assert (entry.op, entry.by, entry.reason) == ("set_expected", "ops@example.com",
                                                 "late game added")
    assert entry.at is not None
    assert entry.details["added"] == 1
    done = tracker.record_completion("p3", NO_GAMES, PROCS[0], execution_id="r1")
    assert done.trigger is not None
    with pytest.raises(InvalidInputError):
        tracker.set_expected("p3", NO_GAMES, ["bad name"], reason="x")


def test_schedule_is_asked_once_per_date_and_its_errors_are_configuration_errors(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    calendar = Calendar()
    spec = PhaseSpec("p3", calendar)
    tracker = tracker_of(memory_store, fake_clock, spec)
    for run in range(3):
        tracker.record_completion("p3", GAME_DAY, PROCS[0], execution_id=f"r{run}")
    assert calendar.asked == [date(2026, 3, 7)]

    def broken(day: date) -> set[str]:
        raise RuntimeError("calendar service down")

    bad = tracker_of(memory_store, fake_clock, PhaseSpec("p9", broken))
    with pytest.raises(ConfigurationError, match="schedule failed"):
        bad.record_completion("p9", GAME_DAY, "a", execution_id="r1")
    assert bad.sweep("p9", [GAME_DAY]).outcomes[0].action == "error"
    with pytest.raises(ConfigurationError, match="at most 50"):
        PhaseSpec("p8", lambda d: [f"p{i}" for i in range(51)]).expected_for(GAME_DAY)


# -- local deadlines across DST ------------------------------------------------------------

# 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
DST_CASES = [
    # date, local deadline, its instant in UTC
    ("2026-03-07", LocalDeadline(time(14), days_after=1), datetime(2026, 3, 8, 18, tzinfo=UTC)),
    ("2026-03-06", LocalDeadline(time(14), days_after=1), datetime(2026, 3, 7, 19, tzinfo=UTC)),
    ("2026-10-31", LocalDeadline(time(14), days_after=1), datetime(2026, 11, 1, 19, tzinfo=UTC)),
    ("2026-10-30", LocalDeadline(time(14), days_after=1), datetime(2026, 10, 31, 18, tzinfo=UTC)),
]


@pytest.mark.parametrize(("day", "deadline", "instant"), DST_CASES)
def test_item2_local_deadline_fires_at_the_right_instant_on_both_sides_of_a_dst_change(
    backend: StateStore, fake_clock: FakeClock, day: str, deadline: LocalDeadline,
    instant: datetime,
) -> None:
    spec = PhaseSpec("p3", PROCS, timezone="America/New_York", local_deadline=deadline)
    tracker = tracker_of(backend, fake_clock, spec)
    tracker.record_completion("p3", day, PROCS[0], execution_id="r1")
    assert tracker.status("p3", day).deadline_at == instant

    before = tracker.sweep("p3", [day], now=instant - timedelta(microseconds=1))
    at = tracker.sweep("p3", [day], now=instant)

    assert before.outcomes[0].action == "waiting"
    assert at.outcomes[0].action == "deadline_exceeded"
    assert at.outcomes[0].newly_marked


def test_duration_deadline_of_a_silent_date_starts_at_local_midnight(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    spec = PhaseSpec("p3", PROCS, timezone="America/New_York", deadline=timedelta(hours=2))
    tracker = tracker_of(memory_store, fake_clock, spec)
    # Midnight after 2026-03-08 in New York is 04:00 UTC (EDT); + 2 h.
    assert tracker.status("p3", "2026-03-08").deadline_at == datetime(2026, 3, 9, 6, tzinfo=UTC)
    both = PhaseSpec("p4", PROCS, deadline=timedelta(hours=1), local_deadline=time(23))
    assert both.duration_deadline
    assert both.local_deadline == LocalDeadline(time(23))
    assert not PhaseSpec("p5", PROCS, local_deadline=time(23)).duration_deadline


def test_recent_dates_are_today_and_yesterday_in_the_phase_zone() -> None:
    spec = PhaseSpec("p3", PROCS, timezone="America/New_York")
    # 02:00 UTC on the 2nd is still the evening of the 1st in New York.
    assert spec.recent_dates(datetime(2026, 1, 2, 2, tzinfo=UTC)) == ("2026-01-01", "2025-12-31")
    assert PhaseSpec("p4", PROCS).recent_dates(datetime(2026, 1, 2, 2, tzinfo=UTC)) == (
        "2026-01-02", "2026-01-01",
    )
    with pytest.raises(ConfigurationError):
        PhaseSpec("p5", PROCS, timezone="Mars/Olympus_Mons")


# -- gates ----------------------------------------------------------------------------------


class RowsGate:
    """A gate on a row count that the test fills, and that can be made to fail."""

    name = "rows"

    def __init__(self, threshold: int) -> None:
        self.rows = 0
        self.threshold = threshold
        self.calls = 0
        self.error: Exception | None = None

    def __call__(self, day: str) -> GateResult:
        self.calls += 1
        if self.error is not None:
            raise self.error
        ok = self.rows >= self.threshold
        return GateResult(ok, f"{self.rows} rows < {self.threshold}" if not ok else "")


def test_item3_gate_below_threshold_blocks_then_passes_after_rows_arrive_and_triggers_once(
    backend: StateStore, fake_clock: FakeClock
) -> None:
    gate = RowsGate(100)
    spec = PhaseSpec("p3", PROCS, gates=[gate], next_phase="p4")
    tracker = tracker_of(backend, fake_clock, spec)
    publish = Publisher()

    results = [
        tracker.record_and_trigger("p3", GAME_DAY, p, execution_id=f"r-{p}", publish=publish)
        for p in PROCS
    ]
    assert results[-1].trigger is None
    assert results[-1].gate_reason == "rows: 0 rows < 100"
    status = tracker.status("p3", GAME_DAY)
    assert status.gated
    assert status.gate_reason == "rows: 0 rows < 100"
    assert status.trigger_state == "none"
    assert publish.events == []
    # A redelivery and a sweep ask again; still closed: no claim, no release, no event.
    tracker.record_and_trigger("p3", GAME_DAY, PROCS[0], execution_id="r-again", publish=publish)
    swept = tracker.sweep_and_trigger("p3", [GAME_DAY], publish)
    assert swept.outcomes[0].action == "gated"
    assert publish.events == []

    gate.rows = 100
    passed = tracker.sweep_and_trigger("p3", [GAME_DAY], publish)
    later = tracker.sweep_and_trigger("p3", [GAME_DAY], publish)

    assert passed.outcomes[0].action == "claimed"
    assert later.outcomes[0].action == "triggered"
    assert [e.attempt for e in publish.events] == [1]
    final = tracker.status("p3", GAME_DAY)
    assert final.triggered
    assert not final.gated


def test_item3_gate_that_errors_counts_as_closed_and_is_logged(
    memory_store: MemoryStore, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    gate = RowsGate(0)
    gate.error = RuntimeError("bigquery down")
    tracker = tracker_of(memory_store, fake_clock, PhaseSpec("p3", PROCS, gates=[gate]))
    result = record_all(tracker, GAME_DAY)[-1]
    assert result.trigger is None
    assert result.gate_reason == "rows: error: RuntimeError: bigquery down"
    assert "gate failed" in caplog.text
    # A gate answering nonsense is closed too.
    def odd_gate(day: str) -> Any:
        return "yes"

    odd = tracker_of(memory_store, fake_clock, PhaseSpec("p4", PROCS, gates=[odd_gate]))
    assert all(
        r.trigger is None
        for r in [odd.record_completion("p4", GAME_DAY, p, execution_id="r") for p in PROCS]
    )


def test_a_closed_gate_costs_no_write_per_check(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    gate = RowsGate(10)
    spec = PhaseSpec("p3", PROCS, gates=[gate])
    tracker = tracker_of(memory_store, fake_clock, spec)
    record_all(tracker, GAME_DAY)
    version = memory_store.get(spec.collection, GAME_DAY).version
    for _ in range(3):
        assert tracker.sweep("p3", [GAME_DAY]).outcomes[0].action == "gated"
    assert memory_store.get(spec.collection, GAME_DAY).version == version
    assert gate.calls == 4


# -- backfills and rearm --------------------------------------------------------------------


def test_item4_trigger_false_completions_never_publish(
    backend: StateStore, fake_clock: FakeClock
) -> None:
    spec = PhaseSpec("p3", PROCS, next_phase="p4")
    tracker = tracker_of(backend, fake_clock, spec)
    publish = Publisher()
    results = [
        tracker.record_and_trigger(
            "p3", GAME_DAY, p, execution_id=f"bf-{p}", publish=publish, trigger=False
        )
        for p in PROCS
    ]
    assert results[-1].count == 2
    assert results[-1].trigger is None
    assert results[-1].trigger_state == "skipped"
    swept = tracker.sweep_and_trigger(
        "p3", [GAME_DAY], publish, now=datetime(2027, 1, 1, tzinfo=UTC)
    )
    redelivered = tracker.record_and_trigger(
        "p3", GAME_DAY, PROCS[0], execution_id="live", publish=publish
    )
    assert swept.outcomes[0].action == "skipped"
    assert swept.outcomes[0].reason == "backfill"
    assert redelivered.trigger is None
    assert publish.events == []
    status = tracker.status("p3", GAME_DAY)
    assert status.trigger_state == "skipped"
    assert status.trigger_reason == "backfill"


def test_item4_rearm_trigger_publishes_exactly_one_new_trigger_with_a_higher_attempt(
    backend: StateStore, fake_clock: FakeClock
) -> None:
    spec = PhaseSpec("p3", PROCS, next_phase="p4")
    tracker = tracker_of(backend, fake_clock, spec)
    publish = Publisher()
    for p in PROCS:
        tracker.record_and_trigger("p3", GAME_DAY, p, execution_id=f"r-{p}", publish=publish)
    assert [e.attempt for e in publish.events] == [1]

    confirmation = tracker.rearm_and_trigger(
        "p3", GAME_DAY, "Phase 4 rebuilt with the fixed model", publish, by="ops@example.com"
    )
    tracker.sweep_and_trigger("p3", [GAME_DAY], publish)
    tracker.record_and_trigger("p3", GAME_DAY, PROCS[0], execution_id="again", publish=publish)

    assert confirmation is not None
    first, second = publish.events
    assert second.attempt == 2
    assert second.reason == "rearmed"
    assert second.trigger_id == "p3:2026-03-07:rearm1" != first.trigger_id
    status = tracker.status("p3", GAME_DAY)
    assert status.triggered
    assert status.trigger_attempt == 2
    [entry] = status.audit
    assert (entry.op, entry.by, entry.reason) == (
        "rearm_trigger", "ops@example.com", "Phase 4 rebuilt with the fixed model"
    )
    assert entry.details["attempt"] == 2
    assert entry.details["previous"] == "confirmed"


def test_rearm_refuses_a_date_that_is_not_settled(
    backend: StateStore, fake_clock: FakeClock
) -> None:
    tracker = tracker_of(backend, fake_clock, PhaseSpec("p3", PROCS))
    with pytest.raises(InvalidInputError, match="nothing to rearm"):
        tracker.rearm_trigger("p3", GAME_DAY, "why")
    claim = record_all(tracker, GAME_DAY)[-1].trigger
    assert claim is not None
    with pytest.raises(InvalidInputError, match="'claimed'"):
        tracker.rearm_trigger("p3", GAME_DAY, "why")
    with pytest.raises(InvalidInputError):
        tracker.rearm_trigger("p3", GAME_DAY, "")


def test_rearm_of_a_backfilled_date_triggers_it_and_a_lost_holder_is_finished_by_the_sweep(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    tracker = tracker_of(memory_store, fake_clock, PhaseSpec("p3", PROCS))
    record_all(tracker, GAME_DAY, trigger=False)
    claim = tracker.rearm_trigger("p3", GAME_DAY, "backfill done, run phase 4 once")
    assert claim.attempt == 1
    assert claim.trigger_id.endswith(":rearm1")
    fake_clock.advance(timedelta(minutes=6))  # the holder died; its lease expired
    publish = Publisher()
    tracker.sweep_and_trigger("p3", [GAME_DAY], publish)
    assert [(e.trigger_id, e.attempt) for e in publish.events] == [("p3:2026-03-07:rearm1", 2)]
