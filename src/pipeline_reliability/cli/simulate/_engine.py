"""
The game day's clock: ticks in which the instances (threads) work in
parallel, and between ticks the scheduler's jobs (replay of degraded completions,
sweep) and the trigger chain that starts phase 4 of a date once phase 3's
trigger was published.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from ...errors import ReliabilityError
from ...testing import FakeClock
from ._calendar import CalendarRun, run_calendar
from ._components import Components
from ._config import PHASE3, PHASE4, SimulationConfig
from ._instance import FollowUp, Instance, Resume, TriggerDesk
from ._observe import Observations
from ._plan import Delivery, Planner
from ._watching import WatchRun, run_watch

__all__ = ["Progress", "Simulation"]

T = TypeVar("T")

Progress = Callable[[int, int, int], None]  # (tick, items done, items known)
_PHASE_AFTER = {PHASE3: PHASE4}


@dataclass
class _Schedule:
    pending: dict[int, list[Delivery | Resume]] = field(default_factory=lambda: defaultdict(list))
    started: dict[str, dict[str, int]] = field(default_factory=lambda: {PHASE3: {}, PHASE4: {}})
    known: int = 0
    done: int = 0

    def add(self, tick: int, item: Delivery | Resume, *, planned: bool = False) -> None:
        self.pending[tick].append(item)
        if not planned:  # planned deliveries are in ``known`` from the start
            self.known += 1


class Simulation:
    """
    One run: build instances over ``components``, play the plan, and leave
    the observations for the invariants.

    Args:
        config: The run's configuration.
        components: What the instances use (see ``build_components``).
        progress: Called after every tick with (tick, items done, items known).
    """

    def __init__(
        self, config: SimulationConfig, components: Components, progress: Progress | None = None
    ) -> None:
        self.config = config
        self.c = components
        self.progress = progress
        self.planner = Planner(config)
        self.obs = Observations()
        self.expected = {spec.name: spec.expected for spec in components.phases}
        self.desk = TriggerDesk(self.planner, self.obs, self.expected, components.publish)
        self.instances = [
            Instance(i, components, self.planner, self.obs, self.desk)
            for i in range(config.workers)
        ]
        for instance in self.instances:
            instance.breaker.add_listener(self.obs.breaker_event)
        self.scheduler = components.make_tracker(components.store, "scheduler")
        self.schedule = _Schedule()
        self.ticks = 0
        self.final_calls = 0
        # Degraded completions per (phase, date) the scheduler has replayed up to.
        self._replayed_degraded: dict[tuple[str, str], int] = {}
        self.calendar: CalendarRun | None = None
        self.watching: WatchRun | None = None

    @property
    def dates(self) -> dict[str, list[str]]:
        """The dates each phase reached, in order."""
        return {phase: sorted(days) for phase, days in self.schedule.started.items()}

    def run(self) -> None:
        """Play every tick until nothing is pending and every trigger settled."""
        # Every planned delivery of both phases is known before the first tick
        # (phase 4's arrive later), so the progress total grows only by the
        # redeliveries and resumes that failures add.
        self.schedule.known = sum(
            len(self.planner.deliveries(phase, date, 0))
            for phase in (PHASE3, PHASE4) for date in self.planner.dates
        )
        for date in self.planner.dates:
            self._start(PHASE3, date, self.planner.phase_start(date))
        with ThreadPoolExecutor(self.config.workers, thread_name_prefix="instance") as pool:
            for tick in range(self.config.max_ticks):
                self.ticks = tick + 1
                self._tick(pool, tick, self.schedule.pending.pop(tick, []))
                settled = self._between_ticks(tick)
                if self.progress is not None:
                    self.progress(tick, self.schedule.done, self.schedule.known)
                if settled and not self.schedule.pending and tick >= self._last_event():
                    break
                self._advance(self.config.timing.tick)
        self._recover_breakers()
        self.calendar = run_calendar(self)
        self.watching = run_watch(self)

    # -- ticks --------------------------------------------------------------------------------

    def _start(self, phase: str, date: str, start: int) -> None:
        self.schedule.started[phase][date] = start
        for tick, delivery in self.planner.deliveries(phase, date, start):
            self.schedule.add(tick, delivery, planned=True)

    def _tick(
        self, pool: ThreadPoolExecutor, tick: int, items: Sequence[Delivery | Resume]
    ) -> None:
        queues: dict[int, list[Delivery]] = defaultdict(list)
        resumes: dict[int, list[Resume]] = defaultdict(list)
        for item in items:
            if isinstance(item, Resume):
                # The stalled instance itself wakes up (its lock object is its own).
                resumes[item.instance].append(item)
            else:
                second = item.race and item.kind == "duplicate"
                queues[self.planner.worker_for(tick, item, second)].append(item)
        barriers = {
            (d.phase, d.date, d.processor): threading.Barrier(2)
            for d in items if isinstance(d, Delivery) and d.race and d.kind == "duplicate"
        }
        for instance in self.instances:
            instance.race_barriers = barriers
        futures = [
            pool.submit(self._work, tick, instance,
                        [*self.planner.order(tick, instance.index, queues[instance.index]),
                         *resumes[instance.index]])
            for instance in self.instances
        ]
        for future in futures:
            for at, follow in future.result():
                self.schedule.add(max(at, tick + 1), follow)
        self.schedule.done += len(items)

    def _work(
        self, tick: int, instance: Instance, items: Sequence[Delivery | Resume]
    ) -> list[FollowUp]:
        out: list[FollowUp] = []
        for item in items:
            try:
                out.extend(instance.handle(tick, item))
            except Exception as exc:  # noqa: BLE001 - a broken component must show as a violation
                self.obs.violate(f"{instance.owner} tick {tick}: {type(exc).__name__}: {exc}")
        return out

    def _between_ticks(self, tick: int) -> bool:
        """Run the scheduler's jobs; return whether every trigger has settled."""
        if self.planner.store_down(tick):
            return False  # the scheduler's jobs fail like everything else
        # Like a scheduled replay job: whenever completions went to the ledger
        # (the outage, or a store call that ran out of time under load), replay.
        self._replay(tick)
        settled = self._sweep(tick)
        for phase, nxt in _PHASE_AFTER.items():
            for date in self.schedule.started[phase]:
                stats = self.obs.stats(phase, date)
                if stats.trigger_tick is not None and date not in self.schedule.started[nxt]:
                    # The trigger chain: phase 4 starts when phase 3's trigger is out.
                    self._start(nxt, date, tick + 1)
        return settled

    def _replay(self, tick: int) -> None:
        for phase, days in self.schedule.started.items():
            for date in sorted(days):
                degraded = self.obs.stats(phase, date).degraded
                if degraded <= self._replayed_degraded.get((phase, date), 0):
                    continue  # nothing new in the ledger for this date
                replay = functools.partial(self.scheduler.replay_ledger, phase, [date])
                report = self._guard(replay)
                if report is None:
                    continue  # tried again between the next ticks
                self._replayed_degraded[(phase, date)] = degraded
                with self.obs.edit(phase, date) as stats:
                    stats.replayed += report.applied
                for claim in report.claims:
                    self._guard(functools.partial(self.desk.handle, self.scheduler, claim, tick))

    def _sweep(self, tick: int) -> bool:
        settled = True
        for phase, days in self.schedule.started.items():
            if not days:
                continue
            report = self._guard(functools.partial(self.scheduler.sweep, phase, sorted(days)))
            if report is None:
                settled = False
                continue
            for outcome in report.outcomes:
                if outcome.claim is not None:
                    settled = False
                    publish = functools.partial(
                        self.desk.handle, self.scheduler, outcome.claim, tick
                    )
                    self._guard(publish)
                elif outcome.action == "in_flight":
                    settled = False
        return settled

    def _guard(self, job: Callable[[], T]) -> T | None:
        try:
            return job()
        except ReliabilityError as exc:
            self.obs.violate(f"scheduler: {type(exc).__name__}: {exc}")
            return None

    def _last_event(self) -> int:
        outage = self.planner.outage
        return (outage[-1] + 1) if outage else 0

    def _advance(self, seconds: float) -> None:
        if isinstance(self.c.clock, FakeClock):
            self.c.clock.advance(seconds)
        else:
            time.sleep(seconds)  # emulators judge leases by their own (real) time

    def _recover_breakers(self) -> None:
        """After the last tick, let the circuit recover: one healthy call per instance."""
        self._advance(self.config.timing.breaker_reset + self.config.timing.tick)
        for instance in self.instances:
            self.final_calls += 1
            instance.call_downstream(None)
