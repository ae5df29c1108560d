"""
Issue 12 item 4 on the Firestore emulator, in real time: each breaker policy
trips and recovers as documented across two instances, and the store is
written only on transitions (counted with ``store.stats``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from pipeline_reliability import CircuitOpenError
from pipeline_reliability.breaker import BreakerEvent, BreakerState, CircuitBreaker

pytestmark = pytest.mark.firestore

CACHE_TTL = 0.3
RESET_TIMEOUT = 1.0
OPEN, CLOSED = BreakerState.OPEN, BreakerState.CLOSED


class DownstreamError(Exception):
    """The shared downstream failed."""


def _fail() -> None:
    raise DownstreamError


def _slow() -> str:
    time.sleep(0.08)
    return "slow"


def _make(store: Any, name: str, instance: str, **options: Any) -> CircuitBreaker:
    return CircuitBreaker(
        name, store, reset_timeout=RESET_TIMEOUT, cache_ttl=CACHE_TTL, instance_id=instance,
        store_timeout=10,  # the emulator on a shared CI machine is slow; production: 250 ms
        **options,
    )


def _run(breaker: CircuitBreaker, fn: Callable[[], Any]) -> Any:
    try:
        return breaker.call(fn)
    except DownstreamError:
        return "failed"


# name -> (options, the calls that trip it, on instance a)
POLICIES: dict[str, tuple[dict[str, Any], list[Callable[[], Any]]]] = {
    "failure rate, count window": (
        {"failure_rate": 0.5, "window_size": 4, "minimum_calls": 4},
        [lambda: "ok", lambda: "ok", _fail, _fail],
    ),
    "failure rate, time window": (
        {"failure_rate": 0.5, "window_type": "time", "window_size": 30, "minimum_calls": 4},
        [lambda: "ok", _fail, lambda: "ok", _fail],
    ),
    "slow calls": ({"failure_threshold": 2, "slow_call_duration": 0.05}, [_slow, _slow]),
    "slow-call rate": (
        {"failure_rate": 1.0, "slow_call_rate": 0.5, "slow_call_duration": 0.05,
         "window_size": 2, "minimum_calls": 2},
        [lambda: "ok", _slow],
    ),
    "failure_if": (
        {"failure_threshold": 2, "failure_if": lambda r: r == "error-page"},
        [lambda: "error-page", lambda: "error-page"],
    ),
}


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_item4_each_policy_trips_and_recovers_across_two_instances(
    firestore_store: Any, policy: str
) -> None:
    """A trips by the policy (one write); B rejects; after reset_timeout B's probe closes it."""
    options, tripping = POLICIES[policy]
    name = f"policy {policy}"
    a, b = (_make(firestore_store, name, i, **options) for i in "ab")
    events: list[BreakerEvent] = []
    a.add_listener(events.append)
    assert b.call(lambda: "ok") == "ok"

    for fn in tripping:
        _run(a, fn)
    opened = time.monotonic()
    assert a.status().state is OPEN
    assert firestore_store.stats.writes == 1
    time.sleep(CACHE_TTL)
    with pytest.raises(CircuitOpenError):
        b.call(lambda: "must not run")
    assert time.monotonic() - opened < RESET_TIMEOUT

    time.sleep(max(0.0, RESET_TIMEOUT - (time.monotonic() - opened)) + 0.2)
    assert b.call(lambda: "recovered") == "recovered"
    assert b.status().state is CLOSED
    time.sleep(CACHE_TTL)
    for _ in range(5):
        assert a.call(lambda: "ok") == "ok"
    assert firestore_store.stats.writes == 3  # open, elect the probe, close


def test_item4_grown_open_duration_is_shared_across_instances(firestore_store: Any) -> None:
    """A's failed probe doubles the open duration; B, which never saw it, waits that long too."""
    options = {"failure_threshold": 1, "reset_backoff": 2.0, "max_reset_timeout": 2.0}
    a, b = (_make(firestore_store, "growing", i, **options) for i in "ab")
    _run(a, _fail)
    time.sleep(RESET_TIMEOUT + 0.1)
    _run(a, _fail)  # a's probe fails: open for 2 s now
    reopened = time.monotonic()
    assert a.status().state is OPEN
    time.sleep(RESET_TIMEOUT + 0.2)  # past reset_timeout, short of the grown 2 s
    with pytest.raises(CircuitOpenError) as info:
        b.call(lambda: "must not run")
    assert info.value.retry_after is not None
    assert 0 < info.value.retry_after.total_seconds() < 1.0
    time.sleep(max(0.0, 2.0 - (time.monotonic() - reopened)) + 0.2)
    assert b.call(lambda: "recovered") == "recovered"
    assert b.status(refresh=True).state is CLOSED
    # trip, elect, probe failed, elect, close: transitions only.
    assert firestore_store.stats.writes == 5


def test_item4_observe_mode_and_fallback_across_two_instances(firestore_store: Any) -> None:
    """Observe-mode B runs calls while A's trip holds the circuit open; C falls back."""
    a = _make(firestore_store, "rollout", "a", failure_threshold=2, mode="observe")
    b = _make(firestore_store, "rollout", "b", failure_threshold=2, mode="observe")
    c = _make(firestore_store, "rollout", "c", failure_threshold=2,
              fallback=lambda error: f"fallback ({error.state.value})")
    _run(a, _fail)
    _run(a, _fail)
    assert a.status().state is OPEN  # the trip is computed and written in observe mode
    time.sleep(CACHE_TTL)
    assert b.call(lambda: "ran") == "ran"  # would be rejected: observe mode lets it run
    assert b.status().state is OPEN
    assert c.call(lambda: "must not run") == "fallback (open)"
    assert firestore_store.stats.writes == 1
