"""
The chaos plan: which message is delivered when, to which instance, and what
goes wrong around it.

Every decision comes from a ``random.Random`` seeded with the run's seed and
the decision's own coordinates (phase, date, processor, tick, attempt), never
from thread timing or the order in which threads ask. That is what makes two
runs with one seed print the same report although the instances really run
in parallel.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ._config import PHASE3, PHASE3_PROCESSORS, PHASE4, PHASE4_PROCESSORS, SimulationConfig

__all__ = ["PHASES", "Delivery", "Planner", "Row", "rng"]

PHASES: dict[str, tuple[str, ...]] = {PHASE3: PHASE3_PROCESSORS, PHASE4: PHASE4_PROCESSORS}
Row = dict[str, object]


def rng(seed: int, *coordinates: object) -> random.Random:
    """A RNG for one decision: seeded by the run's seed and the decision's coordinates."""
    # A string seed is hashed with SHA-512 by random.seed: stable across
    # processes and independent of PYTHONHASHSEED.
    return random.Random(":".join([str(seed), *map(str, coordinates)]))


@dataclass(frozen=True, slots=True)
class Delivery:
    """
    One Pub/Sub delivery of a completion message to a processor instance.

    Attributes:
        phase: The phase the processor belongs to.
        date: The date it processes.
        processor: The processor's name (a misspelled one for ``unknown``).
        execution_id: The run; a re-run has a new one.
        message_id: The Pub/Sub message id; a redelivery keeps it.
        kind: ``first``, ``duplicate``, ``rerun``, ``unknown`` or ``redelivery``.
        race: This copy races another copy for the date's lock in the same tick.
        pause: The instance pauses past its lease after acquiring the lock.
    """

    phase: str
    date: str
    processor: str
    execution_id: str
    message_id: str
    kind: str
    race: bool = False
    pause: bool = False

    def redelivered(self) -> Delivery:
        """The same message delivered again (after a nack or an expired ack deadline)."""
        return replace(self, kind="redelivery", race=False, pause=False)


class Planner:
    """The deterministic chaos plan of one run."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.chaos = config.chaos_profile
        self.seed = config.seed
        self.dates = config.date_list
        combos = [(phase, date, p) for phase, procs in PHASES.items()
                  for date in self.dates for p in procs]
        pick = rng(self.seed, "scenarios")
        races = self.chaos.lock_races if config.workers >= 2 else 0
        chosen = pick.sample(combos, min(len(combos), races + self.chaos.stale_holders))
        self.races = frozenset(chosen[:races])
        self.stale = frozenset(chosen[races:])
        timing = config.timing
        # Pub/Sub redelivers an unacknowledged message after its ack deadline:
        # by then the paused holder's lease must have expired.
        self.lease_ticks = math.ceil(timing.lock_ttl / timing.tick)
        outage = rng(self.seed, "outage")
        self.outage = _window(outage.randint(2, 4), self.chaos.outage_ticks)
        downstream = rng(self.seed, "downstream")
        self.downstream_outage = _window(
            downstream.randint(1, 3), self.chaos.downstream_outage_ticks
        )

    def phase_start(self, date: str) -> int:
        """The tick at which phase 3 of ``date`` starts (dates are staggered)."""
        return self.dates.index(date)

    def deliveries(self, phase: str, date: str, start: int) -> list[tuple[int, Delivery]]:
        """Every planned delivery of ``phase`` for ``date``; the phase starts at ``start``."""
        out: list[tuple[int, Delivery]] = []
        for processor in PHASES[phase]:
            out.extend(self._processor(phase, date, processor, start))
        odd = rng(self.seed, phase, date, "unknown")
        if odd.random() < self.chaos.unknown_name:
            name = _misspell(odd.choice(PHASES[phase]), odd)
            ident = f"{name}-{date}-r1"
            out.append((start + odd.randint(0, 4),
                        Delivery(phase, date, name, ident, f"m-{phase}-{ident}", "unknown")))
        return out

    def _processor(
        self, phase: str, date: str, processor: str, start: int
    ) -> Iterable[tuple[int, Delivery]]:
        r = rng(self.seed, phase, date, processor)
        first = Delivery(phase, date, processor, f"{processor}-{date}-r1",
                         f"m-{phase}-{processor}-{date}-1", "first")
        tick = start + r.randint(0, 2)
        if r.random() < self.chaos.late:
            tick += r.randint(3, 5)
        combo = (phase, date, processor)
        if combo in self.races:
            # Two instances get the same message at once and race for the lock.
            yield tick, replace(first, race=True)
            yield tick, replace(first, kind="duplicate", race=True)
        elif combo in self.stale:
            yield tick, replace(first, pause=True)
        else:
            yield tick, first
        if r.random() < self.chaos.duplicate:
            same = r.random() < self.chaos.same_tick_duplicate
            yield tick + (0 if same else r.randint(1, 3)), replace(first, kind="duplicate")
        if r.random() < self.chaos.rerun:
            rerun = Delivery(phase, date, processor, f"{processor}-{date}-r2",
                             f"m-{phase}-{processor}-{date}-2", "rerun")
            yield tick + r.randint(6, 9), rerun

    def worker_for(self, tick: int, delivery: Delivery, second: bool = False) -> int:
        """
        The instance that gets ``delivery`` in ``tick``.

        All copies of one (phase, date, processor) in a tick go to one
        instance, so only the planned races contend for a lock; the second
        copy of a race goes to the next instance.
        """
        workers = self.config.workers
        w = rng(self.seed, tick, delivery.phase, delivery.date, delivery.processor).randrange(
            workers
        )
        return (w + 1) % workers if second else w

    def order(self, tick: int, worker: int, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """The order in which an instance handles its deliveries of a tick (races first)."""
        # Races come first and in one global order, so two instances that
        # share two races meet at the same one first (no barrier deadlock).
        races = sorted((d for d in deliveries if d.race), key=_sort_key)
        others = sorted((d for d in deliveries if not d.race), key=_sort_key)
        rng(self.seed, "order", tick, worker).shuffle(others)
        return races + others

    def store_down(self, tick: int) -> bool:
        """Whether the Firestore outage window covers ``tick``."""
        return tick in self.outage

    def downstream_down(self, tick: int) -> bool:
        """Whether the flaky downstream fails every call in ``tick``."""
        return tick in self.downstream_outage

    def publish_fails(self, phase: str, date: str, attempt: int) -> str | None:
        """
        ``"fail"``, ``"crash"`` or ``None`` for the ``attempt``-th publish of a trigger.

        Only the first attempt fails: who makes the second one (a redelivery
        in the same tick, or the sweep after it) depends on thread timing,
        so a failure there would make the report depend on it too.
        """
        if attempt > 1:
            return None
        r = rng(self.seed, "publish", phase, date, attempt)
        roll = r.random()
        if roll < self.chaos.publish_crash:
            return "crash"
        if roll < self.chaos.publish_crash + self.chaos.publish_failure:
            return "fail"
        return None

    def rows(self, delivery: Delivery, processed_at: datetime) -> tuple[list[Row], int]:
        """
        The rows a processor run writes, with planted duplicate keys, and how
        many duplicates were planted. Later copies carry a later
        ``processed_at`` and win.
        """
        # How many duplicates are planted depends on (phase, date) only, so
        # the report does not depend on which copy of a message ran where.
        count = rng(self.seed, "planted", delivery.phase, delivery.date)
        share = self.chaos.duplicate_rows
        planted = sum(1 for _ in range(self.config.rows) if count.random() < share)
        r = rng(self.seed, "rows", delivery.phase, delivery.date, delivery.processor)
        rows: list[Row] = [
            {"game_date": delivery.date, "processor": delivery.processor, "entity_id": f"e{i:03d}",
             "value": round(r.random(), 6), "processed_at": processed_at,
             "execution_id": delivery.execution_id}
            for i in range(self.config.rows)
        ]
        for i in range(planted):
            copy = dict(rows[i])
            copy["value"] = round(r.random(), 6)
            copy["processed_at"] = processed_at + timedelta(milliseconds=i + 1)
            rows.append(copy)
        return rows, planted


def _sort_key(d: Delivery) -> tuple[str, str, str, str, str]:
    return (d.phase, d.date, d.processor, d.kind, d.message_id)


def _window(start: int, length: int) -> range:
    return range(start, start + length) if length > 0 else range(0)


def _misspell(name: str, r: random.Random) -> str:
    # Drop one letter: "player_game_sumary" is exactly the kind of name that
    # counted toward completeness in production (DESIGN F4).
    letters = [i for i, c in enumerate(name) if c.isalpha()]
    i = r.choice(letters[1:])
    return name[:i] + name[i + 1 :]
