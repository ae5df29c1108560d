"""
One simulated processor instance: what a Cloud Run / Cloud Functions
instance of a processor does with one delivery, using the library the way a
user would: a breaker around a downstream call, and a ``ProcessorRun`` (the
fenced date lock, dedup before the upsert) whose completion goes to the
tracker through an in-process publisher.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...breaker import CircuitBreaker
from ...completion import CompletionTracker, TriggerClaim
from ...errors import (
    CircuitOpenError,
    CompletionNotPublishedError,
    LockLostError,
    LockNotAcquiredError,
    PublishFailedError,
    ReliabilityError,
    StaleFenceError,
    StoreError,
)
from ...processor import ProcessorRun
from ...pubsub import CompletionMessage
from ...retry import RetryPolicy
from ...testing import FaultyStore
from ._components import KEY, ORDER_BY, Components
from ._observe import Observations, Published
from ._plan import Delivery, Planner, Row

__all__ = ["DownstreamError", "FollowUp", "Instance", "Resume", "TriggerDesk"]

#: Ticks after which Pub/Sub redelivers a nacked message.
NACK_DELAY = 2


class DownstreamError(Exception):
    """The flaky downstream service failed a call."""


@dataclass(frozen=True, slots=True)
class Resume:
    """A paused lock holder wakes up and tries to finish its write."""

    delivery: Delivery
    instance: int
    run: ProcessorRun
    rows: tuple[Row, ...]


FollowUp = tuple[int, Delivery | Resume]

#: The completion is handed to the tracker in process, once: a failure nacks
#: the delivery and Pub/Sub delivers it again (no retry inside the run).
_ONCE = RetryPolicy(attempts=1)


class TriggerDesk:
    """
    Publishes trigger claims for every instance and the scheduler: numbers the
    attempts per (phase, date), applies the planned publish failures, checks
    that nothing triggers before every expected processor reported, and
    confirms or releases the claim.
    """

    def __init__(
        self, planner: Planner, obs: Observations, expected: dict[str, frozenset[str]],
        publish: Callable[[Any], None] | None,
    ) -> None:
        self.planner = planner
        self.obs = obs
        self.expected = expected
        self.publish = publish
        self._lock = threading.Lock()
        self._attempts: dict[tuple[str, str], int] = {}
        self.submitted: dict[tuple[str, str], set[str]] = {}

    def submitted_before(self, phase: str, date: str, processor: str) -> None:
        """Note that ``processor`` reported for (phase, date) (before the tracker is called)."""
        with self._lock:
            self.submitted.setdefault((phase, date), set()).add(processor)

    def handle(self, tracker: CompletionTracker, claim: TriggerClaim, tick: int) -> bool:
        """Publish ``claim``'s event (or fail as planned); return whether it was published."""
        key = (claim.phase, claim.date)
        with self._lock:
            attempt = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempt
            reported = set(self.submitted.get(key, set()))
        fate = self.planner.publish_fails(claim.phase, claim.date, attempt)
        with self.obs.edit(*key) as stats:
            stats.publish_attempts += 1
            if fate == "crash":
                # The instance dies holding the claim: no confirm, no release.
                # Its lease expires and the sweep takes the trigger over.
                stats.publish_crashes += 1
                return False
            if fate == "fail":
                stats.publish_failures += 1
        if fate == "fail":
            tracker.release_trigger(claim, PublishFailedError("injected publish failure"))
            return False
        missing = self.expected[claim.phase] - reported
        if missing:
            self.obs.violate(
                f"{claim.phase} {claim.date}: triggered before {sorted(missing)} reported"
            )
        event = claim.event()
        if self.publish is not None:
            try:
                self.publish(event)
            except Exception as exc:
                # Not a planned failure: free the claim for the sweep, then report it.
                tracker.release_trigger(claim, exc)
                raise
        with self.obs.edit(*key) as stats:
            stats.published.append(
                Published(claim.trigger_id, claim.reason, attempt, claim.completed, tick)
            )
            if stats.trigger_tick is None:
                stats.trigger_tick = tick
        tracker.confirm_trigger(claim)
        return True


