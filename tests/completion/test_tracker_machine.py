"""
Stateful test of the tracker: random deliveries, duplicates, re-runs, unknown
names, store faults and outages, ledger outages, publish failures, crashed
claim holders, clock jumps, sweeps, replays and reconciles, against the
invariants of DESIGN F1-F5; backfills (``trigger=False``) and operator
re-runs (``rearm_trigger``, issue 11). Each run carries a completion time drawn at
random (runs finish out of order, and at equal instants), and the record kept
for a processor is always its run that finished last (issue 10, item 1).

The checks read the raw documents of the MemoryStore behind the fault
injector and recompute everything from the processor records themselves, so
they do not trust the tracker's own counting.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pipeline_reliability import MemoryStore
from pipeline_reliability.completion import (
    CompletionTracker,
    LedgerRow,
    MemoryExecutionLog,
    MemoryLedger,
    PhaseSpec,
    TriggerClaim,
    TriggerConfirmation,
    TriggerEvent,
)
from pipeline_reliability.errors import (
    CompletionNotRecordedError,
    InvalidInputError,
    PublishFailedError,
    RetryExhaustedError,
    StoreError,
    TriggerClaimLostError,
    WriteFailedError,
)
from pipeline_reliability.retry import RetryPolicy
from pipeline_reliability.testing import FakeClock, Fault, FaultyStore

PHASE = "p3"
DATES = ("2026-01-30", "2026-01-31")
EXPECTED = frozenset({"a", "b", "c"})
SPEC = PhaseSpec(
    PHASE,
    EXPECTED,
    min_to_trigger=2,
    critical={"a"},
    done_empty_statuses={"no_data"},
    deadline=timedelta(hours=2),
    trigger_lease=timedelta(minutes=5),
    next_phase="p4",
)
DONE = SPEC.done_statuses
STORE_DOWN = (StoreError, RetryExhaustedError)
FAULTS = st.none() | st.sampled_from(list(Fault))
T0 = datetime(2026, 1, 31, 12, tzinfo=UTC)
#: Completion times of runs: few distinct values, so ties are frequent; the
#: 1 µs neighbours test both sides of the comparison.
FINISHED = st.sampled_from([-60_000_000, -1, 0, 1, 60_000_000]).map(
    lambda us: T0 + timedelta(microseconds=us)
)


class _Ledger(MemoryLedger):
    down: bool = False

    def append(self, row: LedgerRow) -> None:
        if self.down:
            raise WriteFailedError("ledger table unavailable")
        super().append(row)


@dataclass(frozen=True)
class Delivery:
    """One accepted completion report."""

    date: str
    processor: str
    execution_id: str
    message_id: str
    status: str
    completed_at: datetime

    @property
    def order(self) -> tuple[datetime, str]:
        return (self.completed_at, self.execution_id)


class TrackerMachine(RuleBasedStateMachine):
    """Two tracker instances sharing one faulty store, ledger and execution log."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.inner = MemoryStore(clock=self.clock)
        self.store = FaultyStore(self.inner)
        self.ledger = _Ledger()
        self.log = MemoryExecutionLog()
        retry = RetryPolicy(attempts=3, deadline=None, initial=0.0, maximum=0.0, clock=self.clock)
        self.trackers = [
            CompletionTracker(
                self.store,
                [SPEC],
                self.ledger,
                self.clock,
                execution_log=self.log,
                owner=f"w{i}",
                retry=retry,
            )
            for i in range(2)
        ]
        self.publish_fails = False
        self.outage = False
        self.events: list[TriggerEvent] = []
        self.accepted: list[Delivery] = []
        self.status_of: dict[tuple[str, str, int], str] = {}
        self.finished_at: dict[tuple[str, str, int], datetime] = {}
        self.held: list[TriggerClaim] = []  # claims of "crashed" holders, never published
        self.confirmed: dict[str, int] = {}  # confirmations per trigger_id
        self.rule_met: dict[str, bool] = dict.fromkeys(DATES, False)
        self.rearms: dict[str, int] = dict.fromkeys(DATES, 0)
        self.backfilled: set[str] = set()  # dates settled as skipped by a backfill

    # -- helpers -------------------------------------------------------------

    def publish(self, event: TriggerEvent) -> None:
        if self.publish_fails:
            raise PublishFailedError("injected publish failure")
        self.events.append(event)

    def doc(self, date: str) -> dict[str, Any]:
        return self.inner.dump().get(SPEC.collection, {}).get(date) or {}

    def done(self, date: str) -> set[str]:
        records = self.doc(date).get("processors", {})
        return {p for p, r in records.items() if p in EXPECTED and r["status"] in DONE}

    def rule_holds(self, date: str) -> bool:
        done, meta = self.done(date), self.doc(date).get("meta", {})
        if done == EXPECTED:
            return True
        first: datetime | None = meta.get("first_completion_at")
        overdue = meta.get("deadline_exceeded_at") is not None or (
            first is not None and self.clock.now() >= first + SPEC.deadline
        )
        return overdue and len(done) >= 2 and "a" in done

    def inject(self, fault: Fault | None) -> None:
        # Queued faults are consumed by the next operation; during an outage
        # nothing is consumed, so queue only outside one (none may linger).
        if fault is not None and not self.outage:
            self.store.fail_next(fault)

    def saw(self, confirmations: Any) -> None:
        for c in confirmations:
            if isinstance(c, TriggerConfirmation) and c.newly_confirmed:
                event(f"confirmed ({c.claim.reason}, attempt {min(c.claim.attempt, 3)})")
                tid = c.claim.trigger_id
                self.confirmed[tid] = self.confirmed.get(tid, 0) + 1

    def check_claim(self, claim: TriggerClaim | None) -> None:
        if claim is not None and claim.attempt == 1:
            assert self.rule_holds(claim.date), f"claimed before the rule held: {claim}"

    # -- rules ---------------------------------------------------------------

    @rule(
        who=st.integers(0, 1),
        date=st.sampled_from(DATES),
        processor=st.sampled_from(["a", "b", "c", "x"]),
        run=st.integers(0, 3),
        status=st.sampled_from(["success", "partial", "no_data", "failed"]),
        finished=FINISHED,
        and_trigger=st.booleans(),
        backfill=st.sampled_from([False, False, False, True]),
        fault=FAULTS,
    )
    def deliver(
        self,
        *,
        who: int,
        date: str,
        processor: str,
        run: int,
        status: str,
        finished: datetime,
        and_trigger: bool,
        backfill: bool,
        fault: Fault | None,
    ) -> None:
        """A processor's completion arrives (again, possibly), on one of the instances."""
        status = self.status_of.setdefault((date, processor, run), status)
        finished = self.finished_at.setdefault((date, processor, run), finished)
        d = Delivery(
            date, processor, f"{processor}-{run}", f"m-{date}-{processor}-{run}", status, finished
        )
        self.clock.advance(1)
        self.inject(fault)
        tracker = self.trackers[who]
        args: dict[str, Any] = {
            "execution_id": d.execution_id,
            "message_id": d.message_id,
            "status": d.status,
            "completed_at": d.completed_at,
        }
        try:
            if backfill:
                result = tracker.record_completion(PHASE, date, processor, trigger=False, **args)
                assert result.trigger is None
                if result.trigger_state == "skipped":
                    self.backfilled.add(date)
            elif and_trigger:
                result = tracker.record_and_trigger(
                    PHASE, date, processor, publish=self.publish, **args
                )
                self.saw([result.confirmation])
            else:
                result = tracker.record_completion(PHASE, date, processor, **args)
                if result.trigger is not None:
                    self.held.append(result.trigger)  # this holder "crashes" before publishing
        except PublishFailedError:
            event("publish failed after recording")
            self.accepted.append(d)  # recorded; only the publish failed (and was released)
            return
        except CompletionNotRecordedError:
            event("completion not recorded")
            assert self.ledger.down or backfill  # a backfill never goes to the ledger
            return
        self.accepted.append(d)
        self.check_claim(result.trigger)
        event(
            "degraded"
            if result.degraded
            else "duplicate"
            if result.duplicate
            else "stale"
            if result.stale
            else "recorded"
        )
        if result.degraded:
            assert any(r.execution_id == d.execution_id for r in self.ledger.rows)

    @rule(active=st.booleans())
    def store_outage(self, active: bool) -> None:
        """Firestore goes down, or comes back."""
        self.outage = active
        self.store.set_outage(active)

    @rule(down=st.booleans())
    def ledger_outage(self, down: bool) -> None:
        """The fallback ledger goes down, or comes back."""
        self.ledger.down = down

    @rule(fails=st.booleans())
    def publishing_fails(self, fails: bool) -> None:
        """The trigger topic starts or stops failing."""
        self.publish_fails = fails

    @rule(seconds=st.sampled_from([1, 60, 301, 3600, 7300]))
    def time_passes(self, seconds: int) -> None:
        """The clock jumps (past leases and deadlines, sometimes)."""
        self.clock.advance(seconds)

    @rule(who=st.integers(0, 1), and_trigger=st.booleans(), fault=FAULTS)
    def sweep(self, who: int, and_trigger: bool, fault: Fault | None) -> None:
        """The scheduler sweeps both dates."""
        self.inject(fault)
        tracker = self.trackers[who]
        if and_trigger:
            report = tracker.sweep_and_trigger(PHASE, DATES, self.publish)
            self.saw(report.published)
        else:
            report = tracker.sweep(PHASE, DATES)
            self.held.extend(report.claims)
        for claim in report.claims:
            self.check_claim(claim)

    @rule(who=st.integers(0, 1), fault=FAULTS)
    def replay(self, who: int, fault: Fault | None) -> None:
        """An operator replays the ledger (it may fail while the store is down)."""
        if self.ledger.rows:  # without rows replay makes no store call to take the fault
            self.inject(fault)
        try:
            report = self.trackers[who].replay_and_trigger(PHASE, DATES, self.publish)
        except STORE_DOWN:
            return
        self.saw(report.published)
        for claim in report.claims:
            self.check_claim(claim)

    @rule(
        who=st.integers(0, 1),
        date=st.sampled_from(DATES),
        outputs=st.frozensets(st.sampled_from(sorted(EXPECTED))),
    )
    def reconcile(self, who: int, date: str, outputs: frozenset[str]) -> None:
        """Reconcile against output tables that hold some processors' data."""
        try:
            report = self.trackers[who].reconcile_and_trigger(
                PHASE, date, dict.fromkeys(outputs, True), self.publish
            )
        except (*STORE_DOWN, PublishFailedError):
            return
        self.saw([report.confirmation])
        self.check_claim(report.claim)

    @rule(who=st.integers(0, 1), date=st.sampled_from(DATES), fault=FAULTS)
    def rearm(self, who: int, date: str, fault: Fault | None) -> None:
        """An operator re-runs the next phase for a date (refused unless it is settled)."""
        before = self.doc(date).get("trigger") or {}
        settled = before.get("state") in {"confirmed", "skipped"}
        self.inject(fault)
        try:
            confirmation = self.trackers[who].rearm_and_trigger(
                PHASE, date, "operator re-run", self.publish, by="ops"
            )
        except InvalidInputError:
            assert not settled
            return
        except (*STORE_DOWN, PublishFailedError) as exc:
            event(f"rearm: {type(exc).__name__}")
            after = self.doc(date).get("trigger") or {}
            if after.get("trigger_id") != before.get("trigger_id"):
                self.rearms[date] += 1  # committed; its publish failed or was not confirmed
            return
        assert settled
        self.rearms[date] += 1
        self.backfilled.discard(date)
        trigger = self.doc(date)["trigger"]
        assert trigger["attempt"] == int(before.get("attempt", 0)) + 1
        assert trigger["trigger_id"] == f"{PHASE}:{date}:rearm{self.rearms[date]}"
        assert self.doc(date)["audit"][-1]["by"] == "ops"
        self.saw([confirmation])

    @precondition(lambda self: bool(self.held))
    @rule(confirm=st.booleans(), fault=FAULTS)
    def late_holder(self, confirm: bool, fault: Fault | None) -> None:
        """A holder that was presumed dead comes back and confirms or releases its claim."""
        claim = self.held.pop(0)
        self.inject(fault)
        tracker = self.trackers[0]
        try:
            if confirm:
                self.saw([tracker.confirm_trigger(claim)])
            else:
                tracker.release_trigger(claim, "late holder gives up")
        except (*STORE_DOWN, TriggerClaimLostError) as exc:
            event(f"late holder: {type(exc).__name__}")
            return

    @rule()
    def settle(self) -> None:
        """Faults stop, leases run out, replay and sweep: every due trigger gets confirmed."""
        self.store.set_outage(False)
        self.outage = False
        self.ledger.down = False
        self.publish_fails = False
        self.clock.advance(SPEC.trigger_lease + timedelta(seconds=1))
        tracker = self.trackers[1]
        replayed = tracker.replay_and_trigger(PHASE, DATES, self.publish)
        swept = tracker.sweep_and_trigger(PHASE, DATES, self.publish)
        self.saw([*replayed.published, *swept.published])
        assert not replayed.publish_errors
        assert swept.ok
        self.rule_met = {d: self.rule_met[d] or self.rule_holds(d) for d in DATES}
        for date in DATES:
            trigger = self.doc(date).get("trigger")
            if self.rule_holds(date) or self.rearms[date]:
                assert trigger is not None
                if trigger["state"] == "skipped":
                    assert trigger["reason"] == "backfill"
                    assert date in self.backfilled
                else:
                    assert trigger["state"] == "confirmed"
                    assert self.confirmed.get(trigger["trigger_id"]) == 1
            ignored = {
                e for r in self.doc(date).get("ignored", {}).values() for e in r["executions"]
            }
            records = self.doc(date).get("processors", {})
            for d in self.accepted:
                if d.date != date:
                    continue
                if d.processor not in EXPECTED:
                    assert d.execution_id in ignored, d
                    continue
                # Everything is replayed: the record kept is the run that
                # finished last (or a later reconcile), whatever the arrival order.
                rec = records[d.processor]
                assert (rec["completed_at"], rec["execution_id"]) >= d.order, (d, rec)
            for name, rec in records.items():
                runs = [d for d in self.accepted if (d.date, d.processor) == (date, name)]
                if not rec["execution_id"].startswith("reconcile-"):
                    kept = max(runs, key=lambda d: d.order)
                    assert (kept.execution_id, kept.status) == (
                        rec["execution_id"],
                        rec["status"],
                    )

    # -- invariants ----------------------------------------------------------

    @invariant()
    def recount_matches_records(self) -> None:
        """The mirrored count equals the processors whose stored status counts (F1)."""
        for date in DATES:
            doc = self.doc(date)
            if doc:
                assert doc["meta"]["count"] == len(self.done(date))

    @invariant()
    def triggers_only_after_the_rule_and_confirmed_once(self) -> None:
        """No claim without the rule having held; never two confirmations (F3)."""
        for date in DATES:
            self.rule_met[date] = self.rule_met[date] or self.rule_holds(date)
            trigger = self.doc(date).get("trigger")
            if trigger is not None:
                assert self.rule_met[date]
                if trigger["state"] == "skipped":  # a backfill never triggers
                    assert trigger["reason"] == "backfill"
                    assert not any(e.date == date and e.trigger_id == trigger["trigger_id"]
                                   for e in self.events)
                if self.confirmed.get(trigger["trigger_id"]):
                    assert trigger["state"] == "confirmed"
            logged = [
                r for r in self.log.rows if r.game_date == date and r.status != "deadline_exceeded"
            ]
            assert len(logged) <= 1 + self.rearms[date]
        assert all(n <= 1 for n in self.confirmed.values())
        known = {f"{PHASE}:{d}" for d in DATES} | {
            f"{PHASE}:{d}:rearm{n}" for d in DATES for n in range(1, self.rearms[d] + 1)
        }
        assert {e.trigger_id for e in self.events} <= known

    @invariant()
    def unknown_names_never_count(self) -> None:
        """'x' is never in the processors map, only among the ignored (F4)."""
        for date in DATES:
            assert "x" not in self.doc(date).get("processors", {})

    @invariant()
    def accepted_completions_are_in_the_store_or_the_ledger(self) -> None:
        """No silent loss: each accepted report is stored, superseded, or in the ledger (F2)."""
        ledgered = {(r.date, r.processor, r.execution_id) for r in self.ledger.rows}
        for d in self.accepted:
            doc = self.doc(d.date)
            stored = any(
                d.execution_id in r["executions"]
                for group in ("processors", "ignored")
                for name, r in doc.get(group, {}).items()
                if name == d.processor
            )
            rec = doc.get("processors", {}).get(d.processor)
            superseded = rec is not None and (rec["completed_at"], rec["execution_id"]) > d.order
            assert stored or superseded or (d.date, d.processor, d.execution_id) in ledgered, d

    @invariant()
    def no_record_is_older_than_a_stored_run(self) -> None:
        """The record of a processor is never replaced by a run that finished earlier (item 1)."""
        for date in DATES:
            for name, rec in self.doc(date).get("processors", {}).items():
                kept = (rec["completed_at"], rec["execution_id"])
                for d in self.accepted:
                    if (d.date, d.processor) == (date, name) and d.execution_id in rec[
                        "executions"
                    ]:
                        assert kept >= d.order, (d, rec)

    def teardown(self) -> None:
        """Every run ends settled."""
        self.settle()


@pytest.fixture(autouse=True)
def _quiet_logs() -> Iterator[None]:
    """Thousands of injected failures are logged with tracebacks; skip formatting them here."""
    logger = logging.getLogger("pipeline_reliability")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


TestTrackerMachine = TrackerMachine.TestCase
