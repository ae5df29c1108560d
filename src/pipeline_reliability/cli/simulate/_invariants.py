"""
The guarantees a run must show, checked against what really happened.

Each check compares the library's own view (tracker status, breaker store
writes, the output table) with what the simulation knows independently (who
reported, what was published, which leases were granted). A broken component
makes a check fail: see ``tests/cli/test_simulate_breaks.py``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ...breaker import BreakerState
from ._calendar import CalendarRun
from ._components import KEY
from ._engine import Simulation
from ._limited import LimitedTable
from ._watching import STALLS, WatchRun

__all__ = ["INVARIANTS", "Check", "Verdict", "check_run"]

#: Every invariant a run checks: name -> what must hold (``simulate --list-invariants``).
INVARIANTS: dict[str, str] = {
    "no_unexpected_failure": "no library call raised an error the chaos did not plan for",
    "status_readable": "the tracker's status of every phase and date can be read",
    "count_complete": "every expected processor is counted for the date (F1)",
    "count_matches_records": "the count equals the processor records the document holds (F1)",
    "reported_are_counted": "every expected processor that reported is in the count (F1, F2)",
    "trigger_exactly_once": "exactly one trigger publish succeeded per phase and date (F3)",
    "trigger_confirmed": "the tracker shows that trigger as confirmed (F3)",
    "trigger_complete_set": "a trigger was published only for a complete set (F3)",
    "degraded_replayed": "completions sent to the fallback ledger reached the store by "
    "replay (F2)",
    "unknown_ignored": "misspelled processor names are ignored, never counted (F4)",
    "stale_write_fenced": "a stalled lock holder's late write is refused by the fence (F7)",
    "stale_release_refused": "a stalled lock holder's release after losing its lease "
    "fails (F7)",
    "trigger_chain": "each phase reached every date (phase 4 starts from phase 3's trigger)",
    "lock_race_one_winner": "of two instances racing for a date lock, exactly one gets "
    "the lease; none only when both met contention or a store failure with nobody holding "
    "it (fail closed, delivered again) (F7)",
    "breaker_writes_are_transitions": "the shared breaker writes to the store only on "
    "state transitions (F6)",
    "breaker_healthy_no_writes": "without a downstream outage the breaker makes no store "
    "writes (F6)",
    "breaker_recovered": "after the outage every instance sees the circuit closed again",
    "table_one_row_per_key": "the output table holds one row per key after dedup and "
    "upsert (F8)",
    "table_rows_complete": "every processor output holds exactly the rows it wrote (F8)",
    "table_outputs_written": "every processor of every date wrote its output",
    "dml_limit_respected": "the processors' table writes ran under a fleet-wide "
    "ConcurrencyLimit: never more writers inside a write than the limit (counted from "
    "inside the critical section), and every slot was given back",
    "calendar_no_error": "the calendar episode (phase 5 on a schedule) ran without an error",
    "calendar_nothing_scheduled": "a date with nothing scheduled settles without a trigger "
    "(reason nothing_scheduled) and is never reported overdue",
    "calendar_game_day_once": "every scheduled date triggers exactly once, with a complete set",
    "calendar_gate_holds": "while its gate is closed a date is gated with the reason and "
    "nothing is published",
    "calendar_gate_once": "once its gate opens a gated date triggers exactly once",
    "backfill_never_triggers": "completions recorded as a backfill (trigger=False) never "
    "publish; the date settles as skipped (backfill)",
    "rearm_one_new_trigger": "rearm_trigger publishes exactly one new trigger, with a new id "
    "and a higher attempt, audited",
    "watch_no_error": "the watch episode (watch at the end of each simulated day) ran "
    "without an error",
    "watch_chaos_alerted": "at the end of each day watch alerts every misspelled processor and "
    "every degraded completion the chaos caused, and nothing else (no stall alarm for a "
    "date that recovered)",
    "watch_stall_alerted": "every planned stall (processor never reports, next phase never "
    "starts, publisher died holding the claim, lock holder died) is alerted by its rule at "
    "the end of its day",
    "watch_no_false_alarm": "watch raises no alert for a healthy day",
}


@dataclass(frozen=True, slots=True)
class Check:
    """One invariant evaluated on one subject."""

    name: str
    subject: str
    ok: bool
    detail: str = ""


@dataclass
class Verdict:
    """Every check of a run."""

    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, subject: str, ok: bool, detail: str = "") -> None:
        """Record one check (``name`` must be one of ``INVARIANTS``)."""
        if name not in INVARIANTS:
            raise ValueError(f"unknown invariant {name!r}: describe it in INVARIANTS")
        self.checks.append(Check(name, subject, bool(ok), "" if ok else detail))

    @property
    def violated(self) -> list[Check]:
        """The checks that failed."""
        return [c for c in self.checks if not c.ok]


def check_run(sim: Simulation) -> Verdict:
    """Evaluate every invariant of a finished run."""
    verdict = Verdict()
    for message in sim.obs.violations:
        verdict.add("no_unexpected_failure", "run", ok=False, detail=message)
    if not sim.obs.violations:
        verdict.add("no_unexpected_failure", "run", ok=True)
    for phase, dates in sim.dates.items():
        for date in dates:
            _check_phase_date(sim, verdict, phase, date)
    reached = {phase: len(dates) for phase, dates in sim.dates.items()}
    for phase, count in reached.items():
        verdict.add("trigger_chain", phase, count == sim.config.dates,
                    f"{phase} reached {count} of {sim.config.dates} dates")
    _check_races(sim, verdict)
    _check_breaker(sim, verdict)
    _check_table(sim, verdict)
    _check_dml_limit(sim, verdict)
    if sim.calendar is not None:
        _check_calendar(sim.calendar, verdict)
    if sim.watching is not None:
        _check_watch(sim.watching, verdict)
    return verdict


def _check_watch(run: WatchRun, verdict: Verdict) -> None:
    verdict.add("watch_no_error", "watch", not run.errors, "; ".join(run.errors)[:300])
    for (phase, date), expected in sorted(run.chaos_expected.items()):
        found = run.chaos_found.get((phase, date), set())
        verdict.add("watch_chaos_alerted", f"{phase} {date}", found == expected,
                    f"missed {sorted(expected - found)}, unexpected {sorted(found - expected)}")
    for date, kind in sorted(run.stalls.items()):
        stall = run.stall_found.get(date, set())
        rule = STALLS[kind]
        if rule is None:
            verdict.add("watch_no_false_alarm", f"watch {date}", not stall,
                        f"alerts on a healthy day: {sorted(map(str, stall))}")
        else:
            verdict.add("watch_stall_alerted", f"watch {date} ({kind})",
                        [r for r, _ in stall] == [rule],
                        f"expected exactly {rule}, found {sorted(map(str, stall))}")


def _check_calendar(run: CalendarRun, verdict: Verdict) -> None:
    verdict.add("calendar_no_error", "phase5", not run.errors, "; ".join(run.errors)[:300])
    for day in run.no_games:
        status = run.final.get(day)
        ok = (status is not None and status.trigger_state == "skipped"
              and status.trigger_reason == "nothing_scheduled" and not run.published.get(day)
              and day not in run.overdue and not status.deadline_exceeded)
        verdict.add("calendar_nothing_scheduled", f"phase5 {day}", ok,
                    f"status {status and status.trigger_state!r}, "
                    f"{len(run.published.get(day, []))} published")
    for day in run.game_days:
        events = [e for e in run.published.get(day, []) if e.attempt == 1 or
                  e.reason != "rearmed"]
        firsts = [e for e in events if e.reason != "rearmed"]
        ok = len(firsts) == 1 and not firsts[0].missing
        verdict.add("calendar_game_day_once", f"phase5 {day}", ok,
                    f"{len(firsts)} trigger(s) published")
    for day in run.gated:
        status, published = run.while_closed.get(day, (None, -1))
        ok = status is not None and status.gated and published == 0 and (
            status.gate_reason or "").endswith("phase 4 features not loaded")
        verdict.add("calendar_gate_holds", f"phase5 {day}", ok,
                    f"gated={status and status.gated}, {published} published while closed")
        firsts = [e for e in run.published.get(day, []) if e.reason != "rearmed"]
        verdict.add("calendar_gate_once", f"phase5 {day}", len(firsts) == 1,
                    f"{len(firsts)} trigger(s) after the gate opened")
    backfill = run.final.get(run.backfill_date)
    verdict.add("backfill_never_triggers", f"phase5 {run.backfill_date}",
                backfill is not None and not run.published.get(run.backfill_date)
                and backfill.trigger_state == "skipped" and backfill.trigger_reason == "backfill",
                f"status {backfill and backfill.trigger_state!r}, "
                f"{len(run.published.get(run.backfill_date, []))} published")
    if run.rearmed is not None:
        events = run.published.get(run.rearmed, [])
        rearms = [e for e in events if e.reason == "rearmed"]
        status = run.final.get(run.rearmed)
        ok = (len(rearms) == 1 and len(events) == 2 and rearms[0].attempt > events[0].attempt
              and rearms[0].trigger_id != events[0].trigger_id and status is not None
              and status.triggered and [a.op for a in status.audit] == ["rearm_trigger"])
        verdict.add("rearm_one_new_trigger", f"phase5 {run.rearmed}", ok,
                    f"{len(rearms)} rearmed trigger(s) of {len(events)} published")


def _check_phase_date(sim: Simulation, verdict: Verdict, phase: str, date: str) -> None:
    subject = f"{phase} {date}"
    expected = sim.expected[phase]
    stats = sim.obs.stats(phase, date)
    try:
        status = sim.scheduler.status(phase, date)
    except Exception as exc:  # noqa: BLE001 - an unreadable status is itself the finding
        verdict.add("status_readable", subject, ok=False, detail=f"{type(exc).__name__}: {exc}")
        return
    # F1: the count is what the records say, and every processor that reported is in it.
    verdict.add("count_complete", subject, status.count == len(expected),
                f"count {status.count}, expected {len(expected)}")
    verdict.add("count_matches_records", subject,
                status.count == len(status.completed) and status.completed <= expected,
                f"count {status.count} vs records {sorted(status.completed)}")
    reported = stats.accepted | stats.degraded_processors
    verdict.add("reported_are_counted", subject, (reported & expected) <= status.completed,
                f"reported {sorted(reported & expected)} but counted {sorted(status.completed)}")
    # F3: exactly one published and confirmed trigger, all with the stable id.
    published = stats.published
    verdict.add("trigger_exactly_once", subject, len(published) == 1,
                f"{len(published)} successful trigger publishes")
    verdict.add("trigger_confirmed", subject, status.triggered,
                f"trigger state {status.trigger_state!r}")
    verdict.add("trigger_complete_set", subject,
                all(p.completed == expected for p in published),
                "a trigger was published for an incomplete set")
    # F2: nothing reported was lost: degraded completions reached the store by replay.
    degraded = stats.degraded_processors & expected
    verdict.add("degraded_replayed", subject, degraded <= status.completed,
                f"degraded {sorted(degraded - status.completed)} not in the store after replay")
    # F4: unknown names never count.
    verdict.add("unknown_ignored", subject, not (status.ignored & expected),
                f"ignored {sorted(status.ignored)}")
    # F7: a stalled holder's late write is refused and its release fails.
    planned = (phase, date) in {(p, d) for p, d, _ in sim.planner.stale}
    stale = sum(1 for p, d, _ in sim.planner.stale if (p, d) == (phase, date))
    if planned:
        verdict.add("stale_write_fenced", subject,
                    stats.stale_rejected == stale and stats.stale_accepted == 0,
                    f"{stats.stale_accepted} stale write(s) accepted, "
                    f"{stats.stale_rejected} refused")
        verdict.add("stale_release_refused", subject, stats.lost_releases == stale,
                    f"{stats.lost_releases} of {stale} stale releases refused")


def _check_races(sim: Simulation, verdict: Verdict) -> None:
    for phase, date, processor in sorted(sim.planner.races):
        won = sim.obs.race_winners.get((phase, date, processor), 0)
        unheld = sim.obs.race_unheld.get((phase, date, processor), 0)
        # Never two holders. Nobody is allowed only when both found nobody
        # holding (Firestore aborted both overlapping transactions until their
        # attempts ran out): no lease, no work, the message comes back.
        ok = won == 1 or (won == 0 and unheld == 2)
        verdict.add("lock_race_one_winner", f"{phase} {date} {processor}", ok,
                    f"{won} of 2 racing instances got the lease, {unheld} found nobody holding")


def _check_breaker(sim: Simulation, verdict: Verdict) -> None:
    writes = sim.c.breaker_store.stats.writes
    transitions = sim.obs.breaker_transitions
    # F6: the shared breaker writes on transitions only: a healthy circuit costs nothing.
    verdict.add("breaker_writes_are_transitions", "breaker", writes == transitions,
                f"{writes} store writes for {transitions} transitions")
    if not sim.planner.downstream_outage:
        verdict.add("breaker_healthy_no_writes", "breaker", writes == 0,
                    f"{writes} writes without any outage")
    states = {instance.breaker.state for instance in sim.instances}
    verdict.add("breaker_recovered", "breaker", states == {BreakerState.CLOSED},
                f"instances see {sorted(s.value for s in states)}")


def _check_table(sim: Simulation, verdict: Verdict) -> None:
    rows = sim.c.table.rows()
    counts = Counter(tuple(r.get(k) for k in KEY) for r in rows)
    dupes = sum(n - 1 for n in counts.values() if n > 1)
    # F8: dedup before the MERGE leaves exactly one row per key.
    verdict.add("table_one_row_per_key", "table", dupes == 0, f"{dupes} duplicate row(s)")
    per_output = Counter((r.get("processor"), r.get("game_date")) for r in rows)
    wrong = {k: n for k, n in per_output.items() if n != sim.config.rows}
    verdict.add("table_rows_complete", "table", not wrong,
                f"outputs with the wrong row count: {sorted(wrong.items())[:3]}")
    written = {(p, d) for (p, d) in per_output}
    for phase, dates in sim.dates.items():
        missing = [(p, d) for d in dates for p in sim.expected[phase] if (p, d) not in written]
        verdict.add("table_outputs_written", phase, not missing,
                    f"no rows for {missing[:3]}")


def _check_dml_limit(sim: Simulation, verdict: Verdict) -> None:
    table = sim.c.table
    if not isinstance(table, LimitedTable):
        return  # a test wired its own table
    left = table.slots_left()
    ok = table.overruns == 0 and table.peak <= table.limit and not left
    verdict.add("dml_limit_respected", "table", ok,
                f"{table.entries} writes, at most {table.peak} at once (limit {table.limit}), "
                f"{table.overruns} overrun(s){', slots left in the store' if left else ''}")
