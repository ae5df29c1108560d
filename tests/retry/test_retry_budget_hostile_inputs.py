"""
Hostile options for retry budgets: only ``ReliabilityError`` subclasses may
escape, out-of-range values are refused when built, and a clock that returns
garbage is reported as a configuration error instead of crashing the call.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hostile_values import HOSTILE
from pipeline_reliability.errors import ConfigurationError, RetryExhaustedError
from pipeline_reliability.retry import RetryBudget, RetryPolicy, retry_transient, retrying
from pipeline_reliability.testing import FakeClock


class BrokenClock(FakeClock):
    """A clock whose monotonic time is whatever the test says."""

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value

    def monotonic(self) -> float:
        value: float = self.value
        return value


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["ratio", "window", "min_per_second"]),
        st.sampled_from(HOSTILE),
        max_size=3,
    )
)
def test_budget_options_raise_only_configuration_errors(opts: dict[str, Any]) -> None:
    """Any hostile mix of options builds a working budget or raises ConfigurationError."""
    try:
        budget = RetryBudget(**opts)
    except ConfigurationError:
        return
    budget.record_call(0.0)
    budget.try_retry(0.0)
    assert budget.usage(0.0)[0] == 1


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(HOSTILE))
def test_policy_budget_option_raises_only_configuration_errors(value: Any) -> None:
    """budget=<anything>: a RetryBudget is built from a ratio in range, else ConfigurationError."""
    try:
        policy = RetryPolicy(budget=value, clock=FakeClock())
    except ConfigurationError:
        return
    assert value is None or isinstance(policy.budget, RetryBudget)
    assert policy.call(lambda: "ok") == "ok"


@pytest.mark.parametrize(
    ("field", "low_ok", "low_bad", "high_ok", "high_bad"),
    [
        ("ratio", 0.0, -1e-9, 1000.0, 1000.0000001),
        ("min_per_second", 0.0, -1e-9, 1e6, 1e6 + 1),
        ("window", 1.0, 0.999999, 3600.0, 3600.000001),
    ],
)
def test_each_range_is_inclusive_at_both_ends(
    field: str, low_ok: float, low_bad: float, high_ok: float, high_bad: float
) -> None:
    """The documented bounds are accepted; the adjacent values outside them are refused."""
    RetryBudget(**{field: low_ok})
    RetryBudget(**{field: high_ok})
    for bad in (low_bad, high_bad):
        with pytest.raises(ConfigurationError, match=field):
            RetryBudget(**{field: bad})


@pytest.mark.parametrize("value", [True, False, "0.2", b"1", [], object(), 3 + 0j, math.nan])
def test_non_numbers_and_bools_are_refused_everywhere(value: Any) -> None:
    """budget=True is not a ratio of 1; strings, NaN and containers are refused as well."""
    with pytest.raises(ConfigurationError):
        RetryPolicy(budget=value)
    with pytest.raises(ConfigurationError):
        RetryBudget(ratio=value)
    with pytest.raises(ConfigurationError):
        RetryBudget(min_per_second=value)
    with pytest.raises(ConfigurationError):
        retry_transient(budget=value)


def test_window_takes_a_timedelta_and_refuses_extreme_ones() -> None:
    """timedelta windows are seconds; timedelta.max and negative ones are refused."""
    assert RetryBudget(window=timedelta(minutes=1)).window == 60.0
    for bad in (timedelta.max, timedelta.min, timedelta(0), timedelta(seconds=-1)):
        with pytest.raises(ConfigurationError):
            RetryBudget(window=bad)


def test_retrying_with_a_ratio_budget_is_refused_and_others_validate() -> None:
    """retrying(budget=...) takes a RetryBudget or None only."""
    for bad in (0.2, 1, "x", True):
        with pytest.raises(ConfigurationError):
            retrying(budget=bad)
    assert retrying(budget=None) is not None


@pytest.mark.parametrize("now", [math.nan, math.inf, -math.inf, "1", None, 10**400])
def test_a_clock_returning_garbage_raises_configuration_error(now: Any) -> None:
    """A broken monotonic clock: ConfigurationError from the budget, never a TypeError."""
    budget = RetryBudget()
    for method in (budget.record_call, budget.try_retry, budget.usage):
        with pytest.raises(ConfigurationError, match="clock"):
            method(now)
    policy = RetryPolicy(budget=budget, clock=BrokenClock(now))
    with pytest.raises(ConfigurationError, match="clock"):
        policy.call(lambda: "ok")


def test_huge_and_negative_finite_times_still_count() -> None:
    """Any finite time works: far in the future, or before the clock's origin."""
    for now in (1e300, -1e9, -0.5, 0.0):
        budget = RetryBudget(ratio=1.0, min_per_second=0)
        budget.record_call(now)
        assert budget.try_retry(now)
        assert not budget.try_retry(now)
        assert budget.usage(now) == (1, 1)


def test_a_clock_going_backwards_never_grants_more_than_the_allowance() -> None:
    """Events stamped in the "future" are ignored, never negative: no crash, no overspend."""
    budget = RetryBudget(ratio=1.0, min_per_second=0)
    budget.record_call(100.0)
    assert budget.try_retry(100.0)
    assert budget.usage(50.0) == (0, 0)  # the clock went back: nothing counts yet
    assert not budget.try_retry(50.0)
    budget.record_call(50.0)
    assert budget.try_retry(50.0)
    assert budget.usage(50.0) == (1, 1)


def test_exhaustion_by_budget_is_still_a_retry_exhausted_error() -> None:
    """Callers that handle RetryExhaustedError handle budget refusals too."""
    budget = RetryBudget(0, min_per_second=0)
    with pytest.raises(RetryExhaustedError):
        RetryPolicy(budget=budget, clock=FakeClock()).call(_fail)


def _fail() -> None:
    raise ConnectionError("reset")
