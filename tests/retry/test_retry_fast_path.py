"""Issue 13: a first attempt that succeeds builds no retry machinery; a failure resumes it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import tenacity
from retry_helpers import Flaky, gexc

from pipeline_reliability.errors import RetryExhaustedError
from pipeline_reliability.retry import RetryPolicy, retry_transient, retrying
from pipeline_reliability.testing import FakeClock


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the tenacity objects built during the test."""
    seen: list[str] = []
    for cls in (tenacity.Retrying, tenacity.AsyncRetrying, tenacity.RetryCallState):
        original = cls.__init__

        def spy(self: Any, *args: Any, _orig: Any = original, **kwargs: Any) -> None:
            seen.append(type(self).__name__)
            _orig(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", spy)
    return seen


def test_item2_decorator_success_builds_no_tenacity_state(built: list[str]) -> None:
    """``@retry_transient`` on a call that succeeds first time does nothing retry-related."""

    @retry_transient(attempts=3)
    def ok(x: int) -> int:
        return x + 1

    assert ok(1) == 2
    assert built == []


def test_item2_async_decorator_success_builds_no_tenacity_state(built: list[str]) -> None:
    """The async form skips the machinery on success as well."""

    @retry_transient(attempts=3)
    async def ok() -> str:
        return "ok"

    assert asyncio.run(ok()) == "ok"
    assert built == []


def test_item3_block_success_builds_no_tenacity_state(built: list[str]) -> None:
    """``for attempt in retrying(...)`` whose first attempt succeeds runs once, no tenacity."""
    runs = 0
    for attempt in retrying(attempts=3):
        with attempt:
            runs += 1
    assert (runs, built) == (1, [])


def test_item2_failure_after_fast_path_still_retries_with_tenacity(
    built: list[str], fake_clock: FakeClock
) -> None:
    """A transient first failure hands over to tenacity, which runs attempt 2 on."""
    fn = Flaky(gexc.ServiceUnavailable("1"), gexc.ServiceUnavailable("2"))
    policy = RetryPolicy(attempts=3, initial=0.5, clock=fake_clock)
    assert policy.call(fn) == "ok"
    assert fn.calls == 3
    assert len(fake_clock.sleeps) == 2
    assert "Retrying" in built


def test_item2_deadline_counts_the_first_attempt(fake_clock: FakeClock) -> None:
    """The deadline starts before the bare first attempt: one that used it all ends retrying."""
    # Attempt 1 takes exactly the deadline: nothing is left, so no second attempt.
    fn = Flaky(gexc.ServiceUnavailable("1"), clock=fake_clock, takes=5.0)
    with pytest.raises(RetryExhaustedError) as raised:
        RetryPolicy(attempts=5, deadline=5.0, clock=fake_clock).call(fn)
    assert (fn.calls, raised.value.reason) == (1, "deadline")
    # Just under the deadline: the retry still happens.
    fn = Flaky(gexc.ServiceUnavailable("1"), clock=fake_clock, takes=4.999)
    assert RetryPolicy(attempts=5, deadline=5.0, initial=0.0, clock=fake_clock).call(fn) == "ok"
    assert fn.calls == 2


def test_item2_predicate_is_asked_once_per_failure(fake_clock: FakeClock) -> None:
    """The fast path's verdict on attempt 1 is reused, not asked again."""
    asked: list[BaseException] = []

    def predicate(exc: BaseException) -> bool:
        asked.append(exc)
        return True

    fn = Flaky(ValueError("1"), ValueError("2"))
    assert RetryPolicy(attempts=3, predicate=predicate, clock=fake_clock).call(fn) == "ok"
    assert len(asked) == 2


def test_item3_block_failure_resumes_at_attempt_two(fake_clock: FakeClock) -> None:
    """A block that fails once retries; attempt numbers continue from 2."""
    numbers: list[int] = []
    fn = Flaky(gexc.ServiceUnavailable("1"))
    for attempt in retrying(attempts=3, clock=fake_clock):
        with attempt:
            numbers.append(attempt.retry_state.attempt_number)
            fn()
    assert numbers == [1, 2]


def test_item3_block_explicit_try_again_retries(fake_clock: FakeClock) -> None:
    """tenacity's ``TryAgain`` in attempt 1 still asks for a retry, as with tenacity."""
    runs = 0
    for attempt in retrying(attempts=3, clock=fake_clock):
        with attempt:
            runs += 1
            if runs == 1:
                raise tenacity.TryAgain
    assert runs == 2