class Instance:
    """One processor instance (a thread runs it for one tick at a time)."""

    def __init__(
        self, index: int, components: Components, planner: Planner, obs: Observations,
        desk: TriggerDesk,
    ) -> None:
        self.index = index
        self.owner = f"instance-{index}"
        self.c = components
        self.planner = planner
        self.obs = obs
        self.desk = desk
        self.store: FaultyStore = components.instance_store(components.store, index)
        self.tracker = components.make_tracker(self.store, self.owner)
        self.breaker: CircuitBreaker = components.make_breaker(self.owner)
        self.race_barriers: dict[tuple[str, str, str], threading.Barrier] = {}

    def handle(self, tick: int, item: Delivery | Resume) -> list[FollowUp]:
        """Process one delivery (or resume a paused holder); return what to schedule."""
        try:
            if isinstance(item, Resume):
                self._resume(item)
                return []
            return self._deliver(tick, item)
        except ReliabilityError as exc:
            self.obs.violate(f"{self.owner} tick {tick}: unexpected {type(exc).__name__}: {exc}")
            return []

    # -- one delivery ------------------------------------------------------------------------

    def _deliver(self, tick: int, d: Delivery) -> list[FollowUp]:
        if not d.race:
            return self._process(tick, d)
        try:
            return self._process(tick, d)
        finally:
            # The loser waits for the winner to finish, so that the next copy
            # of this message on the loser's instance never meets the
            # winner's lease: only the planned race contends.
            self._rendezvous(d)

    def _rendezvous(self, d: Delivery) -> None:
        barrier = self.race_barriers.get((d.phase, d.date, d.processor))
        if barrier is None:
            return
        try:
            barrier.wait(timeout=30)
        except threading.BrokenBarrierError:
            self.obs.violate(f"{d.phase} {d.date} {d.processor}: the lock race stalled")

    def _process(self, tick: int, d: Delivery) -> list[FollowUp]:
        with self.obs.edit(d.phase, d.date) as stats:
            stats.deliveries += 1
            stats.calls += 1
        self.call_downstream(tick)
        follow_ups: list[FollowUp] = []
        if d.kind == "unknown":
            # A misspelled processor: it has no lock or table of ours, it just reports.
            return self._report(self._run(tick, d, follow_ups, locked=False), follow_ups)
        run = self._run(tick, d, follow_ups, locked=True)
        if not self._start(run, d):
            return [(tick + NACK_DELAY, d.redelivered())]
        rows = self._dedup(d)
        if d.pause:
            # The holder stalls (a long GC pause, a frozen VM) past its lease:
            # Pub/Sub redelivers to another instance, which takes the lock
            # with a newer token; the stalled holder wakes up after that.
            redeliver = tick + self.planner.lease_ticks + 1
            resume = Resume(d, self.index, run, rows)
            return [(redeliver, d.redelivered()), (redeliver + 1, resume)]
        assert run.fence is not None  # a locked run that started holds a lease
        try:
            self.c.table.upsert(rows, fence=run.fence.token, fence_key=(run.fence.lease.name,
                                                                        d.date))
        except (StaleFenceError, LockLostError) as exc:
            self.obs.violate(f"{d.phase} {d.date} {d.processor}: live holder fenced out: {exc}")
            run.__exit__(type(exc), exc, exc.__traceback__)
            return []
        return self._report(run, follow_ups, started=True)

    def _run(
        self, tick: int, d: Delivery, follow_ups: list[FollowUp], *, locked: bool
    ) -> ProcessorRun:
        """The processor's run of ``d``; its completion is recorded by the tracker."""

        def publish(message: CompletionMessage) -> None:
            try:
                follow_ups.extend(self._record(tick, d, message))
            except StoreError:
                # Raising is allowed (F2: recorded, degraded, or raised): the
                # message is nacked and Pub/Sub delivers it again.
                follow_ups.append((tick + 1, d.redelivered()))
                raise

        lock = (self.c.make_lock(self.store, f"{d.phase}.{d.processor}", d.date, self.owner)
                if locked else None)
        run = ProcessorRun(d.processor, d.date, phase=d.phase, publisher=publish, lock=lock,
                           execution_id=d.execution_id, owner=self.owner, clock=self.c.clock,
                           publish_retry=_ONCE)
        run.record_count = self.planner.config.rows
        return run

    def _report(
        self, run: ProcessorRun, follow_ups: list[FollowUp], *, started: bool = False
    ) -> list[FollowUp]:
        """End ``run`` (publishing its completion); a failed report is delivered again."""
        try:
            if not started:
                run.__enter__()
            run.__exit__(None, None, None)
        except CompletionNotPublishedError:
            if not follow_ups:  # not the tracker's store failing: a real defect
                raise
            return follow_ups  # nacked: delivered again
        except LockLostError as exc:
            self.obs.violate(f"{run.phase} {run.date} {run.processor}: live holder lost: {exc}")
        return follow_ups

    def call_downstream(self, tick: int | None) -> None:
        """Call the flaky downstream through the shared breaker (``None``: a healthy call)."""

        def downstream() -> None:
            if tick is not None and self.planner.downstream_down(tick):
                raise DownstreamError("the stats API is down")

        # The enrichment is optional: a failing or rejected call is tolerated.
        with contextlib.suppress(CircuitOpenError, DownstreamError):
            self.breaker.call(downstream)

    def _start(self, run: ProcessorRun, d: Delivery) -> bool:
        """Start ``run`` (take its date lock); whether this instance got the lease."""
        started = nobody_held = False
        try:
            run.__enter__()
            started = True
        except LockNotAcquiredError as exc:
            # Held by the other instance, or contention that outlasted the
            # run's attempts (on Firestore overlapping acquires can both
            # abort): either way no lease, no work, the message comes back.
            nobody_held = exc.holder is None
            with self.obs.edit(d.phase, d.date) as stats:
                stats.contended += 1
        except StoreError:
            # Fail closed: no lock, no work (production proceeded without one).
            nobody_held = True
            with self.obs.edit(d.phase, d.date) as stats:
                stats.fail_closed += 1
        if d.race:
            self.obs.race(d.phase, d.date, d.processor, started, nobody_held)
            # Both racers attempt before either goes on, so the winner still
            # holds the lease when the loser tries: exactly one must get it.
            self._rendezvous(d)
        if started:
            with self.obs.edit(d.phase, d.date) as stats:
                stats.leases += 1
        return started

    def _dedup(self, d: Delivery) -> tuple[Row, ...]:
        rows, planted = self.planner.rows(d, self.c.clock.now())
        result = self.c.dedup(rows, key=KEY, order_by=ORDER_BY, keep="last")
        kept = tuple(result.rows)
        keys = [tuple(r[k] for k in KEY) for r in kept]
        if len(set(keys)) != len(keys):
            self.obs.violate(f"{d.phase} {d.date} {d.processor}: dedup kept duplicate keys")
        with self.obs.edit(d.phase, d.date) as stats:
            stats.rows_planted += planted
            stats.rows_dropped += int(result.dropped)
        return kept

    def _resume(self, r: Resume) -> None:
        d, run = r.delivery, r.run
        assert run.fence is not None
        # The stalled holder still has its old token: the fence must refuse it.
        token = run.fence.lease.token
        try:
            self.c.table.upsert(r.rows, fence=token, fence_key=(run.fence.lease.name, d.date))
        except StaleFenceError as exc:
            with self.obs.edit(d.phase, d.date) as stats:
                stats.stale_rejected += 1
            outcome: BaseException | None = exc
        else:
            with self.obs.edit(d.phase, d.date) as stats:
                stats.stale_accepted += 1
            outcome = None
        # A superseded run that wrote anyway raises LockLostError instead of
        # reporting (counted below).
        with contextlib.suppress(LockLostError):
            run.__exit__(None if outcome is None else type(outcome), outcome, None)
        # A holder that lost its lease does not report: the instance that took
        # over already did. Its release is refused.
        if run.completion is None and run.fence.lease.lost:
            with self.obs.edit(d.phase, d.date) as stats:
                stats.lost_releases += 1

    # -- the completion ----------------------------------------------------------------------

    def _record(self, tick: int, d: Delivery, message: CompletionMessage) -> list[FollowUp]:
        """The orchestrator's side of a completion message (Pub/Sub is in process here)."""
        self.desk.submitted_before(d.phase, d.date, d.processor)
        outage = self.store.outage() if self.planner.store_down(tick) else contextlib.nullcontext()
        kwargs = {**message.completion_kwargs(), "message_id": d.message_id}
        try:
            with outage:
                result = self.tracker.record_completion(d.phase, **kwargs)
        except StoreError:
            with self.obs.edit(d.phase, d.date) as stats:
                stats.raised += 1
            raise
        with self.obs.edit(d.phase, d.date) as stats:
            stats.counted += int(result.counted)
            stats.duplicates += int(result.duplicate)
            stats.ignored += int(result.ignored)
            stats.reruns += int(result.updated and not result.counted)
            if result.degraded:
                stats.degraded += 1
                stats.degraded_processors.add(d.processor)
            elif not result.ignored:
                stats.accepted.add(d.processor)
        if result.trigger is not None:
            # A failed publish releases the claim (or a crash leaves it to
            # expire); the scheduler's sweep then re-claims the trigger.
            self.desk.handle(self.tracker, result.trigger, tick)
        return []
