"""
A breaker with a failure-rate count window, slow calls and a growing open
duration, driven by hypothesis against a plain model of the documented rules.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from pipeline_reliability import CircuitOpenError, MemoryStore
from pipeline_reliability.breaker import BreakerState, CircuitBreaker
from pipeline_reliability.testing import FakeClock

RESET, CAP, SLOW = 4.0, 10.0, 2.0


class BoomError(Exception):
    """The downstream failed."""


class PolicyMachine(RuleBasedStateMachine):
    """The breaker and the model see the same calls; their states and open durations agree."""

    @initialize(
        size=st.integers(1, 6),
        minimum=st.integers(1, 6),
        rate=st.sampled_from([0.25, 0.5, 1.0]),
        backoff=st.sampled_from([1.0, 1.5, 2.0]),
    )
    def start(self, size: int, minimum: int, rate: float, backoff: float) -> None:
        minimum = min(minimum, size)
        self.clock = FakeClock()
        self.store = MemoryStore(clock=self.clock)
        self.breaker = CircuitBreaker(
            "machine", self.store, failure_rate=rate, window_size=size, minimum_calls=minimum,
            slow_call_duration=SLOW, reset_timeout=RESET, reset_backoff=backoff,
            max_reset_timeout=CAP, probe_timeout=30, cache_ttl=1, clock=self.clock,
            instance_id="i",
        )
        self.size, self.minimum, self.rate, self.backoff = size, minimum, rate, backoff
        self.now = 0.0
        self.state = BreakerState.CLOSED
        self.window: list[bool] = []  # failed? of each call of this closed generation
        self.opened_at = 0.0
        self.open_for = RESET
        self.transitions = 0

    # ------------------------------------------------------------ the model

    def _open(self, grown: bool) -> None:
        self.open_for = min(self.open_for * self.backoff, CAP) if grown else RESET
        self.state, self.opened_at, self.window = BreakerState.OPEN, self.now, []

    def _outcome(self, failed: bool, took: float) -> None:
        """What the model expects of one call that took ``took`` seconds."""
        if self.state is BreakerState.OPEN:
            if self.now < self.opened_at + self.open_for:
                return  # rejected: nothing ran
            self.transitions += 1  # the probe's election
            slow = self.now + took >= self.now + SLOW
            self.now += took
            self.transitions += 1
            if failed or slow:
                self._open(grown=True)
            else:
                self.state, self.window = BreakerState.CLOSED, []
            return
        slow = self.now + took >= self.now + SLOW  # the deadline, in the clock's floats
        self.now += took
        self.window.append(failed or slow)
        if not self.window[-1]:
            return  # a success is never judged
        last = self.window[-self.size:]
        if len(last) >= self.minimum and sum(last) / len(last) >= self.rate:
            self.transitions += 1
            self._open(grown=False)

    # ------------------------------------------------------------ the rules

    def _call(self, failed: bool, took: float) -> None:
        clock = self.clock

        def downstream() -> str:
            clock.advance(took)
            if failed:
                raise BoomError
            return "ok"

        ran = self.state is BreakerState.CLOSED or self.now >= self.opened_at + self.open_for
        self._outcome(failed, took)
        try:
            assert self.breaker.call(downstream) == "ok"
            assert (ran, failed) == (True, False)
        except BoomError:
            assert (ran, failed) == (True, True)
        except CircuitOpenError:
            assert not ran

    @rule(took=st.sampled_from([0.0, 1.0, SLOW - 1e-6, SLOW]))
    def success(self, took: float) -> None:
        self._call(False, took)

    @rule()
    def failure(self) -> None:
        self._call(True, 0.0)

    @rule(seconds=st.sampled_from([1.0, 3.0, 5.0, 11.0]))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.now += seconds

    @invariant()
    def agrees_with_the_model(self) -> None:
        if not hasattr(self, "breaker"):
            return
        status = self.breaker.status()
        assert status.state is self.state
        if self.state is BreakerState.OPEN:
            assert status.open_for is not None
            assert status.open_for.total_seconds() == self.open_for
        assert self.store.stats.writes == self.transitions  # only transitions write


PolicyMachine.TestCase.settings = settings(max_examples=120, stateful_step_count=40,
                                           deadline=None)
test_item4_policies_match_the_model = PolicyMachine.TestCase
