"""
The watch episode of a game day (issue 15): ``watch`` runs at the end of
each simulated day, and what it says is compared with what the chaos did.

- On the main run's phases (3 and 4): after the chaos settled, every
  misspelled processor the plan injected and every completion that went to
  the fallback ledger is alerted, and nothing else (no stall alarm for a
  date that recovered).
- On two phases of their own ("watch3" -> "watch4"), each date is either
  healthy or stalls in one planned way (a processor never reports; phase 4
  never starts after the trigger; the publisher dies holding the claim; a
  lock holder dies). At the end of the day each stall is alerted by its
  rule, on its date, and a healthy day has no alert at all.

What happened is kept in :class:`WatchRun`; the invariants compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ...completion import CompletionTracker, PhaseSpec
from ...errors import ReliabilityError
from ...lock import DateLock
from ...ops import WatchConfig, watch
from ...ops._rules import CLAIM_STUCK, HANDOFF, LATE, LOCK_OVERDUE, PhaseRules
from ._config import PHASE3, PHASE4
from ._plan import rng

__all__ = ["STALLS", "WatchRun", "run_watch", "watch"]

W3, W4 = "watch3", "watch4"
LOCK = "watch3-ingest"
#: Planned stall -> the rule that must alert it (``None``: a healthy day).
STALLS: dict[str, str | None] = {
    "healthy": None,
    "missing_processor": LATE,
    "handoff_cut": HANDOFF,
    "publisher_died": CLAIM_STUCK,
    "lock_holder_died": LOCK_OVERDUE,
}
# Judged half a day after the day's work: past every threshold, before the next day.
_END_OF_DAY = timedelta(hours=12)


@dataclass
class WatchRun:
    """What the watch episode planned and what ``watch`` said."""

    #: (phase, date) of the main run -> the (rule, subject) alerts expected / found.
    chaos_expected: dict[tuple[str, str], set[tuple[str, str]]] = field(default_factory=dict)
    chaos_found: dict[tuple[str, str], set[tuple[str, str]]] = field(default_factory=dict)
    #: date -> the planned stall, and the (rule, phase) alerts found at its end of day.
    stalls: dict[str, str] = field(default_factory=dict)
    stall_found: dict[str, set[tuple[str, str | None]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def run_watch(sim: Any) -> WatchRun:
    """Play the watch episode on the run's store and clock."""
    run = WatchRun()
    try:
        _main_run(sim, run)
        _stalls(sim, run)
    except ReliabilityError as exc:
        run.errors.append(f"{type(exc).__name__}: {exc}")
    return run


def _main_run(sim: Any, run: WatchRun) -> None:
    now = sim.c.clock.now()
    for phase in (PHASE3, PHASE4):
        for date in sim.dates[phase]:
            planted = {("ignored_completion", d.processor)
                       for _, d in sim.planner.deliveries(phase, date, 0) if d.kind == "unknown"}
            degraded = sim.obs.stats(phase, date).degraded_processors
            run.chaos_expected[(phase, date)] = planted | {
                ("degraded_completion", p) for p in degraded}
            # One run per date, at the end of its day: what an operator would be told.
            report = watch(sim.c.store, sim.scheduler, ledger=sim.c.ledger, dates=[date],
                           now=now, remember=False)
            run.chaos_found[(phase, date)] = {
                (a.rule, a.subject) for a in report.alerts if a.phase == phase}


def _stalls(sim: Any, run: WatchRun) -> None:
    lease = timedelta(seconds=sim.config.timing.trigger_lease)
    specs = [PhaseSpec(W3, {"a", "b"}, next_phase=W4, trigger_lease=lease),
             PhaseSpec(W4, {"c"}, trigger_lease=lease)]
    tracker = CompletionTracker(sim.c.store, specs, clock=sim.c.clock, owner="watch-episode")
    config = WatchConfig(phases={W3: PhaseRules(locks=(LOCK,))})
    kinds = list(STALLS)
    for index, date in enumerate(sim.planner.dates):
        # Every kind appears once the run has dates enough; the rest are drawn.
        kind = kinds[index] if index < len(kinds) else rng(
            sim.config.seed, "stall", date).choice(kinds)
        run.stalls[date] = kind
        _play(tracker, sim, date, kind)
        report = watch(sim.c.store, tracker, config, dates=[date],
                       now=sim.c.clock.now() + _END_OF_DAY)
        run.stall_found[date] = {(a.rule, a.phase) for a in report.alerts}


def _play(tracker: CompletionTracker, sim: Any, date: str, kind: str) -> None:
    def publish(_event: object) -> None:
        return None  # delivered: the next phase's start is what the plan decides

    if kind == "lock_holder_died":
        ttl = timedelta(seconds=sim.config.timing.lock_ttl)
        DateLock(sim.c.store, LOCK, date, ttl=ttl, owner="dead-worker").acquire()
    for name in ("a", "b"):
        if kind == "missing_processor" and name == "b":
            continue  # b never reports
        if kind == "publisher_died" and name == "b":
            # The last report claims the trigger; the process dies before publishing.
            tracker.record_completion(W3, date, name, execution_id=f"{date}-{name}")
            continue
        tracker.record_and_trigger(W3, date, name, execution_id=f"{date}-{name}",
                                   publish=publish)
    if kind not in {"handoff_cut", "publisher_died"}:
        tracker.record_and_trigger(W4, date, "c", execution_id=f"{date}-c", publish=publish)
