"""Typed events delivered to rate-limiter listeners, and the isolating runner."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = [
    "RateChangeEvent",
    "RateLimiterEvent",
    "RateLimiterListener",
    "RateStoreErrorEvent",
    "notify",
]

logger = logging.getLogger("pipeline_reliability.limits")


@dataclass(frozen=True, slots=True)
class RateChangeEvent:
    """
    The rate this instance admits changed.

    Attributes:
        name: The limiter's name.
        instance_id: This instance's id.
        reason: ``throttled`` (a throttling signal here: multiplicative
            decrease), ``fleet_throttled`` (another instance published one),
            ``increased`` (additive increase after a calm ``cooldown``),
            ``share`` (a heartbeat of the shared budget gave this instance a
            new share: members joined or left, or room was made),
            ``store_fallback`` (the shared budget's lease ran out while the
            store failed: this instance fell back to its ``min_rate`` share).
        old_rate: Calls per second admitted before.
        new_rate: Calls per second admitted now.
        fleet_rate: The fleet-wide rate this instance believes in (equal to
            ``new_rate`` without a shared budget).
        members: Live instances sharing the budget (1 without one).
    """

    name: str
    instance_id: str
    reason: str
    old_rate: float
    new_rate: float
    fleet_rate: float
    members: int


@dataclass(frozen=True, slots=True)
class RateStoreErrorEvent:
    """
    The shared budget's heartbeat failed; calls go on at the last known share.

    Attributes:
        name: The limiter's name.
        instance_id: This instance's id.
        error: ``repr`` of the store error.
        rate: The rate this instance keeps admitting meanwhile.
    """

    name: str
    instance_id: str
    error: str
    rate: float


RateLimiterEvent = RateChangeEvent | RateStoreErrorEvent
RateLimiterListener = Callable[[RateLimiterEvent], object]


def notify(listeners: Iterable[RateLimiterListener], event: RateLimiterEvent) -> None:
    """Deliver ``event`` to each listener; a failing listener is logged and skipped."""
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            # A listener observes; it must never break the call it observes.
            logger.exception(
                "rate limiter listener %r failed on %s", listener, type(event).__name__,
                extra={"pipeline_reliability": {"limiter": event.name}},
            )
