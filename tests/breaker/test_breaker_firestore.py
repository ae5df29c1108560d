"""Three instances share one circuit on the Firestore emulator, in real time."""

from __future__ import annotations

import time
from typing import Any

import pytest

from pipeline_reliability import CircuitOpenError
from pipeline_reliability.breaker import BreakerState, CircuitBreaker

pytestmark = pytest.mark.firestore

CACHE_TTL = 0.5
RESET_TIMEOUT = 2.0


class DownstreamError(Exception):
    """The shared downstream failed."""


def _fail() -> None:
    raise DownstreamError


def test_three_instances_share_one_circuit(firestore_store: Any) -> None:
    """A's failures open it; B and C reject within cache_ttl; one probe; a success closes all."""
    a, b, c = (
        CircuitBreaker(
            "payments/api v2", firestore_store, failure_threshold=3,
            reset_timeout=RESET_TIMEOUT, cache_ttl=CACHE_TTL, instance_id=name,
            store_timeout=10,  # the emulator on a shared CI machine is slow; production: 250 ms
        )
        for name in "abc"
    )
    for breaker in (a, b, c):
        assert breaker.call(lambda: "ok") == "ok"
    assert firestore_store.stats.writes == 0

    for _ in range(3):
        with pytest.raises(DownstreamError):
            a.call(_fail)
    opened = time.monotonic()
    assert a.status().state is BreakerState.OPEN
    assert firestore_store.stats.writes == 1

    time.sleep(CACHE_TTL)
    for breaker in (b, c):
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(lambda: "must not run")
        assert info.value.state is BreakerState.OPEN
        assert info.value.retry_after is not None
    assert time.monotonic() - opened < RESET_TIMEOUT  # rejected well before the cool-down

    time.sleep(max(0.0, RESET_TIMEOUT - (time.monotonic() - opened)) + 0.2)
    others: list[BaseException] = []

    def probe() -> str:
        # While B's probe runs, the other instances (caches expired) must keep rejecting.
        for other in (a, c):
            try:
                other.call(lambda: "must not run")
            except CircuitOpenError as exc:
                others.append(exc)
        return "recovered"

    assert b.call(probe) == "recovered"
    assert [getattr(e, "state", None) for e in others] == [BreakerState.HALF_OPEN] * 2
    assert b.status().state is BreakerState.CLOSED

    time.sleep(CACHE_TTL)
    assert a.call(lambda: "ok") == c.call(lambda: "ok") == "ok"
    assert {x.state for x in (a, b, c)} == {BreakerState.CLOSED}
    assert firestore_store.stats.writes == 3  # open, elect the probe, close
