"""
AsyncCompletionTracker on its own terms (issue 12, item 5): concurrency on one
event loop, async publish, the bounded thread for sync sinks, and its options.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pytest
from tracker_helpers import DATE, EXPECTED, FIRST, OTHERS, PHASE

from pipeline_reliability import AsyncMemoryStore, MemoryStore
from pipeline_reliability.completion import (
    AsyncCompletionTracker,
    CompletionTracker,
    LedgerRow,
    MemoryExecutionLog,
    MemoryLedger,
    MemoryRunHistory,
    PhaseSpec,
    RunHistoryRow,
    TrackerEvent,
    TriggerEvent,
    _async_core,
)
from pipeline_reliability.errors import (
    CompletionNotRecordedError,
    ConfigurationError,
    PublishFailedError,
    StoreConflictError,
)
from pipeline_reliability.stores import Outcome, Put, Snapshot
from pipeline_reliability.testing import FakeClock, Fault, FaultyStore
from store_backends import AsyncOverSync

R = TypeVar("R")


class InterleavingStore(AsyncOverSync):
    """
    An optimistic async store that yields to the loop between its read and its commit.

    ``AsyncMemoryStore`` never yields inside ``transact``, so tasks gathered on
    one loop would take turns; here every transaction reads, lets the other
    tasks run, decides, lets them run again, and commits only if the document
    is still the version it read (else it retries): the interleaving a real
    async client produces.
    """

    async def transact(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        for _ in range(200):
            snap = self.sync.get(collection, key, timeout=timeout)
            await asyncio.sleep(0)
            outcome = fn(snap)
            await asyncio.sleep(0)

            def commit(now: Snapshot, seen: Snapshot = snap, out: Outcome[R] = outcome) -> Any:
                if now.version != seen.version:
                    return Outcome(False)
                return Outcome(True, out.write)

            if self.sync.transact(collection, key, commit, timeout=timeout):
                return outcome.result
        raise StoreConflictError("too much contention", attempts=200)


def _spec() -> PhaseSpec:
    return PhaseSpec(PHASE, EXPECTED, next_phase="phase4")


def _tracker(store: Any, clock: FakeClock, **options: Any) -> AsyncCompletionTracker:
    options.setdefault("phases", [_spec()])
    return AsyncCompletionTracker(store, clock=clock, owner="worker-1", **options)


def test_item5_concurrent_completions_with_gather_trigger_exactly_once(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """Must show: concurrent completions (asyncio.gather) claim the trigger exactly once."""
    store = InterleavingStore(memory_store)
    trackers = [_tracker(store, fake_clock) for _ in range(3)]  # three "instances"

    async def deliver() -> list[Any]:
        calls = [
            trackers[i % 3].record_completion(
                PHASE, DATE, name, execution_id=f"run-{name}-{i % 2}", message_id=f"m-{i}"
            )
            for i, name in enumerate(sorted(EXPECTED) * 6)
        ]
        return await asyncio.gather(*calls)

    results = asyncio.run(deliver())

    claims = [r.trigger for r in results if r.trigger is not None]
    assert len(claims) == 1
    assert sum(r.counted for r in results) == len(EXPECTED)
    assert memory_store.stats.conflicts == 0  # the store's own lock never saw a race ...
    status = asyncio.run(trackers[0].status(PHASE, DATE))
    assert status.completed == EXPECTED
    assert status.trigger_state == "claimed"


def test_interleaving_store_really_interleaves(memory_store: MemoryStore) -> None:
    """... because the races happened between read and commit, and were retried there."""
    store = InterleavingStore(memory_store)
    order: list[str] = []

    def bump(tag: str) -> Callable[[Snapshot], Outcome[int]]:
        def fn(snap: Snapshot) -> Outcome[int]:
            order.append(tag)
            n = int((snap.data or {}).get("n", 0)) + 1
            return Outcome(n, _put({"n": n}))

        return fn

    async def both() -> tuple[int, int]:
        return await asyncio.gather(store.transact("c", "k", bump("a")),
                                    store.transact("c", "k", bump("b")))

    assert sorted(asyncio.run(both())) == [1, 2]
    assert len(order) == 3  # one of the two read a stale version and ran again


def _put(data: dict[str, Any]) -> Put:
    return Put(data)


def test_item5_async_publish_that_fails_is_released_and_retried(
    fake_clock: FakeClock,
) -> None:
    """Must show: record_and_trigger with a failing async publish -> released, then retried."""
    tracker = _tracker(AsyncMemoryStore(clock=fake_clock), fake_clock)
    sent: list[TriggerEvent] = []
    failing = [True]

    async def publish(event: TriggerEvent) -> None:
        await asyncio.sleep(0)
        if failing[0]:
            raise PublishFailedError("pubsub down")
        sent.append(event)

    async def scenario() -> Any:
        for name in OTHERS:
            await tracker.record_and_trigger(
                PHASE, DATE, name, execution_id=f"run-{name}", publish=publish
            )
        with pytest.raises(PublishFailedError):
            await tracker.record_and_trigger(
                PHASE, DATE, FIRST, execution_id=f"run-{FIRST}", publish=publish
            )
        released = await tracker.status(PHASE, DATE)
        failing[0] = False
        again = await tracker.record_and_trigger(
            PHASE, DATE, FIRST, execution_id=f"run-{FIRST}", publish=publish
        )
        return released, again

    released, again = asyncio.run(scenario())
    assert released.trigger_state == "released"
    assert again.duplicate
    assert again.triggered
    assert again.confirmation is not None
    assert again.trigger is not None
    assert again.trigger.attempt == 2
    assert [e.trigger_id for e in sent] == [again.trigger.trigger_id]


def test_sync_publish_is_accepted_too(fake_clock: FakeClock) -> None:
    tracker = _tracker(AsyncMemoryStore(clock=fake_clock), fake_clock)
    sent: list[TriggerEvent] = []

    async def scenario() -> list[Any]:
        return [
            await tracker.record_and_trigger(
                PHASE, DATE, n, execution_id=f"run-{n}", publish=sent.append
            )
            for n in sorted(EXPECTED)
        ]

    results = asyncio.run(scenario())
    assert len(sent) == 1
    assert results[-1].triggered


def test_item5_store_failure_degrades_to_the_ledger_and_replay_brings_it_back(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """Must show: degraded completion to the ledger when the async store fails; replay."""
    faulty = FaultyStore(memory_store)
    ledger = MemoryLedger()
    tracker = _tracker(AsyncOverSync(faulty), fake_clock, ledger=ledger)

    async def scenario() -> Any:
        faulty.set_outage(True)
        degraded = await tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1")
        faulty.set_outage(False)
        replay = await tracker.replay_ledger(PHASE, [DATE])
        return degraded, replay, await tracker.status(PHASE, DATE)

    degraded, replay, status = asyncio.run(scenario())
    assert degraded.degraded
    assert degraded.error is not None
    assert [r.processor for r in ledger.rows] == [FIRST]
    assert (replay.applied, replay.duplicates) == (1, 0)
    assert status.completed == {FIRST}


class SlowLedger(MemoryLedger):
    """A ledger whose append blocks until released (a hung BigQuery call)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def append(self, row: LedgerRow) -> None:
        self.release.wait(10)
        super().append(row)


