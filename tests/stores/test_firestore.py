"""FirestoreStore behaviour beyond the shared contract: options, laziness, failures, spans."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
from store_helpers import COLLECTION, increment, put

from pipeline_reliability import (
    ConfigurationError,
    InvalidInputError,
    Outcome,
    StoreError,
    StoreUnavailableError,
)
from pipeline_reliability.stores.firestore import FirestoreStore
from pipeline_reliability.testing.emulators import free_port


def test_construction_creates_no_client_and_imports_no_google_module() -> None:
    """Building a FirestoreStore neither imports google.* nor creates a client."""
    code = textwrap.dedent(
        """
        import sys
        from pipeline_reliability import FirestoreStore
        store = FirestoreStore(project="p", prefix="x_", max_attempts=3, timeout=5)
        assert store._client is None, store._client
        loaded = sorted(m for m in sys.modules if m == "google" or m.startswith("google."))
        assert not loaded, loaded
        """
    )

    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    "options",
    [
        {"client": object(), "project": "p"},
        {"client": object(), "database": "d"},
        {"max_attempts": 0},
        {"timeout": 0},
        {"prefix": "a/b"},
    ],
    ids=["client+project", "client+database", "attempts", "timeout", "prefix"],
)
def test_bad_options_are_rejected_at_construction(options: dict[str, Any]) -> None:
    """Options that cannot work raise ConfigurationError when the store is built."""
    with pytest.raises(ConfigurationError):
        FirestoreStore(**options)


def test_unreachable_firestore_is_store_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed port gives StoreUnavailableError within the timeout, chained from Google's."""
    from google.api_core.exceptions import GoogleAPIError

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    store = FirestoreStore(project="unreachable", timeout=1.0)
    started = time.monotonic()

    with pytest.raises(StoreUnavailableError) as info:
        store.get(COLLECTION, "doc")

    assert time.monotonic() - started < 15
    assert isinstance(info.value.__cause__, GoogleAPIError)
    assert info.value.maybe_committed is False
    assert store.stats.reads == 0
    store.close()


@pytest.mark.firestore
def test_prefix_is_prepended_to_collection_ids(firestore_project: str) -> None:
    """Documents land in prefix + collection; snapshots still name the caller's collection."""
    store = FirestoreStore(project=firestore_project, prefix="staging_")
    put(store, "doc", {"a": 1})

    snap = store.get(COLLECTION, "doc")
    raw = store.client.collection(f"staging_{COLLECTION}").document("doc").get()

    assert (snap.collection, snap.data) == (COLLECTION, {"a": 1})
    assert raw.to_dict() == {"a": 1}
    assert not store.client.collection(COLLECTION).document("doc").get().exists
    with pytest.raises(InvalidInputError):
        FirestoreStore(project=firestore_project, prefix="__").get("x__", "doc")
    store.close()


@pytest.mark.firestore
def test_database_option_selects_the_database(firestore_project: str) -> None:
    """A store on a named database does not see the default database's documents."""
    default = FirestoreStore(project=firestore_project)
    other = FirestoreStore(project=firestore_project, database="other")
    put(other, "doc", {"db": "other"})

    assert other.get(COLLECTION, "doc").data == {"db": "other"}
    assert default.get(COLLECTION, "doc").data is None
    default.close()
    other.close()


@pytest.mark.firestore
def test_given_client_is_used_and_left_open(firestore_project: str) -> None:
    """A client passed in is the one used, and close() leaves it usable."""
    from google.cloud import firestore

    client = firestore.Client(project=firestore_project)
    store = FirestoreStore(client)
    store.transact(COLLECTION, "doc", increment)
    store.close()

    assert store.client is client
    assert client.collection(COLLECTION).document("doc").get().to_dict() == {"n": 1}
    client.close()


@pytest.mark.firestore
def test_store_creates_its_client_once_on_first_use(firestore_project: str) -> None:
    """The client appears on first use, is reused afterwards, and close() drops it."""
    store = FirestoreStore(project=firestore_project)
    assert store._client is None

    store.get(COLLECTION, "doc")
    first = store.client
    store.get(COLLECTION, "doc")

    assert first is store.client
    assert first.project == firestore_project
    store.close()
    assert store._client is None


@pytest.mark.firestore
def test_snapshot_fields_come_from_firestore(firestore_store: FirestoreStore) -> None:
    """version is the document's update time and now the read time of the server."""
    put(firestore_store, "doc", {"a": 1})
    raw = firestore_store.client.collection(COLLECTION).document("doc").get()

    snap = firestore_store.get(COLLECTION, "doc")

    assert raw.update_time == snap.version
    assert snap.now >= raw.read_time


@pytest.mark.firestore
def test_store_operations_are_traced(firestore_store: FirestoreStore, span_exporter: Any) -> None:
    """get and transact each produce a pipeline_reliability.store.* span with attributes."""
    firestore_store.transact(COLLECTION, "doc", increment)
    firestore_store.get(COLLECTION, "doc")

    spans = {s.name: s for s in span_exporter.get_finished_spans()}

    transact = spans["pipeline_reliability.store.transact"]
    assert transact.attributes["store.backend"] == "firestore"
    assert f"{COLLECTION}/doc" == transact.attributes["store.path"]
    assert transact.attributes["store.attempts"] == 1
    assert "pipeline_reliability.store.get" in spans


@pytest.mark.firestore
def test_callback_errors_keep_their_type(firestore_store: FirestoreStore) -> None:
    """A ValueError from the callback is not mistaken for a client-side data error."""

    def decide(_snap: Any) -> Outcome[None]:
        raise ValueError("the callback's own error")

    with pytest.raises(ValueError, match="the callback's own error") as info:
        firestore_store.transact(COLLECTION, "doc", decide)

    assert not isinstance(info.value, StoreError | InvalidInputError)


@pytest.mark.firestore
def test_a_rerun_after_an_abort_waits_its_backoff_first(
    firestore_store: FirestoreStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Two transactions that read the same version: the loser's re-run first
    waits a jittered backoff (the first attempts never wait), so the two
    writers do not meet again at once.
    """
    import threading

    put(firestore_store, "counter", {"n": 0})
    waits: list[float] = []
    real_sleep = time.sleep

    def recorded(seconds: float) -> None:
        waits.append(seconds)
        real_sleep(seconds)

    # The store sleeps with time.sleep: patched for this test only (no other sleeper runs here).
    monkeypatch.setattr("pipeline_reliability.stores.firestore.time.sleep", recorded)
    meet = threading.Barrier(2, timeout=30)
    first = threading.local()

    def decide(snap: Any) -> Any:
        if not getattr(first, "done", False):
            first.done = True
            meet.wait()  # both hold a read of n=0 before either commits
        return increment(snap)

    threads = [
        threading.Thread(target=firestore_store.transact, args=(COLLECTION, "counter", decide))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert firestore_store.get(COLLECTION, "counter").data == {"n": 2}
    assert firestore_store.stats.conflicts >= 1
    assert len(waits) == firestore_store.stats.conflicts  # one wait per re-run, none before
    assert all(0 <= w <= 0.02 * 2 ** (len(waits) - 1) for w in waits)
