"""
Hostile options and arguments for the retry API: only ``ReliabilityError``
subclasses may escape (issue 10, item 9). No I/O: everything runs on a FakeClock.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline_reliability.errors import (
    ConfigurationError,
    InvalidInputError,
    ReliabilityError,
    RetryExhaustedError,
)
from pipeline_reliability.retry import RetryPolicy, retry_transient, retrying
from pipeline_reliability.testing import FakeClock

HOSTILE: list[Any] = [
    0, -1, 1, 2, 0.5, math.nan, math.inf, -math.inf, 10**400, -(10**400), 1e308, 2.5e11,
    timedelta(0), timedelta(seconds=-1), timedelta.max, timedelta.min, timedelta(days=36_501),
    True, False, None, "3", "", b"1", [], {}, object(), 3 + 0j,
]
FIELDS = ("attempts", "deadline", "initial", "maximum", "multiplier", "predicate", "clock")
hostile = st.sampled_from(HOSTILE)
options = st.dictionaries(st.sampled_from(FIELDS), hostile, max_size=4)


class Flaky:
    """Fails with a transient error ``failures`` times, then returns ``"ok"``."""

    def __init__(self, failures: int = 1) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("reset")
        return "ok"


def _run(policy: RetryPolicy) -> None:
    # A FakeClock moves on each sleep: even a 100-year backoff returns at once.
    policy = policy.with_(clock=FakeClock())
    try:
        assert policy.call(Flaky()) == "ok"
    except RetryExhaustedError:
        assert policy.attempts == 1 or policy.deadline_seconds is not None


@settings(max_examples=300, deadline=None)
@given(options)
def test_policy_options_raise_only_configuration_errors(opts: dict[str, Any]) -> None:
    """RetryPolicy(**hostile) builds a working policy or raises ConfigurationError."""
    try:
        policy = RetryPolicy(**opts)
    except ConfigurationError:
        return
    _run(policy)


@settings(max_examples=300, deadline=None)
@given(options)
def test_with_and_the_decorators_raise_only_configuration_errors(opts: dict[str, Any]) -> None:
    """with_(), retry_transient() and retrying() validate the same way."""
    for build in (
        lambda: RetryPolicy().with_(**opts),
        lambda: retry_transient(**opts),
        lambda: retrying(**opts),
    ):
        try:
            build()
        except ConfigurationError:
            continue


@pytest.mark.parametrize("value", HOSTILE)
def test_each_field_alone(value: Any) -> None:
    """Every field with every hostile value: a policy that works, or ConfigurationError."""
    for field in FIELDS:
        try:
            policy = RetryPolicy(**{field: value})
        except ConfigurationError:
            continue
        _run(policy)


@pytest.mark.parametrize(
    "bad",
    [{"attempt": 3}, {"deadlines": 1.0}, {"name": "x"}],
    ids=["attempt", "deadlines", "name"],
)
def test_item9_unknown_retry_options_are_configuration_errors(bad: dict[str, Any]) -> None:
    """A misspelled option is a ConfigurationError, not a TypeError."""
    with pytest.raises(ConfigurationError):
        RetryPolicy().with_(**bad)
    with pytest.raises(ConfigurationError):
        retry_transient(**bad)


@pytest.mark.parametrize("value", [1.5, timedelta(seconds=2), math.nan, 1001, 0.99, True])
def test_multiplier_is_a_bounded_number(value: Any) -> None:
    """1 <= multiplier <= 1000, a real number (a timedelta is not a growth factor)."""
    if value == 1.5:
        assert RetryPolicy(multiplier=value).multiplier == 1.5
        return
    with pytest.raises(ConfigurationError):
        RetryPolicy(multiplier=value)


@pytest.mark.parametrize("fn", [None, 5, "print", object()])
def test_item9_call_refuses_a_non_callable(fn: Any) -> None:
    """policy.call(<not callable>) is an InvalidInputError, raised before any attempt."""
    with pytest.raises(InvalidInputError):
        RetryPolicy().call(fn)


@pytest.mark.parametrize("fn", [None, 5, "print"])
def test_decorating_a_non_callable_is_refused(fn: Any) -> None:
    """retry_transient()(<not callable>) fails at decoration time."""
    with pytest.raises(ConfigurationError):
        retry_transient()(fn)


@pytest.mark.parametrize("name", [None, 5, "", "x" * 201, b"n"])
def test_retrying_needs_a_name(name: Any) -> None:
    """retrying(name=...) must be a short non-empty string."""
    with pytest.raises(ConfigurationError):
        retrying(name=name)


def test_hostile_values_only_raise_reliability_errors() -> None:
    """Every error class used above is a ReliabilityError (the contract of item 9)."""
    assert issubclass(ConfigurationError, ReliabilityError)
    assert issubclass(InvalidInputError, ReliabilityError)
    assert issubclass(RetryExhaustedError, ReliabilityError)
