"""
The decisions of a fleet-wide concurrency limit, as pure functions of a snapshot.

One document per limit holds the live slots (``holders``, a map slot id ->
lease) and a bounded FIFO queue of waiters' tickets (``queue``, a list). Every
function here reads a :class:`Snapshot` and returns an :class:`Outcome`: the
sync and the async limit run the very same decisions inside their store's
transaction (the tracker's ``_doc.py`` style), and the stateful tests drive
them directly.

Time is the store's (``Snapshot.now``). A lease or ticket is live while
``expires_at > now``: at ``expires_at`` itself it is over, so the boundary is
judged the same way by every instance whatever its own clock says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..stores import Delete, Outcome, Put, Snapshot

__all__ = [
    "MAX_CONCURRENCY_LIMIT",
    "MAX_OWNER_BYTES",
    "MAX_CONCURRENCY_WAITERS",
    "Full",
    "Gone",
    "Granted",
    "Holder",
    "LimitDoc",
    "Peek",
    "Released",
    "Renewed",
    "Request",
    "Ticket",
    "check_held",
    "decide_acquire",
    "decide_cancel",
    "decide_release",
    "decide_renew",
    "peek",
]

#: The largest ``limit`` a ConcurrencyLimit accepts: every slot is an entry of one document.
MAX_CONCURRENCY_LIMIT = 1000
#: The longest waiters' queue; waiters beyond it poll without a ticket.
MAX_CONCURRENCY_WAITERS = 1000
#: The longest owner id (UTF-8 bytes) a slot or ticket records.
MAX_OWNER_BYTES = 256


@dataclass(frozen=True, slots=True)
class Holder:
    """One live or expired slot lease in the document."""

    owner: str
    acquired_at: datetime
    expires_at: datetime

    def to_store(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "acquired_at": self.acquired_at,
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True, slots=True)
class Ticket:
    """A waiter's place in the FIFO queue; it lapses unless the waiter keeps polling."""

    ticket: str
    owner: str
    since: datetime
    expires_at: datetime

    def to_store(self) -> dict[str, Any]:
        return {
            "ticket": self.ticket,
            "owner": self.owner,
            "since": self.since,
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True, slots=True)
class LimitDoc:
    """The parsed document, reduced to what is live at ``now``."""

    holders: dict[str, Holder]
    queue: list[Ticket]
    pruned: bool  # whether anything expired or malformed was dropped

    @classmethod
    def parse(cls, snap: Snapshot) -> LimitDoc:
        """
        Read the live holders and tickets.

        Malformed entries (a document edited by hand) are dropped like
        expired ones: one bad entry must not block the limit for ever.
        """
        data = snap.data or {}
        now = snap.now
        holders: dict[str, Holder] = {}
        pruned = False
        raw_holders = data.get("holders")
        for key, value in (raw_holders.items() if isinstance(raw_holders, dict) else ()):
            holder = _holder(value)
            if holder is None or holder.expires_at <= now:
                pruned = True
                continue
            holders[key] = holder
        queue: list[Ticket] = []
        seen: set[str] = set()
        raw_queue = data.get("queue")
        for value in raw_queue if isinstance(raw_queue, list) else ():
            ticket = _ticket(value)
            if (
                ticket is None
                or ticket.expires_at <= now
                or ticket.ticket in holders
                or ticket.ticket in seen
            ):
                pruned = True
                continue
            seen.add(ticket.ticket)
            queue.append(ticket)
        return cls(holders, queue, pruned)

    def position(self, ticket: str) -> int | None:
        """The ticket's index among live tickets (0 = oldest), or ``None``."""
        for i, t in enumerate(self.queue):
            if t.ticket == ticket:
                return i
        return None

    def write(self, name: str, limit: int) -> Put | Delete:
        if not self.holders and not self.queue:
            return Delete()  # nothing left to remember: no empty documents pile up
        return Put(
            {
                "name": name,
                "limit": limit,
                "holders": {k: h.to_store() for k, h in self.holders.items()},
                "queue": [t.to_store() for t in self.queue],
            }
        )


