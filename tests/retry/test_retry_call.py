"""Retried calls: permanent errors once, transient ones until attempts or deadline."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from retry_helpers import Flaky, always, bigquery_error, gexc

from pipeline_reliability.errors import (
    CircuitOpenError,
    ConfigurationError,
    RetryExhaustedError,
)
from pipeline_reliability.retry import (
    RetryPolicy,
    is_transient_outside_transaction,
    retry_transient,
    retrying,
)
from pipeline_reliability.testing import FakeClock

CONFLICT = "Could not serialize access to table p:d.t due to concurrent update"


@pytest.fixture
def policy(fake_clock: FakeClock) -> RetryPolicy:
    """A policy on the fake clock: retries take no real time."""
    return RetryPolicy(attempts=5, deadline=60.0, initial=0.5, maximum=4.0, clock=fake_clock)


@pytest.mark.parametrize(
    "error",
    [
        gexc.PermissionDenied("caller lacks bigquery.tables.updateData"),
        gexc.BadRequest("Syntax error: Unexpected keyword MERGE at [1:1]"),
        gexc.NotFound("Table p:d.t was not found"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_permanent_error_raised_unchanged_after_exactly_one_attempt(
    policy: RetryPolicy, fake_clock: FakeClock, error: Exception
) -> None:
    """A permanent error is raised at once, as the same object, after one call and no sleep."""
    fn = Flaky(*always(lambda: error))

    with pytest.raises(type(error)) as raised:
        policy.call(fn)

    assert raised.value is error
    assert fn.calls == 1
    assert fake_clock.sleeps == []


def test_transient_error_retried_until_attempts_run_out(
    policy: RetryPolicy, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """With plenty of deadline, a persistent transient error is tried exactly `attempts` times."""
    fn = Flaky(*always(lambda: gexc.ServiceUnavailable("try later")), clock=fake_clock, takes=0.1)

    with pytest.raises(RetryExhaustedError) as raised:
        policy.call(fn)

    assert fn.calls == 5
    assert raised.value.attempts == 5
    assert len(fake_clock.sleeps) == 4
    assert "attempts ran out" in str(raised.value)
    [exhausted] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert exhausted.pipeline_reliability["stop_reason"] == "attempts"  # type: ignore[attr-defined]


def test_transient_error_retried_until_deadline_runs_out(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """With plenty of attempts, retrying stops at the deadline and never sleeps past it."""
    policy = RetryPolicy(attempts=1000, deadline=5.0, initial=1.0, maximum=2.0, clock=fake_clock)
    fn = Flaky(*always(lambda: gexc.DeadlineExceeded("slow")), clock=fake_clock, takes=0.25)

    with pytest.raises(RetryExhaustedError) as raised:
        policy.call(fn)

    assert 1 < fn.calls < 1000
    assert raised.value.attempts == fn.calls
    assert "deadline ran out" in str(raised.value)
    assert sum(fake_clock.sleeps) <= 5.0
    assert all(start <= 5.0 + 1e-9 for start in fn.started_at)
    [exhausted] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert exhausted.pipeline_reliability["stop_reason"] == "deadline"  # type: ignore[attr-defined]


def test_success_after_transient_failures_returns_the_result(policy: RetryPolicy) -> None:
    """Transient failures followed by a success return the success's value."""
    fn = Flaky(gexc.ServiceUnavailable("1"), gexc.TooManyRequests("2"))

    assert policy.call(fn) == "ok"
    assert fn.calls == 3


def test_exhaustion_chains_the_last_error(policy: RetryPolicy) -> None:
    """RetryExhaustedError carries the last error as __cause__ and last_error."""
    errors = [gexc.ServiceUnavailable(f"attempt {i}") for i in range(5)]
    fn = Flaky(*errors)

    with pytest.raises(RetryExhaustedError) as raised:
        policy.call(fn)

    assert raised.value.__cause__ is errors[-1]
    assert raised.value.last_error is errors[-1]
    assert "attempt 4" in str(raised.value)


@pytest.mark.parametrize(
    "error",
    [
        gexc.BadRequest(CONFLICT),
        bigquery_error(403, "rateLimitExceeded"),
        bigquery_error(500, "backendError"),
        bigquery_error(400, "jobRateLimitExceeded"),
    ],
    ids=["serialization-conflict", "rateLimitExceeded", "backendError", "jobRateLimitExceeded"],
)
def test_bigquery_conflicts_and_transient_reasons_are_retried(
    policy: RetryPolicy, error: Exception
) -> None:
    """A serialization-conflict BadRequest and transient BigQuery reasons get another attempt."""
    fn = Flaky(error)

    assert policy.call(fn) == "ok"
    assert fn.calls == 2


