"""
The async stores on one event loop: what the contract (run through a thread
adapter) cannot show. Many ``transact`` tasks gathered on one document count
exactly once each; a cancelled task leaves no partial write and no lock; one
AsyncFirestoreStore serves several loops, one client each.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from store_helpers import COLLECTION, increment

from pipeline_reliability import (
    AsyncFirestoreStore,
    AsyncMemoryStore,
    AsyncStateStore,
    ConfigurationError,
    Outcome,
    Put,
    Snapshot,
    StoreError,
)
from pipeline_reliability.testing import FakeClock

BEFORE = {"a": 0, "b": 0, "c": 0}
AFTER = {"a": 1, "b": 1, "c": 1}


@pytest.fixture(
    params=[
        pytest.param("async-memory", marks=pytest.mark.memory),
        pytest.param("async-firestore", marks=pytest.mark.firestore),
    ]
)
def astore(request: pytest.FixtureRequest, fake_clock: FakeClock) -> Iterator[AsyncStateStore]:
    """Each async store, with attempts to spare for the emulator's contention."""
    if request.param == "async-memory":
        yield AsyncMemoryStore(clock=fake_clock, max_attempts=50)
        return
    project = request.getfixturevalue("firestore_project")
    yield AsyncFirestoreStore(project=project, max_attempts=50)


def _is_memory(store: AsyncStateStore) -> bool:
    return isinstance(store, AsyncMemoryStore)


async def _aclose(store: AsyncStateStore) -> None:
    if isinstance(store, AsyncFirestoreStore):
        await store.aclose()


def _add_field(snap: Snapshot) -> Outcome[int]:
    data = {**(snap.data or {}), "d": 1}
    return Outcome(len(data), Put(data))


def _other_tasks() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}


def test_item5_gathered_transact_tasks_on_one_document_each_count_exactly_once(
    astore: AsyncStateStore,
) -> None:
    """N concurrent transact tasks on one loop, one document: n == N, no lost update."""
    # The emulator serialises contended transactions slowly (EMULATORS.md §7).
    tasks = 200 if _is_memory(astore) else 3  # the emulator livelocks above 3 (EMULATORS.md)

    async def main() -> tuple[list[int], Snapshot]:
        try:
            results = await asyncio.gather(
                *(astore.transact(COLLECTION, "counter", increment) for _ in range(tasks))
            )
            return list(results), await astore.get(COLLECTION, "counter")
        finally:
            await _aclose(astore)

    results, snap = asyncio.run(main())

    assert {"n": tasks} == snap.data
    # Each committed value went to exactly one task.
    assert list(range(1, tasks + 1)) == sorted(results)
    assert tasks == astore.stats.writes
    assert tasks == astore.stats.transactions


def test_item5_cancelling_a_task_mid_transaction_leaves_no_partial_write(
    astore: AsyncStateStore,
) -> None:
    """Cancelled after deciding (at the commit): the document is all old or all new, and free."""

    async def main() -> tuple[dict[str, Any] | None, int, set[asyncio.Task[Any]], float]:
        try:
            await astore.transact(COLLECTION, "doc", lambda _s: Outcome(None, Put(BEFORE)))
            decided = asyncio.Event()

            def decide(snap: Snapshot) -> Outcome[None]:
                decided.set()
                return Outcome(None, Put(AFTER))

            task = asyncio.create_task(astore.transact(COLLECTION, "doc", decide))
            await decided.wait()
            task.cancel()  # lands on the commit's await (memory: already done)
            with contextlib.suppress(asyncio.CancelledError):
                await task
            data = (await astore.get(COLLECTION, "doc")).data
            # The cancelled transaction holds nothing: the next one on the document
            # commits promptly (one never rolled back would hold the emulator's lock).
            started = time.monotonic()
            count = await astore.transact(COLLECTION, "doc", _add_field, timeout=10)
            return data, count, _other_tasks(), time.monotonic() - started
        finally:
            await _aclose(astore)

    data, count, left, elapsed = asyncio.run(main())

    assert data in (BEFORE, AFTER)
    assert count == 4
    assert left == set()
    assert elapsed < 5  # without the rollback the emulator holds the lock past the 10 s timeout


@pytest.mark.firestore
def test_item5_cancelling_before_the_read_writes_nothing_and_never_decides(
    firestore_project: str,
) -> None:
    """Cancelled at its first RPC: CancelledError, the callback never ran, nothing written."""
    store = AsyncFirestoreStore(project=firestore_project)
    calls: list[Snapshot] = []

    def decide(snap: Snapshot) -> Outcome[None]:
        calls.append(snap)
        return Outcome(None, Put(AFTER))

    async def main() -> tuple[bool, Snapshot, int, set[asyncio.Task[Any]]]:
        try:
            await store.transact(COLLECTION, "doc", lambda _s: Outcome(None, Put(BEFORE)))
            task = asyncio.create_task(store.transact(COLLECTION, "doc", decide))
            await asyncio.sleep(0)  # the task starts, and waits on its first RPC
            task.cancel()
            cancelled = False
            try:
                await task
            except asyncio.CancelledError:
                cancelled = True
            snap = await store.get(COLLECTION, "doc")
            count = await store.transact(COLLECTION, "doc2", increment, timeout=10)
            return cancelled, snap, count, _other_tasks()
        finally:
            await store.aclose()

    cancelled, snap, count, left = asyncio.run(main())

    assert cancelled
    assert calls == []
    assert snap.data == BEFORE
    assert count == 1
    assert left == set()
    assert store.stats.writes == 2  # BEFORE and doc2; the cancelled call wrote nothing


