"""
AsyncFirestoreStore's per-call deadline: the cases of test_firestore_deadlines.py,
awaited. A black-holed socket, a dead port, and a fake of the async client's
RPC layer for the commit; and no task is left running after a timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from google.api_core import exceptions as _gexc
from store_helpers import COLLECTION, increment

from pipeline_reliability import AsyncFirestoreStore, InvalidInputError, StoreUnavailableError
from pipeline_reliability.stores import Outcome, Put, Snapshot
from pipeline_reliability.testing.emulators import free_port

gexc: Any = _gexc
SLACK = 2.0  # generous: two cores shared by many test runs
T = TypeVar("T")


def _store_at(monkeypatch: pytest.MonkeyPatch, host: str, **options: Any) -> AsyncFirestoreStore:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", host)
    return AsyncFirestoreStore(project="deadlines", **options)


def _timed(
    store: AsyncFirestoreStore, call: Callable[[], Awaitable[object]]
) -> tuple[BaseException | None, float, set[asyncio.Task[Any]]]:
    """Run ``call()`` in a fresh loop: what it raised, how long it took, the tasks left after."""

    async def main() -> tuple[BaseException | None, float, set[asyncio.Task[Any]]]:
        started = time.monotonic()
        error: BaseException | None = None
        try:
            await call()
        except Exception as exc:
            error = exc
        elapsed = time.monotonic() - started
        left = asyncio.all_tasks() - {asyncio.current_task()}
        await store.aclose()
        return error, elapsed, left

    return asyncio.run(main())


def _operation(store: AsyncFirestoreStore, operation: str) -> Callable[[], Awaitable[object]]:
    if operation == "get":
        return lambda: store.get(COLLECTION, "d", timeout=0.3)
    return lambda: store.transact(COLLECTION, "d", increment, timeout=0.3)


@pytest.mark.parametrize("operation", ["get", "transact"])
def test_item5_a_black_holed_async_store_fails_within_the_call_timeout_and_leaves_no_task(
    monkeypatch: pytest.MonkeyPatch, black_hole: str, operation: str
) -> None:
    """A server that never answers: get and transact raise within their timeout; no task stays."""
    store = _store_at(monkeypatch, black_hole)  # default timeout: 30 s
    error, elapsed, left = _timed(store, _operation(store, operation))
    assert isinstance(error, StoreUnavailableError), repr(error)
    assert 0.2 <= elapsed < 0.3 + SLACK  # waited for the deadline (less its margin)
    assert error.maybe_committed is False  # nothing was sent to commit
    assert left == set()


def test_the_stores_default_timeout_bounds_a_transaction(
    monkeypatch: pytest.MonkeyPatch, black_hole: str
) -> None:
    """Without a per-call timeout, the store's own timeout bounds begin/read/commit too."""
    store = _store_at(monkeypatch, black_hole, timeout=0.4)
    error, elapsed, left = _timed(store, lambda: store.transact(COLLECTION, "d", increment))
    assert isinstance(error, StoreUnavailableError), repr(error)
    assert elapsed < 0.4 + SLACK
    assert left == set()


@pytest.mark.parametrize("operation", ["get", "transact"])
def test_a_dead_port_fails_within_the_call_timeout(
    monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    """Connection refused is retried only until the call's deadline."""
    store = _store_at(monkeypatch, f"127.0.0.1:{free_port()}")
    error, elapsed, _ = _timed(store, _operation(store, operation))
    assert isinstance(error, StoreUnavailableError), repr(error)
    assert elapsed < 0.3 + SLACK


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "1", True, 10**400])
def test_a_bad_timeout_is_invalid_input(bad: Any) -> None:
    """The per-call timeout is checked before any I/O: no client is even made."""
    store = AsyncFirestoreStore(project="p")

    async def main() -> None:
        with pytest.raises(InvalidInputError):
            await store.get(COLLECTION, "d", timeout=bad)
        with pytest.raises(InvalidInputError):
            await store.transact(COLLECTION, "d", increment, timeout=bad)

    asyncio.run(main())
    assert store._clients == {}


