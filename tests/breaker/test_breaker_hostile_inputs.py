"""
Hostile inputs to every CircuitBreaker option and public method (issue 10,
item 9): only ReliabilityError subclasses escape (besides the caller's own
exception, which ``call`` passes through), and nothing is written on rejection.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline_reliability import (
    CircuitOpenError,
    ConfigurationError,
    InvalidInputError,
    MemoryStore,
    ReliabilityError,
)
from pipeline_reliability.breaker import CircuitBreaker
from pipeline_reliability.testing import FakeClock


class CallerError(Exception):
    """The caller's own exception: it must pass through unchanged."""


def _recursive_list() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


HOSTILE: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([0, -1, 2**63, 10**400, -(10**400), 10**6 + 1]),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, 2.5e11, 1e308, 5e-324, -0.0]),
    st.sampled_from([timedelta.max, timedelta.min, timedelta(0), timedelta(microseconds=1),
                     timedelta(days=36_500), timedelta(days=36_501), -timedelta(seconds=1)]),
    st.text(max_size=20),
    st.sampled_from(["", "\ud800", "x" * 5000, "a/b", "__x__", ".", "fail_open", "fail_closed"]),
    st.binary(max_size=10),
    st.builds(_recursive_list),
    st.just(object()),
    st.just(ValueError),
    st.just((ValueError, 3)),
    st.just([ValueError]),
    st.just(lambda *a: 1 / 0),
)

OPTIONS = [
    "name", "store", "failure_threshold", "window", "minimum_calls", "reset_timeout",
    "half_open_probes", "success_threshold", "excluded", "failure_predicate", "cache_ttl",
    "store_timeout", "probe_timeout", "on_store_error", "open_quorum", "clock",
    "instance_id", "collection",
]


def _build(option: str, value: Any, store: MemoryStore, clock: FakeClock) -> CircuitBreaker:
    kwargs: dict[str, Any] = {"failure_threshold": 2, "reset_timeout": 5, "cache_ttl": 1,
                              "clock": clock, "instance_id": "i"}
    args: list[Any] = ["hostile", store]
    if option == "name":
        args[0] = value
    elif option == "store":
        args[1] = value
    else:
        kwargs[option] = value
    return CircuitBreaker(*args, **kwargs)


def _fail() -> None:
    raise CallerError("downstream")


def _exercise(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """Drive a built breaker through a cycle: only ours, or the caller's, may escape."""
    for _ in range(4):
        with contextlib.suppress(CallerError, CircuitOpenError):
            breaker.call(_fail)
        clock.advance(3)
        try:
            with breaker:
                pass
        except CircuitOpenError:
            pass
        with contextlib.suppress(CircuitOpenError):
            breaker.call(lambda: "ok")
    breaker.status()
    breaker.force_open()
    breaker.force_close()
    breaker.reset()


@settings(max_examples=300, deadline=None)
@given(option=st.sampled_from(OPTIONS), value=HOSTILE)
def test_hostile_options_raise_configuration_error_or_work(option: str, value: Any) -> None:
    """Every option with every hostile value: ConfigurationError up front, or a working breaker."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    try:
        breaker = _build(option, value, store, clock)
    except ConfigurationError:
        assert store.stats.writes == 0
        return
    # The caller's error or a rejection from each call, and nothing else (a raw
    # OverflowError or one of ours hiding the caller's error fails here).
    _exercise(breaker, clock)
    assert store.stats.writes <= store.stats.transactions


@settings(max_examples=200, deadline=None)
@given(value=HOSTILE, method=st.sampled_from(
    ["call", "call_async", "decorate", "add_listener", "remove_listener", "status"]))
def test_hostile_method_arguments_raise_invalid_input_and_write_nothing(
    value: Any, method: str
) -> None:
    """Public methods given hostile arguments: only ReliabilityError, and no write."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    breaker = CircuitBreaker("hostile", store, failure_threshold=1, clock=clock, instance_id="i")
    before = store.stats.writes
    try:
        if method == "call":
            breaker.call(value)
        elif method == "call_async":
            asyncio.run(breaker.call_async(value))
        elif method == "decorate":
            breaker(value)
        elif method == "add_listener":
            breaker.add_listener(value)
        elif method == "remove_listener":
            breaker.remove_listener(value)
        else:
            breaker.status(refresh=value)
    except ReliabilityError:
        assert store.stats.writes == before
        return
    except ZeroDivisionError:
        # A callable value raising: that is the caller's own exception passing through.
        assert method in {"call", "call_async"}
        return
    except TypeError:
        # call_async given a sync callable: awaiting its non-awaitable result is the
        # caller's bug surfacing as Python's own error from the caller's function.
        assert method == "call_async"
        assert callable(value)
        return
    if method in {"call", "call_async", "decorate", "add_listener"}:
        assert callable(value)


def test_item9_a_huge_reset_timeout_is_a_configuration_error(
    memory_store: MemoryStore,
) -> None:
    """reset_timeout=2.5e11 was an OverflowError on the first failing call; now refused."""
    with pytest.raises(ConfigurationError):
        CircuitBreaker("x", memory_store, reset_timeout=2.5e11)
    assert memory_store.stats.writes == 0


def test_item9_the_longest_accepted_durations_never_overflow(fake_clock: FakeClock) -> None:
    """At MAX_DURATION every option still works: the caller's own error passes through."""
    store = MemoryStore(clock=fake_clock)
    longest = timedelta(days=36_500)
    breaker = CircuitBreaker(
        "x", store, failure_threshold=1, reset_timeout=longest, window=longest,
        probe_timeout=longest, cache_ttl=longest, store_timeout=longest, clock=fake_clock,
        instance_id="i",
    )
    with pytest.raises(CallerError):
        breaker.call(_fail)
    fake_clock.advance(longest.total_seconds())
    assert breaker.call(lambda: "ok") == "ok"


def test_an_oversize_name_or_instance_id_is_refused(memory_store: MemoryStore) -> None:
    """Names and instance ids are stored in the document: bounded, refused up front."""
    with pytest.raises(ConfigurationError):
        CircuitBreaker("x" * (64 * 1024 + 1), memory_store)
    with pytest.raises(ConfigurationError):
        CircuitBreaker("x", memory_store, instance_id="i" * 1501)
    with pytest.raises(ConfigurationError):
        CircuitBreaker("x", memory_store, open_quorum=101)
    CircuitBreaker("x" * 64 * 1024, memory_store, instance_id="i" * 1500, open_quorum=100)


def test_the_largest_circuit_document_fits_the_store(fake_clock: FakeClock) -> None:
    """Longest name, longest ids, largest quorum: every trip report is still stored."""
    store = MemoryStore(clock=fake_clock)
    breakers = [
        CircuitBreaker("n" * 64 * 1024, store, failure_threshold=1, open_quorum=100,
                       clock=fake_clock, instance_id=f"{i:04d}" + "i" * 1496)
        for i in range(99)
    ]
    for breaker in breakers:
        with pytest.raises(CallerError):
            breaker.call(_fail)
    assert breakers[0].status(refresh=True).reporters == 99


def test_exiting_a_block_never_entered_is_invalid_input(memory_store: MemoryStore) -> None:
    """Misusing the context manager protocol is our typed error."""
    breaker = CircuitBreaker("x", memory_store)
    with pytest.raises(InvalidInputError):
        breaker.__exit__(None, None, None)