def test_item5_a_hung_ledger_fails_the_completion_within_the_sink_deadline(
    memory_store: MemoryStore, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger runs in a thread, bounded: a hang is the ledger's failure, typed."""
    monkeypatch.setattr(_async_core, "SINK_DEADLINE", 0.05)
    faulty = FaultyStore(memory_store)
    faulty.set_outage(True)
    ledger = SlowLedger()
    tracker = _tracker(AsyncOverSync(faulty), fake_clock, ledger=ledger)

    async def record() -> None:
        try:
            await tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1")
        finally:
            ledger.release.set()  # let the abandoned thread finish (asyncio.run joins it)

    with pytest.raises(CompletionNotRecordedError) as info:
        asyncio.run(record())
    assert isinstance(info.value.__cause__, TimeoutError)
    assert len(ledger.rows) == 1  # the late append still landed: replay takes it once


def test_the_loop_keeps_running_while_a_sink_call_is_in_its_thread(
    fake_clock: FakeClock,
) -> None:
    """The execution log is offloaded: other tasks progress while it blocks."""
    started, release = threading.Event(), threading.Event()

    class BlockingLog(MemoryExecutionLog):
        def write(self, row: Any) -> None:
            started.set()
            release.wait(10)
            super().write(row)

    log = BlockingLog()
    tracker = _tracker(AsyncMemoryStore(clock=fake_clock), fake_clock, execution_log=log)

    async def scenario() -> None:
        for n in sorted(EXPECTED - {max(EXPECTED)}):
            await tracker.record_and_trigger(
                PHASE, DATE, n, execution_id=f"run-{n}", publish=lambda e: None
            )
        last = asyncio.create_task(
            tracker.record_and_trigger(
                PHASE, DATE, max(EXPECTED), execution_id="last", publish=lambda e: None
            )
        )
        while not started.is_set():
            await asyncio.sleep(0.001)
        other = await tracker.status(PHASE, "2026-02-01")  # the loop is free
        assert other.completed == frozenset()
        release.set()
        assert (await last).confirmation is not None

    asyncio.run(scenario())
    assert len(log.rows) == 1


def test_item5_events_and_history_are_those_of_the_sync_tracker(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """Listeners get the same events; the run history gets the same rows (off the loop)."""

    def run(make: Callable[..., Any], deliver: Callable[[Any], None]) -> Any:
        events: list[TrackerEvent] = []
        history = MemoryRunHistory()
        tracker = make(history=history)
        tracker.add_listener(events.append)
        deliver(tracker)
        return [(e.kind, e.date, e.processor, e.outcome) for e in events], [
            _history_key(r) for r in history.rows
        ]

    def sync_deliver(t: CompletionTracker) -> None:
        for n in [*sorted(EXPECTED), FIRST]:
            t.record_and_trigger(PHASE, DATE, n, execution_id=f"r-{n}", publish=lambda e: None)

    def async_deliver(t: AsyncCompletionTracker) -> None:
        async def go() -> None:
            for n in [*sorted(EXPECTED), FIRST]:
                await t.record_and_trigger(
                    PHASE, DATE, n, execution_id=f"r-{n}", publish=lambda e: None
                )

        asyncio.run(go())

    sync = run(
        lambda **o: CompletionTracker(MemoryStore(clock=fake_clock), [_spec()], clock=fake_clock,
                                      owner="w", **o),
        sync_deliver,
    )
    asyn = run(
        lambda **o: AsyncCompletionTracker(AsyncMemoryStore(clock=fake_clock), [_spec()],
                                           clock=fake_clock, owner="w", **o),
        async_deliver,
    )
    assert sync == asyn
    assert len(sync[1]) == len(EXPECTED) + 1


def _history_key(row: RunHistoryRow) -> Sequence[Any]:
    return (row.processor, row.outcome, row.done_count, row.trigger_state)


def test_item5_sync_and_async_trackers_share_one_store_and_trigger_once(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """A mixed fleet: a sync and an async tracker on the same documents."""
    sync = CompletionTracker(memory_store, [_spec()], clock=fake_clock, owner="sync")
    asyn = _tracker(AsyncMemoryStore(store=memory_store), fake_clock)
    names = sorted(EXPECTED)
    first = [sync.record_completion(PHASE, DATE, n, execution_id="r") for n in names[::2]]

    async def rest() -> list[Any]:
        return [await asyn.record_completion(PHASE, DATE, n, execution_id="r")
                for n in names[1::2] + names[::2]]

    results = first + asyncio.run(rest())
    assert len([r for r in results if r.trigger is not None]) == 1
    assert sum(r.duplicate for r in results) == len(names[::2])


def test_item5_each_tracker_refuses_the_other_kind_of_store(fake_clock: FakeClock) -> None:
    async_store = AsyncMemoryStore(clock=fake_clock)
    with pytest.raises(ConfigurationError, match="AsyncStateStore"):
        AsyncCompletionTracker(MemoryStore(), [_spec()])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="a StateStore"):
        CompletionTracker(async_store, [_spec()])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="configured twice"):
        AsyncCompletionTracker(async_store, [_spec(), _spec()])
    with pytest.raises(ConfigurationError, match="owner"):
        AsyncCompletionTracker(async_store, [_spec()], owner="")
    with pytest.raises(ConfigurationError, match="store_deadline"):
        AsyncCompletionTracker(async_store, [_spec()], store_deadline=-1)


def test_aborted_transactions_are_retried_by_the_async_policy(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    faulty = FaultyStore(memory_store)
    tracker = _tracker(AsyncOverSync(faulty), fake_clock)
    faulty.fail_next(Fault.UNAVAILABLE, times=2)
    result = asyncio.run(tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1"))
    assert result.counted
    assert not result.degraded


def test_item5_a_duplicate_is_proven_by_one_read_without_a_transaction(
    fake_clock: FakeClock,
) -> None:
    """The duplicate pre-read fast path of the sync tracker, awaited."""
    store = AsyncMemoryStore(clock=fake_clock)
    tracker = _tracker(store, fake_clock)

    async def twice(execution_id: str) -> Any:
        await tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1", message_id="m1")
        store.reset_stats()
        return await tracker.record_completion(PHASE, DATE, FIRST, execution_id=execution_id)

    duplicate = asyncio.run(twice("r1"))
    assert (duplicate.duplicate, store.stats.reads, store.stats.transactions) == (True, 1, 0)
    fake_clock.advance(1)
    rerun = asyncio.run(twice("r2"))  # a new run is decided in the transaction
    assert (rerun.duplicate, store.stats.transactions) == (False, 1)
