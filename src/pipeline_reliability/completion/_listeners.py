"""
What the tracker tells its listeners: one frozen event value per thing that
happened, after the store decided it, and the isolating runner.

Events are built and delivered only after the transaction that decided them
returned (a transaction callback may run more than once), and only when a
listener is registered (no cost otherwise). Each kind is also counted in an
OpenTelemetry counter (docs/reference/opentelemetry.md maps kinds to counters).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

__all__ = ["TrackerEvent", "TrackerEventKind", "TrackerListener", "notify"]

logger = logging.getLogger("pipeline_reliability.completion")


class TrackerEventKind(enum.StrEnum):
    """
    What happened. The first seven are the outcome of one completion report.

    .. versionadded:: 0.2.0
    """

    #: The report made its processor count as done.
    COUNTED = "counted"
    #: A newer run of a processor replaced the record of an earlier run.
    UPDATED = "updated"
    #: Recorded, but its status does not count (e.g. ``failed``).
    RECORDED = "recorded"
    #: The same (processor, execution id) or message id again: nothing changed.
    DUPLICATE = "duplicate"
    #: A processor the phase does not expect (a typo in a deployment?): never counts.
    IGNORED = "ignored"
    #: A run older than the stored one, delivered late: nothing changed.
    STALE = "stale"
    #: The store failed; the completion went to the fallback ledger.
    DEGRADED = "degraded"
    #: The trigger was due but a gate is closed (``reason`` says which and why).
    GATED = "gated"
    #: A first claim of the trigger (``attempt == 1``).
    TRIGGER_CLAIMED = "trigger_claimed"
    #: A later claim: the previous one was released or its lease expired.
    TRIGGER_TAKEN_OVER = "trigger_taken_over"
    #: An operator rearmed a settled trigger (``rearm_trigger``).
    TRIGGER_REARMED = "trigger_rearmed"
    #: The claim's event was published (confirmation follows).
    TRIGGER_PUBLISHED = "trigger_published"
    #: The trigger was confirmed (once per claim).
    TRIGGER_CONFIRMED = "trigger_confirmed"
    #: A claim was released after a failed publish (``error`` says why).
    TRIGGER_RELEASED = "trigger_released"
    #: Confirming found the claim taken over by another one.
    TRIGGER_LOST = "trigger_lost"
    #: The sweep found the date overdue without a trigger (once per date).
    DEADLINE_PASSED = "deadline_passed"
    #: ``replay_ledger`` took a ledger row into the store (``outcome``: what it did).
    LEDGER_REPLAYED = "ledger_replayed"
    #: ``replay_ledger`` skipped a row no store can take (``error`` says why).
    LEDGER_QUARANTINED = "ledger_quarantined"


#: The kinds that are the outcome of one completion report.
COMPLETION_KINDS = frozenset(
    {
        TrackerEventKind.COUNTED,
        TrackerEventKind.UPDATED,
        TrackerEventKind.RECORDED,
        TrackerEventKind.DUPLICATE,
        TrackerEventKind.IGNORED,
        TrackerEventKind.STALE,
        TrackerEventKind.DEGRADED,
    }
)


@dataclass(frozen=True, slots=True)
class TrackerEvent:
    """
    One thing the tracker did, delivered to listeners after the store decided it.

    Attributes:
        kind: What happened.
        phase, date: The (phase, date) it concerns.
        at: The tracker's clock when the event was emitted.
        processor, execution_id, status: The completion (completion kinds,
            ``ledger_*``), else ``None``.
        correlation_id: The completion's or the claim's correlation id.
        trigger_id, attempt, reason: The trigger claim (``trigger_*``,
            and completions that claimed one); ``reason`` is the claim's
            reason, or the gate's for ``gated``.
        count, missing: The done count and the expected processors not
            done, when known (``None`` / empty for a degraded completion).
        outcome: For ``ledger_replayed``: what the row did in the store
            (a completion kind's value).
        backfill: The completion was recorded with ``trigger=False``.
        error: Why, for ``degraded``, ``trigger_released`` and
            ``ledger_quarantined``.

    .. versionadded:: 0.2.0
    """

    kind: TrackerEventKind
    phase: str
    date: str
    at: datetime
    processor: str | None = None
    execution_id: str | None = None
    status: str | None = None
    correlation_id: str | None = None
    trigger_id: str | None = None
    attempt: int | None = None
    reason: str | None = None
    count: int | None = None
    missing: frozenset[str] = frozenset()
    outcome: str | None = None
    backfill: bool = False
    error: str | None = None


TrackerListener = Callable[[TrackerEvent], object]


def notify(listeners: Iterable[TrackerListener], event: TrackerEvent) -> None:
    """Deliver ``event`` to each listener; a failing listener is logged and skipped."""
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            # A listener is an observer: it must never break the call it observes.
            logger.exception(
                "tracker listener %r failed on %s",
                listener,
                event.kind.value,
                extra={"pipeline_reliability": {"phase": event.phase, "date": event.date}},
            )
