"""
What ``DateLock`` and ``AsyncDateLock`` share: their options, and every
decision around the store calls of acquire and release.

The store calls themselves (blocking or awaited) stay in the two classes.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import random
from collections.abc import Callable
from typing import Any

from .._clock import Clock, SystemClock
from .._identity import default_owner
from .._keys import encode_key
from .._telemetry import counter, log_failure
from ..errors import (
    ConfigurationError,
    InvalidInputError,
    LockLostError,
    StoreConflictError,
    StoreUnavailableError,
)
from ..stores import Outcome, Snapshot
from ._lease import BaseLease, LockTarget
from ._options import (
    OnStoreError,
    check_clock,
    check_collection,
    check_flag,
    check_on_store_error,
    check_owner,
    check_ttl,
    parse_date,
    parse_name,
    parse_timeout,
)
from ._record import Lost, Released, decide_release
from ._renewer import RENEW_FRACTION

__all__ = ["BaseDateLock"]

logger = logging.getLogger("pipeline_reliability.lock")


class BaseDateLock:
    """The options of a date lock, validated, and the decisions both forms share."""

    def __init__(
        self,
        store: Any,
        name: str,
        date: dt.date | str,
        *,
        ttl: dt.timedelta | float,
        owner: str | None,
        clock: Clock | None,
        on_store_error: OnStoreError,
        collection: str,
        auto_renew: bool,
        on_lost: Callable[..., Any] | None,
    ) -> None:
        self.name = parse_name(name)
        self.date = parse_date(date)
        self.ttl = check_ttl(ttl)
        self.owner = default_owner() if owner is None else check_owner(owner)
        clock = check_clock(clock)
        self.on_store_error: OnStoreError = check_on_store_error(on_store_error)
        self.collection = check_collection(collection)
        self.auto_renew = check_flag(auto_renew, "auto_renew", ConfigurationError)
        if on_lost is not None and not callable(on_lost):
            raise ConfigurationError("on_lost must be callable")
        self.on_lost = on_lost
        self._target: LockTarget[Any] = LockTarget(
            store=store,
            collection=self.collection,
            key=encode_key(self.name, self.date),
            name=self.name,
            date=self.date,
            owner=self.owner,
            ttl=self.ttl,
            clock=clock or SystemClock(),
        )
        self._rng = random.Random()

    @property
    def key(self) -> str:
        """The lock's document id in :attr:`collection`."""
        return self._target.key

    # -- acquire -------------------------------------------------------------------------

    @staticmethod
    def _acquire_args(blocking: object, timeout: object) -> float | None:
        """Check acquire's arguments; the timeout in seconds."""
        check_flag(blocking, "blocking", InvalidInputError)
        limit = parse_timeout(timeout)
        if not blocking and limit is not None:
            raise InvalidInputError("a timeout cannot be given for a non-blocking acquire")
        return limit

    def _acquire_attributes(self, blocking: bool, limit: float | None) -> dict[str, Any]:
        return {**self._target.attributes(), "lock.blocking": blocking, "lock.timeout": limit}

    def _count_acquired(self, lease: BaseLease) -> None:
        counter("lock.acquired", "Leases granted").add(
            1, {"lock.name": self.name, "lock.fenced": lease.fenced}
        )

    def _renews(self, lease: BaseLease) -> float | None:
        """The renewal interval when ``lease`` gets auto-renewal, else ``None``."""
        if self.auto_renew and lease.fenced:
            return self.ttl.total_seconds() * RENEW_FRACTION
        return None

    # -- release -------------------------------------------------------------------------

    def _release_decision(
        self, lease: BaseLease
    ) -> Callable[[Snapshot], Outcome[Released | Lost]]:
        t = self._target
        return functools.partial(
            decide_release, owner=t.owner, token=lease.token, lease_id=lease.lease_id
        )

    def _released(self, lease: BaseLease, result: Released | Lost) -> None:
        """Apply a release's result to ``lease``; a lease that was not ours raises."""
        if isinstance(result, Lost):
            lease.mark_lost(result.kind, result.reason)
            raise LockLostError(f"{self.name}/{self.date}: cannot release: {result.reason}")
        if result.expired:
            lease.mark_lost("expired", f"lease {lease.token} expired before it was released")
            raise LockLostError(
                f"{self.name}/{self.date}: lease {lease.token} expired before release "
                "(nobody took it over; the record is cleared)"
            )
        lease.mark_ended(result.at)

    def _release_failed(
        self, lease: BaseLease, exc: StoreUnavailableError | StoreConflictError
    ) -> None:
        """The store failed during release: raise (fail_closed) or let the lease lapse."""
        if self.on_store_error == "fail_closed":
            raise exc  # the lease is kept: release() may be called again
        logger.warning(
            "releasing %s/%s failed; it will expire after its TTL (on_store_error='proceed')",
            self.name,
            self.date,
            exc_info=exc,
        )
        lease.mark_ended()

    def _release_failed_after_block(self, exc: BaseException, release_error: Exception) -> None:
        # The block already failed: its error is what the caller must see. A
        # failed release is logged and noted on it, never allowed to mask it.
        log_failure(
            logger,
            "release after a failed block failed",
            release_error,
            lock=self.name,
            date=self.date,
        )
        exc.add_note(f"and releasing {self.name}/{self.date} failed: {release_error}")

