"""
Issue 12 item 4, breaker policies: each trips and recovers as documented,
with both sides of every boundary, and writes only on transitions.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from breaker_helpers import BoomError, MakeBreaker, fail, ok, state_of

from pipeline_reliability import CircuitOpenError, MemoryStore
from pipeline_reliability.breaker import (
    BreakerEvent,
    BreakerState,
    CircuitBreaker,
    RejectionEvent,
    TransitionEvent,
)
from pipeline_reliability.testing import FakeClock

OPEN, CLOSED, HALF_OPEN = BreakerState.OPEN, BreakerState.CLOSED, BreakerState.HALF_OPEN


def _outcomes(breaker: CircuitBreaker, pattern: str) -> None:
    """Run one call per letter: ``s`` succeeds, ``f`` fails."""
    for letter in pattern:
        if letter == "s":
            assert breaker.call(ok) == "ok"
        else:
            with pytest.raises(BoomError):
                breaker.call(fail)


def _reasons(events: list[BreakerEvent]) -> list[str]:
    return [e.reason for e in events if isinstance(e, TransitionEvent) and e.local]


# ---------------------------------------------------------------- failure rate, count window


@pytest.mark.parametrize(("rate", "tripped"), [(0.5, True), (0.5000001, False)])
def test_item4_failure_rate_exactly_at_threshold_trips_just_above_does_not(
    make_breaker: MakeBreaker, rate: float, tripped: bool, events: list[BreakerEvent]
) -> None:
    """5 failures in 10 calls is a rate of exactly 0.5: it trips at 0.5, not at 0.5000001."""
    a = make_breaker("a", failure_rate=rate, window_size=10, minimum_calls=10)
    _outcomes(a, "sssss" + "ffff")
    assert state_of(a) is CLOSED
    _outcomes(a, "f")
    assert state_of(a) is (OPEN if tripped else CLOSED)
    assert _reasons(events) == (["failure_rate"] if tripped else [])


def test_item4_failure_rate_just_below_threshold_does_not_trip(
    make_breaker: MakeBreaker,
) -> None:
    """4 failures in 10 calls (0.4) stays closed at a threshold of 0.5."""
    a = make_breaker("a", failure_rate=0.5, window_size=10, minimum_calls=10)
    _outcomes(a, "ssssss" + "ffff")
    assert state_of(a) is CLOSED


@pytest.mark.parametrize(("calls", "tripped"), [(9, False), (10, True)])
def test_item4_minimum_calls_minus_one_never_trips_minimum_calls_does(
    make_breaker: MakeBreaker, calls: int, tripped: bool
) -> None:
    """Every call failed, but the rate is judged only once minimum_calls calls are in."""
    a = make_breaker("a", failure_rate=0.5, window_size=20, minimum_calls=10)
    _outcomes(a, "f" * calls)
    assert state_of(a) is (OPEN if tripped else CLOSED)


def test_item4_count_window_forgets_calls_older_than_its_size(
    make_breaker: MakeBreaker,
) -> None:
    """Only the last window_size calls count: old failures slide out."""
    a = make_breaker("a", failure_rate=0.5, window_size=4, minimum_calls=4)
    _outcomes(a, "sff" + "sss")  # last four: f s s s
    _outcomes(a, "f")  # last four: s s s f -> 0.25
    assert state_of(a) is CLOSED
    _outcomes(a, "f")  # s s f f -> 0.5
    assert state_of(a) is OPEN


def test_item4_failure_rate_recovers_through_a_probe_and_starts_a_fresh_window(
    make_breaker: MakeBreaker, fake_clock: FakeClock, memory_store: MemoryStore
) -> None:
    """Open -> one probe after reset_timeout -> closed; the old failures no longer count."""
    a = make_breaker("a", failure_rate=0.5, window_size=4, minimum_calls=4)
    b = make_breaker("b", failure_rate=0.5, window_size=4, minimum_calls=4)
    _outcomes(a, "ssff")
    assert state_of(a) is OPEN
    fake_clock.advance(30)
    assert b.call(ok) == "ok"  # b is elected and its probe closes the circuit
    assert b.status().state is CLOSED
    fake_clock.advance(5)
    _outcomes(a, "fff")  # 3 calls < minimum_calls 4 in the new generation
    assert state_of(a) is CLOSED
    assert memory_store.stats.writes == 3  # open, elect, close


# ---------------------------------------------------------------- failure rate, time window


def test_item4_time_window_counts_the_last_window_size_seconds(
    make_breaker: MakeBreaker, fake_clock: FakeClock
) -> None:
    """Calls older than the window (20 buckets of 0.5 s here) no longer count."""
    a = make_breaker("a", failure_rate=0.5, window_type="time", window_size=10,
                     minimum_calls=4, cache_ttl=100)
    _outcomes(a, "ff")
    fake_clock.advance(10)  # the two failures' bucket has left the window
    _outcomes(a, "ssf")
    assert state_of(a) is CLOSED  # 1 of 3 calls: below minimum_calls anyway
    _outcomes(a, "f")  # s s f f within 10 s -> 0.5
    assert state_of(a) is OPEN


def test_item4_time_window_boundary_bucket_just_inside_and_just_outside(
    make_breaker: MakeBreaker, fake_clock: FakeClock
) -> None:
    """A failure 9.5 s ago (its bucket is the oldest of the window) still counts; at 10 s not."""
    for age, tripped in ((9.5, True), (10.0, False)):
        a = make_breaker(f"a{age}", name=f"time-{age}", failure_rate=0.5, window_type="time",
                         window_size=10, minimum_calls=2, cache_ttl=100)
        _outcomes(a, "f")
        fake_clock.advance(age)
        _outcomes(a, "f")
        assert state_of(a) is (OPEN if tripped else CLOSED), age


# ---------------------------------------------------------------- slow calls


def _taking(clock: FakeClock, seconds: float) -> Any:
    def call() -> str:
        clock.advance(seconds)
        return "slow-ok"

    return call


@pytest.mark.parametrize("started", [0.0, 1.999999])  # 2nd: "end - start" would round
@pytest.mark.parametrize(("took", "tripped"), [(2.0, True), (2.0 - 1e-6, False)])
def test_item4_slow_call_exactly_at_duration_is_a_failure_1us_below_is_not(
    make_breaker: MakeBreaker, fake_clock: FakeClock, took: float, tripped: bool, started: float
) -> None:
    """slow_call_duration=2 s: a call of exactly 2 s counts as a failure; 1 µs less does not."""
    a = make_breaker("a", failure_threshold=1, slow_call_duration=timedelta(seconds=2),
                     cache_ttl=100)
    fake_clock.advance(started)
    assert a.call(_taking(fake_clock, took)) == "slow-ok"  # the result is still returned
    assert state_of(a) is (OPEN if tripped else CLOSED)


def test_item4_slow_call_rate_trips_on_slow_successes_and_names_the_reason(
    make_breaker: MakeBreaker, fake_clock: FakeClock, events: list[BreakerEvent]
) -> None:
    """With slow_call_rate, slow calls are judged by their own rate (failures by theirs)."""
    a = make_breaker("a", failure_rate=1.0, slow_call_rate=0.5, slow_call_duration=1,
                     window_size=4, minimum_calls=4, cache_ttl=100)
    _outcomes(a, "ss")
    slow = _taking(fake_clock, 1)
    assert a.call(slow) == "slow-ok"
    assert state_of(a) is CLOSED  # 3 calls < minimum_calls
    assert a.call(slow) == "slow-ok"  # 2 slow of 4: exactly 0.5
    assert state_of(a) is OPEN
    assert _reasons(events) == ["slow_call_rate"]


def test_item4_a_slow_probe_fails_and_reopens(
    make_breaker: MakeBreaker, fake_clock: FakeClock
) -> None:
    """A probe that took at least slow_call_duration is a failed probe."""
    a = make_breaker("a", failure_threshold=1, slow_call_duration=2, cache_ttl=100)
    _outcomes(a, "f")
    fake_clock.advance(30)
    assert a.call(_taking(fake_clock, 2)) == "slow-ok"
    assert a.status().state is OPEN
    fake_clock.advance(30)
    assert a.call(_taking(fake_clock, 1)) == "slow-ok"
    assert a.status().state is CLOSED


# ---------------------------------------------------------------- failure_if


def test_item4_failure_if_counts_results_as_failures_and_returns_them(
    make_breaker: MakeBreaker, fake_clock: FakeClock
) -> None:
    """Results judged failed count toward the threshold; the caller still gets them."""
    a = make_breaker("a", failure_threshold=2, failure_if=lambda r: r == "error-page")
    assert a.call(lambda: "error-page") == "error-page"
    assert a.call(lambda: "fine") == "fine"
    assert state_of(a) is CLOSED
    assert a.call(lambda: "error-page") == "error-page"
    assert state_of(a) is OPEN
    fake_clock.advance(30)
    assert a.call(lambda: "error-page") == "error-page"  # the probe's result fails it
    assert a.status().state is OPEN
    fake_clock.advance(30)
    assert a.call(lambda: "fine") == "fine"
    assert a.status().state is CLOSED


def test_item4_a_raising_failure_if_counts_as_failure_and_never_escapes(
    make_breaker: MakeBreaker,
) -> None:
    """A broken predicate is the user's bug: it is logged, the call counts as failed."""
    a = make_breaker("a", failure_threshold=1, failure_if=lambda r: 1 / 0)
    assert a.call(ok) == "ok"
    assert state_of(a) is OPEN


