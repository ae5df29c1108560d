"""
Is the state store there? One read with a short deadline, before any work.

Tools (the ``pipeline-reliability`` operator commands) call
:func:`probe_store` first, so that an unreachable or black-holed Firestore
fails in seconds with one clear error instead of stalling for the client
library's own retry budget (30 s and more per call). The probe reads one
document that nothing writes; it never writes.

:func:`call_within` is the bound itself, shared by the Pub/Sub and BigQuery
probes: the Google call gets the deadline, and the call runs on a worker
thread that the caller stops waiting for at the same deadline, so that
whatever the client does first (finding credentials, opening a channel) is
bounded too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .._validate import duration_seconds
from ..errors import ReliabilityError, StoreUnavailableError
from ._protocol import StateStore

__all__ = ["DEFAULT_PROBE_TIMEOUT", "PROBE_COLLECTION", "PROBE_KEY", "call_within", "probe_store"]

R = TypeVar("R")

DEFAULT_PROBE_TIMEOUT = 5.0
"""Seconds a reachability probe waits for an answer."""

PROBE_COLLECTION = "pipeline_reliability_probe"
PROBE_KEY = "reachability"


def call_within(
    fn: Callable[[], R], seconds: float, on_timeout: Callable[[], ReliabilityError]
) -> R:
    """
    Return ``fn()``, or raise ``on_timeout()`` once ``seconds`` have passed.

    ``fn`` runs on a daemon thread: a call that never returns is abandoned,
    not waited for (it must hold no lock the caller needs afterwards).
    Whatever ``fn`` raises is re-raised here.
    """
    outcome: list[Any] = []

    def work() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            outcome.append((False, exc))

    worker = threading.Thread(target=work, name="pipeline-reliability-probe", daemon=True)
    worker.start()
    worker.join(seconds)
    if not outcome:
        raise on_timeout()
    ok, value = outcome[0]
    if not ok:
        raise value
    result: R = value
    return result


def probe_store(store: StateStore, timeout: float = DEFAULT_PROBE_TIMEOUT) -> None:
    """
    Check that ``store`` answers one read within ``timeout`` seconds.

    On a :class:`~pipeline_reliability.stores.firestore.FirestoreStore` the
    read is a single ``get`` with that deadline and no retry; on any other
    store it is the store's own ``get``.

    Raises:
        ConfigurationError: ``timeout`` is not a positive duration.
        StoreUnavailableError: no answer within ``timeout`` (black-holed,
            unreachable, overloaded).
        StoreError: the store answered with an error (permission denied,
            no such database, missing credentials; the cause is chained).
    """
    seconds = duration_seconds(timeout, "timeout")

    def on_timeout() -> ReliabilityError:
        return StoreUnavailableError("the call hangs (a black-holed address?)")

    try:
        call_within(lambda: _read(store, seconds), seconds, on_timeout)
    except StoreUnavailableError as exc:
        raise StoreUnavailableError(
            f"no answer from the state store within {seconds:g} s: {exc}"
        ) from exc


def _read(store: StateStore, seconds: float) -> None:
    from .firestore import FirestoreStore, map_firestore_errors

    if not isinstance(store, FirestoreStore):
        store.get(PROBE_COLLECTION, PROBE_KEY)
        return
    client = store.client  # creating it may fail: no credentials, no project
    ref = client.collection(f"{store.prefix}{PROBE_COLLECTION}").document(PROBE_KEY)
    with map_firestore_errors(f"reading {ref.path}"):
        # retry=None: one attempt, so the deadline is the whole wait.
        ref.get(timeout=seconds, retry=None)
