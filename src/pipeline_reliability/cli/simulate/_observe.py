"""What the simulation saw, collected from every instance thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Observations", "PhaseDateStats", "Published"]


@dataclass(frozen=True, slots=True)
class Published:
    """One trigger publish that succeeded."""

    trigger_id: str
    reason: str
    attempt: int
    completed: frozenset[str]
    tick: int


@dataclass
class PhaseDateStats:
    """
    Counters of one (phase, date). Only values that do not depend on thread
    interleaving go into the report; the others feed the invariants.
    """

    deliveries: int = 0
    counted: int = 0
    duplicates: int = 0
    reruns: int = 0
    ignored: int = 0
    degraded: int = 0
    raised: int = 0
    replayed: int = 0
    publish_attempts: int = 0
    publish_failures: int = 0
    publish_crashes: int = 0
    published: list[Published] = field(default_factory=list)
    rows_planted: int = 0
    rows_dropped: int = 0
    calls: int = 0
    leases: int = 0
    contended: int = 0
    fail_closed: int = 0
    stale_rejected: int = 0
    stale_accepted: int = 0
    lost_releases: int = 0
    trigger_tick: int | None = None
    accepted: set[str] = field(default_factory=set)
    degraded_processors: set[str] = field(default_factory=set)


class Observations:
    """Thread-safe collection of per-(phase, date) counters and violations."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[tuple[str, str], PhaseDateStats] = {}
        self.violations: list[str] = []
        self.breaker_transitions = 0
        self.breaker_events: list[Any] = []
        self.race_winners: dict[tuple[str, str, str], int] = {}
        self.race_unheld: dict[tuple[str, str, str], int] = {}

    @contextmanager
    def edit(self, phase: str, date: str) -> Iterator[PhaseDateStats]:
        """Change the counters of (phase, date) under the lock."""
        with self._lock:
            yield self._stats.setdefault((phase, date), PhaseDateStats())

    def stats(self, phase: str, date: str) -> PhaseDateStats:
        """The counters of (phase, date) (read them after the run)."""
        with self._lock:
            return self._stats.setdefault((phase, date), PhaseDateStats())

    def violate(self, message: str) -> None:
        """Record an invariant violation seen while running."""
        with self._lock:
            self.violations.append(message)

    def breaker_event(self, event: Any) -> None:
        """Listener for the breakers' events: count the transitions an instance wrote."""
        with self._lock:
            self.breaker_events.append(event)
            if getattr(event, "local", False) and hasattr(event, "new_state"):
                self.breaker_transitions += 1

    def race(
        self, phase: str, date: str, processor: str, won: bool, nobody_held: bool = False
    ) -> None:
        """
        Count an attempt of a planned lock race: did it get the lease, and if
        not, was that with nobody holding it (contention outlasted its attempts,
        or the store failed: no lease, no work, the message comes back).
        """
        with self._lock:
            key = (phase, date, processor)
            self.race_winners[key] = self.race_winners.get(key, 0) + int(won)
            self.race_unheld[key] = self.race_unheld.get(key, 0) + int(nobody_held)
