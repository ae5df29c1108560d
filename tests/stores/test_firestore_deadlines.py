"""
FirestoreStore's per-call deadline (issue 10, item 5): every RPC of a ``get``
or ``transact`` (begin, read, commit, retries included) ends within the
call's ``timeout``; a deadline becomes ``StoreUnavailableError``, with
``maybe_committed`` set only when a commit was in flight.

No emulator needed: a black-holed socket (accepts, never answers), a dead
port, and a fake of the client's RPC layer for the commit case.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from google.api_core import exceptions as _gexc
from store_helpers import COLLECTION, increment

from pipeline_reliability import InvalidInputError, StoreUnavailableError
from pipeline_reliability.stores import Outcome, Put, Snapshot
from pipeline_reliability.stores.firestore import FirestoreStore
from pipeline_reliability.testing.emulators import free_port

gexc: Any = _gexc
SLACK = 2.0  # generous: two cores shared by many test runs


def _call(store: FirestoreStore, operation: str) -> object:
    if operation == "get":
        return store.get(COLLECTION, "d", timeout=0.3)
    return store.transact(COLLECTION, "d", increment, timeout=0.3)


def _store_at(monkeypatch: pytest.MonkeyPatch, host: str, **options: Any) -> FirestoreStore:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", host)
    return FirestoreStore(project="deadlines", **options)


@pytest.mark.parametrize("operation", ["get", "transact"])
def test_item5_a_black_holed_store_fails_within_the_call_timeout(
    monkeypatch: pytest.MonkeyPatch, black_hole: str, operation: str
) -> None:
    """A server that never answers: get and transact raise within their own timeout."""
    store = _store_at(monkeypatch, black_hole)  # default timeout: 30 s
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        _call(store, operation)
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 0.3 + SLACK  # waited for the deadline (less its margin)
    assert info.value.maybe_committed is False  # nothing was sent to commit
    store.close()


def test_item5_the_stores_default_timeout_bounds_a_transaction(
    monkeypatch: pytest.MonkeyPatch, black_hole: str
) -> None:
    """Without a per-call timeout, the store's own timeout bounds begin/read/commit too."""
    store = _store_at(monkeypatch, black_hole, timeout=0.4)
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        store.transact(COLLECTION, "d", increment)
    assert time.monotonic() - started < 0.4 + SLACK
    store.close()


@pytest.mark.parametrize("operation", ["get", "transact"])
def test_a_dead_port_fails_within_the_call_timeout(
    monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    """Connection refused is retried only until the call's deadline."""
    store = _store_at(monkeypatch, f"127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        _call(store, operation)
    assert time.monotonic() - started < 0.3 + SLACK
    store.close()


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "1", True, 10**400])
def test_a_bad_timeout_is_invalid_input(bad: Any) -> None:
    """The per-call timeout is checked before any I/O."""
    store = FirestoreStore(project="p")
    with pytest.raises(InvalidInputError):
        store.get(COLLECTION, "d", timeout=bad)
    with pytest.raises(InvalidInputError):
        store.transact(COLLECTION, "d", increment, timeout=bad)
    assert store._client is None  # nothing was even connected


# --- the commit in flight: a fake of the client's RPC layer ----------------------


class _Api:
    """The generated Firestore API, as Transaction calls it: records every deadline."""

    def __init__(self, commit_error: BaseException | None) -> None:
        self.commit_error = commit_error
        self.calls: list[tuple[str, Any, Any]] = []

    def begin_transaction(self, request: Any, metadata: Any, **kwargs: Any) -> Any:
        self.calls.append(("begin", kwargs.get("timeout"), kwargs.get("retry")))
        return type("Begun", (), {"transaction": b"tx-1"})()

    def commit(self, request: Any, metadata: Any, **kwargs: Any) -> Any:
        self.calls.append(("commit", kwargs.get("timeout"), kwargs.get("retry")))
        if self.commit_error is not None:
            raise self.commit_error
        return type("Committed", (), {"write_results": [], "commit_time": None})()

    def rollback(self, request: Any, metadata: Any, **kwargs: Any) -> None:
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

    def get(self, **kwargs: Any) -> _Doc:
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


def test_item5_every_transaction_rpc_gets_the_deadline() -> None:
    """begin, read and commit each carry a timeout no larger than the call's."""
    api = _Api(commit_error=None)
    store = FirestoreStore(client=_Client(api))
    assert store.transact(COLLECTION, "d", _write, timeout=0.5) == "written"
    assert [name for name, _, _ in api.calls] == ["begin", "read", "commit"]
    for name, timeout, retry in api.calls:
        assert timeout is not None, name
        assert 0 < timeout <= 0.5, name
        if name == "commit":
            assert retry is None  # a commit is never re-sent: it may have applied
        else:
            assert retry is not None
            assert retry._timeout <= 0.5


def test_item5_a_deadline_during_the_commit_may_have_committed() -> None:
    """DeadlineExceeded while committing a write: maybe_committed=True."""
    api = _Api(commit_error=gexc.DeadlineExceeded("commit timed out"))
    store = FirestoreStore(client=_Client(api))
    with pytest.raises(StoreUnavailableError) as info:
        store.transact(COLLECTION, "d", _write, timeout=0.5)
    assert info.value.maybe_committed is True


def test_a_deadline_before_the_commit_did_not_commit() -> None:
    """A read-only attempt whose commit times out wrote nothing: maybe_committed=False."""
    api = _Api(commit_error=gexc.DeadlineExceeded("commit timed out"))
    store = FirestoreStore(client=_Client(api))
    with pytest.raises(StoreUnavailableError) as info:
        store.transact(COLLECTION, "d", lambda snap: Outcome(None), timeout=0.5)
    assert info.value.maybe_committed is False
