"""
The library components a simulation runs, built by one replaceable function.

:func:`build_components` (in ``_build``) is the hook that makes the simulation's checks
falsifiable: a test passes its own ``Components`` (a store wrapper that loses
writes, a breaker that writes on every success, a lock that does not fence, a
dedup that keeps duplicates) and ``simulate`` must then report violations.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from ..._clock import Clock
from ...breaker import CircuitBreaker
from ...completion import CompletionLedger, CompletionTracker, MemoryLedger, PhaseSpec
from ...lock import DateLock
from ...retry import RetryPolicy
from ...stores._protocol import StateStore
from ...stores.memory import MemoryStore
from ...testing import FakeClock, FaultyStore
from ._config import PHASE3, PHASE4, SimulationConfig
from ._limited import LimitedTable
from ._plan import PHASES
from ._table import MemoryTable

__all__ = [
    "BREAKER_NAME",
    "KEY",
    "Components",
    "TableSink",
    "common_components",
    "default_phases",
    "memory_components",
]

BREAKER_NAME = "downstream-stats-api"
KEY = ("game_date", "processor", "entity_id")
ORDER_BY = "processed_at"
_START = "2026-01-25T06:00:00+00:00"


class TableSink(Protocol):
    """Where processors write their rows: a fenced, MERGE-like upsert."""

    def upsert(
        self,
        rows: Sequence[Mapping[str, Any]],
        *,
        fence: int | None = None,
        fence_key: Hashable = None,
    ) -> tuple[int, int]:
        """Merge ``rows``; raise ``StaleFenceError`` for a stale ``fence``."""
        ...

    def rows(self) -> list[dict[str, Any]]:
        """Every row of the table."""
        ...


DedupFn = Callable[..., Any]


@dataclass
class Components:
    """
    Everything the simulated instances use.

    Attributes:
        clock: The simulation's time (a ``FakeClock`` on the embedded store).
        store: The shared state store (completion documents, locks).
        breaker_store: The store the breaker instances share (kept apart so
            that its writes can be counted).
        ledger: The fallback ledger of completions the store missed.
        table: The output table.
        phases: The two phases and their expected processors.
        make_tracker: ``(store, owner) -> CompletionTracker`` per instance.
        make_breaker: ``(owner) -> CircuitBreaker`` per instance (all named
            alike, over ``breaker_store``).
        make_lock: ``(store, name, date, owner) -> DateLock``.
        dedup: ``deduplicate_rows``-compatible function.
        instance_store: ``(store, index) -> FaultyStore`` per instance: how
            the outage window is injected.
        publish: Extra publishing of each trigger event (Pub/Sub with
            ``--emulators``), after the simulation's own bookkeeping.
        close: Called once when the run ends.
        description: Where the run's state lives, for the operator (e.g. the
            emulators' addresses and the run's project).
    """

    clock: Clock
    store: StateStore
    breaker_store: StateStore
    ledger: CompletionLedger
    table: TableSink
    phases: tuple[PhaseSpec, ...]
    make_tracker: Callable[[StateStore, str], CompletionTracker]
    make_breaker: Callable[[str], CircuitBreaker]
    make_lock: Callable[[StateStore, str, str, str], DateLock]
    dedup: DedupFn
    instance_store: Callable[[StateStore, int], FaultyStore]
    publish: Callable[[Any], None] | None = None
    close: Callable[[], None] = field(default=lambda: None)
    description: str = "store=embedded (MemoryStore, fake clock; no project)"


def default_phases(config: SimulationConfig) -> tuple[PhaseSpec, ...]:
    """Phase 3 and phase 4 with the production processor sets."""
    lease = timedelta(seconds=config.timing.trigger_lease)
    return (
        PhaseSpec(PHASE3, PHASES[PHASE3], trigger_lease=lease, next_phase=PHASE4),
        PhaseSpec(PHASE4, PHASES[PHASE4], trigger_lease=lease),
    )


def _no_sleep_retry(clock: Clock) -> RetryPolicy:
    # Retries must not move the simulated clock: time advances only between
    # ticks, which is what keeps a seeded run reproducible.
    return RetryPolicy(attempts=3, deadline=None, initial=0.0, maximum=0.0, clock=clock)


def memory_components(config: SimulationConfig) -> Components:
    """Components on the embedded MemoryStore with a fake clock (no cloud, no credentials)."""
    from datetime import datetime

    clock = FakeClock(datetime.fromisoformat(_START))
    return common_components(
        config,
        clock=clock,
        store=MemoryStore(clock=clock, max_attempts=50),
        breaker_store=MemoryStore(clock=clock, max_attempts=50),
        ledger=MemoryLedger(),
        table=MemoryTable(KEY, ORDER_BY),
    )


def common_components(
    config: SimulationConfig,
    *,
    clock: Clock,
    store: StateStore,
    breaker_store: StateStore,
    ledger: CompletionLedger,
    table: TableSink,
    limit_store: StateStore | None = None,
) -> Components:
    """
    Wire trackers, breakers, locks and dedup over the given stores and sinks.

    ``limit_store`` holds the DML limit's document (default ``store``).
    """
    from ...dedup import deduplicate_rows

    timing = config.timing
    phases = default_phases(config)

    def make_tracker(instance_store: StateStore, owner: str) -> CompletionTracker:
        return CompletionTracker(
            instance_store, phases, ledger=ledger, clock=clock, owner=owner,
            retry=_no_sleep_retry(clock),
        )

    def make_breaker(owner: str) -> CircuitBreaker:
        return CircuitBreaker(
            BREAKER_NAME, breaker_store, failure_threshold=3, minimum_calls=3,
            window=timing.breaker_window, reset_timeout=timing.breaker_reset,
            cache_ttl=timing.breaker_cache, clock=clock, instance_id=owner,
        )

    def make_lock(lock_store: StateStore, name: str, date: str, owner: str) -> DateLock:
        return DateLock(lock_store, name, date, ttl=timing.lock_ttl, owner=owner, clock=clock)

    def instance_store(shared: StateStore, index: int) -> FaultyStore:
        return FaultyStore(shared, seed=config.seed + index)

    # The processors' writes go through a fleet-wide ConcurrencyLimit, as a
    # BigQueryWriter(concurrency=...) would: half the workers may write at
    # once, so the limit is reached and must hold (invariant dml_limit_respected).
    limited = LimitedTable(table, limit_store or store, max(1, config.workers // 2))
    return Components(
        clock=clock, store=store, breaker_store=breaker_store, ledger=ledger, table=limited,
        phases=phases, make_tracker=make_tracker, make_breaker=make_breaker,
        make_lock=make_lock, dedup=deduplicate_rows, instance_store=instance_store,
    )

