"""
Stateful test of the shared breaker: several instances over one MemoryStore
(behind FaultyStore), a FakeClock, random outcomes, clock moves, store faults
and operator actions; every committed write is checked against the spec.

Calls take time: a slow call advances the clock while other instances (and the
same one) make calls, so probes overlap other probes and outcomes arrive after
the circuit moved on. That is what makes the generation compare-and-set and
the probe lease observable here (issue 10, items 6 and 19).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from pipeline_reliability import CircuitOpenError, MemoryStore, StoreError
from pipeline_reliability.breaker import (
    BreakerEvent,
    CircuitBreaker,
    TransitionEvent,
    TripReportEvent,
)
from pipeline_reliability.stores import Outcome, Put, Snapshot
from pipeline_reliability.testing import FakeClock, Fault, FaultyStore, StoreWrapper

R = TypeVar("R")
NAME = "downstream/api"
INSTANCES = 3

# The spec's edges, written out independently of the implementation's table:
# (from, to) -> the reasons that may take that edge.
ALLOWED = {
    ("closed", "open"): {"failure_threshold", "open_quorum", "forced_open"},
    ("open", "half_open"): {"reset_timeout_elapsed"},
    ("half_open", "half_open"): {"probe_lease_expired"},
    ("half_open", "closed"): {"probe_succeeded", "forced_close", "reset"},
    ("half_open", "open"): {"probe_failed", "probe_timeout", "forced_open"},
    ("open", "open"): {"forced_open"},
    ("open", "closed"): {"forced_close", "reset"},
    ("closed", "closed"): {"reset"},
}


class DownstreamError(Exception):
    """The failure the protected call raises."""


class IgnoredError(Exception):
    """An excluded exception: neither success nor failure."""


@dataclass
class Write:
    """One committed write, as the store saw it."""

    before: dict[str, Any] | None
    after: dict[str, Any]
    at: float


class RecordingStore(StoreWrapper):
    """A MemoryStore that remembers every committed write (the last attempt of a transaction)."""

    inner: MemoryStore

    def __init__(self, inner: MemoryStore, clock: FakeClock) -> None:
        super().__init__(inner)
        self.clock = clock
        self.writes: list[Write] = []

    def transact(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        """Transact through, remembering the attempt that committed."""
        last: list[tuple[Snapshot, Outcome[R]]] = []

        def spy(snap: Snapshot) -> Outcome[R]:
            outcome = fn(snap)
            last.append((snap, outcome))
            return outcome

        result = super().transact(collection, key, spy, timeout=timeout)
        snap, outcome = last[-1]
        if isinstance(outcome.write, Put):
            self.writes.append(Write(snap.data, dict(outcome.write.data), self.clock.monotonic()))
        return result


@dataclass
class Model:
    """What the test itself saw happen, to judge the writes against."""

    # instance -> (local time, "ok"/"fail", generation the call was admitted in)
    outcomes: dict[str, list[tuple[float, str, int]]] = field(default_factory=dict)
    # probes running now: (generation, lease expiry by store time)
    running: list[tuple[int, datetime]] = field(default_factory=list)
    probes: Counter[int] = field(default_factory=Counter)
    holders: dict[int, str] = field(default_factory=dict)
    local_events: int = 0
    checked: int = 0


class BreakerMachine(RuleBasedStateMachine):
    """Several instances of one circuit, driven at random."""

    @initialize(
        failure_threshold=st.integers(1, 4),
        extra_calls=st.none() | st.integers(0, 4),
        window=st.sampled_from([5.0, 10.0, 30.0]),
        reset_timeout=st.sampled_from([5.0, 10.0, 30.0]),
        probe_timeout=st.sampled_from([1.0, 5.0, 30.0]),
        probes=st.integers(1, 3),
        success_share=st.integers(0, 2),
        cache_ttl=st.sampled_from([0.0, 0.5, 1.0, 5.0]),
        quorum=st.integers(1, INSTANCES),
        policy=st.sampled_from(["fail_open", "fail_closed"]),
    )
    def setup(  # noqa: PLR0917  (hypothesis passes the drawn values by keyword)
        self,
        failure_threshold: int,
        extra_calls: int | None,
        window: float,
        reset_timeout: float,
        probe_timeout: float,
        probes: int,
        success_share: int,
        cache_ttl: float,
        quorum: int,
        policy: Any,
    ) -> None:
        """Build INSTANCES breakers sharing one circuit, with drawn options."""
        self.clock = FakeClock()
        self.recording = RecordingStore(MemoryStore(clock=self.clock), self.clock)
        self.store = FaultyStore(self.recording, hang_timeout=0.001)
        self.window = window
        self.failure_threshold = failure_threshold
        self.minimum_calls = (
            failure_threshold if extra_calls is None else failure_threshold + extra_calls
        )
        self.probes = probes
        self.quorum = quorum
        self.reset_timeout = reset_timeout
        self.model = Model()
        self.sick = False
        self.breakers: list[CircuitBreaker] = []
        for i in range(INSTANCES):
            breaker = CircuitBreaker(
                NAME,
                self.store,
                failure_threshold=failure_threshold,
                minimum_calls=self.minimum_calls,
                window=window,
                reset_timeout=reset_timeout,
                half_open_probes=probes,
                success_threshold=min(probes, 1 + success_share),
                excluded=(IgnoredError,),
                cache_ttl=cache_ttl,
                # A hang then blocks for a millisecond of real time.
                store_timeout=0.001,
                probe_timeout=probe_timeout,
                on_store_error=policy,
                open_quorum=quorum,
                clock=self.clock,
                instance_id=f"i{i}",
            )
            breaker.add_listener(self._on_event)
            self.breakers.append(breaker)
            self.model.outcomes[breaker.instance_id] = []

    def _on_event(self, event: BreakerEvent) -> None:
        # Writes this instance made: its local transitions and its trip reports.
        if isinstance(event, TripReportEvent) or (
            isinstance(event, TransitionEvent) and event.local
        ):
            self.model.local_events += 1

    @rule(i=st.integers(0, INSTANCES - 1), repeat=st.integers(1, 4))
    def calls(self, i: int, repeat: int) -> None:
        """A few calls on instance i; they fail while the downstream is sick."""
        for _ in range(repeat):
            self._call(self.breakers[i], "fail" if self.sick else "ok")

    @rule(i=st.integers(0, INSTANCES - 1))
    def excluded_call(self, i: int) -> None:
        """A call that raises an excluded exception."""
        self._call(self.breakers[i], "ignored")

    @rule(sick=st.booleans())
    def downstream_health(self, sick: bool) -> None:
        """The downstream falls ill or recovers."""
        self.sick = sick

    @rule(
        i=st.integers(0, INSTANCES - 1),
        kind=st.sampled_from(["ok", "fail", "ignored"]),
        steps=st.integers(1, 4),
        step=st.sampled_from([0.5, 2.0, 6.0]),
        others=st.lists(st.integers(0, INSTANCES - 1), max_size=4),
        recover=st.booleans(),
    )
    def slow_call(  # noqa: PLR0917  (hypothesis passes the drawn values by keyword)
        self, i: int, kind: str, steps: int, step: float, others: list[int], recover: bool
    ) -> None:
        """
        A call that takes steps x step seconds, while other calls (anywhere) go on
        at every step; with ``recover`` they fail at the first step and succeed
        later, so the circuit can open and close again while this call runs.
        """

        def meanwhile() -> None:
            for n in range(steps):
                self.clock.advance(step)
                for j in others:
                    if recover:
                        self._call(self.breakers[j], "fail" if n == 0 else "ok")
                    else:
                        self._call(self.breakers[j], "fail" if self.sick else "ok")

        self._call(self.breakers[i], kind, meanwhile)

    @rule(i=st.integers(0, INSTANCES - 1), kind=st.sampled_from(["fail", "ok"]))
    def outcome_after_a_cycle(self, i: int, kind: str) -> None:
        """
        A call on instance i (after failures just short of its threshold)
        outlives a whole cycle driven by the other instances: their failures
        open the circuit, the cool-down passes, their probes close it. The
        call's outcome then belongs to a generation that is over.
        """
        others = [b for n, b in enumerate(self.breakers) if n != i]

        def meanwhile() -> None:
            for breaker in others:
                for _ in range(self.minimum_calls):
                    self._call(breaker, "fail")
            self.clock.advance(self.reset_timeout)
            for _ in range(self.probes):
                self._call(others[0], "ok")

        for _ in range(self.failure_threshold - 1):
            self._call(self.breakers[i], "fail")
        self._call(self.breakers[i], kind, meanwhile)

    def _live_probes(self) -> list[tuple[int, datetime]]:
        """Running probes still within their lease, of generations not closed since."""
        now = self.clock.now()
        closed = [w.after["generation"] for w in self.recording.writes
                  if w.after["state"] == "closed"]
        return [(g, exp) for g, exp in self.model.running
                if now < exp and not any(c > g for c in closed)]

    def _call(
        self, breaker: CircuitBreaker, kind: str, meanwhile: Callable[[], None] | None = None
    ) -> None:
        ran = []
        admitted = [-1]

        def downstream() -> str:
            status = breaker.status()
            admitted[0] = status.generation
            entry: tuple[int, datetime] | None = None
            if status.is_prober:
                # However long probes run, at most half_open_probes run within
                # their lease, fleet-wide (a probe past it counts as failed).
                assert len(self._live_probes()) < self.probes, self.model.running
                self.model.probes[status.generation] += 1
                # The view may be stale (cache_ttl, or a failing store under fail_open):
                # the stored generation may have moved on, but never backwards, and the
                # generation this probe belongs to had this instance as its one holder.
                doc = self._doc()
                assert doc is not None
                assert doc["generation"] >= status.generation
                assert self.model.holders.setdefault(status.generation, breaker.instance_id) \
                    == breaker.instance_id
                if doc["generation"] == status.generation:
                    assert doc["state"] == "half_open"
                    assert doc["probe"]["holder"] == breaker.instance_id
                    entry = (status.generation, doc["probe"]["expires_at"])
                    self.model.running.append(entry)
            ran.append(True)
            try:
                if meanwhile is not None:
                    meanwhile()
            finally:
                if entry is not None:
                    self.model.running.remove(entry)
            if kind == "fail":
                raise DownstreamError
            if kind == "ignored":
                raise IgnoredError
            return "ok"

        try:
            breaker.call(downstream)
        except CircuitOpenError:
            assert not ran, "a rejected call must not run"
            return
        except (DownstreamError, IgnoredError):
            pass
        if kind != "ignored":
            self.model.outcomes[breaker.instance_id].append(
                (self.clock.monotonic(), kind, admitted[0])
            )

    @rule(seconds=st.sampled_from([0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 31.0]))
    def advance(self, seconds: float) -> None:
        """Let time pass."""
        self.clock.advance(seconds)

    @rule(
        fault=st.sampled_from(list(Fault)),
        times=st.integers(1, 3),
        chance=st.integers(0, 5),
    )
    def store_fault(self, fault: Fault, times: int, chance: int) -> None:
        """Sometimes, the next few store operations fail."""
        if chance == 3:  # hypothesis favours 0 and the bounds: pick an inner value
            self.store.fail_next(fault, times)

    @rule(times=st.integers(1, 3), chance=st.integers(0, 5))
    def store_hangs(self, times: int, chance: int) -> None:
        """Sometimes, the next few store operations hang until their deadline."""
        if chance == 3:
            self.store.hang_next(times)

    @rule(
        i=st.integers(0, INSTANCES - 1),
        action=st.sampled_from(["force_open", "force_close", "reset"]),
        chance=st.integers(0, 9),
    )
    def operator(self, i: int, action: str, chance: int) -> None:
        """Now and then an operator forces the circuit (store errors raise to the operator)."""
        if chance != 7:  # hypothesis favours 0 and the bounds: pick an inner value
            return
        with contextlib.suppress(StoreError):
            getattr(self.breakers[i], action)()

    @rule(i=st.integers(0, INSTANCES - 1))
    def read_state(self, i: int) -> None:
        """Someone looks at the state: it is one of the three."""
        assert self.breakers[i].state.value in {"closed", "open", "half_open"}

    # ------------------------------------------------------------------ invariants

    def _doc(self) -> dict[str, Any] | None:
        docs = self.recording.inner.dump().get("circuit_breakers", {})
        return docs.get(NAME.replace("/", "%2F"))

    @invariant()
    def every_write_is_a_transition_or_a_trip_report(self) -> None:
        """Each write moves the generation by one along an allowed edge, or is a trip report."""
        model = self.model
        for write in self.recording.writes[model.checked:]:
            before = write.before or {"state": "closed", "generation": 0, "trip_reports": 0,
                                      "reports": []}
            after = write.after
            if after["generation"] == before["generation"] + 1:
                edge = (before["state"], after["state"])
                assert after["reason"] in ALLOWED.get(edge, set()), (edge, after["reason"])
                if after["reason"] in {"failure_threshold", "open_quorum"}:
                    self._writer_had_tripped(after["changed_by"], write.at, before["generation"])
                if after["reason"] == "open_quorum":
                    live = {r["instance"] for r in before["reports"]
                            if after["changed_at"] - r["at"] < _td(self.window)}
                    assert len(live | {after["changed_by"]}) >= self.quorum
                if after["reason"] == "failure_threshold":
                    assert self.quorum == 1
                assert after["trip_reports"] == before.get("trip_reports", 0)
            else:
                # A trip report: same generation, still closed, one more report.
                assert self.quorum > 1
                assert after["generation"] == before["generation"]
                assert before["state"] == after["state"] == "closed"
                assert after["trip_reports"] == before.get("trip_reports", 0) + 1
                assert after["changed_by"] in {r["instance"] for r in after["reports"]}
                assert len(after["reports"]) < self.quorum
                self._writer_had_tripped(after["changed_by"], write.at, before["generation"])
        model.checked = len(self.recording.writes)

    def _writer_had_tripped(self, instance: str, at: float, generation: int) -> None:
        # Only outcomes of calls admitted in the generation being tripped count:
        # a failure seen before the circuit moved on says nothing about it.
        seen = [(t, k) for t, k, g in self.model.outcomes[instance]
                if at - t < self.window and g == generation]
        failures = sum(1 for _, k in seen if k == "fail")
        assert failures >= self.failure_threshold, (instance, seen)
        assert len(seen) >= self.minimum_calls, (instance, seen)

    @invariant()
    def store_writes_equal_transitions_plus_reports(self) -> None:
        """stats.writes == transitions (the generation) + trip reports, all recorded."""
        doc = self._doc()
        writes = self.store.stats.writes
        assert writes == len(self.recording.writes)
        expected = 0 if doc is None else doc["generation"] + doc["trip_reports"]
        assert writes == expected
        if self.quorum == 1:
            assert doc is None or doc["trip_reports"] == 0

    @invariant()
    def writes_match_announced_transitions(self) -> None:
        """Each write was announced by one listener event (unless its response was lost)."""
        writes = self.store.stats.writes
        lost = any(f is Fault.LOST_RESPONSE and op == "transact"
                   for _, op, f in self.store.injected)
        if lost:
            assert self.model.local_events <= writes
        else:
            assert self.model.local_events == writes

    @invariant()
    def probes_per_half_open_generation_are_bounded(self) -> None:
        """At most half_open_probes trial calls ran, fleet-wide, per half-open generation."""
        for generation, count in self.model.probes.items():
            assert count <= self.probes, (generation, count)


def _td(seconds: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=seconds)


BreakerMachine.TestCase.settings = settings(
    BreakerMachine.TestCase.settings, stateful_step_count=100
)
test_breaker_machine = pytest.mark.memory(BreakerMachine.TestCase)
