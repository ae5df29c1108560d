"""
Hostile values for every breaker policy option (issue 12 item 4): a
ConfigurationError up front, or a breaker that works and lets only our
errors (or the caller's own) escape.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_breaker_hostile_inputs import HOSTILE, CallerError

from pipeline_reliability import CircuitOpenError, ConfigurationError, MemoryStore
from pipeline_reliability.breaker import CircuitBreaker
from pipeline_reliability.testing import FakeClock

# Each option with the others it needs to mean anything.
POLICY_OPTIONS: dict[str, dict[str, Any]] = {
    "failure_rate": {},
    "window_type": {"failure_rate": 0.5},
    "window_size": {"failure_rate": 0.5, "minimum_calls": 1},
    "time_window_size": {"failure_rate": 0.5, "window_type": "time"},
    "minimum_calls": {"failure_rate": 0.5, "window_size": 10},
    "slow_call_duration": {},
    "slow_call_rate": {"failure_rate": 0.5, "slow_call_duration": 1},
    "failure_if": {},
    "reset_backoff": {},
    "max_reset_timeout": {"reset_backoff": 2},
    "mode": {},
    "fallback": {},
}


def _build(option: str, value: Any, store: MemoryStore, clock: FakeClock) -> CircuitBreaker:
    kwargs: dict[str, Any] = {"failure_threshold": 2, "reset_timeout": 5, "cache_ttl": 1,
                              "clock": clock, "instance_id": "i", **POLICY_OPTIONS[option]}
    kwargs["window_size" if option == "time_window_size" else option] = value
    return CircuitBreaker("hostile", store, **kwargs)


def _fail() -> None:
    raise CallerError("downstream")


def _exercise(breaker: CircuitBreaker, clock: FakeClock, user_errors: tuple[type, ...]) -> None:
    for _ in range(4):
        for fn in (_fail, lambda: "ok", lambda: None):
            with contextlib.suppress(CallerError, CircuitOpenError, *user_errors):
                breaker.call(fn)
            clock.advance(1.5)
        with contextlib.suppress(CircuitOpenError), breaker:
            clock.advance(0.5)
    breaker.status()
    breaker.force_open()
    with contextlib.suppress(CircuitOpenError, *user_errors):
        breaker.call(lambda: "ok")
    breaker.force_close()


@settings(max_examples=400, deadline=None)
@given(option=st.sampled_from(sorted(POLICY_OPTIONS)), value=HOSTILE)
def test_item4_hostile_policy_options_raise_configuration_error_or_work(
    option: str, value: Any
) -> None:
    """Only ConfigurationError at build time; at call time only ours or the caller's errors."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    try:
        breaker = _build(option, value, store, clock)
    except ConfigurationError:
        assert store.stats.writes == 0
        return
    # A fallback is the caller's code: what it raises is the caller's (HOSTILE's
    # callable divides by zero); a failure_if that raises is contained instead.
    user_errors: tuple[type, ...] = (ZeroDivisionError,) if option == "fallback" else ()
    _exercise(breaker, clock, user_errors)
    assert store.stats.writes <= store.stats.transactions


@pytest.mark.parametrize(
    "options",
    [
        {"failure_rate": 0.0}, {"failure_rate": 1.0000001}, {"failure_rate": True},
        {"failure_rate": float("nan")}, {"slow_call_rate": 0.5, "slow_call_duration": 1},
        {"slow_call_rate": 0.5, "failure_rate": 0.5},
        {"window_size": 10}, {"window_type": "count"},
        {"failure_rate": 0.5, "window_type": "sliding"},
        {"failure_rate": 0.5, "window_size": 0}, {"failure_rate": 0.5, "window_size": 2.5},
        {"failure_rate": 0.5, "window_size": 10, "minimum_calls": 11},
        {"failure_rate": 0.5, "window_type": "time", "window_size": timedelta(0)},
        {"failure_rate": 0.5, "window_type": "time", "window_size": timedelta(microseconds=999)},
        {"failure_rate": 0.5, "window_type": "time", "window_size": 5e-324},
        {"slow_call_duration": 0}, {"slow_call_duration": -1},
        {"reset_backoff": 0.999}, {"reset_backoff": 1000.5}, {"reset_backoff": float("inf")},
        {"max_reset_timeout": 29.999}, {"max_reset_timeout": timedelta(days=36_501)},
        {"mode": "shadow"}, {"fallback": "not callable"}, {"failure_if": 3},
    ],
)
def test_item4_each_invalid_policy_value_is_a_configuration_error(options: dict[str, Any]) -> None:
    """Adjacent invalid values: just outside each range is refused up front."""
    with pytest.raises(ConfigurationError):
        CircuitBreaker("bad", MemoryStore(), reset_timeout=30, **options)


@pytest.mark.parametrize(
    "options",
    [
        {"failure_rate": 1.0}, {"failure_rate": 5e-324},
        {"failure_rate": 0.5, "window_size": 10, "minimum_calls": 10},
        {"reset_backoff": 1.0}, {"reset_backoff": 1000.0}, {"max_reset_timeout": 30},
        {"failure_rate": 0.5, "window_type": "time", "window_size": timedelta(milliseconds=1)},
    ],
)
def test_item4_each_boundary_policy_value_is_accepted(options: dict[str, Any]) -> None:
    """The values at each range's edge are valid."""
    CircuitBreaker("good", MemoryStore(), reset_timeout=30, **options)