class _Ambiguous:
    """A verdict whose truth cannot be decided (like a numpy array)."""

    def __bool__(self) -> bool:
        raise ValueError("ambiguous")


def test_item4_a_failure_if_verdict_without_truth_counts_as_failure(
    make_breaker: MakeBreaker,
) -> None:
    """Even judging the hook's answer is contained: logged, and counted as a failure."""
    a = make_breaker("a", failure_threshold=1, failure_if=lambda r: _Ambiguous())
    assert a.call(ok) == "ok"
    assert state_of(a) is OPEN


def test_item4_excluded_exceptions_stay_neutral_with_failure_if(
    make_breaker: MakeBreaker,
) -> None:
    """failure_if judges results; excluded= still makes exceptions neutral."""
    a = make_breaker("a", failure_threshold=1, failure_if=lambda r: False, excluded=KeyError)

    def missing() -> None:
        raise KeyError("x")

    for _ in range(3):
        with pytest.raises(KeyError):
            a.call(missing)
    assert state_of(a) is CLOSED


# ---------------------------------------------------------------- growing open duration


def _retry_after(breaker: CircuitBreaker) -> timedelta | None:
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)
    return info.value.retry_after


def test_item4_open_duration_grows_per_failed_probe_up_to_the_cap_and_is_shared(
    make_breaker: MakeBreaker, fake_clock: FakeClock, memory_store: MemoryStore
) -> None:
    """30 s, then 60 s, then the cap of 100 s (not 120 s); instance b waits the same."""
    options = {"reset_backoff": 2.0, "max_reset_timeout": 100, "failure_threshold": 1}
    a = make_breaker("a", **options)
    b = make_breaker("b", **options)
    _outcomes(a, "f")
    assert _retry_after(a) == timedelta(seconds=30)
    fake_clock.advance(30)
    for grown in (60, 100, 100):
        _outcomes(a, "f")  # a is elected; its probe fails
        assert _retry_after(a) == timedelta(seconds=grown)
        assert a.status().open_for == timedelta(seconds=grown)
        fake_clock.advance(5)  # b's cache expires: it reads the grown duration
        assert _retry_after(b) == timedelta(seconds=grown - 5)
        # The boundary: 1 µs before the grown cool-down ends b still rejects.
        fake_clock.advance(grown - 5 - 1e-6)
        assert b.status(refresh=True).state is OPEN
        assert _retry_after(b) is not None
        fake_clock.advance(1e-6)
    assert b.call(ok) == "ok"  # b's probe closes it
    _outcomes(b, "f")  # a new opening starts again from reset_timeout
    assert _retry_after(b) == timedelta(seconds=30)
    # 1 trip + 3 x (elect, probe failed) + elect, close + trip: only transitions write.
    assert memory_store.stats.writes == 1 + 3 * 2 + 2 + 1


