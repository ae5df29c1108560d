"""
AsyncIdempotencyLedger on the Firestore emulator, through ``AsyncFirestoreStore``.

Gathered claims race in real async transactions, and the sync differential's
operation sequences give the same outcomes on the async ledger over Firestore
as on the sync ledger over a MemoryStore.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any
from unittest import mock

import pytest
import test_idempotency_differential
from hypothesis import HealthCheck, given, settings

from async_bridge import SyncLedgerView
from pipeline_reliability import AsyncIdempotencyLedger, MemoryStore
from pipeline_reliability.dedup import Claimed, InProgress
from pipeline_reliability.stores import AsyncFirestoreStore

pytestmark = pytest.mark.firestore

_RUNS = itertools.count()


def _async_store(project: str) -> Any:
    return AsyncFirestoreStore(project=project)


def test_gathered_claims_on_firestore_get_exactly_one_claim(firestore_project: str) -> None:
    """Six tasks claim one key at once: one Claimed, five InProgress naming the winner."""

    async def scenario() -> list[Any]:
        store = _async_store(firestore_project)
        try:
            ledgers = [AsyncIdempotencyLedger(store, owner=f"w{i}") for i in range(6)]
            return list(await asyncio.gather(*(led.claim("msg-1", "p") for led in ledgers)))
        finally:
            await store.aclose()

    results = asyncio.run(scenario())

    claimed = [r for r in results if isinstance(r, Claimed)]
    assert len(claimed) == 1
    winner = results.index(claimed[0])
    assert all(isinstance(r, InProgress) and r.owner == f"w{winner}"
               for r in results if r is not claimed[0])


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=test_idempotency_differential.operations)
def test_async_firestore_and_sync_memory_agree(firestore_project: str, ops: Any) -> None:
    """The same operations: the same claims, conflicts, results and mismatches."""
    replay = test_idempotency_differential.replay
    collection = f"aidem{next(_RUNS)}"
    expected = replay(MemoryStore(), collection, ops)

    with asyncio.Runner() as runner:
        store = _async_store(firestore_project)

        def build(_store: Any, **options: Any) -> SyncLedgerView:
            return SyncLedgerView(AsyncIdempotencyLedger(store, **options), runner)

        try:
            with mock.patch.object(test_idempotency_differential, "IdempotencyLedger", build):
                got = replay(MemoryStore(), collection, ops)  # the store given is replaced
        finally:
            runner.run(store.aclose())

    assert got == expected
