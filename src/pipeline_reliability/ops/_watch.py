"""
``watch``: evaluate every configured phase over a date range, remember what
fired, and say what is new and what resolved (``pipeline-reliability watch``
is a thin layer over it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date as date_type
from datetime import datetime, timedelta
from typing import Any

from .._clock import Clock, SystemClock
from .._keys import validate_id
from .._telemetry import counter, log_failure, span
from .._validate import duration_seconds, iso_date
from ..breaker import CircuitBreaker
from ..completion import CompletionLedger, CompletionTracker, LedgerRow, PhaseSpec, PhaseStatus
from ..errors import ConfigurationError, InvalidInputError, ReliabilityError
from ..lock import DateLock
from ..stores._protocol import StateStore
from . import _alerts_state as state
from . import _rules as rules_
from ._alerts import SEVERITIES, Alert, WatchReport
from ._rules import PhaseRules

__all__ = ["WatchConfig", "watch"]

logger = logging.getLogger("pipeline_reliability.ops")
_BREAKERS_SCOPE = "breakers"


@dataclass(frozen=True, slots=True)
class WatchConfig:
    """
    What ``watch`` checks besides the tracker's phases, and where it keeps its state.

    Args:
        phases: Thresholds per phase name (a phase not named gets ``PhaseRules()``).
        breakers: Names of shared circuit breakers to check.
        breaker_open: How long a breaker may stay open (or half-open).
        days: How many recent dates each phase is watched on, by default
            (2: today and yesterday in the phase's time zone).
        alert_collection / breaker_collection / lock_collection: Store
            collections of watch's own state, of the breakers and of the locks.

    Raises:
        ConfigurationError: a bad duration, name, collection or ``days``.

    .. versionadded:: 0.3.0
    """

    phases: Mapping[str, PhaseRules] = field(default_factory=dict)
    breakers: tuple[str, ...] = ()
    breaker_open: timedelta = timedelta(minutes=15)
    days: int = 2
    alert_collection: str = "watch_alerts"
    breaker_collection: str = "circuit_breakers"
    lock_collection: str = "date_locks"

    def __post_init__(self) -> None:
        phases: Any = self.phases
        if not isinstance(phases, Mapping) or not all(
            isinstance(v, PhaseRules) for v in phases.values()
        ):
            raise ConfigurationError("phases must map phase names to PhaseRules")
        breakers: object = self.breakers
        if isinstance(breakers, str) or not isinstance(breakers, Iterable):
            raise ConfigurationError("breakers must be a collection of breaker names")
        names: tuple[object, ...] = tuple(self.breakers)
        object.__setattr__(self, "breakers", names)
        if not all(isinstance(b, str) and b for b in names):
            raise ConfigurationError("every breaker name must be a non-empty string")
        if not isinstance(self.breaker_open, timedelta):
            raise ConfigurationError("breaker_open must be a timedelta")
        duration_seconds(self.breaker_open, "breaker_open")
        days: object = self.days
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 366:
            raise ConfigurationError(f"days must be an int within 1..366, got {days!r:.40}")
        for what in ("alert_collection", "breaker_collection", "lock_collection"):
            try:
                validate_id(getattr(self, what), what)
            except InvalidInputError as exc:
                raise ConfigurationError(str(exc)) from exc

    def rules_for(self, phase: str) -> PhaseRules:
        """The thresholds of ``phase``."""
        return self.phases.get(phase) or PhaseRules()


Notify = Callable[[Sequence[Alert], Sequence[Alert]], object]


def watch(
    store: StateStore,
    tracker: CompletionTracker,
    config: WatchConfig | None = None,
    *,
    ledger: CompletionLedger | None = None,
    breaker_store: StateStore | None = None,
    dates: Iterable[str | date_type] | None = None,
    now: datetime | None = None,
    clock: Clock | None = None,
    notify: Notify | None = None,
    remember: bool = True,
) -> WatchReport:
    """
    Evaluate every phase of ``tracker`` (and the configured breakers and
    locks) and return what fires, what is new and what resolved.

    Args:
        store: Where watch keeps what it sent (``config.alert_collection``)
            and where the locks are (usually the tracker's store).
        tracker: The tracker whose phases are watched (through ``status``).
        config: Thresholds and names (default ``WatchConfig()``).
        ledger: The fallback ledger: enables the ledger and degraded rules.
        breaker_store: Where the breakers are (default ``store``).
        dates: The dates to evaluate for every phase (default: the last
            ``config.days`` dates of each phase's time zone at ``now``).
        now: When to judge (default ``clock.now()``); timezone-aware.
        clock: The clock of ``now`` (default the system clock).
        notify: Called as ``notify(new, resolved)`` before the state is
            remembered (e.g. a ``PubSubAlertPublisher``). If it raises, nothing
            is remembered (so the next run sends again), the failure is logged
            and the report's ``notify_error`` says why.
        remember: Keep state in the store (``False``: every firing alert is
            reported as new and nothing is written).

    Raises:
        InvalidInputError: a bad date or ``now``.
        StoreError, RetryExhaustedError: a status could not be read.

    .. versionadded:: 0.3.0
    """
    config = config if config is not None else WatchConfig()
    if not isinstance(config, WatchConfig):
        raise InvalidInputError(f"config must be a WatchConfig, got {type(config).__name__}")
    at = _now(now, clock)
    with span("ops", "watch", {"phases": len(tracker.phases)}):
        given = None if dates is None else _dates(dates)
        found, evaluated = _evaluate(store, tracker=tracker, config=config, ledger=ledger,
                                     breaker_store=breaker_store, given=given, now=at)
        if remember:
            changes = state.plan(store, config.alert_collection, found)
        else:
            every = tuple(a for alerts in found.values() for a in alerts)
            changes = state.Transitions(every, (), {}, {})
        firing = _ordered(a for alerts in found.values() for a in alerts)
        error = _notify(notify, changes)
        if error is None and remember:
            state.commit(store, config.alert_collection, changes, at)
        report = WatchReport(at, evaluated, firing, _ordered(changes.new),
                             _ordered(changes.resolved), notify_error=error)
        if error is None:
            _emit(report)
        return report


def _now(now: datetime | None, clock: Clock | None) -> datetime:
    value: object = now if now is not None else (clock or SystemClock()).now()
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidInputError(f"now must be a timezone-aware datetime, got {value!r:.80}")
    return value


def _dates(dates: Iterable[str | date_type]) -> tuple[str, ...]:
    given: object = dates
    if isinstance(given, str) or not isinstance(given, Iterable):
        raise InvalidInputError("dates must be a collection of dates, not a single value")
    return tuple(dict.fromkeys(iso_date(d if isinstance(d, str) else d.isoformat())
                               for d in dates))


def _evaluate(
    store: StateStore, *, tracker: CompletionTracker, config: WatchConfig,
    ledger: CompletionLedger | None, breaker_store: StateStore | None,
    given: tuple[str, ...] | None, now: datetime,
) -> tuple[dict[str, list[Alert]], dict[str, tuple[str, ...]]]:
    found: dict[str, list[Alert]] = {}
    evaluated: dict[str, tuple[str, ...]] = {}
    statuses: dict[tuple[str, str], PhaseStatus] = {}

    def status(phase: str, day: str) -> PhaseStatus:
        if (phase, day) not in statuses:
            statuses[(phase, day)] = tracker.status(phase, day)
        return statuses[(phase, day)]

    for name, spec in sorted(tracker.phases.items()):
        rules = config.rules_for(name)
        days = given if given is not None else tuple(sorted(spec.recent_dates(now, config.days)))
        evaluated[name] = days
        rows = ledger.read(name, list(days)) if ledger is not None else []
        for day in days:
            alerts = _phase_alerts(status, phases=tracker.phases, spec=spec, rules=rules,
                                   day=day, rows=rows, now=now)
            alerts += _lock_alerts(store, config, rules, phase=name, day=day, now=now)
            found[state.scope_key(name, day)] = alerts
    found[state.scope_key(_BREAKERS_SCOPE, None)] = _breaker_alerts(
        breaker_store or store, config, now)
    return found, evaluated


def _phase_alerts(
    status: Callable[[str, str], PhaseStatus], *, phases: Mapping[str, PhaseSpec], spec: PhaseSpec,
    rules: PhaseRules, day: str, rows: Sequence[LedgerRow], now: datetime,
) -> list[Alert]:
    current = status(spec.name, day)
    out: list[Alert | None] = []
    on = rules.enabled
    if on(rules_.HANDOFF) and spec.next_phase in phases and current.trigger_state == "confirmed":
        nxt = str(spec.next_phase)
        out.append(rules_.handoff_stalled(current, spec, status(nxt, day), rules, now))
    if on(rules_.LATE):
        out.append(rules_.phase_late(current, spec, rules, now))
    if on(rules_.CLAIM_STUCK):
        out.append(rules_.claim_stuck(current, rules, now))
    if on(rules_.LEDGER):
        out += rules_.ledger_unreplayed(current, rows, rules, now)
    if on(rules_.DEGRADED):
        out += rules_.degraded_completions(current, rows)
    if on(rules_.IGNORED):
        out += rules_.ignored_completions(current)
    return [a for a in out if a is not None]


def _lock_alerts(
    store: StateStore, config: WatchConfig, rules: PhaseRules, *, phase: str, day: str,
    now: datetime,
) -> list[Alert]:
    if not rules.enabled(rules_.LOCK_OVERDUE):
        return []
    out = []
    for name in rules.locks:
        info = DateLock.inspect(store, name, day, collection=config.lock_collection)
        alert = rules_.lock_overdue(info, phase, rules.lock_grace, now)
        if alert is not None:
            out.append(alert)
    return out


def _breaker_alerts(store: StateStore, config: WatchConfig, now: datetime) -> list[Alert]:
    out = []
    for name in config.breakers:
        breaker = CircuitBreaker(name, store, collection=config.breaker_collection,
                                 instance_id="pipeline-reliability-watch")
        alert = rules_.breaker_open(breaker.status(refresh=True), config.breaker_open, now)
        if alert is not None:
            out.append(alert)
    return out


def _ordered(alerts: Iterable[Alert]) -> tuple[Alert, ...]:
    """Most severe first, then by phase, date and rule: a stable order for tables and tests."""
    return tuple(sorted(alerts, key=lambda a: (
        SEVERITIES.index(a.severity) if a.severity in SEVERITIES else len(SEVERITIES),
        a.phase or "", a.date or "", a.rule, a.subject)))


def _notify(notify: Notify | None, changes: state.Transitions) -> str | None:
    if notify is None or not (changes.new or changes.resolved):
        return None
    try:
        notify(_ordered(changes.new), _ordered(changes.resolved))
    except Exception as exc:  # noqa: BLE001 - reported in the report, and logged
        log_failure(logger, "sending alerts failed; they are sent again at the next run", exc,
                    new=len(changes.new), resolved=len(changes.resolved))
        text = str(exc) if isinstance(exc, ReliabilityError) else f"{type(exc).__name__}: {exc}"
        return text[:1000]
    return None


def _emit(report: WatchReport) -> None:
    """A log record and a counter per alert sent or resolved (persisting ones are quiet)."""
    sent = counter("ops.alerts", "Alerts watch found new (sent) or resolved")
    for alert, transition in [*((a, "new") for a in report.new),
                              *((a, "resolved") for a in report.resolved)]:
        fields: dict[str, Any] = {"alert_id": alert.id, "rule": alert.rule,
                                  "severity": alert.severity, "phase": alert.phase,
                                  "date": alert.date, "processor": alert.processor,
                                  "transition": transition}
        level = logging.INFO if transition == "resolved" else (
            logging.ERROR if alert.severity == "critical" else logging.WARNING)
        logger.log(level, "alert %s %s: %s", transition, alert.id, alert.message, extra=fields)
        sent.add(1, {"rule": alert.rule, "severity": alert.severity, "transition": transition})
