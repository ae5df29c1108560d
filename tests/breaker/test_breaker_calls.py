"""One breaker instance: what is admitted, what counts as a failure, and the calling forms."""

from __future__ import annotations

import asyncio
import inspect
import logging
from datetime import timedelta

import pytest
from breaker_helpers import BoomError, MakeBreaker, fail, missing_key, ok, state_of, trip

from pipeline_reliability import CircuitOpenError, InvalidInputError, MemoryStore
from pipeline_reliability.breaker import BreakerState, CircuitBreaker
from pipeline_reliability.testing import FakeClock


def test_closed_breaker_runs_the_call_and_returns_its_result(make_breaker: MakeBreaker) -> None:
    """A closed circuit passes arguments through and returns the call's value."""
    breaker = make_breaker("a")

    def add(x: int, *, y: int) -> int:
        return x + y

    assert breaker.call(add, 1, y=2) == 3
    assert state_of(breaker) is BreakerState.CLOSED


def test_opens_after_failure_threshold_within_window(
    make_breaker: MakeBreaker, memory_store: MemoryStore
) -> None:
    """Three failures inside the window open the circuit with exactly one write."""
    breaker = make_breaker("a", failure_threshold=3)

    trip(breaker, 2)
    assert state_of(breaker) is BreakerState.CLOSED
    trip(breaker, 1)

    assert state_of(breaker) is BreakerState.OPEN
    assert memory_store.stats.writes == 1


def test_failures_spread_wider_than_the_window_never_open(
    make_breaker: MakeBreaker, fake_clock: FakeClock, memory_store: MemoryStore
) -> None:
    """Failures that age out of the window do not add up."""
    breaker = make_breaker("a", failure_threshold=3, window=timedelta(seconds=10))

    for _ in range(10):
        trip(breaker, 2)
        fake_clock.advance(10)

    assert state_of(breaker) is BreakerState.CLOSED
    assert memory_store.stats.writes == 0


def test_successes_do_not_reset_the_failure_count(make_breaker: MakeBreaker) -> None:
    """The window counts failures over time, so successes in between do not hide them."""
    breaker = make_breaker("a", failure_threshold=3)

    for _ in range(3):
        breaker.call(ok)
        trip(breaker, 1)

    assert state_of(breaker) is BreakerState.OPEN


def test_minimum_calls_holds_back_a_judgement_on_few_calls(
    make_breaker: MakeBreaker, fake_clock: FakeClock
) -> None:
    """With minimum_calls=6 three failures alone are not enough; three more calls are."""
    breaker = make_breaker("a", failure_threshold=3, minimum_calls=6)

    trip(breaker, 3)
    assert state_of(breaker) is BreakerState.CLOSED
    breaker.call(ok)
    breaker.call(ok)
    trip(breaker, 1)

    assert state_of(breaker) is BreakerState.OPEN


def test_open_circuit_rejects_without_running_the_call(make_breaker: MakeBreaker) -> None:
    """An open circuit raises CircuitOpenError with name, state and retry_after, and skips fn."""
    breaker = make_breaker("a", reset_timeout=30)
    trip(breaker)
    ran: list[int] = []

    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: ran.append(1))

    assert ran == []
    assert info.value.name == "billing-api"
    assert info.value.state is BreakerState.OPEN
    assert info.value.retry_after == timedelta(seconds=30)
    assert info.value.transient


def test_excluded_exceptions_pass_through_and_count_as_nothing(
    make_breaker: MakeBreaker,
) -> None:
    """An excluded exception propagates unchanged and never trips the circuit."""
    breaker = make_breaker("a", failure_threshold=1, excluded=(KeyError,))

    for _ in range(5):
        with pytest.raises(KeyError):
            breaker.call(missing_key)

    assert state_of(breaker) is BreakerState.CLOSED


def test_a_single_excluded_type_is_accepted(make_breaker: MakeBreaker) -> None:
    """excluded may be one exception type instead of a tuple."""
    breaker = make_breaker("a", failure_threshold=1, excluded=KeyError)

    with pytest.raises(KeyError):
        breaker.call(missing_key)

    assert breaker.config.excluded == (KeyError,)
    assert state_of(breaker) is BreakerState.CLOSED


def test_failure_predicate_decides_what_counts(make_breaker: MakeBreaker) -> None:
    """Exceptions the predicate rejects are neutral; the others are failures."""
    breaker = make_breaker(
        "a", failure_threshold=2, failure_predicate=lambda exc: "5xx" in str(exc)
    )

    for _ in range(3):
        with pytest.raises(ValueError, match="4xx"):
            breaker.call(_raise, ValueError("4xx"))
    assert state_of(breaker) is BreakerState.CLOSED
    for _ in range(2):
        with pytest.raises(ValueError, match="5xx"):
            breaker.call(_raise, ValueError("5xx"))

    assert state_of(breaker) is BreakerState.OPEN


