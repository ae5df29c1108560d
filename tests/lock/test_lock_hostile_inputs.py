"""
Hostile input to every public lock entry point (issue 10 item 9, DESIGN §4).

Each example drives one constructor or call with values an attacker or a
careless caller could pass: self-referential and 10 000-deep containers,
integers beyond int64 and beyond 4300 digits, NaN, infinities, timedelta.max,
None, bools, a megabyte of text, lone surrogates, wrong types. Only
``ReliabilityError`` subclasses may escape, and a refused call writes nothing
(``store.stats.writes`` on a fresh MemoryStore does not move).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lock_helpers import DATE, NAME

from hostile_values import HOSTILE_SETTINGS, hostile
from pipeline_reliability import MemoryStore
from pipeline_reliability.errors import (
    ConfigurationError,
    InvalidInputError,
    LockNotAcquiredError,
    ReliabilityError,
)
from pipeline_reliability.lock import DateLock, FenceGuard, break_lock, date_lock
from pipeline_reliability.testing import FakeClock

LOCK_OPTIONS = (
    "store",
    "name",
    "date",
    "ttl",
    "owner",
    "clock",
    "on_store_error",
    "collection",
    "auto_renew",
    "on_lost",
)


def _valid(store: MemoryStore, clock: FakeClock) -> dict[str, Any]:
    return {"store": store, "name": NAME, "date": DATE, "ttl": 60, "owner": "a", "clock": clock}


def _refused_without_writes(store: MemoryStore, call: Callable[[], Any]) -> Any:
    """Run ``call``; let only ReliabilityError out, and only when nothing was written."""
    before = store.stats.writes
    try:
        return call()
    except ReliabilityError:
        assert store.stats.writes == before, "a refused call wrote to the store"
        raise


def _only_typed_errors(store: MemoryStore, call: Callable[[], Any]) -> Any:
    try:
        return _refused_without_writes(store, call)
    except ReliabilityError:
        return None


@HOSTILE_SETTINGS
@given(option=st.sampled_from(LOCK_OPTIONS), value=hostile)
def test_date_lock_options_and_every_method(option: str, value: Any) -> None:
    """Any one hostile option: refused up front, or a lock whose every method is safe."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    options = {**_valid(store, clock), option: value}

    lock = _only_typed_errors(store, lambda: DateLock(**options))
    if lock is None:
        assert store.stats.writes == 0
        return
    lease = _only_typed_errors(store, lambda: lock.acquire(blocking=False))
    _only_typed_errors(store, lock.locked)
    if lease is not None:
        _only_typed_errors(store, lease.renew)
        _only_typed_errors(store, lease.ensure_held)
        _only_typed_errors(store, lock.release)


@HOSTILE_SETTINGS
@given(blocking=hostile | st.booleans(), timeout=hostile)
def test_acquire_arguments(blocking: Any, timeout: Any) -> None:
    """acquire(blocking, timeout) refuses hostile values before touching the store."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    lock = DateLock(store, NAME, DATE, owner="a", clock=clock, ttl=60)

    lease = _only_typed_errors(store, lambda: lock.acquire(blocking=blocking, timeout=timeout))

    assert (lease is not None) == (lock.lease is not None)


@HOSTILE_SETTINGS
@given(option=st.sampled_from(("blocking", "timeout", "ttl", "owner", "bogus")), value=hostile)
def test_date_lock_context_manager(option: str, value: Any) -> None:
    """date_lock() with one hostile argument or option, or an unknown option."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)

    def run() -> None:
        with date_lock(store, NAME, DATE, clock=clock, **{option: value}):
            pass

    _only_typed_errors(store, run)


@HOSTILE_SETTINGS
@given(argument=st.sampled_from(("store", "name", "date", "token", "collection")), value=hostile)
def test_operator_helpers(argument: str, value: Any) -> None:
    """break_lock() and DateLock.inspect() with one hostile argument: typed errors, no write."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    DateLock(store, NAME, DATE, owner="a", clock=clock, ttl=60).acquire()
    store.reset_stats()
    args: dict[str, Any] = {"store": store, "name": NAME, "date": DATE, "collection": "date_locks"}

    _only_typed_errors(store, lambda: break_lock(**{**args, "token": None, argument: value}))
    if argument != "token":
        _only_typed_errors(store, lambda: DateLock.inspect(**{**args, argument: value}))


@HOSTILE_SETTINGS
@given(token=hostile, key=hostile, sink=hostile)
def test_fence_guard_and_lease_check(token: Any, key: Any, sink: Any) -> None:
    """FenceGuard.check/newest and Lease.check raise only typed errors."""
    guard = FenceGuard()
    guard.check(5, key=("phase4", DATE))
    calls: list[Callable[[], object]] = [
        lambda: guard.check(token, key=key),
        lambda: guard.check(token),
        lambda: guard.newest(key),
    ]
    for call in calls:
        with contextlib.suppress(ReliabilityError):
            call()
    clock = FakeClock()
    lease = DateLock(MemoryStore(clock=clock), NAME, DATE, clock=clock, ttl=60).acquire()
    with contextlib.suppress(ReliabilityError):
        lease.check(sink)


@pytest.mark.parametrize(
    "options",
    [
        {"ttl": None},
        {"ttl": 8.64e13},
        {"ttl": dt.timedelta.max},
        {"ttl": 1e-7},  # rounds to no time at all
        {"store": None},
        {"clock": "now"},
        {"auto_renew": "yes"},
        {"owner": "\ud800"},
        {"name": "n" * 2000},
    ],
)
def test_item9_lock_options_raise_configuration_or_input_errors(options: dict[str, Any]) -> None:
    """The options that escaped as AssertionError/OverflowError/TypeError are typed errors."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)

    with pytest.raises((ConfigurationError, InvalidInputError)):
        DateLock(**{**_valid(store, clock), **options})


def test_item9_fence_guard_refuses_nan_and_unhashable_keys() -> None:
    """NaN was admitted as a token, and a list key raised TypeError."""
    guard = FenceGuard()
    with pytest.raises(InvalidInputError):
        guard.check(math.nan)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        guard.check(1, key=[1, 2])  # type: ignore[arg-type]


def test_refused_timeout_keeps_a_held_lock_untouched() -> None:
    """A bad timeout on a contended lock is refused before the first read."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    DateLock(store, NAME, DATE, owner="a", clock=clock, ttl=60).acquire()
    store.reset_stats()

    with pytest.raises(InvalidInputError):
        DateLock(store, NAME, DATE, owner="b", clock=clock).acquire(timeout=dt.timedelta.max)
    with pytest.raises(LockNotAcquiredError):
        DateLock(store, NAME, DATE, owner="b", clock=clock).acquire(timeout=0)

    assert (store.stats.reads, store.stats.writes) == (1, 0)
