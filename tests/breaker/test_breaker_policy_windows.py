"""The rate policies' sliding windows agree with a list of every call (hypothesis stateful)."""

from __future__ import annotations

import math

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from pipeline_reliability.breaker._windows import CountWindow, RateRule, TimeWindow

BUCKETS = 4


class WindowMachine(RuleBasedStateMachine):
    """Both windows, fed the same calls, against the model: every call kept with its time."""

    @initialize(
        size=st.integers(1, 6),
        seconds=st.sampled_from([1.0, 2.0, 4.0]),
        minimum=st.integers(1, 6),
        rate=st.sampled_from([0.25, 0.5, 1.0]),
    )
    def start(self, size: int, seconds: float, minimum: int, rate: float) -> None:
        self.size, self.seconds, self.minimum, self.rate = size, seconds, minimum, rate
        rule_ = RateRule(minimum_calls=minimum, failure_rate=rate, slow_call_rate=rate)
        self.count = CountWindow(size=size, rule=rule_)
        self.time = TimeWindow(seconds=seconds, rule=rule_, buckets=BUCKETS)
        self.calls: list[tuple[float, bool, bool]] = []  # (time, failed, slow)
        self.now = 0.0

    @rule(gap=st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0, 3.0]))
    def wait(self, gap: float) -> None:
        self.now += gap

    @rule()
    def success(self) -> None:
        self.count.success(self.now)
        self.time.success(self.now)
        self.calls.append((self.now, False, False))

    @rule(slow=st.booleans())
    def failure(self, slow: bool) -> None:
        self.count.failure(self.now, slow)
        self.time.failure(self.now, slow)
        self.calls.append((self.now, True, slow))

    @rule()
    def slow_success(self) -> None:
        self.count.slow_success(self.now)
        self.time.slow_success(self.now)
        self.calls.append((self.now, False, True))

    @rule()
    def clear(self) -> None:
        self.count.clear()
        self.time.clear()
        self.calls.clear()

    def _model(self, live: list[tuple[float, bool, bool]]) -> tuple[int, int, int]:
        return len(live), sum(f for _, f, _ in live), sum(s for _, _, s in live)

    def _expected_reason(self, counts: tuple[int, int, int]) -> str | None:
        calls, failed, slow = counts
        if calls < self.minimum or calls == 0:
            return None
        if failed / calls >= self.rate:
            return "failure_rate"
        return "slow_call_rate" if slow / calls >= self.rate else None

    @invariant()
    def count_window_holds_the_last_size_calls(self) -> None:
        if not hasattr(self, "count"):
            return
        expected = self._model(self.calls[-self.size:])
        assert self.count.counts(self.now) == expected
        assert self.count.trip_reason(self.now) == self._expected_reason(expected)

    @invariant()
    def time_window_holds_the_calls_of_its_last_buckets(self) -> None:
        if not hasattr(self, "time"):
            return
        width = self.seconds / BUCKETS
        current = math.floor(self.now / width)
        live = [c for c in self.calls if math.floor(c[0] / width) > current - BUCKETS]
        expected = self._model(live)
        assert self.time.counts(self.now) == expected
        assert self.time.trip_reason(self.now) == self._expected_reason(expected)


WindowMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40,
                                           deadline=None)
test_rate_windows_match_the_model = WindowMachine.TestCase
