"""
AsyncIdempotencyLedger: the sync ledger's scenarios, state machine and a
sync/async differential run through it, and what only asyncio has.

The sync tests build their ledgers with a module-level helper; here that
helper is swapped for one that builds an ``AsyncIdempotencyLedger`` behind a
ledger-shaped view (``async_bridge.SyncLedgerView``), and the tests run as
they are.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
import test_dedup_hostile_inputs
import test_idempotency_differential
import test_idempotency_ledger
from hypothesis import given
from hypothesis.stateful import run_state_machine_as_test
from test_idempotency_machine import TTL, WINDOW, WORKERS, LedgerMachine

from async_bridge import SyncLedgerView
from pipeline_reliability import (
    AsyncIdempotencyLedger,
    AsyncMemoryStore,
    ConfigurationError,
    IdempotencyLedger,
    MemoryStore,
    StateStore,
)
from pipeline_reliability.dedup import Claimed, InProgress
from pipeline_reliability.retry import RetryPolicy
from pipeline_reliability.testing import FakeClock
from store_backends import AsyncOverSync


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    """One event loop for the whole test."""
    with asyncio.Runner() as run:
        yield run


def _async_ledger_factory(runner: asyncio.Runner) -> Callable[..., Any]:
    """What the sync module's ``ledger(store, owner, **options)`` does, async behind a view."""

    def ledger(store: StateStore, owner: str, **options: Any) -> Any:
        options.setdefault("claim_ttl", test_idempotency_ledger.TTL)
        options.setdefault("expires_after", test_idempotency_ledger.WINDOW)
        return SyncLedgerView(AsyncIdempotencyLedger(AsyncOverSync(store), owner=owner, **options),
                              runner)

    return ledger


# -- the sync scenarios, run on the async form ----------------------------------------------

_FIXTURES = {"store", "memory_store", "fake_clock"}
# Scenarios with threads or their own IdempotencyLedger(...) test the sync form only.
_SYNC_ONLY = ("threading", "IdempotencyLedger(")


def _shared() -> list[Callable[..., None]]:
    cases: list[Callable[..., None]] = []
    for name, fn in sorted(vars(test_idempotency_ledger).items()):
        if not name.startswith("test_") or not inspect.isfunction(fn):
            continue
        params = set(inspect.signature(fn).parameters)
        if params <= _FIXTURES and not any(m in inspect.getsource(fn) for m in _SYNC_ONLY):
            cases.append(fn)
    return cases


SHARED = _shared()


def test_the_shared_scenarios_are_many() -> None:
    """The filter keeps the bulk of the sync scenarios."""
    assert len(SHARED) >= 15


@pytest.mark.parametrize("case", SHARED, ids=lambda fn: fn.__name__)
def test_async_ledger_passes_the_sync_scenario(
    case: Callable[..., None],
    runner: asyncio.Runner,
    memory_store: MemoryStore,
    fake_clock: FakeClock,
) -> None:
    """Each sync ledger scenario holds for AsyncIdempotencyLedger (memory store, fake clock)."""
    available = {"store": memory_store, "memory_store": memory_store, "fake_clock": fake_clock}
    with mock.patch.object(test_idempotency_ledger, "ledger", _async_ledger_factory(runner)):
        case(**{name: available[name] for name in inspect.signature(case).parameters})


# -- the state machine and the differential --------------------------------------------------


class AsyncLedgerMachine(LedgerMachine):
    """The sync ledger's model-checked machine, its workers holding async ledgers."""

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        retry = RetryPolicy(attempts=4, deadline=None)
        store = AsyncOverSync(self.store)  # the machine's FaultyStore, awaited
        self.ledgers = {
            w: SyncLedgerView(  # type: ignore[misc]
                AsyncIdempotencyLedger(
                    store, owner=w, claim_ttl=TTL, expires_after=WINDOW, retry=retry
                ),
                self.runner,
            )
            for w in WORKERS
        }

    def teardown(self) -> None:
        self.runner.close()
        super().teardown()


def test_async_ledger_machine() -> None:
    """Claims, completions and releases under faults and moving time match the model."""
    run_state_machine_as_test(AsyncLedgerMachine)


def _normalised(store: MemoryStore) -> dict[str, Any]:
    """Every entry, claim ids (random per ledger object) reduced to their call number."""
    docs = store.dump()
    for collection in docs.values():
        for doc in collection.values():
            doc["claim_id"] = str(doc.get("claim_id", "")).partition(".")[2]
    return docs


