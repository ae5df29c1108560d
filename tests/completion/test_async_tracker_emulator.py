"""
Acceptance (issue 12, item 5): ``AsyncCompletionTracker`` on ``AsyncFirestoreStore``
against the Firestore emulator, where Firestore decides transactions and time.

Three tracker instances (one of them behind a store in outage, whose
deliveries degrade to the ledger) take five processors' completions, each
delivered twice, as concurrent tasks on one loop; the first publish fails.
Then the sweep and a ledger replay finish the date: exactly one trigger is
published and confirmed, and every processor counts once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from tracker_helpers import DATE, EXPECTED, PHASE

from pipeline_reliability.completion import (
    AsyncCompletionTracker,
    CompletionResult,
    MemoryLedger,
    PhaseSpec,
    TriggerEvent,
)
from pipeline_reliability.errors import PublishFailedError, StoreUnavailableError
from pipeline_reliability.retry import RetryPolicy
from pipeline_reliability.stores import AsyncFirestoreStore, Outcome, Snapshot

pytestmark = pytest.mark.firestore

R = TypeVar("R")
CONCURRENCY = 3  # the Firestore emulator livelocks above ~3 concurrent transactions per document


class Outage:
    """An async store that is down: every operation fails as an unreachable store does."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def stats(self) -> Any:
        return self.inner.stats

    def reset_stats(self) -> None:
        self.inner.reset_stats()

    async def get(self, collection: str, key: str, *, timeout: float | None = None) -> Snapshot:
        raise StoreUnavailableError("outage")

    async def transact(
        self, collection: str, key: str, fn: Callable[[Snapshot], Outcome[R]], *,
        timeout: float | None = None,
    ) -> R:  # fmt: skip
        raise StoreUnavailableError("outage")


def _async_firestore(project: str) -> Any:
    store_class: Any = AsyncFirestoreStore
    return store_class(project=project)


def test_item5_async_tracker_on_async_firestore_triggers_exactly_once(
    firestore_project: str,
) -> None:
    store = _async_firestore(firestore_project)
    ledger = MemoryLedger()
    spec = PhaseSpec(PHASE, EXPECTED, next_phase="phase4")
    retry = RetryPolicy(attempts=8, deadline=60.0, initial=0.05, maximum=0.5)
    up = [
        AsyncCompletionTracker(store, [spec], ledger=ledger, owner=f"w{i}", retry=retry)
        for i in range(2)
    ]
    down = AsyncCompletionTracker(Outage(store), [spec], ledger=ledger, owner="w-down")
    sent: list[TriggerEvent] = []
    failures = [1]

    async def publish(event: TriggerEvent) -> None:
        await asyncio.sleep(0)
        if failures[0]:
            failures[0] -= 1
            raise PublishFailedError("first publish fails")
        sent.append(event)

    names = sorted(EXPECTED)
    deliveries = [(n, d) for d in range(2) for n in names]

    async def scenario() -> tuple[list[Any], Any, Any, Any]:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def deliver(i: int, name: str) -> CompletionResult | Exception:
            tracker = down if name == names[-1] and i % 2 == 0 else up[i % 2]
            async with gate:
                try:
                    return await tracker.record_and_trigger(
                        PHASE, DATE, name, execution_id=f"run-{name}", message_id=f"m-{name}",
                        publish=publish,
                    )  # fmt: skip
                except PublishFailedError as exc:
                    return exc

        results = await asyncio.gather(
            *(deliver(i, name) for i, (name, _) in enumerate(deliveries))
        )
        replay = await up[0].replay_and_trigger(PHASE, [DATE], publish)
        sweep = await up[1].sweep_and_trigger(PHASE, [DATE], publish)
        status = await up[0].status(PHASE, DATE)
        await store.aclose()
        return list(results), replay, sweep, status

    results, replay, sweep, status = asyncio.run(scenario())

    degraded = [r for r in results if isinstance(r, CompletionResult) and r.degraded]
    assert degraded, "the instance in outage wrote to the ledger"
    assert status.completed == EXPECTED
    assert status.trigger_state == "confirmed"
    assert len(sent) == 1  # exactly one trigger reached the topic ...
    claims = [
        r.trigger for r in results if isinstance(r, CompletionResult) and r.trigger is not None
    ] + list(replay.claims) + list(sweep.claims)
    assert {c.trigger_id for c in claims} == {sent[0].trigger_id}  # ... for one trigger id
    assert replay.rows == len(ledger.rows)
