"""
What a concurrency limit is built from and called with, checked once for both twins.

Bad input raises before any store call: ``ConfigurationError`` for a
constructor option, ``InvalidInputError`` for a call argument (and for the
limit's name, which says *what* is limited).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from .._clock import Clock, SystemClock
from .._identity import default_owner
from .._keys import MAX_ID_BYTES, encode_key, validate_id
from .._validate import describe, duration_seconds
from ..errors import ConfigurationError, InvalidInputError
from ._slots import MAX_CONCURRENCY_LIMIT, MAX_CONCURRENCY_WAITERS, MAX_OWNER_BYTES, Request

__all__ = [
    "DEFAULT_COLLECTION",
    "TICKET_LEASE",
    "Backoff",
    "LimitConfig",
    "OnStoreError",
    "parse_timeout",
]

OnStoreError = Literal["fail_closed", "fail_open"]
DEFAULT_COLLECTION = "concurrency_limits"
#: How long a waiter's place in the queue outlives its last poll. Waiters poll
#: at least every second, so a live waiter never loses its place; a dead one
#: holds the head of the queue (and so, at worst, one free slot) this long.
TICKET_LEASE = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class LimitConfig:
    """A limit's checked options: shared by ``ConcurrencyLimit`` and its async twin."""

    name: str
    limit: int
    lease: timedelta
    owner: str
    clock: Clock
    injected_clock: bool  # async code sleeps on asyncio unless a clock was injected
    max_wait: float
    on_store_error: OnStoreError
    store_timeout: float
    max_waiters: int
    auto_renew: bool
    collection: str
    key: str

    @classmethod
    def build(
        cls,
        name: object,
        *,
        limit: object,
        lease: object,
        owner: object,
        clock: object,
        max_wait: object,
        on_store_error: object,
        store_timeout: object,
        max_waiters: object,
        auto_renew: object,
        collection: object,
    ) -> LimitConfig:
        """Check every option; raises ``InvalidInputError`` (name) or ``ConfigurationError``."""
        checked_name = _name(name)
        lease_s = duration_seconds(lease, "lease")
        if lease_s < 1e-6:
            raise ConfigurationError(f"lease must be at least one microsecond, got {lease!r}")
        if clock is not None and not isinstance(clock, Clock):
            raise ConfigurationError(
                f"clock must implement now/monotonic/sleep, got {describe(clock)}"
            )
        try:
            checked_collection = validate_id(collection, "collection id")
        except InvalidInputError as exc:
            raise ConfigurationError(str(exc)) from exc
        return cls(
            name=checked_name,
            limit=_count(limit, "limit", 1, MAX_CONCURRENCY_LIMIT),
            lease=timedelta(seconds=lease_s),
            owner=default_owner()[:MAX_OWNER_BYTES] if owner is None else _owner(owner),
            clock=clock if isinstance(clock, Clock) else SystemClock(),
            injected_clock=clock is not None,
            max_wait=duration_seconds(max_wait, "max_wait", allow_zero=True),
            on_store_error=_policy(on_store_error),
            store_timeout=duration_seconds(store_timeout, "store_timeout"),
            max_waiters=_count(max_waiters, "max_waiters", 0, MAX_CONCURRENCY_WAITERS),
            auto_renew=_flag(auto_renew, "auto_renew"),
            collection=checked_collection,
            key=encode_key(checked_name),
        )

    def request(self, timeout: float) -> Request:
        """A fresh slot request: a new random slot id, queued unless try-once."""
        return Request(
            name=self.name,
            limit=self.limit,
            slot_id=uuid.uuid4().hex,
            owner=self.owner,
            lease=self.lease,
            ticket_lease=TICKET_LEASE,
            max_waiters=self.max_waiters,
            enqueue=timeout > 0,
        )

    def attributes(self) -> dict[str, str | int]:
        """Span and metric attributes that identify the limit."""
        return {"limit.name": self.name, "limit.limit": self.limit}


def parse_timeout(value: object, default: float) -> float:
    """Return a ``slot()`` timeout in seconds (``None``: the limit's ``max_wait``)."""
    if value is None:
        return default
    try:
        return duration_seconds(value, "timeout", allow_zero=True)
    except ConfigurationError as exc:
        raise InvalidInputError(str(exc)) from exc


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"limit name must be a non-empty string, got {describe(value)}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidInputError("limit name is not valid UTF-8 (a lone surrogate)") from exc
    if size > MAX_ID_BYTES:
        raise InvalidInputError(f"limit name is longer than {MAX_ID_BYTES} bytes")
    return value


def _owner(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"owner must be a non-empty string, got {describe(value)}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ConfigurationError("owner is not valid UTF-8 (a lone surrogate)") from exc
    if size > MAX_OWNER_BYTES:
        # Each slot records its owner in the one limit document: bounded, so
        # the document stays far below Firestore's 1 MiB at the largest limit.
        raise ConfigurationError(f"owner is longer than {MAX_OWNER_BYTES} bytes")
    return value


def _count(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigurationError(
            f"{what} must be an integer in {low}..{high}, got {describe(value)}"
        )
    return value


def _flag(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{what} must be True or False, got {describe(value)}")
    return value


def _policy(value: object) -> OnStoreError:
    if isinstance(value, str) and value == "fail_closed":
        return "fail_closed"
    if isinstance(value, str) and value == "fail_open":
        return "fail_open"
    raise ConfigurationError(
        f"on_store_error must be 'fail_closed' or 'fail_open', got {describe(value)}"
    )


class Backoff:
    """
    When a waiter polls next: jittered doubling delays, capped, within its deadline.

    The next poll never comes later than just after the earliest holder's
    lease end (when a slot frees itself even if its holder died), and the
    delay never exceeds a second so that a waiter's ticket stays live.
    """

    INITIAL = 0.05
    MAXIMUM = 1.0

    def __init__(self, clock: Clock, timeout: float, rng: random.Random) -> None:
        self._clock = clock
        self.started = clock.monotonic()
        self._deadline = self.started + timeout
        self._delay = self.INITIAL
        self._rng = rng

    def waited(self) -> float:
        """Seconds since the first attempt."""
        return self._clock.monotonic() - self.started

    def next_sleep(self, next_expiry_in: float | None) -> float | None:
        """Seconds to sleep before the next poll, or ``None`` when the deadline has passed."""
        left = self._deadline - self._clock.monotonic()
        if left <= 0:
            return None
        wait = self._rng.uniform(self._delay / 2, self._delay)
        if next_expiry_in is not None:
            # Jittered: waiters that all woke at one instant would collide.
            wait = min(wait, max(next_expiry_in, 0.0) + self._rng.uniform(0.001, self._delay / 2))
        self._delay = min(self._delay * 2, self.MAXIMUM)
        return min(wait, left)
