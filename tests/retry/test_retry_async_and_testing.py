"""Async retries and the global testing switch that removes sleeps."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time

import pytest
from retry_helpers import Flaky, gexc

from pipeline_reliability.errors import RetryExhaustedError
from pipeline_reliability.retry import RetryPolicy, is_testing, retry_transient, set_testing
from pipeline_reliability.testing import FakeClock


def test_async_decorator_retries_with_the_injected_clock(fake_clock: FakeClock) -> None:
    """An async function is retried; the fake clock's sleep replaces waiting."""
    fn = Flaky(gexc.ServiceUnavailable("1"), gexc.InternalServerError("2"))

    @retry_transient(attempts=3, initial=1.0, maximum=1.0, clock=fake_clock)
    async def publish(payload: str) -> str:
        await asyncio.sleep(0)
        return f"{fn()}:{payload}"

    assert asyncio.run(publish("x")) == "ok:x"
    assert fn.calls == 3
    assert len(fake_clock.sleeps) == 2
    assert inspect.iscoroutinefunction(publish)


def test_async_permanent_and_exhausted(fake_clock: FakeClock) -> None:
    """Async calls raise permanent errors after one attempt and exhaust like sync ones."""
    policy = RetryPolicy(attempts=2, clock=fake_clock)
    denied = Flaky(gexc.PermissionDenied("no"), gexc.PermissionDenied("no"))
    down = Flaky(gexc.ServiceUnavailable("1"), gexc.ServiceUnavailable("2"))

    async def call(fn: Flaky) -> str:
        return fn()

    with pytest.raises(gexc.PermissionDenied):
        asyncio.run(policy.acall(call, denied))
    with pytest.raises(RetryExhaustedError) as raised:
        asyncio.run(policy.acall(call, down))

    assert (denied.calls, down.calls, raised.value.attempts) == (1, 2, 2)
    assert isinstance(raised.value.__cause__, gexc.ServiceUnavailable)


def test_async_without_clock_uses_asyncio_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an injected clock, async retries wait with asyncio.sleep (never time.sleep)."""
    waited: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        waited.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    monkeypatch.setattr(time, "sleep", _forbidden)
    fn = Flaky(gexc.ServiceUnavailable("1"))

    async def call() -> str:
        return fn()

    assert asyncio.run(RetryPolicy(initial=5.0, maximum=5.0).acall(call)) == "ok"
    assert len(waited) == 1
    assert 0 <= waited[0] <= 5.0


def _forbidden(seconds: float) -> None:
    raise AssertionError(f"time.sleep({seconds}) was called")


def test_set_testing_removes_real_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """In testing mode a policy with hour-long backoff retries without sleeping at all."""
    monkeypatch.setattr(time, "sleep", _forbidden)
    policy = RetryPolicy(attempts=4, initial=3600.0, maximum=3600.0, deadline=None)
    fn = Flaky(*(gexc.ServiceUnavailable(str(i)) for i in range(3)))

    started = time.monotonic()
    with set_testing(True):
        result = policy.call(fn)

    assert (result, fn.calls) == ("ok", 4)
    assert time.monotonic() - started < 5.0


def test_set_testing_also_skips_injected_clock_and_async_sleeps(
    fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Testing mode skips the clock's sleep and asyncio.sleep too."""

    async def never(seconds: float) -> None:
        raise AssertionError("asyncio.sleep was called")

    async def call(fn: Flaky) -> str:
        return fn()

    with set_testing():
        RetryPolicy(clock=fake_clock).call(Flaky(gexc.ServiceUnavailable("x")))
        monkeypatch.setattr(asyncio, "sleep", never)
        asyncio.run(RetryPolicy().acall(call, Flaky(gexc.ServiceUnavailable("y"))))

    assert fake_clock.sleeps == []


def test_set_testing_is_a_context_manager_that_restores() -> None:
    """set_testing switches at once and its with-block restores the previous value."""
    assert not is_testing()
    with set_testing(True):
        assert is_testing()
        with set_testing(False):
            assert not is_testing()
        assert is_testing()
    assert not is_testing()

    set_testing(True)
    assert is_testing()
    set_testing(False)
    assert not is_testing()


def test_set_testing_is_visible_to_all_threads() -> None:
    """The switch is process-wide: a retry in another thread sees it."""
    seen: list[bool] = []
    with set_testing(True):
        worker = threading.Thread(target=lambda: seen.append(is_testing()))
        worker.start()
        worker.join()
    assert seen == [True]
