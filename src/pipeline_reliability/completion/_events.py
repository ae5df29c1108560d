"""
What a trigger looks like to the outside: the claim a caller holds while it
publishes, and the event it publishes.

Both are frozen values. ``trigger_id`` is stable per (phase, date): every
attempt to publish the trigger of one date carries the same id, so a consumer
that deduplicates on it starts the next phase once even if a publish whose
confirmation was lost is repeated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["TriggerClaim", "TriggerEvent", "trigger_id_for"]


def trigger_id_for(phase: str, date: str) -> str:
    """Return the stable trigger id of ``(phase, date)``: ``"<phase>:<date>"``."""
    return f"{phase}:{date}"


@dataclass(frozen=True, slots=True)
class TriggerClaim:
    """
    The right, held under a lease, to publish the trigger of one (phase, date).

    Exactly one caller receives a claim for a given lease. Publish, then pass
    the claim to :meth:`CompletionTracker.confirm_trigger`; on failure pass it
    to :meth:`CompletionTracker.release_trigger`. If the holder dies, the lease
    expires and the next delivery or sweep claims the trigger again (with a
    higher ``attempt``).

    Attributes:
        phase: The phase whose processors completed.
        date: The date, ``YYYY-MM-DD``.
        trigger_id: Stable per (phase, date): ``"<phase>:<date>"``.
        owner: Who holds the claim (the tracker's ``owner``).
        lease_expires_at: When, by the store's clock, others may take it over.
        attempt: 1 for the first claim, +1 for every take-over or re-claim.
        reason: ``"complete"``, ``"deadline_partial"`` or ``"reconciled"``.
        claimed_at: The store's time when the claim was taken.
        completed: The expected processors done when it was claimed.
        missing: The expected processors not done when it was claimed.
        correlation_id: The correlation id of the completion that claimed it.
        next_phase: The phase that the trigger starts (from the ``PhaseSpec``).
    """

    phase: str
    date: str
    trigger_id: str
    owner: str
    lease_expires_at: datetime
    attempt: int
    reason: str
    claimed_at: datetime
    completed: frozenset[str] = frozenset()
    missing: frozenset[str] = frozenset()
    correlation_id: str | None = None
    next_phase: str | None = None

    def event(self) -> TriggerEvent:
        """Return the :class:`TriggerEvent` to publish for this claim."""
        return TriggerEvent(
            phase=self.phase,
            date=self.date,
            trigger_id=self.trigger_id,
            reason=self.reason,
            completed=self.completed,
            missing=self.missing,
            correlation_id=self.correlation_id,
            claimed_at=self.claimed_at,
            attempt=self.attempt,
            next_phase=self.next_phase,
        )


@dataclass(frozen=True, slots=True)
class TriggerEvent:
    """
    The message that starts the next phase for one date.

    Attributes:
        phase: The phase that completed.
        date: The date, ``YYYY-MM-DD``.
        trigger_id: Stable per (phase, date); consumers deduplicate on it.
        reason: ``"complete"`` (every expected processor done),
            ``"deadline_partial"`` (the sweep applied the partial rule after
            the deadline) or ``"reconciled"`` (reconcile found the outputs).
        completed: The expected processors done.
        missing: The expected processors not done (empty unless partial).
        correlation_id: Correlation id of the completion that claimed it.
        claimed_at: When the trigger was claimed (store time).
        attempt: Which claim attempt publishes this event (1 = first).
        next_phase: The phase to start, if the ``PhaseSpec`` names one.
    """

    phase: str
    date: str
    trigger_id: str
    reason: str
    completed: frozenset[str]
    missing: frozenset[str]
    correlation_id: str | None
    claimed_at: datetime
    attempt: int
    next_phase: str | None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe body: sets as sorted lists, the time as ISO 8601."""
        return {
            "phase": self.phase,
            "date": self.date,
            "trigger_id": self.trigger_id,
            "reason": self.reason,
            "completed": sorted(self.completed),
            "missing": sorted(self.missing),
            "correlation_id": self.correlation_id,
            "claimed_at": self.claimed_at.isoformat(),
            "attempt": self.attempt,
            "next_phase": self.next_phase,
        }

    def attributes(self) -> dict[str, str]:
        """Return message attributes (all strings) for routing and deduplication."""
        attrs = {
            "trigger_id": self.trigger_id,
            "phase": self.phase,
            "date": self.date,
            "reason": self.reason,
            "attempt": str(self.attempt),
        }
        if self.next_phase is not None:
            attrs["next_phase"] = self.next_phase
        if self.correlation_id is not None:
            attrs["correlation_id"] = self.correlation_id
        return attrs
