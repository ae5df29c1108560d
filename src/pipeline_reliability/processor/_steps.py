"""The steps of a run that touch the lock and the idempotency ledger, and their outcomes."""

from __future__ import annotations

import logging
import random
from typing import Any

from .._clock import Clock
from .._telemetry import counter, log_failure
from ..dedup import Claimed, Completed, IdempotencyLedger, InProgress
from ..errors import (
    AlreadyCompletedError,
    AlreadyRunningError,
    LockError,
    LockLostError,
    LockNotAcquiredError,
    ReliabilityError,
    StoreError,
)
from ..lock import DateLock, Lease

__all__ = ["complete_claim", "count", "release_claim", "release_lock", "take_claim", "take_lock"]

logger = logging.getLogger("pipeline_reliability.processor")

_CONTENDED_ATTEMPTS = 5
_CONTENDED_PAUSE = 0.2  # seconds before the second attempt; doubles after each


def count(processor: str, outcome: str) -> None:
    """Count one run outcome."""
    counter("processor.runs", "Processor runs by outcome").add(
        1, {"processor": processor, "outcome": outcome}
    )


def take_lock(
    lock: DateLock,
    blocking: bool,
    timeout: float | None,
    clock: Clock,
    *,
    processor: str,
    date: str,
) -> Lease:
    """
    Acquire the run's lock; a held lock is :class:`AlreadyRunningError`.

    "Contended" (transactions kept colliding on the lock document, nobody
    known to hold it) is not "already running": two instances starting at the
    same instant can both lose that way, and then nobody would run the date.
    So a contended attempt is repeated after a short jittered pause, until the
    lock is granted or someone is seen holding it.
    """
    rng, attempt = random.Random(), 1
    while True:
        try:
            return lock.acquire(blocking=blocking, timeout=timeout)
        except LockNotAcquiredError as exc:
            if exc.holder is None and attempt < _CONTENDED_ATTEMPTS:
                clock.sleep(rng.uniform(0.5, 1.0) * _CONTENDED_PAUSE * 2 ** (attempt - 1))
                attempt += 1
                continue
            count(processor, "already_running")
            who = f"lock held by {exc.holder}" if exc.holder else "the lock stayed contended"
            raise AlreadyRunningError(
                f"{processor} {date} is already running ({who})",
                processor=processor,
                date=date,
                holder=exc.holder,
                expires_at=exc.expires_at,
            ) from exc


def take_claim(ledger: IdempotencyLedger, key: str, processor: str, date: str) -> Claimed:
    """Claim the run's idempotency key; a live or completed claim is not a run."""
    claim = ledger.claim(key)
    if isinstance(claim, Claimed):
        return claim
    if isinstance(claim, InProgress):
        count(processor, "already_running")
        raise AlreadyRunningError(
            f"{processor} {date} is already running (claimed by {claim.owner})",
            processor=processor,
            date=date,
            holder=claim.owner,
            expires_at=claim.expires_at,
        )
    assert isinstance(claim, Completed)
    count(processor, "already_completed")
    raise AlreadyCompletedError(
        f"{processor} {date} was completed at {claim.completed_at.isoformat()}",
        processor=processor,
        date=date,
        completed_at=claim.completed_at,
        result=claim.result,
    )


def complete_claim(
    ledger: IdempotencyLedger, claim: Claimed, result: dict[str, Any], processor: str, date: str
) -> None:
    """Complete the claim; a failure is logged (the completion is out; the claim lapses)."""
    try:
        ledger.complete(claim, result)
    except ReliabilityError as error:
        log_failure(logger, "completing the idempotency claim failed", error,
                    processor=processor, date=date)


def release_claim(
    ledger: IdempotencyLedger, claim: Claimed, exc: BaseException | None, processor: str, date: str
) -> None:
    """Release the claim so that a retry may run; a failure is logged and noted on ``exc``."""
    try:
        ledger.release(claim)
    except ReliabilityError as error:
        log_failure(logger, "releasing the idempotency claim failed", error,
                    processor=processor, date=date)
        if exc is not None:
            exc.add_note(f"and releasing the idempotency claim failed: {error}")


def release_lock(
    lock: DateLock, exc: BaseException | None, published: bool, processor: str, date: str
) -> None:
    """
    Release the run's lock, never masking the run's own outcome.

    A lease found lost here after a completion went out is logged: the run
    re-checked the lease just before publishing. A failed release expires
    with the lease's TTL.
    """
    if lock.lease is None:
        return
    try:
        lock.release()
    except LockLostError as error:
        if exc is not None:
            exc.add_note(f"and the lease was lost: {error}")
        elif published:
            logger.warning("%s %s: lease lost after publishing: %s", processor, date, error)
    except (LockError, StoreError) as error:
        log_failure(logger, "releasing the run's lock failed; it expires after its TTL",
                    error, processor=processor, date=date)
        if exc is not None:
            exc.add_note(f"and releasing the lock failed: {error}")
