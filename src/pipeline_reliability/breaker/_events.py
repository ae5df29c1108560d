"""Typed events delivered to breaker listeners, and the isolating runner."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ._state import BreakerState

__all__ = [
    "BreakerEvent",
    "BreakerListener",
    "RejectionEvent",
    "TransitionEvent",
    "TripReportEvent",
    "notify",
]

logger = logging.getLogger("pipeline_reliability.breaker")


@dataclass(frozen=True, slots=True)
class TransitionEvent:
    """
    The circuit ``name`` moved from ``old_state`` to ``new_state``.

    Attributes:
        name: The breaker's name.
        instance_id: The instance that observed the change (the listener's own).
        old_state: The state this instance believed before.
        new_state: The state now.
        generation: The circuit's generation after the change.
        reason: Why, e.g. ``failure_threshold``, ``failure_rate``,
            ``slow_call_rate``, ``open_quorum``,
            ``reset_timeout_elapsed``, ``probe_lease_expired``,
            ``probe_succeeded``, ``probe_failed``, ``probe_timeout``, ``forced_open``,
            ``forced_close``, ``reset``.
        local: ``True`` when this instance wrote the change (exactly one
            instance fleet-wide sees ``True`` per generation); ``False`` when
            it adopted a change another instance wrote.
        at: The store's time of the change, when known.
    """

    name: str
    instance_id: str
    old_state: BreakerState
    new_state: BreakerState
    generation: int
    reason: str
    local: bool
    at: datetime | None


@dataclass(frozen=True, slots=True)
class RejectionEvent:
    """
    A call was rejected without running.

    ``reason`` is ``open``, ``forced_open``, ``half_open`` (another instance
    holds the probe, or this instance's probe slots are used up) or
    ``store_error`` (``on_store_error="fail_closed"`` while the store fails).
    ``enforced`` is ``False`` in ``mode="observe"``: the call would have been
    rejected, and ran instead.
    """

    name: str
    instance_id: str
    state: BreakerState
    generation: int
    reason: str
    retry_after: timedelta | None
    enforced: bool = True


@dataclass(frozen=True, slots=True)
class TripReportEvent:
    """
    This instance's window tripped and it reported so to the shared circuit
    (``open_quorum > 1``); ``reporters`` instances now count toward the quorum.
    """

    name: str
    instance_id: str
    generation: int
    reporters: int
    quorum: int
    at: datetime


BreakerEvent = TransitionEvent | RejectionEvent | TripReportEvent
BreakerListener = Callable[[BreakerEvent], object]


def notify(listeners: Iterable[BreakerListener], event: BreakerEvent) -> None:
    """Deliver ``event`` to each listener; a failing listener is logged and skipped."""
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            # A listener is an observer: it must never break the call it observes.
            logger.exception(
                "breaker listener %r failed on %s", listener, type(event).__name__,
                extra={"pipeline_reliability": {"breaker": event.name}},
            )
