"""RetryPolicy construction, validation and the delay arithmetic."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from retry_helpers import gexc, http_error

from pipeline_reliability.errors import CircuitOpenError, ConfigurationError
from pipeline_reliability.retry import RetryPolicy, is_transient, suggested_delay
from pipeline_reliability.retry._backoff import backoff_cap, next_delay
from pipeline_reliability.testing import FakeClock


def test_defaults_and_timedelta_normalisation() -> None:
    """Durations given as timedelta are stored as float seconds."""
    policy = RetryPolicy(deadline=timedelta(minutes=2), initial=timedelta(milliseconds=500))

    assert (policy.attempts, policy.deadline, policy.initial) == (5, 120.0, 0.5)
    assert (policy.maximum, policy.multiplier, policy.predicate) == (10.0, 2.0, is_transient)
    assert policy.clock is None


def test_policy_is_frozen_and_with_returns_a_validated_copy() -> None:
    """with_ derives a new policy and leaves the original unchanged."""
    policy = RetryPolicy()
    quick = policy.with_(attempts=3, deadline=5)

    assert (quick.attempts, quick.deadline) == (3, 5.0)
    assert policy.attempts == 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.attempts = 2  # type: ignore[misc]
    with pytest.raises(ConfigurationError):
        policy.with_(attempts=0)


@pytest.mark.parametrize(
    "bad",
    [
        {"attempts": 0},
        {"attempts": -1},
        {"attempts": 2.5},
        {"attempts": True},
        {"deadline": 0},
        {"deadline": -1.0},
        {"deadline": float("inf")},
        {"initial": -0.1},
        {"maximum": float("nan")},
        {"initial": 5.0, "maximum": 1.0},
        {"multiplier": 0.5},
        {"initial": "1s"},
        {"predicate": "transient"},
        {"clock": object()},
    ],
    ids=str,
)
def test_invalid_values_raise_configuration_error(bad: dict[str, Any]) -> None:
    """Values that cannot work are rejected when the policy is built."""
    with pytest.raises(ConfigurationError):
        RetryPolicy(**bad)


def test_deadline_none_means_attempts_only() -> None:
    """A policy may be bounded by attempts alone."""
    policy = RetryPolicy(deadline=None, attempts=2, clock=FakeClock())

    assert policy.deadline is None
    assert next_delay(policy, retry_number=0, elapsed=1e9, uniform=max) == 0.2


def test_backoff_cap_grows_exponentially_up_to_maximum() -> None:
    """The jitter range is initial * multiplier**n, capped, without overflowing."""
    policy = RetryPolicy(initial=0.5, maximum=3.0, multiplier=2.0)

    assert [backoff_cap(policy, n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff_cap(policy, 100_000) == 3.0


def test_full_jitter_draws_from_zero_to_cap() -> None:
    """The delay is uniform(0, cap): the jitter source receives exactly that range."""
    seen: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        seen.append((low, high))
        return high / 2

    delay = next_delay(RetryPolicy(initial=1.0), retry_number=2, elapsed=0.0, uniform=uniform)

    assert seen == [(0.0, 4.0)]
    assert delay == 2.0


def test_sleep_is_truncated_to_the_time_left_and_stops_without_time() -> None:
    """Near the deadline the sleep shrinks to what is left; with nothing left, retrying stops."""
    policy = RetryPolicy(deadline=10.0, initial=8.0, maximum=8.0)

    assert next_delay(policy, retry_number=0, elapsed=7.0, uniform=max) == 3.0
    assert next_delay(policy, retry_number=0, elapsed=10.0, uniform=max) is None


def test_suggested_delay_is_a_floor_capped_by_maximum_and_deadline() -> None:
    """A server hint raises the sleep, never above maximum; a hint past the deadline stops."""
    policy = RetryPolicy(deadline=60.0, initial=0.1, maximum=10.0)

    assert next_delay(policy, retry_number=0, elapsed=0.0, suggested=3.0, uniform=min) == 3.0
    assert next_delay(policy, retry_number=0, elapsed=0.0, suggested=30.0, uniform=min) == 10.0
    assert next_delay(policy, retry_number=0, elapsed=55.0, suggested=8.0, uniform=min) is None


def test_suggested_delay_from_retry_after_attribute() -> None:
    """retry_after is read as a timedelta or as seconds."""
    opened = CircuitOpenError("bq", "open", retry_after=timedelta(seconds=4))

    class ThrottledError(Exception):
        retry_after = 2.5

    assert suggested_delay(opened) == 4.0
    assert suggested_delay(ThrottledError()) == 2.5
    assert suggested_delay(CircuitOpenError("bq", "forced_open")) is None
    assert suggested_delay(ValueError()) is None


def test_suggested_delay_from_grpc_retry_info() -> None:
    """A gRPC RetryInfo detail (as api-core decodes it) gives the delay."""
    info = error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=2, nanos=500_000_000)
    )
    exc = gexc.ResourceExhausted("quota", details=[error_details_pb2.ErrorInfo(), info])

    assert suggested_delay(exc) == 2.5


def test_suggested_delay_from_rest_retry_info() -> None:
    """A REST JSON RetryInfo detail ("1.5s") gives the delay; other details are ignored."""
    exc = http_error(
        429,
        {
            "error": {
                "code": 429,
                "message": "Quota exceeded",
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE"},
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"},
                ],
            }
        },
    )

    assert isinstance(exc, gexc.TooManyRequests)
    assert suggested_delay(exc) == 1.5
    assert suggested_delay(gexc.ServiceUnavailable("x")) is None
