"""``async for attempt in retrying(...)``: the block form in coroutines (issue 12, item 5)."""

from __future__ import annotations

import asyncio
import time

import pytest
from retry_helpers import Flaky, gexc

from pipeline_reliability.errors import RetryBudgetExhaustedError, RetryExhaustedError
from pipeline_reliability.retry import RetryBudget, RetryPolicy, retrying
from pipeline_reliability.testing import FakeClock


async def _block(fn: Flaky, **options: object) -> tuple[str, int]:
    """Run ``fn`` in an ``async for`` block; the result and the number of attempts."""
    attempts = 0
    result = ""
    async for attempt in retrying(**options):  # type: ignore[arg-type]
        with attempt:
            attempts += 1
            await asyncio.sleep(0)
            result = fn()
    return result, attempts


def test_item5_async_block_on_success_makes_one_attempt(fake_clock: FakeClock) -> None:
    """A block that succeeds runs once and never sleeps."""
    fn = Flaky()
    assert asyncio.run(_block(fn, clock=fake_clock)) == ("ok", 1)
    assert fake_clock.sleeps == []


def test_item5_async_block_retries_transient_errors_with_backoff(fake_clock: FakeClock) -> None:
    """Transient errors are retried; the backoff goes through the injected clock."""
    fn = Flaky(gexc.ServiceUnavailable("1"), gexc.InternalServerError("2"))
    got = asyncio.run(_block(fn, attempts=3, initial=1.0, maximum=1.0, clock=fake_clock))
    assert got == ("ok", 3)
    assert len(fake_clock.sleeps) == 2


def test_item5_async_block_permanent_error_propagates_unchanged(fake_clock: FakeClock) -> None:
    """A permanent error leaves the block at once."""
    fn = Flaky(gexc.PermissionDenied("no"))
    with pytest.raises(gexc.PermissionDenied):
        asyncio.run(_block(fn, attempts=3, clock=fake_clock))
    assert fn.calls == 1


def test_item5_async_block_exhaustion_chains_the_last_error(fake_clock: FakeClock) -> None:
    """Attempts run out: RetryExhaustedError from the last error, as in the sync block."""
    fn = Flaky(*(gexc.ServiceUnavailable(str(i)) for i in range(3)))
    with pytest.raises(RetryExhaustedError) as raised:
        asyncio.run(_block(fn, attempts=3, clock=fake_clock))
    assert raised.value.attempts == 3
    assert isinstance(raised.value.__cause__, gexc.ServiceUnavailable)


def test_item5_async_block_backoff_is_awaited_never_slept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a clock the backoff is ``asyncio.sleep``: ``time.sleep`` would block the loop."""
    waited: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        waited.append(seconds)
        await real_sleep(0)

    def no_blocking_sleep(seconds: float) -> None:
        raise AssertionError(f"time.sleep({seconds}) on the event loop")

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    monkeypatch.setattr(time, "sleep", no_blocking_sleep)
    fn = Flaky(gexc.ServiceUnavailable("1"))

    assert asyncio.run(_block(fn, attempts=2, initial=0.05, maximum=0.05)) == ("ok", 2)
    # One await per attempt in _block, plus the backoff between the attempts.
    assert len(waited) == 3
    assert 0 <= max(waited) <= 0.05


def test_item5_async_block_counts_against_a_budget(fake_clock: FakeClock) -> None:
    """A budget counts the block as a call and refuses retries beyond it, typed."""
    budget = RetryBudget(0.0, window=10.0, min_per_second=0.0)
    fn = Flaky(gexc.ServiceUnavailable("1"))
    with pytest.raises(RetryBudgetExhaustedError):
        asyncio.run(_block(fn, attempts=3, budget=budget, clock=fake_clock))
    assert fn.calls == 1
    assert budget.usage(fake_clock.monotonic())[0] == 1


def test_item5_the_same_block_object_serves_for_and_async_for(fake_clock: FakeClock) -> None:
    """``retrying`` returns one object; ``for`` and ``next`` still work as before."""
    policy = RetryPolicy(attempts=2, clock=fake_clock)
    block = retrying(policy)
    first = next(block)
    with first:
        pass
    assert list(block) == []
    assert hasattr(retrying(policy), "__aiter__")
