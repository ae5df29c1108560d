"""
The watch rules: pure functions from status snapshots and an injected
``now`` to alerts, and their per-phase thresholds (:class:`PhaseRules`).

Each rule reads only public status values (``PhaseStatus``, ``LedgerRow``,
``BreakerStatus``, ``LockInfo``); none does I/O, so each is tested by
constructing a snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from .._validate import duration_seconds
from ..breaker import BreakerState, BreakerStatus
from ..completion import LedgerRow, LocalDeadline, PhaseSpec, PhaseStatus
from ..errors import ConfigurationError
from ..lock import LockInfo
from ._alerts import CRITICAL, WARNING, Alert

__all__ = [
    "BREAKER_OPEN",
    "CLAIM_STUCK",
    "DEGRADED",
    "HANDOFF",
    "IGNORED",
    "LATE",
    "LEDGER",
    "LOCK_OVERDUE",
    "WATCH_RULES",
    "PhaseRules",
    "breaker_open",
    "claim_stuck",
    "degraded_completions",
    "handoff_stalled",
    "ignored_completions",
    "ledger_unreplayed",
    "lock_overdue",
    "phase_late",
]

HANDOFF = "handoff_stalled"
LATE = "phase_late"
CLAIM_STUCK = "claim_stuck"
LEDGER = "ledger_unreplayed"
DEGRADED = "degraded_completion"
IGNORED = "ignored_completion"
BREAKER_OPEN = "breaker_open"
LOCK_OVERDUE = "lock_overdue"
#: Every rule, by name (``PhaseRules.disabled`` takes these).
WATCH_RULES = (HANDOFF, LATE, CLAIM_STUCK, LEDGER, DEGRADED, IGNORED, BREAKER_OPEN, LOCK_OVERDUE)


def _positive(value: object, what: str) -> timedelta:
    if not isinstance(value, timedelta):
        raise ConfigurationError(f"{what} must be a timedelta, got {type(value).__name__}")
    duration_seconds(value, what)
    return value


@dataclass(frozen=True, slots=True)
class PhaseRules:
    """
    The watch thresholds of one phase.

    Args:
        handoff: How long after this phase's trigger was claimed (and then
            confirmed) the next phase must have recorded a completion.
        expected_by: When the phase must be complete, as a wall-clock time
            in the phase's time zone relative to the date; ``None``: the
            tracker's own deadline of the date (``PhaseStatus.deadline_at``).
        takeover: How long after a released or expired trigger claim's lease
            end a delivery or the sweep must have taken it over.
        ledger_wait: How long a completion may wait in the fallback ledger
            before it must have been replayed.
        lock_grace: How long after its lease end a lock may still name a holder.
        locks: Date locks to check on each watched date of this phase.
        disabled: Rules not evaluated for this phase (names of :data:`WATCH_RULES`).

    Raises:
        ConfigurationError: a duration that is not a positive ``timedelta``
            (at most about 100 years), an unsafe lock name or an unknown rule.

    .. versionadded:: 0.3.0
    """

    handoff: timedelta = timedelta(minutes=30)
    expected_by: LocalDeadline | None = None
    takeover: timedelta = timedelta(minutes=10)
    ledger_wait: timedelta = timedelta(minutes=30)
    lock_grace: timedelta = timedelta(minutes=1)
    locks: tuple[str, ...] = ()
    disabled: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for name in ("handoff", "takeover", "ledger_wait", "lock_grace"):
            _positive(getattr(self, name), name)
        by: object = self.expected_by
        if not (by is None or isinstance(by, LocalDeadline)):
            raise ConfigurationError("expected_by must be a LocalDeadline or None")
        locks: object = self.locks
        if isinstance(locks, str) or not isinstance(locks, Iterable):
            raise ConfigurationError("locks must be a collection of lock names")
        names: tuple[object, ...] = tuple(self.locks)
        object.__setattr__(self, "locks", names)
        if not all(isinstance(n, str) and n for n in names):
            raise ConfigurationError("every lock name must be a non-empty string")
        disabled: object = self.disabled
        if isinstance(disabled, str) or not isinstance(disabled, Iterable):
            raise ConfigurationError("disabled must be a collection of rule names")
        object.__setattr__(self, "disabled", frozenset(self.disabled))
        unknown = sorted(str(r) for r in self.disabled if r not in WATCH_RULES)
        if unknown:
            raise ConfigurationError(f"unknown rule(s) {unknown}; known: {', '.join(WATCH_RULES)}")

    def enabled(self, rule: str) -> bool:
        """Whether ``rule`` is evaluated for this phase."""
        return rule not in self.disabled


def _claimed_at(status: PhaseStatus, spec: PhaseSpec) -> datetime | None:
    # The status keeps the claim's lease end; the claim was taken one lease before.
    if status.lease_expires_at is None:
        return None
    return status.lease_expires_at - spec.trigger_lease


def _ago(now: datetime, since: datetime) -> str:
    minutes = int((now - since).total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


def handoff_stalled(
    status: PhaseStatus, spec: PhaseSpec, following: PhaseStatus, rules: PhaseRules,
    now: datetime,
) -> Alert | None:
    """
    Phase N's trigger is confirmed but phase N+1 (``following``) recorded no
    completion within ``rules.handoff`` of the claim.
    """
    claimed = _claimed_at(status, spec)
    if status.trigger_state != "confirmed" or claimed is None or following.nothing_scheduled:
        return None
    if following.records or following.first_completion_at is not None or following.ignored:
        return None
    if now < claimed + rules.handoff:
        return None
    return Alert(
        HANDOFF, CRITICAL, following.phase, status.date, "",
        f"{status.phase} triggered {following.phase} for {status.date} {_ago(now, claimed)} "
        f"ago, but no {following.phase} processor has reported",
        f"check that the trigger message reached {following.phase}'s subscribers (topic, "
        f"subscription, dead-letter queue) and that its processors run",
        since=claimed,
    )


def expected_by_at(status: PhaseStatus, spec: PhaseSpec, rules: PhaseRules) -> datetime | None:
    """When the phase must be complete for the date (the tracker's deadline by default)."""
    if rules.expected_by is None:
        return status.deadline_at
    day = date.fromisoformat(status.date) + timedelta(days=rules.expected_by.days_after)
    at: time = rules.expected_by.at
    return datetime.combine(day, at, tzinfo=spec.zone).astimezone(UTC)


def phase_late(
    status: PhaseStatus, spec: PhaseSpec, rules: PhaseRules, now: datetime
) -> Alert | None:
    """
    The phase is not complete at its expected-by time: processors are
    missing, or it is complete but its trigger was never claimed (a gate is
    closed, or no sweep ran). A claimed or released trigger is
    :func:`claim_stuck`'s.
    """
    due = expected_by_at(status, spec, rules)
    if status.nothing_scheduled or status.trigger_state == "skipped" or due is None:
        return None
    if now < due or not (status.missing or status.trigger_state == "none"):
        return None
    missing = sorted(status.missing)
    if missing:
        what = f"missing {', '.join(missing)} ({status.count}/{len(status.expected)})"
        action = ("check those processors' runs and logs; when their output exists, "
                  "`pipeline-reliability reconcile`")
    else:
        what = "complete but never triggered" + (
            f" (gated: {status.gate_reason})" if status.gated else "")
        action = "run `pipeline-reliability sweep` (check the phase's gates)"
    severity = WARNING if status.triggered else CRITICAL
    return Alert(
        LATE, severity, status.phase, status.date, "",
        f"{status.phase} {status.date} is not complete at its expected-by time "
        f"{due.isoformat()}: {what}",
        action, processor=missing[0] if len(missing) == 1 else None, since=due,
    )


def claim_stuck(
    status: PhaseStatus, rules: PhaseRules, now: datetime
) -> Alert | None:
    """A trigger claim was released (or its lease expired) and nobody took it over."""
    expires = status.lease_expires_at
    if status.trigger_state not in {"claimed", "released"} or expires is None:
        return None
    if now < expires + rules.takeover:
        return None
    how = "released (its publish failed)" if status.trigger_state == "released" else (
        f"held by {status.trigger_owner} whose lease expired")
    return Alert(
        CLAIM_STUCK, CRITICAL, status.phase, status.date, "",
        f"{status.phase} {status.date}: trigger attempt {status.trigger_attempt} "
        f"{how}, not taken over {_ago(now, expires)} after its lease end",
        "run `pipeline-reliability sweep` with --topic (is the sweep scheduled? does the "
        "topic exist?)",
        since=expires,
    )


def _replayed(status: PhaseStatus, row: LedgerRow) -> bool:
    """Whether the store holds the row's completion (or a later report of its processor)."""
    if row.processor in status.ignored:
        return True
    record = status.records.get(row.processor)
    if record is None:
        return False
    # Replay keeps the original report time, so a replayed row's record (or a
    # newer run's) was reported at or after the row's event time; a record of
    # a run that finished later makes the row stale: replay would change nothing.
    finished = row.completed_at or row.event_time
    return (
        record.execution_id == row.execution_id
        or (record.reported_at is not None and record.reported_at >= row.event_time)
        or (record.completed_at is not None and record.completed_at >= finished)
    )


def _degraded(status: PhaseStatus, rows: Sequence[LedgerRow]) -> list[LedgerRow]:
    return [r for r in rows if not r.primary_ok and r.phase == status.phase
            and r.date == status.date]


def ledger_unreplayed(
    status: PhaseStatus, rows: Sequence[LedgerRow], rules: PhaseRules, now: datetime
) -> list[Alert]:
    """Completions waiting in the fallback ledger, not replayed, longer than ``ledger_wait``."""
    waiting: dict[str, list[LedgerRow]] = {}
    for row in _degraded(status, rows):
        if not _replayed(status, row) and now >= row.recorded_time + rules.ledger_wait:
            waiting.setdefault(row.processor, []).append(row)
    alerts = []
    for processor, found in sorted(waiting.items()):
        oldest = min(r.recorded_time for r in found)
        alerts.append(Alert(
            LEDGER, WARNING, status.phase, status.date, processor,
            f"{len(found)} completion(s) of {processor} for {status.phase} {status.date} "
            f"wait in the fallback ledger, not replayed, for {_ago(now, oldest)}",
            "run `pipeline-reliability replay` (or `sweep --replay-first`) with the "
            "ledger table, once the store is healthy",
            processor=processor, since=oldest,
        ))
    return alerts


def degraded_completions(status: PhaseStatus, rows: Sequence[LedgerRow]) -> list[Alert]:
    """Completions of the date that went to the fallback ledger (the store failed)."""
    found: dict[str, list[LedgerRow]] = {}
    for row in _degraded(status, rows):
        found.setdefault(row.processor, []).append(row)
    return [
        Alert(
            DEGRADED, WARNING, status.phase, status.date, processor,
            f"{len(group)} completion(s) of {processor} for {status.phase} {status.date} "
            "were degraded: the store failed and they went to the fallback ledger",
            "check the state store's health (errors, quota); make sure they are replayed",
            processor=processor, since=min(r.recorded_time for r in group),
        )
        for processor, group in sorted(found.items())
    ]


def ignored_completions(status: PhaseStatus) -> list[Alert]:
    """Unknown processor names that reported (never counted): a typo in a deployment?"""
    return [
        Alert(
            IGNORED, WARNING, status.phase, status.date, name,
            f"{name!r} reported for {status.phase} {status.date} but the phase does not "
            f"expect it (ignored, never counted)",
            "check the processor's configured name in its deployment (a typo?) or add it "
            "to the phase's expected set",
            processor=name,
        )
        for name in sorted(status.ignored)
    ]


def breaker_open(status: BreakerStatus, limit: timedelta, now: datetime) -> Alert | None:
    """A shared circuit breaker open (or half-open) for longer than ``limit``."""
    opened = status.opened_at
    if status.state is BreakerState.CLOSED or opened is None or now < opened + limit:
        return None
    forced = " (forced open by an operator)" if status.forced else ""
    return Alert(
        BREAKER_OPEN, WARNING, None, None, status.name,
        f"circuit breaker {status.name!r} is {status.state.value}{forced} since "
        f"{opened.isoformat()} ({_ago(now, opened)})",
        "check the downstream it protects; `pipeline-reliability breaker close NAME` once "
        "it is healthy",
        since=opened,
    )


def lock_overdue(
    info: LockInfo, phase: str | None, grace: timedelta, now: datetime
) -> Alert | None:
    """A date lock still names a holder ``grace`` after its lease ended (dead or hung holder)."""
    if info.holder is None or info.expires_at is None or now < info.expires_at + grace:
        return None
    return Alert(
        LOCK_OVERDUE, WARNING, phase, info.date, info.name,
        f"lock {info.name}/{info.date} is held by {info.holder} (token {info.token}) "
        f"{_ago(now, info.expires_at)} past its lease",
        "check that holder (crashed or hung?); the next acquirer takes the lock over; "
        "`pipeline-reliability lock break` if needed",
        since=info.expires_at,
    )

