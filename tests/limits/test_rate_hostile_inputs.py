"""
Hostile inputs to every AdaptiveRateLimiter option and public method: only
ReliabilityError subclasses escape (besides the caller's own exception, which
``call`` passes through), and a junk shared-budget document is survived.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostile_values import HOSTILE_SETTINGS, hostile
from pipeline_reliability import (
    ConfigurationError,
    MemoryStore,
    Put,
    RateLimitTimeoutError,
    ReliabilityError,
)
from pipeline_reliability.limits import AdaptiveRateLimiter, AsyncAdaptiveRateLimiter
from pipeline_reliability.testing import FakeClock

VALUES = st.one_of(
    hostile,
    st.sampled_from([5e-324, 1e-7, 1e-6, 1e6, 1e6 + 1, 0.5, 1.0, -0.0, lambda *a: 1 / 0]),
)
OPTIONS = [
    "name", "rate", "min_rate", "max_rate", "increase", "decrease", "cooldown", "burst",
    "throttled", "throttled_result", "store", "share", "store_timeout", "timeout", "clock",
    "instance_id", "collection",
]


class CallerError(Exception):
    """The caller's own exception: it must pass through unchanged."""


def _options(option: str, value: Any, clock: FakeClock) -> tuple[Any, dict[str, Any]]:
    kwargs: dict[str, Any] = {"rate": 10, "clock": clock, "instance_id": "i"}
    name: Any = "hostile"
    if option == "name":
        name = value
    else:
        kwargs[option] = value
    return name, kwargs


def _exercise(limiter: AdaptiveRateLimiter, clock: FakeClock) -> None:
    for _ in range(3):
        with contextlib.suppress(RateLimitTimeoutError):
            limiter.acquire(timeout=0)
        limiter.throttled()
        clock.advance(1.0)
        limiter.succeeded()
    with contextlib.suppress(RateLimitTimeoutError):
        limiter.call(lambda: 1)
    with pytest.raises(CallerError):
        limiter.call(_raise)
    assert math.isfinite(limiter.rate)
    assert limiter.rate > 0


def _raise() -> None:
    raise CallerError


@pytest.mark.parametrize("option", OPTIONS)
@HOSTILE_SETTINGS
@given(value=VALUES)
def test_hostile_options_raise_configuration_errors_or_work(option: str, value: Any) -> None:
    """Each option alone: the limiter is refused with ConfigurationError, or it works."""
    clock = FakeClock()
    name, kwargs = _options(option, value, clock)
    try:
        limiter = AdaptiveRateLimiter(name, **kwargs)
    except ConfigurationError:
        return
    with contextlib.suppress(ReliabilityError):  # e.g. a wait past a hostile "timeout"
        _exercise(limiter, clock)


@pytest.mark.parametrize("method", ["acquire", "permit", "call", "add_listener", "decorate"])
@HOSTILE_SETTINGS
@given(value=VALUES)
def test_hostile_method_arguments_raise_library_errors(method: str, value: Any) -> None:
    """Bad timeouts, callables and listeners raise ReliabilityError; nothing else escapes."""
    clock = FakeClock()
    limiter = AdaptiveRateLimiter("api", rate=1000, burst=1000, clock=clock)
    try:
        if method == "acquire":
            limiter.acquire(timeout=value)
        elif method == "permit":
            with limiter.permit(timeout=value):
                pass
        elif method == "call":
            limiter.call(value)
        elif method == "add_listener":
            limiter.add_listener(value)
            limiter.throttled()
        else:
            limiter(value)
    except ReliabilityError:
        pass
    except ZeroDivisionError:
        assert method in {"call", "decorate"}  # the caller's own function raised: passed through


@HOSTILE_SETTINGS
@given(value=VALUES)
def test_hostile_async_arguments_raise_library_errors(value: Any) -> None:
    """The async twin checks the same arguments the same way."""
    clock = FakeClock()

    async def main() -> None:
        limiter = AsyncAdaptiveRateLimiter("api", rate=1000, burst=1000, clock=clock)
        for attempt in (
            lambda: limiter.acquire(timeout=value),
            lambda: limiter.call(value),
        ):
            try:
                await attempt()
            except ReliabilityError:
                pass
            except ZeroDivisionError:
                pass  # the caller's own callable raised
            except TypeError:
                # ``await limiter.call(f)`` of a callable that returns a non-awaitable:
                # the caller's own contract, as with any ``await f()``.
                assert callable(value)

    asyncio.run(main())


@pytest.mark.parametrize(
    "junk",
    [
        {"members": "not a list", "throttle": 3},
        {"members": [1, None, {"id": 3}, {"id": "x", "expires": "soon", "rate": 1.0}]},
        {"members": [{"id": "x", "expires": datetime.max.replace(tzinfo=UTC),
                      "rate": math.inf}]},
        {"members": [{"id": "y", "expires": datetime(2099, 1, 1, tzinfo=UTC),
                      "rate": math.nan}], "throttle": {"at": "never", "by": 5}},
        {"members": [{"id": "i", "expires": datetime(2099, 1, 1, tzinfo=UTC), "rate": -1.0}]},
    ],
)
def test_a_junk_shared_document_is_survived(
    junk: dict[str, Any], memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """Whatever another writer put into the document, calls go on and the document heals."""
    memory_store.transact("rate_limits", "api", lambda snap: _put(junk))
    limiter = AdaptiveRateLimiter(
        "api", rate=10, share=timedelta(seconds=5), store=memory_store, clock=fake_clock,
        instance_id="i",
    )
    for _ in range(3):
        limiter.acquire()
        fake_clock.advance(5)
    assert 0 < limiter.rate <= 10
    members = memory_store.get("rate_limits", "api").data or {}
    assert "i" in [m["id"] for m in members["members"] if isinstance(m, dict)]


def _put(data: dict[str, Any]) -> Any:
    from pipeline_reliability import Outcome

    return Outcome(None, Put(data))


def test_a_wait_beyond_a_century_times_out_instead_of_overflowing() -> None:
    """Thousands of waiters queued at the smallest rate: the next fails with a library error."""

    class FrozenClock(FakeClock):
        def sleep(self, seconds: float) -> None:
            self.sleeps.append(seconds)  # time stands still: every waiter keeps its slot

    clock = FrozenClock()
    limiter = AdaptiveRateLimiter("slow", rate=1e-6, clock=clock)
    century = timedelta(days=36_500).total_seconds()
    while not clock.sleeps or clock.sleeps[-1] + 1e6 <= century:
        limiter.acquire()
    with pytest.raises(RateLimitTimeoutError) as info:
        limiter.acquire()
    assert info.value.retry_after > timedelta(days=36_500)
    error = RateLimitTimeoutError("x", retry_after=1e300, timeout=1.0)
    assert error.retry_after <= timedelta.max