def _seconds(delta: timedelta | None) -> float:
    assert delta is not None
    return delta.total_seconds()


def test_item4_grown_open_duration_exactly_at_cap(
    make_breaker: MakeBreaker, fake_clock: FakeClock
) -> None:
    """A cap equal to reset_timeout x backoff is reached exactly and never exceeded."""
    a = make_breaker("a", failure_threshold=1, reset_backoff=3, max_reset_timeout=90)
    _outcomes(a, "f")
    for _ in range(2):
        fake_clock.advance(_seconds(_retry_after(a)))
        _outcomes(a, "f")
        assert _retry_after(a) == timedelta(seconds=90)


# ---------------------------------------------------------------- observe mode


def test_item4_observe_mode_records_and_transitions_but_never_rejects(
    make_breaker: MakeBreaker, events: list[BreakerEvent], memory_store: MemoryStore,
    fake_clock: FakeClock,
) -> None:
    """mode="observe": the trip is written and reported, and calls keep running."""
    a = make_breaker("a", mode="observe")
    _outcomes(a, "fff")
    assert state_of(a) is OPEN
    assert _reasons(events) == ["failure_threshold"]
    assert a.call(ok) == "ok"  # would be rejected: runs instead
    rejections = [e for e in events if isinstance(e, RejectionEvent)]
    assert [(r.reason, r.enforced) for r in rejections] == [("open", False)]
    _outcomes(a, "fff")  # shadow calls' outcomes change nothing
    assert memory_store.stats.writes == 1
    fake_clock.advance(30)
    assert a.call(ok) == "ok"  # the probe: closes it as enforce mode would
    assert a.status().state is CLOSED


