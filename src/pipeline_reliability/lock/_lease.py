"""The handle a lock holder works with: token, expiry, renewal and loss checks."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from .._clock import Clock
from .._telemetry import counter, span
from ..errors import LockLostError, StaleFenceError
from ..stores import Outcome, Snapshot, StateStore
from ._options import check_token
from ._record import Lost, Record, Renewed, decide_renew, lost

__all__ = ["BaseLease", "Lease", "LockTarget", "OnLost"]

S = TypeVar("S")

logger = logging.getLogger("pipeline_reliability.lock")

OnLost = Callable[["Lease", str], None]
"""``on_lost(lease, reason)``: called once, from the renewal thread, when a lease is lost."""


@dataclass(frozen=True, slots=True)
class LockTarget(Generic[S]):
    """
    Where a lock lives and who asks for it: shared by a lock and its leases.

    ``store`` is a ``StateStore`` for ``DateLock`` and an ``AsyncStateStore``
    for ``AsyncDateLock``; everything else is the same.
    """

    store: S
    collection: str
    key: str
    name: str
    date: str
    owner: str
    ttl: timedelta
    clock: Clock

    def attributes(self) -> dict[str, str]:
        """Span attributes that identify the lock."""
        return {"lock.name": self.name, "lock.date": self.date, "lock.owner": self.owner}


class BaseLease:
    """
    What a lease knows without asking the store; :class:`Lease` and
    ``AsyncLease`` add the store calls (renew, ensure_held) around the
    shared decisions here.
    """

    def __init__(
        self,
        target: LockTarget[Any],
        *,
        token: int,
        lease_id: str,
        acquired_at: datetime | None,
        expires_at: datetime | None,
        local_deadline: float,
        fenced: bool = True,
    ) -> None:
        self._target = target
        self.token = token
        self.owner = target.owner
        self.name = target.name
        self.date = target.date
        self.fenced = fenced
        self.acquired_at = acquired_at
        self._lease_id = lease_id
        self._state = threading.Lock()
        self._expires_at = expires_at
        # Monotonic time by which the lease has certainly ended, measured from
        # before the request that granted or renewed it: the store started the
        # TTL later than that, so this errs on the side of "lost".
        self._local_deadline = local_deadline
        self._lost: str | None = None
        self._ended = False
        self._released_at: datetime | None = None

    def __repr__(self) -> str:
        state = "lost" if self._lost else ("ended" if self._ended else "held")
        fence = "" if self.fenced else ", unfenced"
        return (
            f"<{type(self).__name__} {self.name}/{self.date} token={self.token} "
            f"owner={self.owner!r} expires_at={self.expires_at} {state}{fence}>"
        )

    @property
    def expires_at(self) -> datetime | None:
        """When the lease ends unless renewed, in the store's time (last known)."""
        with self._state:
            return self._expires_at

    @property
    def released_at(self) -> datetime | None:
        """When the release took effect, in the store's time (``None`` until released)."""
        with self._state:
            return self._released_at

    @property
    def lost(self) -> bool:
        """Whether this process has learnt that the lease is lost (no store read)."""
        with self._state:
            return self._lost is not None

    @property
    def lost_reason(self) -> str | None:
        """Why the lease was lost, once known."""
        with self._state:
            return self._lost

    def remaining(self) -> timedelta:
        """
        How long the lease is certainly still held, by the local monotonic clock.

        A conservative estimate that needs no store read: it counts the TTL
        from before the last successful acquire or renew request was sent.
        Zero once the lease is lost, released or unfenced.
        """
        with self._state:
            if self._lost is not None or self._ended or not self.fenced:
                return timedelta(0)
            left = self._local_deadline - self._target.clock.monotonic()
        return timedelta(seconds=max(left, 0.0))

    def check(self, token_from_sink: int | None) -> None:
        """
        Refuse to write if the destination has seen a newer lease.

        Args:
            token_from_sink: The highest fencing token the destination has
                accepted so far (``None`` when it has none).

        Raises:
            StaleFenceError: ``token_from_sink`` is newer than this lease's
                token: a later holder has written, this holder is stale.
            InvalidInputError: ``token_from_sink`` is not ``None`` or a
                non-negative int.
        """
        check_token(token_from_sink, "token_from_sink")
        if token_from_sink is not None and token_from_sink > self.token:
            raise StaleFenceError(
                f"lease {self.token} on {self.name}/{self.date} is stale: "
                f"the destination has seen token {token_from_sink}",
                token=self.token,
                current=token_from_sink,
            )

    # -- used by DateLock and the renewer -------------------------------------------------

    @property
    def lease_id(self) -> str:
        """The random id of this lease in the lock document."""
        return self._lease_id

    def local_remaining_seconds(self) -> float:
        """Seconds until the local deadline (negative once passed); ignores lost/ended."""
        with self._state:
            return self._local_deadline - self._target.clock.monotonic()

    def mark_ended(self, at: datetime | None = None) -> None:
        """Record that the lease was released (at store time ``at``): no more renewals."""
        with self._state:
            self._ended = True
            self._released_at = at

    def mark_lost(self, kind: str, reason: str) -> bool:
        """Record that the lease is lost; returns ``True`` the first time only."""
        return self._mark_lost(Lost(kind, reason))

    def _mark_lost(self, result: Lost) -> bool:
        with self._state:
            if self._lost is not None:
                return False
            self._lost = result.reason
        counter("lock.lost", "Leases found lost (expired, superseded or broken)").add(
            1, {"lock.name": self.name, "reason": result.kind}
        )
        logger.warning(
            "lease lost on %s/%s: %s",
            self.name,
            self.date,
            result.reason,
            extra={"pipeline_reliability": {**self._target.attributes(), "token": self.token}},
        )
        return True

    # -- the decisions the sync and async leases share ------------------------------------

    def _renew_decision(self) -> Callable[[Snapshot], Outcome[Renewed | Lost]]:
        """Check the lease may renew; the transaction callback that renews it."""
        self._raise_if_not_held()
        return functools.partial(
            decide_renew,
            owner=self.owner,
            token=self.token,
            lease_id=self._lease_id,
            ttl=self._target.ttl,
        )

    def _renewed(self, result: Renewed | Lost, started: float) -> datetime:
        """Apply a renewal's result (``started``: monotonic time before the request)."""
        if isinstance(result, Lost):
            self._mark_lost(result)
            raise LockLostError(f"cannot renew {self.name}/{self.date}: {result.reason}")
        with self._state:
            self._expires_at = result.expires_at
            self._local_deadline = started + self._target.ttl.total_seconds()
        return result.expires_at

    def _judge_held(self, snap: Snapshot) -> None:
        """Raise ``LockLostError`` unless ``snap`` shows this lease live at store time."""
        rec = Record.parse(snap)
        if rec.is_lease(self.owner, self.token, self._lease_id) and rec.live(snap.now):
            with self._state:
                self._expires_at = rec.expires_at
            return
        result = lost(rec, self.token, snap.now)
        self._mark_lost(result)
        raise LockLostError(f"{self.name}/{self.date} is not held: {result.reason}")

    def _span_attributes(self) -> dict[str, Any]:
        return {**self._target.attributes(), "lock.token": self.token}

    def _raise_if_not_held(self) -> None:
        with self._state:
            if not self.fenced:
                raise LockLostError(
                    f"the lease on {self.name}/{self.date} is unfenced "
                    "(on_store_error='proceed'): no lock is held in the store"
                )
            if self._ended:
                raise LockLostError(f"the lease on {self.name}/{self.date} was released")
            if self._lost is not None:
                raise LockLostError(f"the lease on {self.name}/{self.date} is lost: {self._lost}")


