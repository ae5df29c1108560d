"""
The run's report: a table per phase and date, the breaker's store writes
against the naive baseline, and the invariants.

Only values that do not depend on thread interleaving or timing go in, so
two runs with one seed print identical reports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .._common import format_table
from ._components import BREAKER_NAME
from ._engine import Simulation
from ._invariants import Verdict

__all__ = ["Report", "RowReport", "build_report", "render_text"]


@dataclass(frozen=True, slots=True)
class RowReport:
    """One phase and date."""

    phase: str
    date: str
    count: int
    expected: int
    triggers: int
    trigger_reason: str
    publish_attempts: int
    degraded: int
    replayed: int
    duplicates: int
    reruns: int
    ignored: int
    rows_dropped: int
    calls: int
    leases: int
    contended: int
    stale_refused: int


@dataclass(frozen=True, slots=True)
class Report:
    """Everything ``simulate`` prints."""

    config: dict[str, Any]
    chaos: str
    rows: tuple[RowReport, ...]
    breaker_writes: int
    breaker_transitions: int
    naive_writes: int
    ticks: int
    checked: int
    violations: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """No invariant was violated."""
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-safe values."""
        return {
            "config": self.config,
            "rows": [asdict(r) for r in self.rows],
            "breaker": {
                "name": BREAKER_NAME,
                "store_writes": self.breaker_writes,
                "transitions": self.breaker_transitions,
                "naive_baseline_writes": self.naive_writes,
            },
            "chaos": self.chaos,
            "ticks": self.ticks,
            "invariants": {
                "checked": self.checked,
                "violated": len(self.violations),
                "violations": list(self.violations),
            },
        }


def build_report(sim: Simulation, verdict: Verdict) -> Report:
    """Collect the report of a finished run."""
    rows = []
    for phase, dates in sim.dates.items():
        for date in dates:
            stats = sim.obs.stats(phase, date)
            try:
                count = sim.scheduler.status(phase, date).count
            except Exception:  # noqa: BLE001 - the invariants already report an unreadable status
                count = -1
            reasons = sorted({p.reason for p in stats.published})
            rows.append(RowReport(
                phase=phase, date=date, count=count, expected=len(sim.expected[phase]),
                triggers=len(stats.published), trigger_reason=",".join(reasons) or "-",
                publish_attempts=stats.publish_attempts, degraded=stats.degraded,
                replayed=stats.replayed, duplicates=stats.duplicates, reruns=stats.reruns,
                ignored=stats.ignored, rows_dropped=stats.rows_dropped, calls=stats.calls,
                leases=stats.leases, contended=stats.contended,
                stale_refused=stats.stale_rejected,
            ))
    config = sim.config
    return Report(
        config={"dates": config.dates, "workers": config.workers, "chaos": config.chaos,
                "seed": config.seed, "start": config.start.isoformat(),
                "store": "emulators" if config.emulators else "memory"},
        chaos=_describe_chaos(sim),
        rows=tuple(rows),
        breaker_writes=sim.c.breaker_store.stats.writes,
        breaker_transitions=sim.obs.breaker_transitions,
        # The production breaker wrote its counter on every call's outcome.
        naive_writes=sum(r.calls for r in rows) + sim.final_calls,
        ticks=sim.ticks,
        checked=len(verdict.checks),
        violations=tuple(f"{c.name} [{c.subject}]: {c.detail}" for c in verdict.violated),
    )


_HEADERS = ("phase", "date", "count", "trigger", "pub", "degr/repl", "dups", "reruns",
            "ignored", "rows dropped", "calls", "leases", "busy", "stale refused")
_LEGEND = (
    "columns: count = processors counted/expected; trigger = confirmed triggers (reason); "
    "pub = publish attempts",
    "         degr/repl = completions written to the fallback ledger while Firestore was "
    "down (degraded) /",
    "           ledger rows the replay after the outage applied to the store; repl is lower "
    "when a row's",
    "           completion was already there (a duplicate delivery during the outage, or a "
    "redelivery after it)",
    "         dups = duplicate deliveries; rows dropped = duplicate-key rows removed before "
    "the upsert",
    "         calls = breaker-protected calls; leases = lock leases granted (each a new "
    "fencing token)",
    "         busy = lock contention; stale refused = late writes of stalled holders refused "
    "by the fence",
    "invariants: what each check means is listed by `simulate --list-invariants`",
)


def render_text(report: Report) -> str:
    """The human-readable report; its last line is ``invariants: N checked, M violated``."""
    cfg = report.config
    lines = [
        f"simulated {cfg['dates']} date(s) from {cfg['start']} x 2 phases on {cfg['store']}, "
        f"{cfg['workers']} instance(s), chaos {cfg['chaos']}, seed {cfg['seed']}: "
        f"{report.ticks} ticks",
        "",
    ]
    cells = [
        (r.phase, r.date, f"{r.count}/{r.expected}",
         f"{r.triggers}x {r.trigger_reason}" if r.triggers else "NONE",
         r.publish_attempts, f"{r.degraded}/{r.replayed}", r.duplicates, r.reruns, r.ignored,
         r.rows_dropped, r.calls, r.leases, r.contended, r.stale_refused)
        for r in report.rows
    ]
    lines.append(format_table(_HEADERS, cells))
    lines.extend(["", *_LEGEND, ""])
    lines.append(f"chaos: {report.chaos}")
    more = (
        f" ({report.naive_writes / report.breaker_writes:.0f}x more)"
        if report.breaker_writes else ""
    )
    lines.append(
        f"breaker {BREAKER_NAME!r} ({cfg['workers']} instances): {report.breaker_writes} "
        f"store writes for {report.breaker_transitions} transitions; a write-on-every-call "
        f"breaker would have made {report.naive_writes}{more}"
    )
    for violation in report.violations:
        lines.append(f"VIOLATED {violation}")
    lines.append(f"invariants: {report.checked} checked, {len(report.violations)} violated")
    return "\n".join(lines)


def _describe_chaos(sim: Simulation) -> str:
    plan = sim.planner

    def window(ticks: range) -> str:
        return f"ticks {ticks[0]}-{ticks[-1]}" if ticks else "none"

    return (
        f"Firestore outage {window(plan.outage)}, downstream outage "
        f"{window(plan.downstream_outage)}, {len(plan.races)} lock race(s), "
        f"{len(plan.stale)} stalled lock holder(s), {sim.config.timing.tick:g}s per tick"
    )