@pytest.mark.firestore
def test_one_store_serves_several_event_loops_with_a_client_each(firestore_project: str) -> None:
    """asyncio.run after asyncio.run: each loop gets its own client; aclose drops it."""
    store = AsyncFirestoreStore(project=firestore_project)
    clients: list[Any] = []

    async def bump() -> int:
        try:
            result = await store.transact(COLLECTION, "doc", increment)
            clients.append(store.client)
            assert store.client is clients[-1]  # one client per loop, reused in it
            return result
        finally:
            await store.aclose()

    assert [asyncio.run(bump()) for _ in range(3)] == [1, 2, 3]
    assert len({id(c) for c in clients}) == 3
    assert store._clients == {}


@pytest.mark.firestore
def test_a_given_client_is_used_and_left_open(firestore_project: str) -> None:
    """A client passed in is the one used, and aclose() leaves it usable."""
    from google.cloud import firestore

    async def main() -> dict[str, Any] | None:
        client = firestore.AsyncClient(project=firestore_project)
        store = AsyncFirestoreStore(client)
        await store.transact(COLLECTION, "doc", increment)
        await store.aclose()
        assert store.client is client
        doc = await client.collection(COLLECTION).document("doc").get()
        await client._firestore_api.transport.close()
        data: dict[str, Any] | None = doc.to_dict()
        return data

    assert asyncio.run(main()) == {"n": 1}


@pytest.mark.firestore
def test_prefix_and_server_time_match_the_sync_store(firestore_project: str) -> None:
    """Documents land in prefix + collection; version = update_time, now = server read time."""
    from pipeline_reliability import FirestoreStore

    sync = FirestoreStore(project=firestore_project, prefix="staging_")
    store = AsyncFirestoreStore(project=firestore_project, prefix="staging_")

    async def main() -> Snapshot:
        try:
            await store.transact(COLLECTION, "doc", increment)
            return await store.get(COLLECTION, "doc")
        finally:
            await store.aclose()

    snap = asyncio.run(main())
    raw = sync.client.collection(f"staging_{COLLECTION}").document("doc").get()

    assert (snap.collection, snap.data) == (COLLECTION, {"n": 1})
    assert raw.update_time == snap.version
    assert raw.read_time >= snap.now
    assert sync.get(COLLECTION, "doc").version == snap.version
    sync.close()


@pytest.mark.firestore
def test_callback_timeout_error_is_not_taken_for_the_deadline(firestore_project: str) -> None:
    """A TimeoutError raised by the callback escapes unchanged, not as StoreUnavailableError."""
    store = AsyncFirestoreStore(project=firestore_project)
    error = TimeoutError("the callback's own")

    def decide(_snap: Snapshot) -> Outcome[None]:
        raise error

    async def main() -> BaseException:
        try:
            with pytest.raises(TimeoutError) as info:
                await store.transact(COLLECTION, "doc", decide)
            return info.value
        finally:
            await store.aclose()

    assert asyncio.run(main()) is error


@pytest.mark.firestore
def test_async_store_operations_are_traced(firestore_project: str, span_exporter: Any) -> None:
    """get and transact produce the same pipeline_reliability.store.* spans as the sync store."""
    store = AsyncFirestoreStore(project=firestore_project)

    async def main() -> None:
        try:
            await store.transact(COLLECTION, "doc", increment)
            await store.get(COLLECTION, "doc")
        finally:
            await store.aclose()

    asyncio.run(main())
    spans = {s.name: s for s in span_exporter.get_finished_spans()}

    transact = spans["pipeline_reliability.store.transact"]
    assert transact.attributes["store.backend"] == "firestore"
    assert f"{COLLECTION}/doc" == transact.attributes["store.path"]
    assert transact.attributes["store.attempts"] == 1
    assert "pipeline_reliability.store.get" in spans


@pytest.mark.parametrize(
    "options",
    [
        {"client": object(), "project": "p"},
        {"client": object(), "database": "d"},
        {"max_attempts": 0},
        {"max_attempts": True},
        {"timeout": 0},
        {"timeout": float("nan")},
        {"prefix": "a/b"},
        {"project": ""},
    ],
    ids=["client+project", "client+database", "attempts", "attempts-bool", "timeout",
         "timeout-nan", "prefix", "project"],
)  # fmt: skip
def test_bad_options_are_rejected_at_construction(options: dict[str, Any]) -> None:
    """The constructor checks are FirestoreStore's (shared): ConfigurationError at once."""
    from pipeline_reliability import FirestoreStore

    with pytest.raises(ConfigurationError):
        AsyncFirestoreStore(**options)
    with pytest.raises(ConfigurationError):
        FirestoreStore(**options)


def test_construction_and_client_creation_outside_a_loop() -> None:
    """Building the store makes no client; the client property needs a running loop."""
    store = AsyncFirestoreStore(project="p", prefix="x_", max_attempts=3, timeout=5)
    assert store._clients == {}
    with pytest.raises(RuntimeError):
        _ = store.client


def test_a_client_that_cannot_be_made_is_a_store_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """No project anywhere: StoreError from the first call, chained, as FirestoreStore does."""
    class NoProject:
        def AsyncClient(self, **_kwargs: Any) -> Any:
            raise OSError("Project was not passed and could not be determined")

    monkeypatch.setattr(
        "pipeline_reliability.stores.async_firestore.firestore_module", NoProject
    )
    store = AsyncFirestoreStore()

    async def main() -> None:
        await store.get(COLLECTION, "doc")

    with pytest.raises(StoreError, match="creating a Firestore client failed"):
        asyncio.run(main())


def test_item5_the_contract_runs_on_the_async_stores() -> None:
    """Must show: the async forms pass the same contract: tests/stores' fixture has all four."""
    from store_backends import ALL_BACKENDS

    backends = [param.values[0] for param in ALL_BACKENDS]

    assert backends == ["memory", "firestore", "async-memory", "async-firestore"]
