"""AdaptiveRateLimiter per process: waiting, timeouts, AIMD feedback, convergence, telemetry."""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from typing import Any

import pytest
from rate_helpers import BrokenError, FakeApi, ThrottledError

from otel_helpers import metric_points
from pipeline_reliability import RateLimitTimeoutError, SinkUnavailableError
from pipeline_reliability.errors import InvalidInputError
from pipeline_reliability.limits import AdaptiveRateLimiter, RateChangeEvent, RateLimiterEvent
from pipeline_reliability.retry import is_throttling
from pipeline_reliability.testing import FakeClock

US = 1e-6


def test_item2_the_aimd_limiter_converges_under_a_fake_429_source(fake_clock: FakeClock) -> None:
    """Must show: from 4x the capacity C, the admitted rate settles around C, few 429s."""
    capacity = 50
    api = FakeApi(fake_clock, capacity)
    limiter = AdaptiveRateLimiter(
        "scraper", rate=4 * capacity, min_rate=capacity / 10, cooldown=1.0, clock=fake_clock
    )
    rates: list[float] = []
    while fake_clock.monotonic() < 300:
        with contextlib.suppress(ThrottledError):
            limiter.call(api)
        rates.append(limiter.rate)

    late = [ok for at, ok in api.log if at >= 150]  # the second half, after the first back-off
    admitted_rate = sum(late) / 150
    throttled_fraction = late.count(False) / len(late)
    assert 0.5 * capacity <= admitted_rate <= 1.0 * capacity + 1
    assert throttled_fraction < 0.05
    settled = rates[len(rates) // 2 :]
    assert min(settled) >= capacity / 2 * 0.5  # never collapses to the floor
    assert max(settled) <= 1.5 * capacity  # oscillates around C, not at the 4C start


def test_acquire_spaces_calls_at_the_rate_on_the_clock(fake_clock: FakeClock) -> None:
    """With a burst of 1 at 8 calls/s, five calls take exactly 4 x 0.125 s of sleeping."""
    limiter = AdaptiveRateLimiter("api", rate=8, clock=fake_clock)
    for _ in range(5):
        limiter.acquire()
    assert fake_clock.sleeps == [0.125] * 4
    assert fake_clock.monotonic() == 0.5


def test_a_wait_of_exactly_the_timeout_is_taken(fake_clock: FakeClock) -> None:
    """Boundary: the next token 0.125 s away and ``timeout=0.125``: granted, after a sleep."""
    limiter = AdaptiveRateLimiter("api", rate=8, clock=fake_clock)
    limiter.acquire()
    limiter.acquire(timeout=0.125)
    assert fake_clock.sleeps == [0.125]


def test_a_wait_longer_than_the_timeout_fails_at_once_and_reserves_nothing(
    fake_clock: FakeClock,
) -> None:
    """Boundary: ``timeout`` 1 µs short raises at once; the slot stays for the next caller."""
    limiter = AdaptiveRateLimiter("api", rate=8, clock=fake_clock)
    limiter.acquire()
    with pytest.raises(RateLimitTimeoutError) as info:
        limiter.acquire(timeout=0.125 - US)
    assert info.value.retry_after.total_seconds() == pytest.approx(0.125)
    assert info.value.transient
    assert fake_clock.sleeps == []
    limiter.acquire()
    assert fake_clock.sleeps == [0.125]  # not 0.25: the failed call took no slot


def test_timeout_zero_never_waits(fake_clock: FakeClock) -> None:
    """``acquire(timeout=0)`` takes a token that is there, and never sleeps for one."""
    limiter = AdaptiveRateLimiter("api", rate=8, burst=2, clock=fake_clock)
    limiter.acquire(timeout=0)
    limiter.acquire(timeout=0)
    with pytest.raises(RateLimitTimeoutError):
        limiter.acquire(timeout=0)
    assert fake_clock.sleeps == []


def test_the_constructor_timeout_bounds_call(fake_clock: FakeClock) -> None:
    """``call`` waits at most the limiter's ``timeout``; past it, ``fn`` does not run."""
    limiter = AdaptiveRateLimiter("api", rate=1, timeout=0.5, clock=fake_clock)
    ran: list[int] = []
    limiter.call(ran.append, 1)
    with pytest.raises(RateLimitTimeoutError):
        limiter.call(ran.append, 2)
    assert ran == [1]


def test_a_burst_of_429s_from_one_overload_decreases_once(fake_clock: FakeClock) -> None:
    """Many 429s within ``cooldown`` halve the rate once; after the window, once more."""
    limiter = AdaptiveRateLimiter("api", rate=100, cooldown=2.0, burst=100, clock=fake_clock)

    def throttled() -> None:
        raise ThrottledError

    for _ in range(20):
        with pytest.raises(ThrottledError):
            limiter.call(throttled)
    assert limiter.rate == 50
    fake_clock.advance(2.0)
    with pytest.raises(ThrottledError):
        limiter.call(throttled)
    assert limiter.rate == 25


def test_success_recovers_additively_up_to_max_rate(fake_clock: FakeClock) -> None:
    """After a decrease, each calm ``cooldown`` ending in a success adds ``increase``."""
    limiter = AdaptiveRateLimiter(
        "api", rate=10, max_rate=12, increase=1, cooldown=1.0, burst=1000, clock=fake_clock
    )
    limiter.throttled()
    assert limiter.rate == 5
    for expected in (6, 7, 8):
        limiter.succeeded()  # several successes within one window: one step
        fake_clock.advance(1.0)
        limiter.succeeded()
        assert limiter.rate == expected
    for _ in range(10):
        fake_clock.advance(1.0)
        limiter.succeeded()
    assert limiter.rate == 12  # max_rate, above the starting rate


def test_a_429_of_a_call_sent_before_the_last_decrease_is_ignored(fake_clock: FakeClock) -> None:
    """Two calls in flight hit one overload: the slower 429 comes after the window, still once."""
    limiter = AdaptiveRateLimiter("api", rate=100, cooldown=1.0, burst=10, clock=fake_clock)
    first, second = limiter.permit(), limiter.permit()
    first.__enter__()
    second.__enter__()
    fake_clock.advance(0.1)
    second.__exit__(ThrottledError, ThrottledError(), None)
    assert limiter.rate == 50
    fake_clock.advance(5.0)  # well past the window
    first.__exit__(ThrottledError, ThrottledError(), None)
    assert limiter.rate == 50


def test_other_exceptions_are_neutral_and_propagate(fake_clock: FakeClock) -> None:
    """A non-throttling error neither decreases nor counts as a success."""
    limiter = AdaptiveRateLimiter(
        "api", rate=10, max_rate=20, cooldown=1.0, burst=10, clock=fake_clock
    )

    def broken() -> None:
        raise BrokenError

    fake_clock.advance(5)
    with pytest.raises(BrokenError):
        limiter.call(broken)
    assert limiter.rate == 10
    with pytest.raises(BrokenError), limiter.permit():
        raise BrokenError
    assert limiter.rate == 10


def test_throttled_result_classifies_responses_that_do_not_raise(fake_clock: FakeClock) -> None:
    """A client that returns a 429 response (no exception) throttles via ``throttled_result``."""
    limiter = AdaptiveRateLimiter(
        "api", rate=10, clock=fake_clock, throttled_result=lambda r: r == 429
    )
    assert limiter.call(lambda: 429) == 429
    assert limiter.rate == 5


def test_a_raising_classifier_never_replaces_the_callers_outcome(fake_clock: FakeClock) -> None:
    """A broken ``throttled`` predicate is logged; the call's own exception propagates."""

    def bad(exc: BaseException) -> bool:
        raise RuntimeError("classifier bug")

    limiter = AdaptiveRateLimiter("api", rate=10, throttled=bad, clock=fake_clock)
    with pytest.raises(ThrottledError):
        limiter.call(lambda: (_ for _ in ()).throw(ThrottledError()))
    assert limiter.rate == 10


def test_the_decorator_goes_through_call(fake_clock: FakeClock) -> None:
    """``@limiter`` waits for tokens and learns from the function's 429s."""
    limiter = AdaptiveRateLimiter("api", rate=8, clock=fake_clock)

    @limiter
    def fetch(page: int) -> int:
        if page == 3:
            raise ThrottledError
        return page

    assert [fetch(1), fetch(2)] == [1, 2]
    with pytest.raises(ThrottledError):
        fetch(3)
    assert limiter.rate == 4
    assert fetch.__name__ == "fetch"


def test_the_sync_decorator_refuses_coroutine_functions() -> None:
    """A coroutine function would be "called" without waiting for its result: refused."""
    limiter = AdaptiveRateLimiter("api", rate=8)

    async def fetch() -> None:
        return None

    with pytest.raises(InvalidInputError):
        limiter(fetch)


def test_google_and_http_throttling_signals_are_recognised() -> None:
    """429s from api-core, BigQuery reasons, gRPC, requests and our own wrapped errors."""
    import requests

    grpc: Any = importlib.import_module("grpc")
    gexc: Any = importlib.import_module("google.api_core.exceptions")

    class RpcError(grpc.RpcError):  # type: ignore[misc]
        def code(self) -> Any:
            return grpc.StatusCode.RESOURCE_EXHAUSTED

    response = requests.Response()
    response.status_code = 429
    wrapped = SinkUnavailableError("BigQuery said slow down")
    wrapped.__cause__ = gexc.TooManyRequests("429")
    throttles: list[BaseException] = [
        gexc.TooManyRequests("429"),
        gexc.ResourceExhausted("quota"),
        gexc.Forbidden("Exceeded rate limits", errors=[{"reason": "rateLimitExceeded"}]),
        gexc.BadRequest("quota", errors=[{"reason": "quotaExceeded"}]),
        RpcError(),
        requests.HTTPError(response=response),
        ThrottledError(),
        wrapped,
    ]
    for exc in throttles:
        assert is_throttling(exc), exc
    others: list[BaseException] = [
        gexc.ServiceUnavailable("503"),
        gexc.Forbidden("no", errors=[{"reason": "accessDenied"}]),
        BrokenError(),
        SinkUnavailableError("no cause"),
    ]
    for exc in others:
        assert not is_throttling(exc), exc


def test_is_throttling_survives_hostile_attributes() -> None:
    """An exception whose attributes raise, or a cyclic cause chain, is simply not a throttle."""

    class HostileError(Exception):
        @property
        def status_code(self) -> int:
            raise RuntimeError("boom")

    cyclic = SinkUnavailableError("a")
    other = SinkUnavailableError("b")
    cyclic.__cause__, other.__cause__ = other, cyclic
    assert not is_throttling(HostileError())
    assert not is_throttling(cyclic)


def test_rate_changes_reach_listeners_and_telemetry(
    fake_clock: FakeClock, metric_reader: Any, span_exporter: Any
) -> None:
    """Listeners get frozen events; throttles and timeouts are counted; waits are spans."""
    events: list[RateLimiterEvent] = []
    limiter = AdaptiveRateLimiter(
        "otel-api", rate=8, cooldown=1.0, clock=fake_clock, instance_id="me"
    )
    limiter.add_listener(events.append)
    limiter.add_listener(lambda event: 1 / 0)  # a failing listener is skipped
    limiter.throttled()
    limiter.throttled()  # within the window: counted, no change
    limiter.acquire()
    limiter.acquire()  # waits: a span
    with pytest.raises(RateLimitTimeoutError):
        limiter.acquire(timeout=0)

    assert events == [RateChangeEvent("otel-api", "me", "throttled", 8.0, 4.0, 4.0, 1)]
    throttles = metric_points(metric_reader, "pipeline_reliability.limits.rate.throttles")
    mine = {
        point.attributes["decreased"]: point.value
        for point in throttles if point.attributes.get("limiter") == "otel-api"
    }
    assert mine == {True: 1, False: 1}
    timeouts = metric_points(metric_reader, "pipeline_reliability.limits.rate.timeouts")
    assert [p.value for p in timeouts if p.attributes.get("limiter") == "otel-api"] == [1]
    gauge = metric_points(metric_reader, "pipeline_reliability.limits.rate")
    assert [p.value for p in gauge if p.attributes.get("limiter") == "otel-api"] == [4.0]
    names = [s.name for s in span_exporter.get_finished_spans()]
    assert names == ["pipeline_reliability.limits.acquire"]
    limiter.remove_listener(events.append)


def test_threads_share_one_rate() -> None:
    """Four threads on the real clock together stay within burst + rate x elapsed."""
    limiter = AdaptiveRateLimiter("threads", rate=200)
    start = time.monotonic()

    def worker() -> None:
        for _ in range(25):
            limiter.acquire(timeout=5)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    elapsed = time.monotonic() - start
    assert elapsed >= 99 / 200 * 0.95  # 100 calls at 200/s with one token at the start