def _holder(value: object) -> Holder | None:
    if not isinstance(value, dict):
        return None
    owner, acquired = value.get("owner"), value.get("acquired_at")
    expires = value.get("expires_at")
    if isinstance(owner, str) and isinstance(acquired, datetime) and isinstance(expires, datetime):
        return Holder(owner, acquired, expires)
    return None


def _ticket(value: object) -> Ticket | None:
    if not isinstance(value, dict):
        return None
    tid, owner = value.get("ticket"), value.get("owner")
    since, expires = value.get("since"), value.get("expires_at")
    if (
        isinstance(tid, str)
        and isinstance(owner, str)
        and isinstance(since, datetime)
        and isinstance(expires, datetime)
    ):
        return Ticket(tid, owner, since, expires)
    return None


# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Granted:
    """The slot is ours, until ``expires_at`` (store time) unless renewed."""

    acquired_at: datetime
    expires_at: datetime
    holders: int  # live holders, this one included


@dataclass(frozen=True, slots=True)
class Full:
    """
    No slot for this caller now.

    ``position`` is the caller's place among live tickets (``None``: it has
    none, e.g. a try-once caller or a full queue); ``next_expiry`` is the
    earliest lease end among holders, when a slot frees itself at the latest.
    """

    holders: int
    waiters: int
    position: int | None
    next_expiry: datetime | None
    now: datetime


@dataclass(frozen=True, slots=True)
class Released:
    """What a release found: ``freed`` when a live slot was given back."""

    freed: bool
    expired: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class Renewed:
    """The lease now ends at ``expires_at`` (store time)."""

    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Gone:
    """The slot is no longer held: ``reason`` says why."""

    reason: str


@dataclass(frozen=True, slots=True)
class Request:
    """Who asks for a slot of which limit, and how (fixed for one ``slot()`` call)."""

    name: str
    limit: int
    slot_id: str
    owner: str
    lease: timedelta
    ticket_lease: timedelta
    max_waiters: int
    enqueue: bool  # False for a try-once call: it would never come back for its turn


# -- decisions ----------------------------------------------------------------------------


def decide_acquire(snap: Snapshot, req: Request) -> Outcome[Granted | Full]:
    """
    Grant a slot if one is free *for this caller*, else queue or refresh its ticket.

    Fairness: free slots go to live tickets oldest first. A caller whose
    ticket is ``k``-th in the queue (or a caller with no ticket, behind all
    ``k`` tickets) is granted only while more than ``k`` slots are free, so
    no later arrival overtakes a waiter that keeps polling.
    """
    doc = LimitDoc.parse(snap)
    now = snap.now
    if req.slot_id in doc.holders:
        # A retry of a commit whose answer was lost: the slot is already ours.
        held = doc.holders[req.slot_id]
        return Outcome(Granted(held.acquired_at, held.expires_at, len(doc.holders)))
    position = doc.position(req.slot_id)
    ahead = len(doc.queue) if position is None else position
    if req.limit - len(doc.holders) > ahead:
        expires = now + req.lease
        doc.holders[req.slot_id] = Holder(req.owner, now, expires)
        if position is not None:
            del doc.queue[position]
        return Outcome(Granted(now, expires, len(doc.holders)), doc.write(req.name, req.limit))
    write: Put | Delete | None = None
    if position is not None and _needs_refresh(doc.queue[position], now, req.ticket_lease):
        old = doc.queue[position]
        doc.queue[position] = Ticket(old.ticket, old.owner, old.since, now + req.ticket_lease)
        write = doc.write(req.name, req.limit)
    elif position is None and req.enqueue and len(doc.queue) < req.max_waiters:
        position = len(doc.queue)
        doc.queue.append(Ticket(req.slot_id, req.owner, now, now + req.ticket_lease))
        write = doc.write(req.name, req.limit)
    return Outcome(_full(doc, position, now), write)


def _needs_refresh(ticket: Ticket, now: datetime, ticket_lease: timedelta) -> bool:
    # Refresh once half the ticket's lease is gone: a poll writes at most
    # every half lease, and a live waiter's ticket never lapses between polls.
    return ticket.expires_at - now < ticket_lease / 2


