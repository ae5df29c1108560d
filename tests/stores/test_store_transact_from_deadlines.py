"""
``FirestoreStore.transact_from`` keeps the per-call deadline: its conditional
commit ends within ``timeout`` and, sent and unanswered, may have committed.
No emulator needed: a black-holed socket (accepts, never answers).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from store_helpers import COLLECTION, increment

from pipeline_reliability import Snapshot, StoreUnavailableError
from pipeline_reliability.stores.firestore import FirestoreStore
from pipeline_reliability.testing.emulators import free_port

SLACK = 2.0  # generous: two cores shared by many test runs
NOW = datetime(2026, 1, 31, tzinfo=UTC)


@pytest.fixture
def black_hole() -> Iterator[str]:
    """``host:port`` of a listener that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    for conn in accepted:
        conn.close()
    server.close()


@pytest.mark.parametrize(
    "first",
    [
        Snapshot(COLLECTION, "d", None, None, NOW),
        Snapshot(COLLECTION, "d", {"n": 1}, NOW, NOW),
    ],
    ids=["missing", "existing"],
)
def test_an_unanswered_conditional_commit_fails_within_the_timeout_and_may_have_committed(
    monkeypatch: pytest.MonkeyPatch, black_hole: str, first: Snapshot
) -> None:
    """The commit was sent: ``maybe_committed`` is set, so the caller retries idempotently."""
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", black_hole)
    store = FirestoreStore(project="deadlines")
    assert store.client is not None  # created (and imported) before the clock starts
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        store.transact_from(first, increment, timeout=0.3)
    assert time.monotonic() - started < 0.3 + SLACK
    assert info.value.maybe_committed is True
    store.close()


def test_a_dead_port_fails_within_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connection refused: a StoreUnavailableError within the call's timeout."""
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    store = FirestoreStore(project="deadlines")
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        store.transact_from(Snapshot(COLLECTION, "d", None, None, NOW), increment, timeout=0.3)
    assert time.monotonic() - started < 0.3 + SLACK
    store.close()
