"""
The lock document and the decisions taken inside its transactions.

Every function here is pure: it reads a :class:`Snapshot` and returns an
:class:`Outcome`. The store may run a decision more than once (optimistic
concurrency), so nothing here has side effects, and every decision is judged
by ``snap.now``, the store's own time, never a client clock.

One document per (name, date), never deleted by this library::

    name, date        what the lock protects (for operators)
    holder            owner id of the current lease, or None
    lease_id          random id of the current lease (recovers a lost acquire response)
    token             the fencing token of the last lease granted; survives release
    acquired_at       store time the current lease was granted
    expires_at        store time the current lease ends unless renewed
    renewed_at        store time of the last renewal
    released_token    the token of the last lease that was released or broken
    released_by       its owner id, or "break" for an operator break
    released_at       store time of that release
    expire_at         garbage-collection time for a Firestore TTL policy

and beside it one token counter per (name, date) (:func:`counter_key`), a
document that carries no ``expire_at`` and that nothing ever deletes::

    name, date        what the lock protects (for operators)
    token             the highest token ever reserved

Every grant first reserves its token from the counter (:func:`decide_reserve`),
then writes it into the lock document (:func:`decide_acquire`), which accepts
it only if it is above the token already there. So each token issued is at most
the counter's value and at most the lock document's, and a token stays above
every earlier one when either document is deleted (a TTL policy, an operator),
whatever the store's clock does. Only deleting both between two grants could
repeat a token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..errors import StoreError
from ..stores import Outcome, Put, Snapshot

__all__ = [
    "BROKEN_BY",
    "GC_RETENTION",
    "Busy",
    "Granted",
    "Outbid",
    "Lost",
    "Record",
    "Released",
    "Renewed",
    "counter_key",
    "decide_acquire",
    "decide_break",
    "decide_release",
    "decide_renew",
    "decide_reserve",
    "lost",
]

# How long after a lease's end its document may be garbage-collected by a
# Firestore TTL policy on ``expire_at``. Tokens do not depend on the document
# surviving (the counter document outlives it), so this only keeps the document
# around for operators; it must merely be positive for safety. Days, so that
# "who held it last" is still there when someone looks the morning after.
GC_RETENTION = timedelta(days=7)
BROKEN_BY = "break"


def counter_key(key: str) -> str:
    """
    The id of the token counter beside lock document ``key``.

    Lock ids (``encode_key(name, date)``) end with a date or, when long, a
    SHA-256 in hex; this one ends with ``~tokens``, so it is never a lock id.
    """
    return f"{key}~tokens"


def decide_reserve(snap: Snapshot, *, name: str, date: str, above: int) -> Outcome[int]:
    """
    Reserve the next fencing token in the counter document.

    The token is above every token reserved before and above ``above`` (the
    lock document's token, when the counter was found behind it). A reserved
    token that is never granted (the lock was busy) just leaves a gap.
    """
    data = snap.data or {}
    last = data.get("token", 0)
    if not isinstance(last, int) or isinstance(last, bool) or last < 0:
        raise StoreError(f"token counter {snap.collection}/{snap.key} is malformed")
    token = max(last, above) + 1
    return Outcome(token, Put({"name": name, "date": date, "token": token}))


@dataclass(frozen=True, slots=True)
class Record:
    """The lock document, parsed and type-checked."""

    holder: str | None
    lease_id: str | None
    token: int
    acquired_at: datetime | None
    expires_at: datetime | None
    released_token: int | None
    released_by: str | None
    released_at: datetime | None

    @classmethod
    def parse(cls, snap: Snapshot) -> Record:
        """Read the record from ``snap``; a missing document is a lock never taken."""
        data = snap.data or {}
        try:
            return cls(
                holder=_opt(data, "holder", str),
                lease_id=_opt(data, "lease_id", str),
                token=_opt(data, "token", int) or 0,
                acquired_at=_opt(data, "acquired_at", datetime),
                expires_at=_opt(data, "expires_at", datetime),
                released_token=_opt(data, "released_token", int),
                released_by=_opt(data, "released_by", str),
                released_at=_opt(data, "released_at", datetime),
            )
        except TypeError as exc:
            raise StoreError(f"lock document {snap.collection}/{snap.key} is malformed") from exc

    def live(self, now: datetime) -> bool:
        """Whether a lease is held at store time ``now``."""
        return self.holder is not None and self.expires_at is not None and self.expires_at > now

    def is_lease(self, owner: str, token: int, lease_id: str) -> bool:
        """Whether the recorded lease (live or expired) is this one."""
        return self.holder == owner and self.token == token and self.lease_id == lease_id


def _opt(data: dict[str, Any], field: str, kind: type[Any]) -> Any:
    value = data.get(field)
    # bool is an int in Python; a boolean token would be corruption, not a token.
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise TypeError(f"field {field!r} should be {kind.__name__}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Granted:
    """The lease was granted."""

    token: int
    acquired_at: datetime
    expires_at: datetime
    taken_over: str | None  # the owner whose expired lease was replaced, if any


@dataclass(frozen=True, slots=True)
class Busy:
    """Another lease is live at store time ``now``."""

    holder: str
    token: int
    expires_at: datetime
    now: datetime


@dataclass(frozen=True, slots=True)
class Outbid:
    """
    The reserved token is not above the lock document's ``token``.

    The counter was behind the lock document (the counter was deleted, or the
    document predates it): reserve again above ``token``.
    """

    token: int


@dataclass(frozen=True, slots=True)
class Renewed:
    """The lease was extended."""

    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Released:
    """The lease is no longer recorded (since store time ``at``); ``expired``: it had lapsed."""

    expired: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class Lost:
    """
    The lease is not (or no longer) held.

    ``kind`` is one of ``expired``, ``superseded``, ``released``, ``broken``,
    ``missing`` (a metric attribute); ``reason`` is the sentence for humans.
    """

    kind: str
    reason: str


def lost(rec: Record, token: int, now: datetime) -> Lost:
    """Explain why lease ``token`` is not the live lease of ``rec`` at store time ``now``."""
    if rec.token == token and rec.holder is None:
        if rec.released_by == BROKEN_BY:
            return Lost("broken", f"lease {token} was ended by an operator break")
        return Lost("released", f"lease {token} was already released")
    if rec.token == token:
        return Lost("expired", f"lease {token} expired at {rec.expires_at} (store time {now})")
    if rec.token > token:
        held = f"held by {rec.holder!r}" if rec.live(now) else "since ended"
        return Lost("superseded", f"lease {token} was superseded by lease {rec.token} ({held})")
    return Lost("missing", f"lease {token} is not in the lock document (token {rec.token})")


def _lease_fields(
    rec: Record,
    *,
    now: datetime,
    holder: str | None,
    lease_id: str | None,
    expires: datetime | None,
) -> dict[str, Any]:
    """The fields every write sets; the caller adds what its transition changes."""
    return {
        "holder": holder,
        "lease_id": lease_id,
        "token": rec.token,
        "acquired_at": rec.acquired_at,
        "expires_at": expires,
        "released_token": rec.released_token,
        "released_by": rec.released_by,
        # A TTL policy may delete the document only well after any lease in it ended.
        "expire_at": max(expires or now, now) + GC_RETENTION,
    }


def decide_acquire(
    snap: Snapshot,
    *,
    name: str,
    date: str,
    owner: str,
    lease_id: str,
    ttl: timedelta,
    token: int,
) -> Outcome[Granted | Busy | Outbid]:
    """Grant a new lease with the reserved ``token`` unless a live one exists at store time."""
    rec = Record.parse(snap)
    if rec.live(snap.now):
        assert rec.holder is not None
        assert rec.expires_at is not None
        return Outcome(Busy(rec.holder, rec.token, rec.expires_at, snap.now))
    if token <= rec.token:
        return Outcome(Outbid(rec.token))
    expires = snap.now + ttl
    data = dict(snap.data or {})
    data.update(_lease_fields(rec, now=snap.now, holder=owner, lease_id=lease_id, expires=expires))
    data.update(name=name, date=date, token=token, acquired_at=snap.now, renewed_at=None)
    return Outcome(Granted(token, snap.now, expires, rec.holder), Put(data))


def decide_renew(
    snap: Snapshot, *, owner: str, token: int, lease_id: str, ttl: timedelta
) -> Outcome[Renewed | Lost]:
    """Extend the lease to ``now + ttl`` if it is still this caller's and not expired."""
    rec = Record.parse(snap)
    if not (rec.is_lease(owner, token, lease_id) and rec.live(snap.now)):
        return Outcome(lost(rec, token, snap.now))
    expires = snap.now + ttl
    data = dict(snap.data or {})
    data.update(_lease_fields(rec, now=snap.now, holder=owner, lease_id=lease_id, expires=expires))
    data["renewed_at"] = snap.now
    return Outcome(Renewed(expires), Put(data))


def decide_release(
    snap: Snapshot, *, owner: str, token: int, lease_id: str
) -> Outcome[Released | Lost]:
    """
    Clear the holder if the recorded lease is this one; otherwise touch nothing.

    A lease that expired but was not taken over is cleared too (it is still
    this caller's record) and reported as expired. A release that already
    happened (a retry after a lost response) is reported as released again.
    """
    rec = Record.parse(snap)
    if rec.is_lease(owner, token, lease_id):
        data = dict(snap.data or {})
        data.update(_lease_fields(rec, now=snap.now, holder=None, lease_id=None, expires=None))
        data.update(released_token=token, released_by=owner, released_at=snap.now)
        return Outcome(Released(not rec.live(snap.now), snap.now), Put(data))
    if rec.released_token == token and rec.released_by == owner:
        return Outcome(Released(False, rec.released_at or snap.now))
    return Outcome(lost(rec, token, snap.now))


def decide_break(snap: Snapshot, *, token: int | None) -> Outcome[int | None]:
    """
    Clear whatever lease is recorded (only lease ``token`` when given).

    The counter is kept, so the next lease gets a higher token. Returns the
    token of the lease cleared, or ``None`` when nothing was recorded.
    """
    rec = Record.parse(snap)
    if rec.holder is None or (token is not None and rec.token != token):
        return Outcome(None)
    data = dict(snap.data or {})
    data.update(_lease_fields(rec, now=snap.now, holder=None, lease_id=None, expires=None))
    data.update(released_token=rec.token, released_by=BROKEN_BY, released_at=snap.now)
    return Outcome(rec.token, Put(data))
