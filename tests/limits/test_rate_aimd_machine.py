"""
The AIMD machine and the token bucket: stateful tests against a model, of the
pure functions and of the limiter that applies them (FakeClock).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pipeline_reliability import RateLimitTimeoutError
from pipeline_reliability.limits import AdaptiveRateLimiter
from pipeline_reliability.limits._aimd import (
    AimdConfig,
    AimdState,
    on_success,
    on_throttle,
    reserve,
    settle,
)
from pipeline_reliability.testing import FakeClock

CONFIG = AimdConfig(min_rate=1.0, max_rate=100.0, increase=5.0, decrease=0.5, cooldown=2.0)
US = 1e-6


class AimdMachine(RuleBasedStateMachine):
    """Random throttles, successes and clock moves; the machine must match a plain model."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.state = AimdState(50.0)
        # The model: the documented rule, written independently of the code.
        self.rate = 50.0
        self.last_decrease = -math.inf
        self.last_change = -math.inf
        self.decreases: list[float] = []

    @rule(dt=st.sampled_from([0.0, US, 0.5, CONFIG.cooldown - US, CONFIG.cooldown, 3.0, 60.0]))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule()
    def throttle(self) -> None:
        before = self.state
        self.state = on_throttle(self.state, CONFIG, self.now)
        if self.now - self.last_decrease >= CONFIG.cooldown:
            self.rate = max(CONFIG.min_rate, self.rate * CONFIG.decrease)
            self.last_decrease = self.last_change = self.now
            self.decreases.append(self.now)
            assert self.state is not before
        else:
            assert self.state is before

    @precondition(lambda self: self.last_decrease > -math.inf)
    @rule(back=st.sampled_from([US, 0.1, 1.0]))
    def throttle_of_a_call_sent_before_the_last_decrease(self, back: float) -> None:
        before = self.state
        self.state = on_throttle(
            self.state, CONFIG, self.now, sent_at=self.state.decreased_at - back
        )
        assert self.state is before  # it was answered by the overload already counted

    @rule()
    def success(self) -> None:
        self.state = on_success(self.state, CONFIG, self.now)
        if self.now - self.last_change >= CONFIG.cooldown and self.rate < CONFIG.max_rate:
            self.rate = min(CONFIG.max_rate, self.rate + CONFIG.increase)
            self.last_change = self.now

    @invariant()
    def matches_the_model(self) -> None:
        assert self.state.rate == pytest.approx(self.rate, rel=1e-12)
        assert self.state.decreased_at == self.last_decrease

    @invariant()
    def rate_stays_within_bounds(self) -> None:
        assert CONFIG.min_rate <= self.state.rate <= CONFIG.max_rate

    @invariant()
    def at_most_one_decrease_per_window(self) -> None:
        gaps = [b - a for a, b in zip(self.decreases, self.decreases[1:], strict=False)]
        assert all(gap >= CONFIG.cooldown for gap in gaps)


TestAimdMachine = AimdMachine.TestCase


def test_a_second_decrease_is_allowed_exactly_at_the_window_end() -> None:
    """Boundary: ``cooldown`` after a decrease, the next throttle decreases again."""
    first = on_throttle(AimdState(64.0), CONFIG, 10.0)
    assert first.rate == 32.0
    assert on_throttle(first, CONFIG, 10.0 + CONFIG.cooldown).rate == 16.0


def test_a_throttle_one_microsecond_before_the_window_end_counts_once() -> None:
    """Boundary: 1 µs before the window ends, the same overload is still being answered."""
    first = on_throttle(AimdState(64.0), CONFIG, 10.0)
    assert on_throttle(first, CONFIG, 10.0 + CONFIG.cooldown - US) is first


def test_a_call_sent_exactly_at_the_decrease_counts_but_one_sent_before_does_not() -> None:
    """Boundary of the "sent before the last decrease" rule: sent_at == decreased_at counts."""
    first = on_throttle(AimdState(64.0), CONFIG, 10.0)
    later = 10.0 + CONFIG.cooldown
    assert on_throttle(first, CONFIG, later, sent_at=10.0).rate == 16.0
    assert on_throttle(first, CONFIG, later, sent_at=10.0 - US) is first


def test_the_rate_never_goes_below_min_rate() -> None:
    """Repeated throttles floor at ``min_rate``."""
    state = AimdState(3.0)
    for i in range(10):
        state = on_throttle(state, CONFIG, i * CONFIG.cooldown)
    assert state.rate == CONFIG.min_rate


def test_an_increase_is_due_exactly_one_cooldown_after_the_last_change() -> None:
    """Boundary of the additive increase: exactly ``cooldown`` of calm, not 1 µs less."""
    state = on_throttle(AimdState(64.0), CONFIG, 10.0)
    assert on_success(state, CONFIG, 10.0 + CONFIG.cooldown - US) is state
    assert on_success(state, CONFIG, 10.0 + CONFIG.cooldown).rate == 32.0 + CONFIG.increase


def test_the_rate_never_goes_above_max_rate() -> None:
    """Increases stop at ``max_rate``, and at ``max_rate`` a success changes nothing."""
    state = AimdState(98.0)
    state = on_success(state, CONFIG, 0.0)
    assert state.rate == CONFIG.max_rate
    assert on_success(state, CONFIG, 100.0) is state