class Lease(BaseLease):
    """
    One granted lease on a (name, date) lock.

    Returned by :meth:`DateLock.acquire`; do not build it yourself. The
    lease's ``token`` is its fencing token: pass it with every write the
    lease protects so that the writer can refuse writes from an older holder
    (:meth:`check`, :class:`FenceGuard`).

    Attributes:
        token: The fencing token: strictly greater than the token of every
            earlier lease on the same (name, date), for the life of the store.
            ``0`` for an unfenced lease.
        owner: The owner id of the holder.
        name: The lock's name.
        date: The lock's date, ``YYYY-MM-DD``.
        fenced: ``False`` only for the lease handed out by
            ``on_store_error="proceed"`` when the store failed: no lock is
            held in the store, and every fence that has seen a real token
            rejects its token ``0``.
        acquired_at: When the lease was granted, in the store's time
            (``None`` when unfenced).
    """

    def renew(self) -> datetime:
        """
        Extend the lease to the store's time plus the TTL.

        Returns:
            The new ``expires_at``, in the store's time.

        Raises:
            LockLostError: the lease expired, was superseded, released or
                broken; or it is unfenced. The current holder is untouched.
            StoreUnavailableError: the store failed; the lease may still be
                held (retry, or let the auto-renewal thread do it).
            StoreConflictError: contention on the lock document outlasted
                the store's attempts.
        """
        target: LockTarget[StateStore] = self._target
        decide = self._renew_decision()
        started = target.clock.monotonic()
        with span("lock", "renew", self._span_attributes):
            result: Renewed | Lost = target.store.transact(target.collection, target.key, decide)
        return self._renewed(result, started)

    def ensure_held(self) -> None:
        """
        Check with the store that this lease is still the live one.

        Call it before a write whose target cannot check fencing tokens. It
        costs one store read, and the answer is judged by the store's time.

        Raises:
            LockLostError: the lease is not held (the reason is in the message).
            StoreUnavailableError: the store failed: holding cannot be proven.
        """
        self._raise_if_not_held()
        target: LockTarget[StateStore] = self._target
        self._judge_held(target.store.get(target.collection, target.key))