def test_the_hard_bound_ends_a_call_that_awaits_outside_any_rpc() -> None:
    """Whatever the client awaits besides its RPCs is cut at the timeout too (asyncio.timeout)."""
    store = AsyncFirestoreStore(client=_Client(_Api(commit_error=None, stall=True)))

    async def main() -> tuple[float, set[asyncio.Task[Any]]]:
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError) as info:
            await store.transact(COLLECTION, "d", _write, timeout=0.3)
        assert info.value.maybe_committed is False
        return time.monotonic() - started, asyncio.all_tasks() - {asyncio.current_task()}

    elapsed, left = asyncio.run(main())
    assert 0.25 <= elapsed < 0.3 + SLACK
    assert left == set()


# --- the commit in flight: a fake of the async client's RPC layer -----------------


class _Api:
    """The generated async Firestore API, as AsyncTransaction calls it: records every deadline."""

    def __init__(self, commit_error: BaseException | None, *, stall: bool = False) -> None:
        self.commit_error = commit_error
        self.stall = stall
        self.calls: list[tuple[str, Any, Any]] = []

    async def begin_transaction(self, request: Any, metadata: Any, **kwargs: Any) -> Any:
        self.calls.append(("begin", kwargs.get("timeout"), kwargs.get("retry")))
        if self.stall:
            # Ignores its deadline, as a hung await outside gRPC would.
            await asyncio.Event().wait()
        return type("Begun", (), {"transaction": b"tx-1"})()

    async def commit(self, request: Any, metadata: Any, **kwargs: Any) -> Any:
        self.calls.append(("commit", kwargs.get("timeout"), kwargs.get("retry")))
        if self.commit_error is not None:
            raise self.commit_error
        return type("Committed", (), {"write_results": [], "commit_time": None})()

    async def rollback(self, request: Any, metadata: Any, **kwargs: Any) -> None:
        self.calls.append(("rollback", kwargs.get("timeout"), kwargs.get("retry")))


class _Doc:
    exists = False
    update_time = None
    read_time = datetime(2026, 1, 31, tzinfo=UTC)

    def to_dict(self) -> None:
        return None


class _Ref:
    path = f"{COLLECTION}/d"
    _document_path = f"projects/p/databases/(default)/documents/{COLLECTION}/d"

    def __init__(self, api: _Api) -> None:
        self.api = api

    async def get(self, **kwargs: Any) -> _Doc:
        self.api.calls.append(("read", kwargs.get("timeout"), kwargs.get("retry")))
        return _Doc()


class _Client:
    _database_string = "projects/p/databases/(default)"
    _rpc_metadata: tuple[Any, ...] = ()

    def __init__(self, api: _Api) -> None:
        self._firestore_api = api
        self.ref = _Ref(api)

    def collection(self, name: str) -> Any:
        return type("Collection", (), {"document": lambda _self, key: self.ref})()


def _write(snap: Snapshot) -> Outcome[str]:
    return Outcome("written", Put({"n": 1}))


def _run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def test_every_transaction_rpc_gets_the_deadline() -> None:
    """begin, read and commit each carry a timeout no larger than the call's."""
    api = _Api(commit_error=None)
    store = AsyncFirestoreStore(client=_Client(api))
    assert _run(store.transact(COLLECTION, "d", _write, timeout=0.5)) == "written"
    assert [name for name, _, _ in api.calls] == ["begin", "read", "commit"]
    for name, timeout, retry in api.calls:
        assert timeout is not None, name
        assert 0 < timeout <= 0.5, name
        if name == "commit":
            assert retry is None  # a commit is never re-sent: it may have applied
        else:
            assert retry is not None
            assert retry._timeout <= 0.5


def test_a_deadline_during_the_commit_may_have_committed() -> None:
    """DeadlineExceeded while committing a write: maybe_committed=True, after a rollback."""
    api = _Api(commit_error=gexc.DeadlineExceeded("commit timed out"))
    store = AsyncFirestoreStore(client=_Client(api))
    with pytest.raises(StoreUnavailableError) as info:
        _run(store.transact(COLLECTION, "d", _write, timeout=0.5))
    assert info.value.maybe_committed is True
    assert [name for name, _, _ in api.calls] == ["begin", "read", "commit", "rollback"]


def test_a_deadline_before_the_commit_did_not_commit() -> None:
    """A read-only attempt whose commit times out wrote nothing: maybe_committed=False."""
    api = _Api(commit_error=gexc.DeadlineExceeded("commit timed out"))
    store = AsyncFirestoreStore(client=_Client(api))
    with pytest.raises(StoreUnavailableError) as info:
        _run(store.transact(COLLECTION, "d", lambda snap: Outcome(None), timeout=0.5))
    assert info.value.maybe_committed is False