def test_a_token_is_there_exactly_when_it_has_refilled() -> None:
    """Boundary of the bucket: at 8 calls/s a token is back exactly 0.125 s later."""
    tokens, at, wait = reserve(0.0, 4.0, 8.0, 1.0, 4.125, max_wait=math.inf)
    assert (tokens, at, wait) == (0.0, 4.125, 0.0)
    _, _, wait = reserve(0.0, 4.0, 8.0, 1.0, 4.125 - US, max_wait=math.inf)
    assert wait == pytest.approx(US)


def test_a_wait_of_exactly_max_wait_is_granted_and_a_longer_one_refused() -> None:
    """Boundary of the timeout: ``wait == max_wait`` reserves; a longer wait takes nothing."""
    assert reserve(0.0, 5.0, 10.0, 1.0, 5.0, max_wait=0.1) == (-1.0, 5.0, 0.1)
    assert reserve(0.0, 5.0, 10.0, 1.0, 5.0, max_wait=0.1 - US) == (0.0, 5.0, 0.1)


@given(
    rate=st.floats(0.01, 1e6),
    burst=st.integers(1, 50),
    steps=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=50),
)
def test_the_bucket_never_admits_more_than_burst_plus_rate_times_elapsed(
    rate: float, burst: int, steps: list[float]
) -> None:
    """Over any run, admitted calls (each at the end of its wait) <= burst + rate * elapsed."""
    tokens, at = float(burst), 0.0
    now = 0.0
    for admitted, step in enumerate(steps, start=1):
        now += step
        tokens, at, wait = reserve(tokens, at, rate, float(burst), now, max_wait=math.inf)
        now += wait
        assert admitted <= burst + rate * now + 1e-6 * admitted


def test_settle_refills_up_to_burst_only() -> None:
    """Settling before a rate change counts tokens earned at the old rate, capped at burst."""
    assert settle(0.0, 0.0, 2.0, 3.0, 1.0) == (2.0, 1.0)
    assert settle(0.0, 0.0, 2.0, 3.0, 10.0) == (3.0, 10.0)
    assert settle(0.5, 4.0, 2.0, 3.0, 3.0) == (0.5, 4.0)


class LimiterMachine(RuleBasedStateMachine):
    """
    The limiter's glue on a FakeClock: throttles, successes and non-blocking
    acquires in any order; admissions and the rate match a model that settles
    the bucket at the old rate whenever the rate changes.
    """

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.limiter = AdaptiveRateLimiter(
            "machine", rate=16, min_rate=1, max_rate=32, increase=2, cooldown=2,
            burst=3, clock=self.clock,
        )
        self.rate = 16.0
        self.last_decrease = self.last_change = -math.inf
        self.tokens, self.at = 3.0, 0.0
        self.decreases: list[float] = []

    def _settle(self, now: float) -> None:
        if now > self.at:
            self.tokens, self.at = min(3.0, self.tokens + (now - self.at) * self.rate), now

    @rule(dt=st.sampled_from([0.0, US, 0.0625, 0.25, 2.0 - US, 2.0, 5.0]))
    def advance(self, dt: float) -> None:
        self.clock.advance(dt)

    @rule()
    def throttle(self) -> None:
        now = self.clock.monotonic()
        self.limiter.throttled()
        if now - self.last_decrease >= 2.0:
            self._settle(now)
            self.rate = max(1.0, self.rate * 0.5)
            self.last_decrease = self.last_change = now
            self.decreases.append(now)

    @rule()
    def success(self) -> None:
        now = self.clock.monotonic()
        self.limiter.succeeded()
        if now - self.last_change >= 2.0 and self.rate < 32.0:
            self._settle(now)
            self.rate = min(32.0, self.rate + 2.0)
            self.last_change = now

    @rule()
    def try_acquire(self) -> None:
        now = self.clock.monotonic()
        self._settle(now)
        expected = self.tokens >= 1.0
        try:
            self.limiter.acquire(timeout=0)
            admitted = True
        except RateLimitTimeoutError:
            admitted = False
        assert admitted == expected
        if admitted:
            self.tokens -= 1.0

    @invariant()
    def rate_matches_the_model_and_stays_within_bounds(self) -> None:
        assert self.limiter.rate == self.rate
        assert 1.0 <= self.limiter.rate <= 32.0
        gaps = [b - a for a, b in zip(self.decreases, self.decreases[1:], strict=False)]
        assert all(gap >= 2.0 for gap in gaps)


TestLimiterMachine = LimiterMachine.TestCase
# Rate changes between a drained bucket and the next acquire need a few steps in order.
TestLimiterMachine.settings = settings(
    max_examples=max(settings().max_examples, 200), stateful_step_count=40, deadline=None
)


def test_tokens_earned_before_a_rate_change_are_kept() -> None:
    """A token refilled at the old rate stays when the rate halves (the bucket is settled)."""
    clock = FakeClock()
    limiter = AdaptiveRateLimiter("settle", rate=16, cooldown=2, clock=clock)
    limiter.acquire(timeout=0)
    clock.advance(0.0625)  # exactly one token at 16/s
    limiter.throttled()  # 8/s from now on: half a token if the past were re-counted at 8/s
    limiter.acquire(timeout=0)
