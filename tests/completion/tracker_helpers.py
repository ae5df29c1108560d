"""Constants and small helpers shared by the tracker tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pipeline_reliability.completion import CompletionResult, CompletionTracker, TriggerEvent
from pipeline_reliability.stores import Outcome, Snapshot
from pipeline_reliability.testing import StoreWrapper

PHASE = "phase3"
DATE = "2026-01-31"
EXPECTED = frozenset(
    {
        "player_game_summary",
        "team_defense_game_summary",
        "team_offense_game_summary",
        "upcoming_player_game_context",
        "upcoming_team_game_context",
    }
)
FIRST, *OTHERS = sorted(EXPECTED)
MakeTracker = Callable[..., CompletionTracker]
R = TypeVar("R")


class Publisher:
    """A publish callable that records events, and fails or runs a hook on demand."""

    def __init__(self) -> None:
        self.events: list[TriggerEvent] = []
        self.fail_with: Exception | None = None
        self.during: Callable[[], None] | None = None

    def __call__(self, event: TriggerEvent) -> None:
        if self.during is not None:
            self.during()
        if self.fail_with is not None:
            raise self.fail_with
        self.events.append(event)


def record_all(
    tracker: CompletionTracker, names: Iterable[str], date: str = DATE, **kw: Any
) -> list[CompletionResult]:
    """Record one successful run of each of ``names`` (sorted); return the results."""
    return [
        tracker.record_completion(PHASE, date, n, execution_id=f"run-{n}", **kw)
        for n in sorted(names)
    ]


class Holding(StoreWrapper):
    """Stops its first transaction after the callback ran, before the commit, until released."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.inside = threading.Event()
        self.release = threading.Event()

    def transact(
        self, collection: str, key: str, fn: Callable[[Snapshot], Outcome[R]],
        *, timeout: float | None = None,
    ) -> R:
        def held(snap: Snapshot) -> Outcome[R]:
            outcome = fn(snap)
            if not self.inside.is_set():
                self.inside.set()
                assert self.release.wait(timeout=60), "test never released the transaction"
            return outcome

        return super().transact(collection, key, held, timeout=timeout)