@given(ops=test_idempotency_differential.operations)
def test_sync_and_async_ledgers_agree(ops: Any) -> None:
    """One sequence on both ledger forms: the same outcomes, the same stored entries."""
    replay = test_idempotency_differential.replay
    sync_store = MemoryStore(clock=FakeClock())
    expected = replay(sync_store, "idem", ops)

    async_store = MemoryStore(clock=FakeClock())
    with asyncio.Runner() as runner:

        def build(store: Any, **options: Any) -> SyncLedgerView:
            return SyncLedgerView(AsyncIdempotencyLedger(AsyncOverSync(store), **options), runner)

        with mock.patch.object(test_idempotency_differential, "IdempotencyLedger", build):
            got = replay(async_store, "idem", ops)

    assert got == expected
    assert _normalised(async_store) == _normalised(sync_store)


# -- what only asyncio has -------------------------------------------------------------------


def test_concurrent_claim_tasks_get_exactly_one_claim(fake_clock: FakeClock) -> None:
    """Eight tasks claiming one key through asyncio.gather: one Claimed, seven InProgress."""
    store = AsyncMemoryStore(clock=fake_clock)
    ledgers = [AsyncIdempotencyLedger(store, owner=f"w{i}") for i in range(8)]

    async def scenario() -> list[Any]:
        return await asyncio.gather(*(ledger.claim("msg-1", "payload") for ledger in ledgers))

    results = asyncio.run(scenario())

    assert sorted(type(r).__name__ for r in results) == ["Claimed"] + ["InProgress"] * 7


def test_sync_and_async_ledgers_share_one_store(memory_store: MemoryStore) -> None:
    """A sync and an async worker over the same documents exclude each other."""
    sync = IdempotencyLedger(memory_store, owner="sync")
    async_ = AsyncIdempotencyLedger(AsyncMemoryStore(store=memory_store), owner="async")

    claim = sync.claim("msg-1", {"n": 1})
    busy = asyncio.run(async_.claim("msg-1", {"n": 1}))
    assert isinstance(claim, Claimed)
    assert isinstance(busy, InProgress)
    assert busy.owner == "sync"
    sync.complete(claim, "done")

    done = asyncio.run(async_.claim("msg-1", {"n": 1}))
    assert getattr(done, "result", None) == "done"


def test_async_ledger_refuses_a_blocking_store(memory_store: MemoryStore) -> None:
    """A MemoryStore has the protocol's method names but blocks: ConfigurationError."""
    with pytest.raises(ConfigurationError, match="AsyncStateStore"):
        AsyncIdempotencyLedger(memory_store)  # type: ignore[arg-type]


def test_item5_sync_ledger_refuses_an_async_store(memory_store: MemoryStore) -> None:
    """
    IdempotencyLedger given an AsyncMemoryStore raises ConfigurationError.

    Before: the runtime protocol check passed (same method names) and the
    first claim returned an un-awaited coroutine instead of a ClaimResult.
    """
    with pytest.raises(ConfigurationError, match="AsyncIdempotencyLedger"):
        IdempotencyLedger(AsyncMemoryStore(store=memory_store))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [
        {"claim_ttl": timedelta(0)},
        {"claim_ttl": timedelta(hours=2), "expires_after": timedelta(hours=1)},
        {"collection": "a/b"},
        {"owner": ""},
        {"retry": 3},
    ],
)
def test_async_ledger_options_are_checked_like_the_sync_ones(
    memory_store: MemoryStore, options: dict[str, Any]
) -> None:
    """The same option rules, the same ConfigurationError."""
    with pytest.raises(ConfigurationError):
        AsyncIdempotencyLedger(AsyncMemoryStore(store=memory_store), **options)
    with pytest.raises(ConfigurationError):
        IdempotencyLedger(memory_store, **options)


# -- hostile input, through the sync module's own property tests ----------------------------


@pytest.mark.parametrize("case", ["test_ledger_options", "test_ledger_calls"])
def test_async_ledger_with_hostile_input(case: str, runner: asyncio.Runner) -> None:
    """The sync ledger's hostile-input properties hold for the async ledger."""

    def build(store: Any, **options: Any) -> Any:
        # A MemoryStore is the test's own store: await it. Anything else is the
        # hostile value under test and goes to the constructor as it is.
        backing = AsyncOverSync(store) if isinstance(store, MemoryStore) else store
        return SyncLedgerView(AsyncIdempotencyLedger(backing, **options), runner)

    with mock.patch.object(test_dedup_hostile_inputs, "IdempotencyLedger", build):
        getattr(test_dedup_hostile_inputs, case)()
