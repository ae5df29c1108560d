"""
One simulated processor instance: what a Cloud Run / Cloud Functions
instance of a processor does with one delivery, using the library the way a
user would (breaker around a downstream call, a fenced date lock around the
write, dedup before the upsert, the tracker after it).
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
    LockLostError,
    LockNotAcquiredError,
    PublishFailedError,
    ReliabilityError,
    StaleFenceError,
    StoreError,
)
from ...lock import DateLock, Lease
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
    lock: DateLock
    lease: Lease
    rows: tuple[Row, ...]


FollowUp = tuple[int, Delivery | Resume]


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
        if d.kind == "unknown":
            # A misspelled processor: it has no lock or table of ours, it just reports.
            return self._record(tick, d)
        lock = self.c.make_lock(self.store, f"{d.phase}.{d.processor}", d.date, self.owner)
        lease = self._acquire(lock, d)
        if lease is None:
            return [(tick + NACK_DELAY, d.redelivered())]
        rows = self._dedup(d)
        if d.pause:
            # The holder stalls (a long GC pause, a frozen VM) past its lease:
            # Pub/Sub redelivers to another instance, which takes the lock
            # with a newer token; the stalled holder wakes up after that.
            redeliver = tick + self.planner.lease_ticks + 1
            resume = Resume(d, self.index, lock, lease, rows)
            return [(redeliver, d.redelivered()), (redeliver + 1, resume)]
        try:
            self.c.table.upsert(rows, fence=lease.token, fence_key=(lock.name, d.date))
        except StaleFenceError as exc:
            self.obs.violate(f"{d.phase} {d.date} {d.processor}: live holder fenced out: {exc}")
        try:
            lock.release()
        except LockLostError as exc:
            self.obs.violate(f"{d.phase} {d.date} {d.processor}: live holder lost: {exc}")
        return self._record(tick, d)

    def call_downstream(self, tick: int | None) -> None:
        """Call the flaky downstream through the shared breaker (``None``: a healthy call)."""

        def downstream() -> None:
            if tick is not None and self.planner.downstream_down(tick):
                raise DownstreamError("the stats API is down")

        # The enrichment is optional: a failing or rejected call is tolerated.
        with contextlib.suppress(CircuitOpenError, DownstreamError):
            self.breaker.call(downstream)

    def _acquire(self, lock: DateLock, d: Delivery) -> Lease | None:
        lease: Lease | None = None
        store_error = False
        try:
            lease = lock.acquire(blocking=False)
        except LockNotAcquiredError:
            with self.obs.edit(d.phase, d.date) as stats:
                stats.contended += 1
        except StoreError:
            # Fail closed: no lock, no work (production proceeded without one).
            # On Firestore two overlapping acquires can both abort (lock
            # timeouts) until their attempts run out: then nobody wins, and
            # the nacked message is delivered again.
            store_error = True
            with self.obs.edit(d.phase, d.date) as stats:
                stats.fail_closed += 1
        if d.race:
            self.obs.race(d.phase, d.date, d.processor, lease is not None, store_error)
            # Both racers attempt before either goes on, so the winner still
            # holds the lease when the loser tries: exactly one must get it.
            self._rendezvous(d)
        if lease is not None:
            with self.obs.edit(d.phase, d.date) as stats:
                stats.leases += 1
        return lease

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
        d = r.delivery
        try:
            self.c.table.upsert(r.rows, fence=r.lease.token, fence_key=(r.lock.name, d.date))
        except StaleFenceError:
            with self.obs.edit(d.phase, d.date) as stats:
                stats.stale_rejected += 1
        else:
            with self.obs.edit(d.phase, d.date) as stats:
                stats.stale_accepted += 1
        try:
            r.lock.release()
        except LockLostError:
            with self.obs.edit(d.phase, d.date) as stats:
                stats.lost_releases += 1
        # A holder that lost its lease does not report success: the instance
        # that took over already did.

    # -- the completion ----------------------------------------------------------------------

    def _record(self, tick: int, d: Delivery) -> list[FollowUp]:
        self.desk.submitted_before(d.phase, d.date, d.processor)
        outage = self.store.outage() if self.planner.store_down(tick) else contextlib.nullcontext()
        try:
            with outage:
                result = self.tracker.record_completion(
                    d.phase, d.date, d.processor, execution_id=d.execution_id,
                    message_id=d.message_id, record_count=self.planner.config.rows,
                )
        except StoreError:
            # Raising is allowed (F2: recorded, degraded, or raised): the
            # message is nacked and Pub/Sub delivers it again.
            with self.obs.edit(d.phase, d.date) as stats:
                stats.raised += 1
            return [(tick + 1, d.redelivered())]
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
