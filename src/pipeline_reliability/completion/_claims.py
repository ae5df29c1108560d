"""
The trigger's life in the document, as pure functions (DESIGN F3).

::

    (none) --rule met, gates open--> claimed --confirm--> confirmed
       |                               |  ^                    |
       | backfill / nothing            |  |  next delivery,    | rearm_trigger
       | scheduled (skip)              v  |  sweep, ... re-claims (attempt + 1)
       v                             released                  v
    skipped --------------------- rearm_trigger -----------> claimed (new trigger_id)

``confirmed`` and ``skipped`` are final; only an operator's audited
``rearm_trigger`` starts a new trigger (with its own ``trigger_id``).

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
from ._gates import OPEN, GateVerdict, note_gate
from ._spec import PhaseSpec

__all__ = [
    "ConfirmOutcome",
    "audit",
    "claim_step",
    "confirm",
    "first_claim_reason",
    "gate_pending",
    "rearm",
    "release",
    "suppress",
    "trigger_of",
    "try_claim",
]

CLAIMED, RELEASED, CONFIRMED, SKIPPED = "claimed", "released", "confirmed", "skipped"
#: Trigger states no delivery or sweep changes (only ``rearm_trigger`` does).
FINAL = frozenset({CONFIRMED, SKIPPED})
MAX_ERROR_CHARS = 1000
MAX_AUDIT = 8  # operator actions remembered in the document, newest last
MAX_AUDIT_TEXT = 512  # characters of an audit entry's "by" and "reason"


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
    gate: GateVerdict | None = OPEN,
) -> TriggerClaim | None:
    """
    Claim the trigger in ``doc`` if it is due, and return the claim.

    Due when: never claimed, the rule holds (``reason_hint`` replaces the
    reason ``"complete"``, e.g. ``"reconciled"``) and the phase's gates are
    open (``gate``: their verdict, ``None`` when not asked); or released; or
    claimed with a lease that expired by ``now`` (store time). ``deadline_now``
    is the time the deadline is judged by (the store's, unless a sweep passes
    its own). ``spec`` is resolved for the date (``_expected.resolve``).
    """
    trigger = trigger_of(doc)
    done = done_set(doc, spec)
    if trigger is None:
        reason = first_claim_reason(doc, spec, date, deadline_now)
        if reason is None:
            return None
        if gate_pending(doc, spec, date, deadline_now) and (gate is None or not gate.open):
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
        trigger_id=str((trigger or {}).get("trigger_id") or trigger_id_for(spec.name, date)),
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


def first_claim_reason(
    doc: dict[str, Any], spec: PhaseSpec, date: str, deadline_now: datetime
) -> str | None:
    """The rule's reason when a first claim is due (never claimed), else ``None``."""
    if trigger_of(doc) is not None:
        return None
    return rule_reason(spec, done_set(doc, spec), deadline_passed(doc, spec, date, deadline_now))


def gate_pending(doc: dict[str, Any], spec: PhaseSpec, date: str, deadline_now: datetime) -> bool:
    """Whether a first claim is due and must wait for the phase's gates."""
    if not spec.gates:
        return False
    reason = first_claim_reason(doc, spec, date, deadline_now)
    return reason is not None and reason != "nothing_scheduled"


def suppress(
    doc: dict[str, Any], spec: PhaseSpec, date: str, deadline_now: datetime, now: datetime
) -> bool:
    """
    A backfill (``trigger=False``) made a first claim due: settle the date as
    ``skipped`` (reason ``backfill``) so no later delivery or sweep triggers it.
    """
    if first_claim_reason(doc, spec, date, deadline_now) is None:
        return False
    doc["trigger"] = {
        "state": SKIPPED,
        "trigger_id": trigger_id_for(spec.name, date),
        "attempt": 0,
        "reason": "backfill",
        "skipped_at": now,
    }
    return True


def _text(value: str) -> str:
    return value[:MAX_AUDIT_TEXT].encode("utf-8", "replace").decode("utf-8")


def audit(doc: dict[str, Any], op: str, by: str, reason: str, now: datetime, **extra: Any) -> None:
    """Append an operator action to the document's bounded audit ring."""
    entry = {"op": op, "by": _text(by), "at": now, "reason": _text(reason), **extra}
    ring = doc.get("audit")
    doc["audit"] = [*(ring if isinstance(ring, list) else [])[-(MAX_AUDIT - 1) :], entry]


def rearm(
    doc: dict[str, Any], spec: PhaseSpec, date: str, *, owner: str, by: str, reason: str,
    now: datetime,
) -> TriggerClaim | str:
    """
    Start a new trigger for a settled date (``confirmed`` or ``skipped``).

    Claims it at once for ``owner`` with ``attempt + 1`` and a new
    ``trigger_id`` (``<phase>:<date>:rearm<N>``: consumers that deduplicate
    on the id must see a new trigger), and audits who, when and why. Returns
    the claim, or the current state when there is nothing settled to rearm.
    """
    trigger = trigger_of(doc)
    state = (trigger or {}).get("state", "none")
    if trigger is None or state not in FINAL:
        return str(state)
    rearms = int(trigger.get("rearms", 0)) + 1
    attempt = int(trigger.get("attempt", 0)) + 1
    done = done_set(doc, spec)
    claim = TriggerClaim(
        phase=spec.name,
        date=date,
        trigger_id=f"{trigger_id_for(spec.name, date)}:rearm{rearms}",
        owner=owner,
        lease_expires_at=now + spec.trigger_lease,
        attempt=attempt,
        reason="rearmed",
        claimed_at=now,
        completed=done,
        missing=spec.expected - done,
        correlation_id=trigger.get("correlation_id") or latest_correlation_id(doc),
        next_phase=spec.next_phase,
    )
    doc["trigger"] = {
        "state": CLAIMED,
        "trigger_id": claim.trigger_id,
        "owner": owner,
        "attempt": attempt,
        "reason": claim.reason,
        "claimed_at": now,
        "first_claimed_at": now,
        "lease_expires_at": claim.lease_expires_at,
        "completed": sorted(done),
        "missing": sorted(claim.missing),
        "correlation_id": claim.correlation_id,
        "rearms": rearms,
    }
    audit(doc, "rearm_trigger", by, reason, now, attempt=attempt, previous=state)
    return claim


def claim_step(
    doc: dict[str, Any],
    spec: PhaseSpec,
    date: str,
    *,
    now: datetime,
    deadline_now: datetime,
    owner: str,
    gate: GateVerdict | None,
    correlation_id: str | None = None,
    reason_hint: str | None = None,
) -> tuple[TriggerClaim | None, bool, bool]:
    """
    :func:`try_claim` with the phase's gates: ``(claim, changed, gated)``.

    ``changed``: the document must be written (a claim, or a new gate state).
    ``gated``: a first claim is due but waits for the gates (closed, or not
    asked when ``gate is None``: then ask them outside the transaction and
    decide again).
    """
    pending = gate_pending(doc, spec, date, deadline_now)
    claim = try_claim(
        doc, spec, date, now=now, deadline_now=deadline_now, owner=owner,
        correlation_id=correlation_id, reason_hint=reason_hint, gate=gate,
    )
    changed = claim is not None
    if pending and gate is not None:
        changed = note_gate(doc, gate, now) or changed
    return claim, changed, pending and claim is None