# ---------------------------------------------------------------- fallback


def test_item4_fallback_gets_the_error_and_arguments_and_its_result_is_returned(
    make_breaker: MakeBreaker,
) -> None:
    """While open, fallback(error, *args, **kwargs) replaces the raise, for every path."""
    seen: list[tuple[Any, ...]] = []

    def fallback(error: CircuitOpenError, *args: Any, **kwargs: Any) -> str:
        seen.append((type(error), error.state, args, kwargs))
        return "cached"

    a = make_breaker("a", fallback=fallback)

    def echo(x: int, *, y: int) -> str:
        return f"{x}{y}"

    assert a.call(echo, 1, y=2) == "12"  # closed: fallback not called
    assert seen == []
    _outcomes(a, "fff")
    assert a.call(echo, 1, y=2) == "cached"  # slow path rejection
    assert a.call(echo, 3, y=4) == "cached"  # lock-free rejection
    assert a(echo)(5, y=6) == "cached"  # decorator
    assert seen == [(CircuitOpenError, OPEN, (1,), {"y": 2}),
                    (CircuitOpenError, OPEN, (3,), {"y": 4}),
                    (CircuitOpenError, OPEN, (5,), {"y": 6})]
    with pytest.raises(CircuitOpenError), a:  # a with block has no result to replace
        pass


def test_item4_async_fallback_is_awaited(make_breaker: MakeBreaker) -> None:
    """In call_async an awaitable fallback result is awaited."""

    async def fallback(error: CircuitOpenError) -> str:
        return f"fallback for {error.name}"

    a = make_breaker("a", fallback=fallback, failure_threshold=1)

    async def work() -> str:
        return "done"

    _outcomes(a, "f")
    assert asyncio.run(a.call_async(work)) == "fallback for billing-api"


def test_item4_every_policy_writes_only_on_transitions(
    make_breaker: MakeBreaker, fake_clock: FakeClock, memory_store: MemoryStore
) -> None:
    """A long healthy run under each policy writes nothing at all."""
    policies: list[dict[str, Any]] = [
        {"failure_rate": 0.5, "window_size": 10},
        {"failure_rate": 0.5, "window_type": "time", "window_size": 10},
        {"slow_call_duration": 1},
        {"failure_rate": 0.9, "slow_call_rate": 0.9, "slow_call_duration": 1},
        {"failure_if": lambda r: r is None},
        {"reset_backoff": 2},
        {"mode": "observe"},
    ]
    breakers = [make_breaker(f"i{n}", name=f"p{n}", **p) for n, p in enumerate(policies)]
    for _ in range(200):
        for breaker in breakers:
            breaker.call(ok)
        fake_clock.advance(0.1)
    assert memory_store.stats.writes == 0


def test_item4_async_calls_and_blocks_are_judged_like_sync_ones(
    make_breaker: MakeBreaker, fake_clock: FakeClock
) -> None:
    """call_async judges results and durations; async with judges durations."""
    a = make_breaker("a", failure_threshold=2, slow_call_duration=2,
                     failure_if=lambda r: r == "error-page", cache_ttl=100)

    async def error_page() -> str:
        return "error-page"

    async def scenario() -> None:
        assert await a.call_async(error_page) == "error-page"
        assert state_of(a) is CLOSED
        async with a:
            fake_clock.advance(2)  # a slow block: the second failure
        assert state_of(a) is OPEN

    asyncio.run(scenario())


def test_item4_async_observe_mode_never_rejects(make_breaker: MakeBreaker) -> None:
    """An open circuit in observe mode lets awaited calls and blocks run."""
    a = make_breaker("a", mode="observe", failure_threshold=1)
    _outcomes(a, "f")

    async def work() -> str:
        return "ran"

    async def scenario() -> list[str]:
        ran = [await a.call_async(work)]
        async with a:
            ran.append("block ran")
        return ran

    assert asyncio.run(scenario()) == ["ran", "block ran"]
    assert state_of(a) is OPEN
