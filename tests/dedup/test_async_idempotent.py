"""
idempotent() over an AsyncIdempotencyLedger: coroutine handlers, awaited claims.

The sync decorator scenarios run unchanged: their ``make_ledger`` builds an
async ledger here, and their ``idempotent`` wraps each (sync) test handler in
a coroutine function, decorates that with the real ``idempotent`` and runs the
result to completion. Then the checks only the async form has.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
import test_idempotent_decorator
from test_idempotent_decorator import Message

from async_bridge import SyncLedgerView
from pipeline_reliability import (
    AsyncIdempotencyLedger,
    AsyncMemoryStore,
    ConfigurationError,
    IdempotencyLedger,
    LockNotAcquiredError,
    MemoryStore,
    idempotent,
)
from pipeline_reliability.dedup import Claimed, Completed, InProgress


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    """One event loop for the whole test."""
    with asyncio.Runner() as run:
        yield run


def _bridge(runner: asyncio.Runner) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``make_ledger`` and ``idempotent`` as the sync tests call them, async underneath."""

    def make_ledger(store: MemoryStore, owner: str = "worker-1") -> SyncLedgerView:
        ledger = AsyncIdempotencyLedger(
            AsyncMemoryStore(store=store), owner=owner, claim_ttl=timedelta(minutes=1)
        )
        return SyncLedgerView(ledger, runner)

    def bridged(view: SyncLedgerView, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(fn)
            async def handler(*args: Any, **kw: Any) -> Any:
                return fn(*args, **kw)

            wrapped = idempotent(view.inner, **kwargs)(handler)
            assert inspect.iscoroutinefunction(wrapped)

            @functools.wraps(fn)
            def run(*args: Any, **kw: Any) -> Any:
                return runner.run(wrapped(*args, **kw))

            return run

        return decorate

    return make_ledger, bridged


# Each refers to sync-only behaviour: the twin for the async form is below.
_SYNC_ONLY = {"test_coroutine_handlers_are_refused"}
SHARED = [
    fn
    for name, fn in sorted(vars(test_idempotent_decorator).items())
    if name.startswith("test_") and inspect.isfunction(fn) and name not in _SYNC_ONLY
]


def test_the_shared_scenarios_are_many() -> None:
    """The decorator's scenarios are all reused but the one that is sync by definition."""
    assert len(SHARED) >= 6


@pytest.mark.parametrize("case", SHARED, ids=lambda fn: fn.__name__)
def test_async_idempotent_passes_the_sync_scenario(
    case: Callable[..., None], runner: asyncio.Runner, request: pytest.FixtureRequest
) -> None:
    """Each decorator scenario holds with an async ledger and a coroutine handler."""
    make_ledger, bridged = _bridge(runner)
    params = inspect.signature(case).parameters
    with (
        mock.patch.object(test_idempotent_decorator, "make_ledger", make_ledger),
        mock.patch.object(test_idempotent_decorator, "idempotent", bridged),
    ):
        case(**{name: request.getfixturevalue(name) for name in params})


# -- the async form's own rules ---------------------------------------------------------------


def test_a_sync_handler_with_an_async_ledger_is_refused(memory_store: MemoryStore) -> None:
    """A plain function given an async ledger is a ConfigurationError at decoration time."""
    ledger = AsyncIdempotencyLedger(AsyncMemoryStore(store=memory_store))

    def handle(message: Message) -> None:
        return None

    with pytest.raises(ConfigurationError, match="coroutine"):
        idempotent(ledger, key_fn=lambda m: m.message_id)(handle)


def test_item5_coroutine_handlers_run_with_an_async_ledger(memory_store: MemoryStore) -> None:
    """
    A coroutine handler is wrapped in a coroutine function that awaits the ledger.

    Before: ``idempotent`` refused every ledger but an IdempotencyLedger and
    every coroutine function (ConfigurationError).
    """
    ledger = AsyncIdempotencyLedger(AsyncMemoryStore(store=memory_store))
    calls: list[str] = []

    @idempotent(ledger, key_fn=lambda m: m.message_id)
    async def handle_message(message: Message) -> dict[str, int]:
        """Handle one message."""
        await asyncio.sleep(0)
        calls.append(message.data)
        return {"rows": len(calls)}

    async def scenario() -> list[Any]:
        first = await handle_message(Message("m1", "a"))
        second = await handle_message(Message("m1", "a"))
        return [first, second]

    assert inspect.iscoroutinefunction(handle_message)
    assert handle_message.__name__ == "handle_message"
    assert handle_message.__doc__ == "Handle one message."
    assert asyncio.run(scenario()) == [{"rows": 1}, {"rows": 1}]
    assert calls == ["a"]


def test_concurrent_deliveries_run_the_handler_once(memory_store: MemoryStore) -> None:
    """Two deliveries at once (gather): one runs, the other gets the transient lock error."""
    ledger = AsyncIdempotencyLedger(AsyncMemoryStore(store=memory_store))
    started = asyncio.Event()
    finish = asyncio.Event()
    runs: list[int] = []

    @idempotent(ledger, key_fn=lambda m: m.message_id)
    async def handle(message: Message) -> str:
        runs.append(1)
        started.set()
        await finish.wait()
        return "done"

    async def second_delivery() -> Any:
        await started.wait()
        try:
            return await handle(Message("m1", "a"))
        finally:
            finish.set()

    async def scenario() -> list[Any]:
        return list(
            await asyncio.gather(
                handle(Message("m1", "a")), second_delivery(), return_exceptions=True
            )
        )

    first, second = asyncio.run(scenario())

    assert first == "done"
    assert isinstance(second, LockNotAcquiredError)
    assert runs == [1]


def test_a_cancelled_handler_releases_its_claim(memory_store: MemoryStore) -> None:
    """Cancelling the task mid-handler releases the claim; the redelivery runs at once."""
    ledger = AsyncIdempotencyLedger(AsyncMemoryStore(store=memory_store))
    started = asyncio.Event()
    runs: list[str] = []

    @idempotent(ledger, key_fn=lambda m: m.message_id)
    async def handle(message: Message) -> str:
        runs.append(message.data)
        started.set()
        if len(runs) == 1:
            await asyncio.Event().wait()  # stuck until cancelled
        return "ok"

    async def scenario() -> str:
        task = asyncio.create_task(handle(Message("m1", "a")))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await handle(Message("m1", "a"))

    assert asyncio.run(scenario()) == "ok"
    assert runs == ["a", "a"]


def test_the_sync_ledger_still_refuses_coroutines(memory_store: MemoryStore) -> None:
    """The sync ledger's store calls block: a coroutine handler stays a ConfigurationError."""

    async def handle(message: Message) -> None:
        return None

    with pytest.raises(ConfigurationError, match="AsyncIdempotencyLedger"):
        idempotent(IdempotencyLedger(memory_store), key_fn=lambda m: m.message_id)(handle)


def test_outcome_types_are_shared(memory_store: MemoryStore) -> None:
    """Both ledgers return the very same result classes."""
    ledger = AsyncIdempotencyLedger(AsyncMemoryStore(store=memory_store), owner="a")

    async def scenario() -> list[Any]:
        claim = await ledger.claim("k")
        assert isinstance(claim, Claimed)
        busy = await AsyncIdempotencyLedger(ledger.store, owner="b").claim("k")
        done = await ledger.complete(claim, 1)
        return [busy, done]

    busy, done = asyncio.run(scenario())
    assert isinstance(busy, InProgress)
    assert isinstance(done, Completed)