def _full(doc: LimitDoc, position: int | None, now: datetime) -> Full:
    next_expiry = min((h.expires_at for h in doc.holders.values()), default=None)
    return Full(len(doc.holders), len(doc.queue), position, next_expiry, now)


@dataclass(frozen=True, slots=True)
class Peek:
    """What a plain read says about a waiter's next step."""

    try_now: bool  # a transaction may grant, or must (re)register the ticket
    full: Full


def peek(snap: Snapshot, req: Request) -> Peek:
    """
    Decide from a plain read whether a transaction is worth running.

    Waiting costs one read per poll and a transaction only when the read
    shows a slot free for this caller, or its ticket due for registration or
    refresh: waiters do not write to (or, in Firestore, lock) the document
    the holders need for their releases.
    """
    doc = LimitDoc.parse(snap)
    now = snap.now
    position = doc.position(req.slot_id)
    ahead = len(doc.queue) if position is None else position
    if req.slot_id in doc.holders or req.limit - len(doc.holders) > ahead:
        return Peek(True, _full(doc, position, now))
    if position is None:
        enqueue = req.enqueue and len(doc.queue) < req.max_waiters
        return Peek(enqueue, _full(doc, position, now))
    refresh = _needs_refresh(doc.queue[position], now, req.ticket_lease)
    return Peek(refresh, _full(doc, position, now))


def decide_release(snap: Snapshot, *, slot_id: str, name: str, limit: int) -> Outcome[Released]:
    """
    Give the slot ``slot_id`` back; nobody else's slot is ever touched.

    Idempotent: releasing a slot that is gone (released before, or expired
    and reclaimed) changes nothing. A slot found expired but still listed is
    removed and reported ``expired``: its holder overran its lease.
    """
    now = snap.now
    raw = (snap.data or {}).get("holders")
    entry = _holder(raw.get(slot_id)) if isinstance(raw, dict) else None
    if entry is None:
        return Outcome(Released(freed=False, expired=False, at=now))
    doc = LimitDoc.parse(snap)
    expired = slot_id not in doc.holders
    doc.holders.pop(slot_id, None)
    return Outcome(Released(freed=not expired, expired=expired, at=now), doc.write(name, limit))


def decide_renew(
    snap: Snapshot, *, slot_id: str, lease: timedelta, name: str, limit: int
) -> Outcome[Renewed | Gone]:
    """Extend a live slot to store time plus ``lease``; an expired or absent one is gone."""
    doc = LimitDoc.parse(snap)
    held = doc.holders.get(slot_id)
    if held is None:
        return Outcome(Gone(_gone_reason(snap, slot_id)))
    expires = snap.now + lease
    doc.holders[slot_id] = Holder(held.owner, held.acquired_at, expires)
    return Outcome(Renewed(expires), doc.write(name, limit))


def check_held(snap: Snapshot, slot_id: str) -> Renewed | Gone:
    """Whether ``slot_id`` is live at the snapshot's time (for ``ensure_held``)."""
    held = LimitDoc.parse(snap).holders.get(slot_id)
    return Gone(_gone_reason(snap, slot_id)) if held is None else Renewed(held.expires_at)


def _gone_reason(snap: Snapshot, slot_id: str) -> str:
    raw = (snap.data or {}).get("holders")
    entry = _holder(raw.get(slot_id)) if isinstance(raw, dict) else None
    if entry is not None:
        return f"its lease expired at {entry.expires_at.isoformat()} (store time {snap.now})"
    return "it was released, or expired and was given to another holder"


def decide_cancel(snap: Snapshot, *, ticket: str, name: str, limit: int) -> Outcome[bool]:
    """Withdraw a waiter's ticket (it gave up); ``True`` if it was queued."""
    doc = LimitDoc.parse(snap)
    position = doc.position(ticket)
    if position is None:
        return Outcome(False)
    del doc.queue[position]
    return Outcome(True, doc.write(name, limit))
