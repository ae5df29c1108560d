"""Typed events of a concurrency limit, their listeners, and its OTel counters."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .._telemetry import counter
from .._validate import describe
from ..errors import InvalidInputError

__all__ = ["SlotEvent", "SlotEventKind", "SlotListener", "Telemetry"]

logger = logging.getLogger("pipeline_reliability.limits")

SlotEventKind = Literal["acquired", "released", "timeout", "lost", "bypassed"]


@dataclass(frozen=True, slots=True)
class SlotEvent:
    """
    Something happened to a slot of a concurrency limit.

    Attributes:
        kind: ``acquired``; ``released``; ``timeout`` (no slot before the
            timeout: the caller gets ``SlotNotAcquiredError``); ``lost`` (a
            renewal, check or release found the slot's lease over);
            ``bypassed`` (the store failed and ``on_store_error="fail_open"``
            let the caller run without a slot).
        name: The limit's name.
        owner: The limit object's owner id.
        slot_id: The slot's random id (``None`` for ``timeout``).
        holders: Live holders seen by the operation (``None`` when unknown).
        waited: Seconds the caller waited for its slot (``acquired``,
            ``timeout``, ``bypassed``), else ``None``.
        reason: Detail for ``lost``, ``timeout`` and ``bypassed``.
        at: The store's time of the operation, when known.
    """

    kind: SlotEventKind
    name: str
    owner: str
    slot_id: str | None
    holders: int | None = None
    waited: float | None = None
    reason: str | None = None
    at: datetime | None = None


SlotListener = Callable[[SlotEvent], object]


class Telemetry:
    """One limit's listeners and counters (thread-safe; listeners are isolated)."""

    def __init__(self, name: str) -> None:
        self._attrs = {"limit.name": name}
        self._listeners: tuple[SlotListener, ...] = ()
        self._lock = threading.Lock()
        self._counters = {
            "acquired": counter("limits.slots_acquired", "Concurrency-limit slots granted"),
            "released": counter("limits.slots_released", "Concurrency-limit slots released"),
            "timeout": counter("limits.slot_timeouts", "Slot requests that timed out"),
            "lost": counter("limits.slots_lost", "Slots whose lease was found over"),
            "bypassed": counter("limits.bypassed", "Calls run without a slot (fail_open)"),
        }
        self._polls = counter("limits.wait_polls", "Polls of waiters for a concurrency slot")
        self._errors = counter("limits.store_errors", "Concurrency-limit store failures")

    def add(self, listener: SlotListener) -> None:
        if not callable(listener):
            raise InvalidInputError(f"a listener must be callable, got {describe(listener)}")
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove(self, listener: SlotListener) -> None:
        with self._lock:
            # Equality, not identity: `obj.method` is a new bound method at each access.
            self._listeners = tuple(x for x in self._listeners if x != listener)

    def poll(self) -> None:
        self._polls.add(1, self._attrs)

    def store_error(self, operation: str) -> None:
        self._errors.add(1, {**self._attrs, "operation": operation})

    def emit(self, event: SlotEvent) -> None:
        """Count the event and deliver it; a failing listener is logged and skipped."""
        self._counters[event.kind].add(1, self._attrs)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                # A listener is an observer: it must never break the call it observes.
                logger.exception(
                    "concurrency-limit listener %r failed on %s",
                    listener,
                    event.kind,
                    extra={"pipeline_reliability": {"limit": event.name}},
                )