def test_a_raising_predicate_counts_the_call_as_a_failure_and_logs(
    make_breaker: MakeBreaker, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken failure_predicate is logged with traceback and the call counts as a failure."""

    def broken(exc: BaseException) -> bool:
        raise RuntimeError("predicate bug")

    breaker = make_breaker("a", failure_threshold=1, failure_predicate=broken)

    with pytest.raises(BoomError):
        breaker.call(fail)

    assert state_of(breaker) is BreakerState.OPEN
    (record,) = [r for r in caplog.records if "failure_predicate" in r.getMessage()]
    assert record.exc_info is not None


def test_circuit_open_error_from_a_nested_breaker_never_counts(
    make_breaker: MakeBreaker,
) -> None:
    """A CircuitOpenError raised inside the call (an inner breaker) is not a failure."""
    inner = make_breaker("inner", name="inner", failure_threshold=1)
    outer = make_breaker("outer", name="outer", failure_threshold=1)
    trip(inner, 1)

    with pytest.raises(CircuitOpenError):
        outer.call(inner.call, ok)

    assert state_of(outer) is BreakerState.CLOSED


def test_base_exceptions_are_neutral(make_breaker: MakeBreaker) -> None:
    """KeyboardInterrupt and cancellation say nothing about the downstream."""
    breaker = make_breaker("a", failure_threshold=1)

    with pytest.raises(KeyboardInterrupt):
        breaker.call(_raise, KeyboardInterrupt())
    with pytest.raises(asyncio.CancelledError):
        breaker.call(_raise, asyncio.CancelledError())

    assert state_of(breaker) is BreakerState.CLOSED


def test_decorator_wraps_a_function(make_breaker: MakeBreaker, fake_clock: FakeClock) -> None:
    """A decorated function keeps its name, trips, rejects, and probes its way back."""
    breaker = make_breaker("a", failure_threshold=2, reset_timeout=30)

    @breaker
    def fetch(x: int) -> int:
        """Fetch x."""
        if x < 0:
            raise BoomError
        return x * 2

    assert fetch(2) == 4
    assert fetch.__name__ == "fetch"
    for _ in range(2):
        with pytest.raises(BoomError):
            fetch(-1)
    with pytest.raises(CircuitOpenError):
        fetch(2)
    fake_clock.advance(30)
    assert fetch(5) == 10  # the probe

    assert state_of(breaker) is BreakerState.CLOSED


def test_decorator_wraps_a_coroutine_function(make_breaker: MakeBreaker) -> None:
    """An async function stays a coroutine function and is guarded on every await."""
    breaker = make_breaker("a", failure_threshold=1)

    @breaker
    async def fetch(x: int) -> int:
        if x < 0:
            raise BoomError
        return x * 2

    async def scenario() -> None:
        assert await fetch(3) == 6
        with pytest.raises(BoomError):
            await fetch(-1)
        with pytest.raises(CircuitOpenError):
            await fetch(3)

    assert inspect.iscoroutinefunction(fetch)
    asyncio.run(scenario())


def test_context_manager_counts_the_block(make_breaker: MakeBreaker) -> None:
    """A failing `with breaker:` block counts; an open circuit rejects on entry."""
    breaker = make_breaker("a", failure_threshold=1)

    with breaker:
        pass
    with pytest.raises(BoomError), breaker:
        raise BoomError

    with pytest.raises(CircuitOpenError), breaker:
        pytest.fail("an open circuit must not enter the block")


def test_async_context_manager_counts_the_block(make_breaker: MakeBreaker) -> None:
    """`async with breaker:` works like the sync form."""
    breaker = make_breaker("a", failure_threshold=1)

    async def scenario() -> None:
        async with breaker:
            await asyncio.sleep(0)
        with pytest.raises(BoomError):
            async with breaker:
                raise BoomError
        with pytest.raises(CircuitOpenError):
            async with breaker:
                pytest.fail("an open circuit must not enter the block")

    asyncio.run(scenario())


def test_nested_context_managers_of_two_breakers(make_breaker: MakeBreaker) -> None:
    """Each breaker's block is attributed to that breaker, also when nested."""
    a = make_breaker("a", name="a", failure_threshold=1)
    b = make_breaker("b", name="b", failure_threshold=1)

    with a, pytest.raises(BoomError), b:
        raise BoomError

    assert state_of(a) is BreakerState.CLOSED
    assert state_of(b) is BreakerState.OPEN


def test_exit_without_enter_is_an_error() -> None:
    """Leaving a block that was never entered is a programming error."""
    breaker = CircuitBreaker("x", MemoryStore(clock=FakeClock()), clock=FakeClock())

    with pytest.raises(InvalidInputError, match="never entered"):
        breaker.__exit__(None, None, None)


def test_call_async_runs_store_work_off_the_event_loop(make_breaker: MakeBreaker) -> None:
    """call_async awaits the coroutine and trips like call()."""
    breaker = make_breaker("a", failure_threshold=2)

    async def failing() -> None:
        raise BoomError

    async def scenario() -> None:
        for _ in range(2):
            with pytest.raises(BoomError):
                await breaker.call_async(failing)
        with pytest.raises(CircuitOpenError):
            await breaker.call_async(failing)

    asyncio.run(scenario())


def test_opening_is_logged_as_a_warning(
    make_breaker: MakeBreaker, caplog: pytest.LogCaptureFixture
) -> None:
    """The instance that opens the circuit logs it at WARNING."""
    breaker = make_breaker("a")

    with caplog.at_level(logging.INFO, logger="pipeline_reliability.breaker"):
        trip(breaker)

    (record,) = [r for r in caplog.records if "closed -> open" in r.getMessage()]
    assert record.levelno == logging.WARNING


def _raise(exc: BaseException) -> None:
    raise exc


def test_async_probe_closes_the_circuit(
    make_breaker: MakeBreaker, fake_clock: FakeClock
) -> None:
    """An awaited probe after reset_timeout is elected off the loop and closes the circuit."""
    breaker = make_breaker("a", failure_threshold=1, reset_timeout=30)
    trip(breaker, 1)
    fake_clock.advance(30)

    async def healthy() -> str:
        return "back"

    assert asyncio.run(breaker.call_async(healthy)) == "back"
    assert state_of(breaker) is BreakerState.CLOSED
