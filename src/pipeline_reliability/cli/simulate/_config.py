"""The simulation's configuration and its chaos levels."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Literal

from ..._validate import duration_seconds
from ...errors import ConfigurationError

__all__ = [
    "CHAOS_LEVELS",
    "PHASE3",
    "PHASE3_PROCESSORS",
    "PHASE4",
    "PHASE4_PROCESSORS",
    "Chaos",
    "ChaosLevel",
    "SimulationConfig",
    "Timing",
]

ChaosLevel = Literal["none", "low", "medium", "high"]

PHASE3 = "phase3"
PHASE4 = "phase4"
# The production pipeline's expected sets (PRODUCTION-SHAPES §2.2).
PHASE3_PROCESSORS = (
    "player_game_summary",
    "team_defense_game_summary",
    "team_offense_game_summary",
    "upcoming_player_game_context",
    "upcoming_team_game_context",
)
PHASE4_PROCESSORS = (
    "team_defense_zone_analysis",
    "player_shot_zone_analysis",
    "player_composite_factors",
    "player_daily_cache",
    "ml_feature_store",
)


@dataclass(frozen=True, slots=True)
class Chaos:
    """
    How much goes wrong, as probabilities per (phase, date, processor) and
    as windows of ticks. Every decision is drawn from a RNG seeded by the run's
    seed and the decision's own coordinates, never from thread timing.

    Attributes:
        duplicate: A message is delivered a second time (same message id).
        same_tick_duplicate: Of those, the copy arrives in the same tick.
        late: The first delivery is held back a few ticks (out of order).
        rerun: The processor is re-run later with a new execution id.
        unknown_name: A misspelled processor reports for the date.
        publish_failure: A trigger publish attempt fails.
        publish_crash: The instance dies between claiming and publishing.
        outage_ticks: Length of the Firestore outage window (0: none).
        downstream_outage_ticks: Length of the flaky downstream's outage.
        lock_races: Dates on which two instances race for one lock.
        stale_holders: Dates on which a lock holder pauses past its lease.
        duplicate_rows: Fraction of output rows repeated with another timestamp.
    """

    duplicate: float = 0.0
    same_tick_duplicate: float = 0.0
    late: float = 0.0
    rerun: float = 0.0
    unknown_name: float = 0.0
    publish_failure: float = 0.0
    publish_crash: float = 0.0
    outage_ticks: int = 0
    downstream_outage_ticks: int = 0
    lock_races: int = 0
    stale_holders: int = 0
    duplicate_rows: float = 0.0


CHAOS_LEVELS: dict[str, Chaos] = {
    "none": Chaos(),
    "low": Chaos(
        duplicate=0.2, same_tick_duplicate=0.3, late=0.1, rerun=0.05, unknown_name=0.1,
        publish_failure=0.2, outage_ticks=1, downstream_outage_ticks=3, lock_races=1,
        stale_holders=1, duplicate_rows=0.05,
    ),
    "medium": Chaos(
        duplicate=0.4, same_tick_duplicate=0.4, late=0.25, rerun=0.1, unknown_name=0.25,
        publish_failure=0.35, publish_crash=0.1, outage_ticks=2, downstream_outage_ticks=4,
        lock_races=2, stale_holders=2, duplicate_rows=0.1,
    ),
    "high": Chaos(
        duplicate=0.7, same_tick_duplicate=0.5, late=0.4, rerun=0.25, unknown_name=0.5,
        publish_failure=0.5, publish_crash=0.2, outage_ticks=3, downstream_outage_ticks=6,
        lock_races=4, stale_holders=3, duplicate_rows=0.25,
    ),
}


@dataclass(frozen=True, slots=True)
class Timing:
    """
    Durations of the simulated world, in seconds.

    On the embedded store a fake clock jumps ``tick`` seconds between ticks;
    on the emulators time is real, so the emulator timing is short.
    """

    tick: float = 30.0
    lock_ttl: float = 60.0
    trigger_lease: float = 60.0
    breaker_reset: float = 60.0
    breaker_cache: float = 5.0
    breaker_window: float = 120.0


MEMORY_TIMING = Timing()
EMULATOR_TIMING = Timing(
    tick=1.0, lock_ttl=5.0, trigger_lease=3.0, breaker_reset=2.0, breaker_cache=0.2,
    breaker_window=8.0,
)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """
    One simulated game day.

    Attributes:
        dates: How many consecutive dates, from ``start``.
        workers: How many instances (threads) process deliveries.
        chaos: ``none``, ``low``, ``medium`` or ``high``.
        seed: Same seed, same report.
        start: The first date.
        rows: Output rows per processor run (before planted duplicates).
        emulators: Run against the Firestore/Pub/Sub/BigQuery emulators.
        max_ticks: Give up after this many ticks (the run is then reported
            with the invariants that did not hold).
        connect_timeout: Seconds each emulator named by ``*_EMULATOR_HOST``
            gets to answer the check before the run.
    """

    dates: int = 7
    workers: int = 4
    chaos: ChaosLevel = "medium"
    seed: int = 0
    start: _dt.date = field(default=_dt.date(2026, 1, 25))
    rows: int = 12
    emulators: bool = False
    max_ticks: int = 200
    connect_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not 1 <= self.dates <= 366:
            raise ConfigurationError(f"dates must be within 1..366, got {self.dates}")
        if not 1 <= self.workers <= 64:
            raise ConfigurationError(f"workers must be within 1..64, got {self.workers}")
        if self.chaos not in CHAOS_LEVELS:
            raise ConfigurationError(
                f"chaos must be one of {', '.join(CHAOS_LEVELS)}, got {self.chaos!r}"
            )
        duration_seconds(self.connect_timeout, "connect_timeout")
        if not 1 <= self.rows <= 10_000:
            raise ConfigurationError(f"rows must be within 1..10000, got {self.rows}")

    @property
    def chaos_profile(self) -> Chaos:
        """The probabilities and windows of ``chaos``."""
        return CHAOS_LEVELS[self.chaos]

    @property
    def timing(self) -> Timing:
        """Durations for the store in use."""
        return EMULATOR_TIMING if self.emulators else MEMORY_TIMING

    @property
    def date_list(self) -> list[str]:
        """The simulated dates, ``YYYY-MM-DD``, in order."""
        return [(self.start + _dt.timedelta(days=i)).isoformat() for i in range(self.dates)]
