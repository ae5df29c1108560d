"""
Acquiring a lease: reserve a token, then grant; polling with jittered backoff.

Written once, as steps that yield their store reads, transactions and sleeps
(:mod:`._io`): ``DateLock`` runs them with blocking calls, ``AsyncDateLock``
awaits them.
"""

from __future__ import annotations

import functools
import logging
import random
import uuid
from typing import Any, TypeVar

from .._telemetry import counter
from ..errors import LockNotAcquiredError, StoreConflictError, StoreError, StoreUnavailableError
from ._io import Get, Sleep, Steps, Transact, drive_sync
from ._lease import BaseLease, Lease, LockTarget
from ._options import OnStoreError
from ._record import (
    Busy,
    Granted,
    Outbid,
    Record,
    counter_key,
    decide_acquire,
    decide_reserve,
)

__all__ = ["acquire_lease", "acquire_steps"]

L = TypeVar("L", bound=BaseLease)

logger = logging.getLogger("pipeline_reliability.lock")

# Reservations per attempt: the first is above the counter; only a counter
# found behind the lock document (deleted, or older than it) needs a second.
_RESERVATIONS = 3
_POLL_INITIAL = 0.05
_POLL_MAX = 2.0


def acquire_lease(
    target: LockTarget[Any],
    blocking: bool,
    limit: float | None,
    on_store_error: OnStoreError,
    rng: random.Random,
) -> Lease:
    """Run :func:`acquire_steps` with blocking store calls."""
    steps = acquire_steps(target, blocking, limit, on_store_error, rng, lease_type=Lease)
    return drive_sync(steps, target.store, target.clock)


def acquire_steps(
    target: LockTarget[Any],
    blocking: bool,
    limit: float | None,
    on_store_error: OnStoreError,
    rng: random.Random,
    *,
    lease_type: type[L],
) -> Steps[L]:
    """
    Try until granted, or until not blocking / past ``limit`` seconds (then raise).

    Every attempt starts with a plain read, and the transactions (reserve a
    token, grant the lease) run only once a read shows the lock free: an
    uncontended acquire costs one read and two transactions, and an attempt on
    a held lock one read and no write. A waiter's transaction would also hold
    a read lock on the document (Firestore locks pessimistically) and slow
    down the holder's renewals and release.
    """
    clock = target.clock
    deadline = None if limit is None else clock.monotonic() + limit
    delay = _POLL_INITIAL
    outcome: L | Busy | StoreConflictError | None
    while True:
        outcome = yield from _peek(target)
        if outcome is None:
            outcome = yield from _attempt(target, on_store_error, lease_type)
        if isinstance(outcome, BaseLease):
            return outcome
        counter("lock.contention", "Acquire attempts that found the lock held").add(
            1, {"lock.name": target.name}
        )
        wait = rng.uniform(delay / 2, delay)
        if isinstance(outcome, Busy):
            # Wake up soon after the holder's expiry, when we can win, but
            # jittered: waiters that all woke at the same instant would all
            # see the lock free and collide in their transactions.
            expiry = max((outcome.expires_at - outcome.now).total_seconds(), 0.0)
            wait = min(wait, expiry + rng.uniform(0.001, delay / 2))
        left = None if deadline is None else deadline - clock.monotonic()
        if not blocking or (left is not None and left <= 0):
            raise _not_acquired(target, outcome)
        yield Sleep(wait if left is None else min(wait, left))
        delay = min(delay * 2, _POLL_MAX)


def _peek(t: LockTarget[Any]) -> Steps[Busy | None]:
    """A read without a transaction: the live lease, or ``None`` when worth a try."""
    try:
        snap = yield Get(t.collection, t.key)
    except StoreError:
        return None  # let the transaction meet (and report) the failure
    rec = Record.parse(snap)
    if not rec.live(snap.now):
        return None
    assert rec.holder is not None
    assert rec.expires_at is not None
    return Busy(rec.holder, rec.token, rec.expires_at, snap.now)