def test_aborted_retried_only_with_the_outside_transaction_predicate(
    policy: RetryPolicy,
) -> None:
    """Aborted is raised at once by default and retried with is_transient_outside_transaction."""
    once = Flaky(gexc.Aborted("contention"))
    with pytest.raises(gexc.Aborted):
        policy.call(once)

    retried = Flaky(gexc.Aborted("contention"))
    result = policy.with_(predicate=is_transient_outside_transaction).call(retried)

    assert (once.calls, retried.calls, result) == (1, 2, "ok")


def test_retry_after_is_honoured(policy: RetryPolicy, fake_clock: FakeClock) -> None:
    """A CircuitOpenError's retry_after sets the wait (within maximum)."""
    fn = Flaky(
        CircuitOpenError("bq", "open", retry_after=timedelta(seconds=3)),
        CircuitOpenError("bq", "open", retry_after=timedelta(seconds=30)),
    )

    assert policy.call(fn) == "ok"
    assert fake_clock.sleeps[0] >= 3.0
    assert fake_clock.sleeps[1] == 4.0  # capped at maximum


def test_retry_after_beyond_the_deadline_stops_at_once(fake_clock: FakeClock) -> None:
    """When the server asks for more time than the deadline leaves, retrying stops at once."""
    policy = RetryPolicy(attempts=5, deadline=2.0, maximum=10.0, clock=fake_clock)
    fn = Flaky(CircuitOpenError("bq", "open", retry_after=timedelta(seconds=5)))

    with pytest.raises(RetryExhaustedError) as raised:
        policy.call(fn)

    assert (fn.calls, fake_clock.sleeps) == (1, [])
    assert "deadline" in str(raised.value)


def test_call_passes_arguments_through(policy: RetryPolicy) -> None:
    """call forwards positional and keyword arguments to the function."""

    def add(a: int, *, b: int) -> int:
        return a + b

    assert policy.call(add, 1, b=2) == 3


def test_decorator_retries_and_keeps_the_function_metadata(fake_clock: FakeClock) -> None:
    """retry_transient wraps a function, keeps its name and applies the overrides."""
    fn = Flaky(gexc.ServiceUnavailable("1"), gexc.ServiceUnavailable("2"))

    @retry_transient(attempts=2, clock=fake_clock)
    def load() -> str:
        """Load."""
        return fn()

    with pytest.raises(RetryExhaustedError):
        load()
    assert load.__name__ == "load"
    assert (fn.calls, load()) == (2, "ok")


def test_decorator_without_parentheses_is_rejected() -> None:
    """Applying retry_transient bare (no parentheses) raises instead of silently misbehaving."""

    def load() -> None: ...

    with pytest.raises(ConfigurationError, match="parentheses"):
        retry_transient(load)  # type: ignore[arg-type]


def test_retrying_block_retries_and_raises_on_exhaustion(fake_clock: FakeClock) -> None:
    """The for/with block retries transient errors and raises RetryExhaustedError at the end."""
    fn = Flaky(gexc.ServiceUnavailable("1"))
    for attempt in retrying(attempts=3, clock=fake_clock):
        with attempt:
            result = fn()
    assert (result, fn.calls) == ("ok", 2)

    calls = 0
    with pytest.raises(RetryExhaustedError) as raised:  # noqa: PT012 - the loop is the subject
        for attempt in retrying(attempts=3, clock=fake_clock, name="merge"):
            with attempt:
                calls += 1
                raise gexc.ServiceUnavailable("down")
    assert (calls, raised.value.attempts) == (3, 3)
    assert str(raised.value).startswith("merge failed after 3 attempt(s)")


def test_retrying_block_raises_permanent_errors_after_one_attempt(fake_clock: FakeClock) -> None:
    """A permanent error inside the block propagates unchanged after one attempt."""
    calls = 0
    error = gexc.PermissionDenied("no")
    with pytest.raises(gexc.PermissionDenied) as raised:  # noqa: PT012 - the loop is the subject
        for attempt in retrying(clock=fake_clock):
            with attempt:
                calls += 1
                raise error
    assert (raised.value, calls) == (error, 1)


def test_threads_sharing_one_policy_keep_independent_attempt_counts() -> None:
    """Thirty-two threads on one policy each get their own attempts and deadline."""
    clock = FakeClock()
    policy = RetryPolicy(attempts=6, deadline=None, initial=0.01, maximum=0.1, clock=clock)
    threads_count = 32
    barrier = threading.Barrier(threads_count)
    results: dict[int, object] = {}

    def worker(i: int) -> None:
        failures = i % 7  # 0..6: threads with 6 failures exhaust their 6 attempts
        calls = 0

        def op() -> int:
            nonlocal calls
            calls += 1
            if calls == 1:
                barrier.wait(timeout=10)  # every thread is inside its first attempt at once
            if calls <= failures:
                raise gexc.ServiceUnavailable(f"thread {i}")
            return calls

        try:
            results[i] = policy.call(op)
        except RetryExhaustedError as exc:
            results[i] = ("exhausted", exc.attempts, calls)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    expected = {
        i: ("exhausted", 6, 6) if i % 7 == 6 else i % 7 + 1 for i in range(threads_count)
    }
    assert results == expected
