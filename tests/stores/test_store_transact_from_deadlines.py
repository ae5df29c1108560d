"""
``FirestoreStore.transact_from`` keeps the per-call deadline: its conditional
commit ends within ``timeout`` and, sent and unanswered, may have committed.
No emulator needed: a black-holed socket (accepts, never answers).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from store_helpers import COLLECTION, increment

from pipeline_reliability import Snapshot, StoreUnavailableError
from pipeline_reliability.stores.firestore import FirestoreStore
from pipeline_reliability.testing.emulators import free_port

SLACK = 2.0  # generous: two cores shared by many test runs
NOW = datetime(2026, 1, 31, tzinfo=UTC)


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
