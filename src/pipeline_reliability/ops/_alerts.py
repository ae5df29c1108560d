"""
What ``watch`` reports: an :class:`Alert` (a frozen value with a stable id)
and a :class:`WatchReport` (what fired, what is new, what resolved).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["CRITICAL", "SEVERITIES", "WARNING", "Alert", "WatchReport", "alert_id"]

CRITICAL = "critical"
WARNING = "warning"
#: Severities, most urgent first.
SEVERITIES = (CRITICAL, WARNING)


def alert_id(rule: str, phase: str | None, date: str | None, subject: str) -> str:
    """
    The stable id of an alert: the same problem gets the same id on every run.

    Derived from the rule, the phase, the date and the subject (a processor,
    a breaker or a lock name; ``""`` for the phase itself), never from the
    message, whose wording (counts, times) changes while the problem persists.
    The id is a safe document id: ``<rule>-<24 hex digits>``.
    """
    text = "\x00".join((rule, phase or "", date or "", subject))
    return f"{rule}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:24]}"


@dataclass(frozen=True, slots=True)
class Alert:
    """
    One problem ``watch`` found.

    Attributes:
        id: Stable across runs while the problem persists (see :func:`alert_id`).
        rule: The rule that found it (``docs/reference/alerts.md``).
        severity: ``"critical"`` (the pipeline is stalled or late) or
            ``"warning"`` (something needs a look; nothing is stuck yet).
        phase / date / processor: What it concerns (``None`` when not a
            phase's, e.g. a breaker).
        subject: What, inside the phase and date, it is about: the
            processor, breaker or lock name, or ``""`` for the whole phase.
        message: What is wrong, for people (one line).
        action: What to do about it (one line).
        since: When the problem started, as far as the state shows.

    .. versionadded:: 0.3.0
    """

    rule: str
    severity: str
    phase: str | None
    date: str | None
    subject: str
    message: str
    action: str
    processor: str | None = None
    since: datetime | None = None
    id: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", alert_id(self.rule, self.phase, self.date, self.subject))

    def to_dict(self) -> dict[str, Any]:
        """The alert as a JSON-ready mapping (times as ISO 8601 text)."""
        return {
            "id": self.id, "rule": self.rule, "severity": self.severity,
            "phase": self.phase, "date": self.date, "processor": self.processor,
            "subject": self.subject, "message": self.message, "action": self.action,
            "since": self.since.isoformat() if self.since is not None else None,
        }


@dataclass(frozen=True, slots=True)
class WatchReport:
    """
    One ``watch`` run.

    Attributes:
        now: The time the rules were judged at.
        dates: The dates evaluated, per phase.
        alerts: Every alert firing now (new and persisting), most severe first.
        new: Alerts that were not firing at the previous run: these are sent.
        resolved: Alerts that fired at the previous run and no longer do:
            reported once, here.
        notify_error: Why sending ``new``/``resolved`` failed (nothing was
            remembered then: the next run sends them again).

    .. versionadded:: 0.3.0
    """

    now: datetime
    dates: Mapping[str, tuple[str, ...]]
    alerts: tuple[Alert, ...] = ()
    new: tuple[Alert, ...] = ()
    resolved: tuple[Alert, ...] = ()
    notify_error: str | None = None

    @property
    def healthy(self) -> bool:
        """No alert is firing."""
        return not self.alerts

    @property
    def persisting(self) -> tuple[Alert, ...]:
        """Alerts firing now that were already firing (not sent again)."""
        new = {a.id for a in self.new}
        return tuple(a for a in self.alerts if a.id not in new)

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready mapping."""
        new = {a.id for a in self.new}
        return {
            "now": self.now.isoformat(),
            "healthy": self.healthy,
            "dates": {phase: list(days) for phase, days in sorted(self.dates.items())},
            "alerts": [{**a.to_dict(), "new": a.id in new} for a in self.alerts],
            "resolved": [a.to_dict() for a in self.resolved],
            "notify_error": self.notify_error,
        }
