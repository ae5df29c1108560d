"""
The trigger's life in the document, as pure functions (DESIGN F3).

::

    (none) --rule met--> claimed --confirm--> confirmed   (final, forever)
                           |  ^
          release / lease  |  |  next delivery, sweep, replay or reconcile
          expires          v  |  re-claims (attempt + 1, reason kept)
                         released

A trigger is decided once: after the first claim the rule is not evaluated
again, so a later re-run that turns a processor to ``failed`` cannot revoke a
trigger whose event may already be on the wire. Leases are judged by the
store's time (``Snapshot.now``), never a client clock.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from ._doc import deadline_passed, done_set, latest_correlation_id, rule_reason
from ._events import TriggerClaim, trigger_id_for
from ._spec import PhaseSpec

__all__ = ["ConfirmOutcome", "confirm", "release", "try_claim", "trigger_of"]

CLAIMED, RELEASED, CONFIRMED = "claimed", "released", "confirmed"
MAX_ERROR_CHARS = 1000


class ConfirmOutcome(enum.Enum):
    """What :func:`confirm` found."""

    CONFIRMED = "confirmed"  # this call confirmed the claim
    ALREADY = "already"  # the same claim had been confirmed before
    LOST = "lost"  # another claim took over (or there is no such claim)


def trigger_of(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """The trigger part of ``doc`` (``None`` when never claimed)."""
    value = (doc or {}).get("trigger")
    return value if isinstance(value, dict) else None


def try_claim(
    doc: dict[str, Any],
    spec: PhaseSpec,
    date: str,
    *,
    now: datetime,
    deadline_now: datetime,
    owner: str,
    correlation_id: str | None = None,
    reason_hint: str | None = None,
) -> TriggerClaim | None:
    """
    Claim the trigger in ``doc`` if it is due, and return the claim.

    Due when: never claimed and the rule holds (``reason_hint`` replaces the
    reason ``"complete"``, e.g. ``"reconciled"``); or released; or claimed with
    a lease that expired by ``now`` (store time). ``deadline_now`` is the time
    the deadline is judged by (the store's, unless a sweep passes its own).
    """
    trigger = trigger_of(doc)
    done = done_set(doc, spec)
    if trigger is None:
        reason = rule_reason(spec, done, deadline_passed(doc, spec, date, deadline_now))
        if reason is None:
            return None
        if reason == "complete" and reason_hint is not None:
            reason = reason_hint
        attempt, first_claimed_at = 1, now
        correlation_id = correlation_id or latest_correlation_id(doc)
    elif trigger.get("state") == RELEASED or (
        trigger.get("state") == CLAIMED and not _live(trigger, now)
    ):
        reason = str(trigger.get("reason"))
        attempt = int(trigger.get("attempt", 0)) + 1
        first_claimed_at = trigger.get("first_claimed_at", now)
        correlation_id = trigger.get("correlation_id") or correlation_id
    else:
        return None
    claim = TriggerClaim(
        phase=spec.name,
        date=date,
        trigger_id=trigger_id_for(spec.name, date),
        owner=owner,
        lease_expires_at=now + spec.trigger_lease,
        attempt=attempt,
        reason=reason,
        claimed_at=now,
        completed=done,
        missing=spec.expected - done,
        correlation_id=correlation_id,
        next_phase=spec.next_phase,
    )
    doc["trigger"] = {
        **(trigger or {}),
        "state": CLAIMED,
        "trigger_id": claim.trigger_id,
        "owner": owner,
        "attempt": attempt,
        "reason": reason,
        "claimed_at": now,
        "first_claimed_at": first_claimed_at,
        "lease_expires_at": claim.lease_expires_at,
        "completed": sorted(claim.completed),
        "missing": sorted(claim.missing),
        "correlation_id": correlation_id,
    }
    return claim


def _live(trigger: dict[str, Any], now: datetime) -> bool:
    expires = trigger.get("lease_expires_at")
    return isinstance(expires, datetime) and now < expires


def _same_claim(trigger: dict[str, Any] | None, claim: TriggerClaim) -> bool:
    return (
        trigger is not None
        and trigger.get("trigger_id") == claim.trigger_id
        and trigger.get("attempt") == claim.attempt
        and trigger.get("owner") == claim.owner
    )


def confirm(doc: dict[str, Any] | None, claim: TriggerClaim, now: datetime) -> ConfirmOutcome:
    """
    Mark ``claim`` confirmed in ``doc``.

    A claim can be confirmed as long as no other claim has replaced it, even
    after its lease expired or it was released: its event was published, and
    confirming now is what stops a second publish. Once another claim took
    over, confirming is refused (``LOST``): that claim will confirm.
    """
    trigger = trigger_of(doc)
    if trigger is None or not _same_claim(trigger, claim):
        return ConfirmOutcome.LOST
    if trigger.get("state") == CONFIRMED:
        return ConfirmOutcome.ALREADY
    trigger.update(state=CONFIRMED, confirmed_at=now)
    return ConfirmOutcome.CONFIRMED


def release(doc: dict[str, Any] | None, claim: TriggerClaim, error: str, now: datetime) -> bool:
    """
    Free ``claim`` after a failed publish, remembering ``error``.

    Returns ``False`` (and changes nothing) when the claim is no longer the
    current one, or was already confirmed or released.
    """
    trigger = trigger_of(doc)
    if not _same_claim(trigger, claim) or trigger is None or trigger.get("state") != CLAIMED:
        return False
    trigger.update(
        state=RELEASED,
        released_at=now,
        # Replaced, not refused: the error text of a failed publish is only for people.
        last_error=error[:MAX_ERROR_CHARS].encode("utf-8", "replace").decode("utf-8"),
        failures=int(trigger.get("failures", 0)) + 1,
    )
    return True
