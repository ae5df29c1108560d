"""
The calendar episode of a game day (issue 11): phase 5 (predictions) runs on
a schedule over the same store, after phases 3 and 4.

- Some dates have no games: nothing is scheduled, the date settles without
  a trigger and never raises a deadline alarm.
- Some dates are gated: "phase 4 features loaded" must hold before the
  predictions trigger; the gate stays closed until the rows arrive.
- One earlier date is backfilled with ``trigger=False``: it never triggers.
- One triggered date is re-run by an operator (``rearm_trigger``): exactly
  one new trigger with a higher attempt.

What happened is kept in :class:`CalendarRun`; the invariants (``_invariants``)
compare it with the tracker's status.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ...completion import CompletionTracker, GateResult, PhaseSpec, PhaseStatus, TriggerEvent
from ...errors import ReliabilityError
from ...retry import RetryPolicy
from ._plan import rng

__all__ = ["PHASE5", "PHASE5_PROCESSORS", "CalendarRun", "run_calendar"]

PHASE5 = "phase5"
PHASE5_PROCESSORS = ("prediction_coordinator", "prediction_worker")
GATE_REASON = "phase 4 features not loaded"


@dataclass
class CalendarRun:
    """What the calendar episode did and saw."""

    no_games: list[str] = field(default_factory=list)
    gated: list[str] = field(default_factory=list)
    game_days: list[str] = field(default_factory=list)
    backfill_date: str = ""
    rearmed: str | None = None
    #: date -> events published for it (in order).
    published: dict[str, list[TriggerEvent]] = field(default_factory=dict)
    #: gated date -> (status while closed, events published while closed)
    while_closed: dict[str, tuple[PhaseStatus, int]] = field(default_factory=dict)
    #: date -> status at the end.
    final: dict[str, PhaseStatus] = field(default_factory=dict)
    #: nothing-scheduled dates the sweep reported overdue long after the date.
    overdue: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _plan(seed: int, dates: list[str]) -> tuple[list[str], list[str]]:
    """(no-games dates, gated dates), each non-empty when there are dates enough."""
    no_games = [d for d in dates if rng(seed, "no_games", d).random() < 0.3]
    if not no_games and len(dates) > 1:
        no_games = [dates[len(dates) // 2]]
    playing = [d for d in dates if d not in no_games]
    gated = [d for d in playing if rng(seed, "gated", d).random() < 0.5]
    if not gated and playing:
        gated = [playing[0]]
    return no_games, gated


def run_calendar(sim: Any) -> CalendarRun:
    """Play the calendar episode on the run's store and clock."""
    dates: list[str] = list(sim.planner.dates)
    run = CalendarRun()
    run.no_games, run.gated = _plan(sim.config.seed, dates)
    run.game_days = [d for d in dates if d not in run.no_games]
    first = _dt.date.fromisoformat(dates[0])
    run.backfill_date = (first - timedelta(days=1)).isoformat()
    features_loaded: set[str] = set()

    def games(day: _dt.date) -> set[str]:
        return set() if day.isoformat() in run.no_games else set(PHASE5_PROCESSORS)

    def features(day: str) -> GateResult:
        ok = day not in run.gated or day in features_loaded
        return GateResult(ok, "" if ok else GATE_REASON)

    lease = timedelta(seconds=sim.config.timing.trigger_lease)
    spec = PhaseSpec(PHASE5, games, gates=[features], trigger_lease=lease,
                     deadline=timedelta(hours=1))
    retry = RetryPolicy(attempts=3, deadline=None, initial=0.0, maximum=0.0, clock=sim.c.clock)
    tracker = CompletionTracker(sim.c.store, [spec], clock=sim.c.clock, owner="calendar",
                                retry=retry)

    def publish_for(day: str) -> Any:
        def publish(event: TriggerEvent) -> None:
            run.published.setdefault(day, []).append(event)
        return publish

    try:
        _play(tracker, run, dates, features_loaded, publish_for)
    except ReliabilityError as exc:
        run.errors.append(f"{type(exc).__name__}: {exc}")
    return run


def _play(
    tracker: CompletionTracker, run: CalendarRun, dates: list[str], features_loaded: set[str],
    publish_for: Any,
) -> None:
    for day in run.game_days:
        for processor in PHASE5_PROCESSORS:
            tracker.record_and_trigger(PHASE5, day, processor, execution_id=f"p5-{day}",
                                       publish=publish_for(day))
    for day in dates:  # the scheduler's sweep: settles the no-games dates too
        tracker.sweep_and_trigger(PHASE5, [day], publish_for(day))
    for day in run.gated:
        run.while_closed[day] = (tracker.status(PHASE5, day), len(run.published.get(day, [])))
    features_loaded.update(run.gated)  # phase 4's features arrive
    for _ in range(2):  # the next sweeps: each gated date triggers, once
        for day in dates:
            tracker.sweep_and_trigger(PHASE5, [day], publish_for(day))
    far = _dt.datetime.fromisoformat(f"{dates[-1]}T00:00:00+00:00") + timedelta(days=30)
    late = tracker.sweep(PHASE5, run.no_games, now=far)
    run.overdue = list(late.exceeded)
    # A backfill of the day before: recorded, never triggered (not even by a late sweep).
    for processor in PHASE5_PROCESSORS:
        tracker.record_and_trigger(PHASE5, run.backfill_date, processor,
                                   execution_id=f"backfill-{processor}",
                                   publish=publish_for(run.backfill_date), trigger=False)
    tracker.sweep_and_trigger(PHASE5, [run.backfill_date], publish_for(run.backfill_date),
                              now=far)
    # An operator re-runs the predictions of the last game day.
    if run.game_days:
        run.rearmed = run.game_days[-1]
        tracker.rearm_and_trigger(PHASE5, run.rearmed, "model retrained", publish_for(
            run.rearmed), by="simulate")
    for day in [*dates, run.backfill_date]:
        run.final[day] = tracker.status(PHASE5, day)
