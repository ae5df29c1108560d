"""
Issue 12 item 3: retry budgets. Retries are limited to a fraction of recent
calls per process; a refused retry fails fast with a typed error, visible in
span events, logs and OTel. Everything runs on a FakeClock, no sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import timedelta
from typing import Any

import pytest
import tenacity
from retry_helpers import Flaky, gexc

from otel_helpers import metric_points
from pipeline_reliability import RetryBudget as TopLevelRetryBudget
from pipeline_reliability import RetryBudgetExhaustedError as TopLevelError
from pipeline_reliability._telemetry import span
from pipeline_reliability.errors import (
    ConfigurationError,
    RetryBudgetExhaustedError,
    RetryExhaustedError,
)
from pipeline_reliability.retry import (
    RetryBudget,
    RetryPolicy,
    retry_transient,
    retrying,
    set_testing,
)
from pipeline_reliability.testing import FakeClock

LOGGER = "pipeline_reliability.retry"


def down() -> BaseException:
    error: BaseException = gexc.ServiceUnavailable("down")
    return error


class Down:
    """A dependency in an outage: every attempt fails; attempts are counted."""

    def __init__(self) -> None:
        self.attempts = 0

    def __call__(self) -> str:
        self.attempts += 1
        raise gexc.ServiceUnavailable("down")


@pytest.fixture
def no_sleeps() -> None:
    """Retries happen at once, so time (and the budget's window) stands still."""
    set_testing(True)  # the folder's autouse fixture restores sleeps afterwards


def spend(budget: RetryBudget, now: float, calls: int) -> None:
    for _ in range(calls):
        budget.record_call(now)


# --- the rule: retries <= max(ratio x calls, min_per_second x window) ------------------------


def test_item3_budget_exhaustion_fails_fast_with_a_typed_error(
    fake_clock: FakeClock, no_sleeps: None
) -> None:
    """A spent budget refuses the retry: the call fails after one attempt, last error chained."""
    budget = RetryBudget(ratio=0.2, min_per_second=0)
    policy = RetryPolicy(attempts=5, budget=budget, clock=fake_clock)
    dependency = Down()

    with pytest.raises(RetryBudgetExhaustedError) as info:
        policy.call(dependency)

    err = info.value
    assert dependency.attempts == 1  # failed fast: no retry was allowed (0.2 x 1 call < 1)
    assert isinstance(err, RetryExhaustedError)
    assert err.reason == "budget"
    assert err.attempts == 1
    assert isinstance(err.__cause__, gexc.ServiceUnavailable)
    assert err.last_error is err.__cause__
    assert (err.calls, err.retries) == (1, 0)
    assert "retry budget" in str(err)


def test_item3_retry_reaching_ratio_times_calls_is_allowed_the_next_refused() -> None:
    """With 10 calls and ratio 0.2: retries 1 and 2 allowed (2 == 0.2 x 10), the 3rd refused."""
    budget = RetryBudget(ratio=0.2, min_per_second=0)
    spend(budget, 0.0, 10)
    assert budget.try_retry(0.0)
    assert budget.try_retry(0.0)  # retries == ratio x calls exactly
    assert not budget.try_retry(0.0)  # one more than ratio x calls
    assert budget.usage(0.0) == (10, 2)  # the refused one is not counted
    budget.record_call(0.0)  # 11 calls: 0.2 x 11 = 2.2, still below 3
    assert not budget.try_retry(0.0)
    spend(budget, 0.0, 4)  # 15 calls: 0.2 x 15 = 3
    assert budget.try_retry(0.0)


def test_ratio_is_exact_for_decimal_values() -> None:
    """0.7 x 10 is 7, not 6.999…: the 7th retry is allowed, the 8th refused."""
    budget = RetryBudget(ratio=0.7, min_per_second=0)
    spend(budget, 5.0, 10)
    assert [budget.try_retry(5.0) for _ in range(8)] == [True] * 7 + [False]


def test_item3_call_at_the_window_edge_no_longer_counts_one_microsecond_inside_does() -> None:
    """A call made at 100.0 s (a slot start) counts until 110.0 s exclusive (window 10 s)."""
    budget = RetryBudget(ratio=1.0, window=10, min_per_second=0)
    budget.record_call(100.0)
    assert budget.usage(110.0 - 1e-6) == (1, 0)
    assert budget.usage(110.0) == (0, 0)

    inside, edge = (
        RetryBudget(ratio=1.0, min_per_second=0),
        RetryBudget(ratio=1.0, min_per_second=0),
    )
    inside.record_call(100.0)
    edge.record_call(100.0)
    assert inside.try_retry(110.0 - 1e-6)  # 1 retry <= 1.0 x 1 call
    assert not edge.try_retry(110.0)  # the call expired: 1 retry > 1.0 x 0 calls


def test_retries_expire_with_the_window_too() -> None:
    """A retry stops counting a window after its slot: the budget refills."""
    budget = RetryBudget(ratio=1.0, window=10, min_per_second=0)
    spend(budget, 0.0, 1)
    assert budget.try_retry(0.0)
    spend(budget, 9.5, 1)  # 2 calls, 1 retry in the window at 9.5
    assert budget.try_retry(9.5)
    assert not budget.try_retry(9.5)
    # At 10.0 the slot [0, 1) expired: 1 call and 1 retry remain (those of 9.5).
    assert budget.usage(10.0) == (1, 1)
    assert not budget.try_retry(10.0)
    budget.record_call(10.0)
    assert budget.try_retry(10.0)


def test_the_window_slides_in_slots_of_a_tenth() -> None:
    """A call at 100.9 s shares the slot [100, 101): it expires at 110.0, 9.1 s later."""
    budget = RetryBudget(ratio=1.0, window=10, min_per_second=0)
    budget.record_call(100.9)
    assert budget.usage(109.999) == (1, 0)
    assert budget.usage(110.0) == (0, 0)


def test_item3_floor_lets_a_quiet_process_retry_and_is_not_added_to_the_ratio() -> None:
    """min_per_second x window is a floor: 10 retries with 1 call; with 100 calls 20, not 30."""
    quiet = RetryBudget(ratio=0.2, window=10, min_per_second=1.0)
    quiet.record_call(0.0)
    assert [quiet.try_retry(0.0) for _ in range(11)] == [True] * 10 + [False]

    busy = RetryBudget(ratio=0.2, window=10, min_per_second=1.0)
    spend(busy, 0.0, 100)
    assert sum(busy.try_retry(0.0) for _ in range(40)) == 20
    assert busy.allowed(100) == 20
    assert busy.allowed(1) == 10


def test_zero_ratio_and_zero_floor_refuse_every_retry(fake_clock: FakeClock) -> None:
    """budget=RetryBudget(0, min_per_second=0) turns retries off: attempts are only the first."""
    policy = RetryPolicy(attempts=5, budget=RetryBudget(0, min_per_second=0), clock=fake_clock)
    dependency = Down()
    with pytest.raises(RetryBudgetExhaustedError):
        policy.call(dependency)
    assert dependency.attempts == 1


def test_a_retry_refused_by_attempts_or_deadline_spends_no_budget(fake_clock: FakeClock) -> None:
    """The budget is asked last: running out of attempts leaves the retries counted as made."""
    budget = RetryBudget(ratio=1.0, min_per_second=0)
    spend(budget, 0.0, 9)
    with pytest.raises(RetryExhaustedError) as info:
        RetryPolicy(attempts=3, budget=budget, clock=fake_clock, initial=0, maximum=0).call(Down())
    assert info.value.reason == "attempts"
    assert not isinstance(info.value, RetryBudgetExhaustedError)
    assert budget.usage(0.0) == (10, 2)  # two retries made; the third was never asked for


# --- every form counts calls and honours the budget ----------------------------------------


def _exhausted(budget: RetryBudget) -> None:
    # One call, every retry the floor allows already spent.
    budget.record_call(0.0)
    while budget.try_retry(0.0):
        pass


def test_item3_every_form_fails_fast_when_the_budget_is_spent(fake_clock: FakeClock) -> None:
    """call, acall, the sync and async decorators and the block all refuse the retry."""
    budget = RetryBudget(ratio=0.2)
    _exhausted(budget)
    policy = RetryPolicy(attempts=5, budget=budget, clock=fake_clock)
    dependency = Down()

    async def adown() -> str:
        return dependency()

    @retry_transient(policy)
    def decorated() -> str:
        return dependency()

    @retry_transient(policy)
    async def adecorated() -> str:
        return dependency()

    def block() -> None:
        for attempt in retrying(policy):
            with attempt:
                dependency()

    forms: list[Any] = [
        lambda: policy.call(dependency),
        lambda: asyncio.run(policy.acall(adown)),
        decorated,
        lambda: asyncio.run(adecorated()),
        block,
    ]
    for form in forms:
        with pytest.raises(RetryBudgetExhaustedError):
            form()
    assert dependency.attempts == len(forms)  # one attempt each, no retry
    assert budget.usage(0.0)[0] == 1 + len(forms)  # and each counted as a call


def test_item3_every_form_counts_successful_calls(fake_clock: FakeClock) -> None:
    """Successful calls earn the retries: 5 forms x 2 calls at ratio 0.5 allow 5 retries."""
    budget = RetryBudget(ratio=0.5, min_per_second=0)
    policy = RetryPolicy(budget=budget, clock=fake_clock)

    async def aok() -> str:
        return "ok"

    @retry_transient(policy)
    def ok() -> str:
        return "ok"

    @retry_transient(policy)
    async def aok_decorated() -> str:
        return "ok"

    for _ in range(2):
        assert policy.call(lambda: "ok") == "ok"
        assert asyncio.run(policy.acall(aok)) == "ok"
        assert ok() == "ok"
        assert asyncio.run(aok_decorated()) == "ok"
        for attempt in retrying(policy):
            with attempt:
                pass
    assert budget.usage(0.0) == (10, 0)
    assert sum(budget.try_retry(0.0) for _ in range(6)) == 5


def test_a_transient_failure_within_budget_is_retried_as_before(fake_clock: FakeClock) -> None:
    """With budget to spare, a retried call behaves exactly as without a budget."""
    policy = RetryPolicy(attempts=3, budget=0.2, clock=fake_clock)
    fn = Flaky(down(), down())
    assert policy.call(fn) == "ok"
    assert fn.calls == 3
    assert policy.budget is not None
    assert isinstance(policy.budget, RetryBudget)
    assert policy.budget.usage(fake_clock.monotonic()) == (1, 2)


def test_permanent_errors_never_touch_the_budget(fake_clock: FakeClock) -> None:
    """A permanent error propagates unchanged; no retry is asked of the budget."""
    budget = RetryBudget(min_per_second=0)
    with pytest.raises(ValueError, match="bad"):
        RetryPolicy(budget=budget, clock=fake_clock).call(Flaky(ValueError("bad")))
    assert budget.usage(0.0) == (1, 0)


def test_success_with_a_budget_builds_no_tenacity_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting the call is all a budget adds to the success path."""
    built: list[str] = []
    for cls in (tenacity.Retrying, tenacity.AsyncRetrying, tenacity.RetryCallState):
        original = cls.__init__

        def spy(self: Any, *args: Any, _orig: Any = original, **kwargs: Any) -> None:
            built.append(type(self).__name__)
            _orig(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", spy)

    @retry_transient(budget=0.2)
    def ok() -> int:
        return 1

    for attempt in retrying(budget=RetryBudget()):
        with attempt:
            pass
    assert ok() == 1
    assert built == []


# --- sharing: per policy, per RetryBudget object, never by accident ------------------------


def test_item3_budget_is_shared_by_every_call_of_a_policy_and_its_copies(
    fake_clock: FakeClock,
) -> None:
    """A policy's copies (with_) and policies given one RetryBudget share its counts."""
    policy = RetryPolicy(budget=0.2, clock=fake_clock)
    copy = policy.with_(attempts=2)
    assert copy.budget is policy.budget
    shared = RetryBudget()
    a = RetryPolicy(budget=shared, clock=fake_clock)
    b = RetryPolicy(attempts=2, budget=shared, clock=fake_clock)
    a.call(lambda: 1)
    b.call(lambda: 2)
    policy.call(lambda: 3)
    copy.call(lambda: 4)
    assert shared.usage(0.0) == (2, 0)
    assert isinstance(policy.budget, RetryBudget)
    assert policy.budget.usage(0.0) == (2, 0)


def test_a_ratio_override_gives_each_decorated_function_its_own_budget(
    fake_clock: FakeClock, no_sleeps: None
) -> None:
    """@retry_transient(budget=0.2) on two functions: two budgets, not one cached policy."""
    first, second = Down(), Down()

    @retry_transient(attempts=5, budget=0.2, clock=fake_clock)
    def one() -> str:
        return first()

    @retry_transient(attempts=5, budget=0.2, clock=fake_clock)
    def two() -> str:
        return second()

    for _ in range(2):  # 4 + 4 retries of the floor of 10
        with pytest.raises(RetryExhaustedError):
            one()
    for _ in range(2):  # the 3rd call gets 2 retries, the 4th none
        with pytest.raises(RetryBudgetExhaustedError):
            one()
    with pytest.raises(RetryExhaustedError) as info:
        two()  # its own budget is untouched: all 5 attempts
    assert info.value.reason == "attempts"
    assert (first.attempts, second.attempts) == (5 + 5 + 3 + 1, 5)


def test_retrying_refuses_a_ratio_that_would_build_a_budget_per_block(
    fake_clock: FakeClock,
) -> None:
    """retrying(budget=0.2) would never limit anything: a clear ConfigurationError instead."""
    with pytest.raises(ConfigurationError, match="RetryBudget"):
        retrying(budget=0.2)
    shared = RetryBudget()
    for attempt in retrying(budget=shared, clock=fake_clock):
        with attempt:
            pass
    assert shared.usage(0.0)[0] == 1


def test_budget_is_exported_from_the_package_and_as_a_policy_value() -> None:
    """RetryBudget and the error are public at the top level; a ratio becomes a RetryBudget."""
    assert TopLevelRetryBudget is RetryBudget
    assert TopLevelError is RetryBudgetExhaustedError
    policy = RetryPolicy(budget=0.25)
    assert isinstance(policy.budget, RetryBudget)
    assert (policy.budget.ratio, policy.budget.window, policy.budget.min_per_second) == (
        0.25,
        10.0,
        1.0,
    )
    assert RetryPolicy().budget is None
    assert RetryBudget(window=timedelta(seconds=30)).window == 30.0
    assert "ratio=0.2" in repr(RetryBudget())


# --- thread safety ---------------------------------------------------------------------------


def test_concurrent_threads_never_overspend_the_budget() -> None:
    """8 threads record 1000 calls each and race for retries: counts exact, never overspent."""
    budget = RetryBudget(ratio=0.1, min_per_second=0)
    granted: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait(timeout=30)
        mine = 0
        for _ in range(1000):
            budget.record_call(1.0)
            if budget.try_retry(1.0):
                mine += 1
        with lock:
            granted.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert budget.usage(1.0) == (8000, sum(granted))
    assert sum(granted) == 800


# --- visible in events, logs and OTel -------------------------------------------------------


def test_item3_refusal_is_a_span_event_an_error_log_and_a_counter(
    fake_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    span_exporter: Any,
    metric_reader: Any,
) -> None:
    """The refusal: event pipeline_reliability.retry.budget_exhausted, one ERROR, a counter."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    budget = RetryBudget(ratio=0.2)
    _exhausted(budget)
    before = sum(
        p.value for p in metric_points(metric_reader, "pipeline_reliability.retry.budget_refused")
    )

    with span("test", "outer"), pytest.raises(RetryBudgetExhaustedError):
        RetryPolicy(budget=budget, clock=fake_clock).call(Down())

    [outer] = [s for s in span_exporter.get_finished_spans() if s.name.endswith("test.outer")]
    [event] = [e for e in outer.events if e.name == "pipeline_reliability.retry.budget_exhausted"]
    assert event.attributes is not None
    assert event.attributes["budget.calls"] == 2
    assert event.attributes["budget.retries"] == 10
    errors = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "retry budget" in errors[0].getMessage()
    record: Any = errors[0]
    assert record.exc_info[1].__class__ is gexc.ServiceUnavailable
    points = metric_points(metric_reader, "pipeline_reliability.retry.budget_refused")
    assert sum(p.value for p in points) == before + 1
    exhausted = metric_points(metric_reader, "pipeline_reliability.retry.exhausted")
    assert any(p.attributes.get("stop_reason") == "budget" for p in exhausted)


def test_outage_without_budget_makes_attempts_times_the_load(fake_clock: FakeClock) -> None:
    """The baseline the budget fixes: 100 calls in an outage make 500 attempts at attempts=5."""
    dependency = Down()
    policy = RetryPolicy(attempts=5, deadline=None, clock=fake_clock, initial=0, maximum=0)
    for _ in range(100):
        with pytest.raises(RetryExhaustedError):
            policy.call(dependency)
    assert dependency.attempts == 500
    budgeted = Down()
    policy = policy.with_(budget=0.2)
    for _ in range(100):
        with pytest.raises(RetryExhaustedError):
            policy.call(budgeted)
    assert budgeted.attempts == 120  # max(0.2 x 100, 10) = 20 retries