def _attempt(
    t: LockTarget[Any], on_store_error: OnStoreError, lease_type: type[L]
) -> Steps[L | Busy | StoreConflictError]:
    lease_id = uuid.uuid4().hex
    started = t.clock.monotonic()
    try:
        result = yield from _reserve_and_grant(t, lease_id)
    except StoreConflictError as exc:
        # Others are writing this very document: that is contention, not an outage.
        return exc
    except StoreUnavailableError as exc:
        recovered = yield from _recover(t, exc, lease_id)
        if recovered is None:
            return _store_failed(t, on_store_error, exc, lease_id, started, lease_type=lease_type)
        result = recovered
    if isinstance(result, Busy):
        return result
    if result.taken_over is not None:
        logger.info(
            "took over %s/%s from %r, whose lease had expired",
            t.name,
            t.date,
            result.taken_over,
        )
    return lease_type(
        t,
        token=result.token,
        lease_id=lease_id,
        acquired_at=result.acquired_at,
        expires_at=result.expires_at,
        local_deadline=started + t.ttl.total_seconds(),
    )


def _reserve_and_grant(t: LockTarget[Any], lease_id: str) -> Steps[Granted | Busy]:
    """Reserve a token in the counter document, then grant the lease with it."""
    above = 0
    for _ in range(_RESERVATIONS):
        reserve = functools.partial(decide_reserve, name=t.name, date=t.date, above=above)
        token: int = yield Transact(t.collection, counter_key(t.key), reserve)
        grant = functools.partial(
            decide_acquire,
            name=t.name,
            date=t.date,
            owner=t.owner,
            lease_id=lease_id,
            ttl=t.ttl,
            token=token,
        )
        result: Granted | Busy | Outbid = yield Transact(t.collection, t.key, grant)
        if not isinstance(result, Outbid):
            return result
        above = result.token
    # Only a counter deleted again and again between our transactions gets here.
    raise StoreConflictError(
        f"{t.name}/{t.date}: the token counter kept falling behind", attempts=_RESERVATIONS
    )


def _recover(
    t: LockTarget[Any], exc: StoreUnavailableError, lease_id: str
) -> Steps[Granted | None]:
    """After a lost response, read back whether our acquire was applied."""
    if not exc.maybe_committed:
        return None
    try:
        snap = yield Get(t.collection, t.key)
    except StoreError:
        return None
    rec = Record.parse(snap)
    if rec.lease_id != lease_id or rec.holder != t.owner or not rec.live(snap.now):
        return None
    assert rec.acquired_at is not None
    assert rec.expires_at is not None
    return Granted(rec.token, rec.acquired_at, rec.expires_at, None)


def _store_failed(
    t: LockTarget[Any],
    on_store_error: OnStoreError,
    exc: StoreUnavailableError,
    lease_id: str,
    started: float,
    *,
    lease_type: type[L],
) -> L:
    if on_store_error == "fail_closed":
        raise exc
    logger.warning(
        "lock store failed; proceeding WITHOUT a lock on %s/%s (on_store_error='proceed')",
        t.name,
        t.date,
        exc_info=exc,
        extra={"pipeline_reliability": t.attributes()},
    )
    return lease_type(
        t,
        token=0,
        lease_id=lease_id,
        acquired_at=None,
        expires_at=None,
        local_deadline=started,
        fenced=False,
    )


def _not_acquired(t: LockTarget[Any], outcome: Busy | StoreConflictError) -> LockNotAcquiredError:
    if isinstance(outcome, Busy):
        return LockNotAcquiredError(
            f"{t.name}/{t.date} is held by {outcome.holder!r} "
            f"(token {outcome.token}) until {outcome.expires_at}",
            holder=outcome.holder,
            expires_at=outcome.expires_at,
        )
    error = LockNotAcquiredError(
        f"{t.name}/{t.date} is contended: the lock document kept changing"
    )
    error.__cause__ = outcome
    return error
