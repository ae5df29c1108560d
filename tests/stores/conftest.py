"""
Fixtures of the store tests: the contract's four backends, and a black hole.

The store contract runs on every backend: the sync stores and their async twins.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline_reliability import StateStore
from pipeline_reliability.testing import FakeClock
from store_backends import ALL_BACKENDS, make_store


@pytest.fixture(params=ALL_BACKENDS)
def store(
    request: pytest.FixtureRequest, fake_clock: FakeClock, store_options: dict[str, Any]
) -> Iterator[StateStore]:
    """
    MemoryStore, FirestoreStore, AsyncMemoryStore, AsyncFirestoreStore in turn.

    The async ones run behind ``store_backends.SyncOverAsync`` (one event loop
    per calling thread), so one suite states the contract for all four.
    """
    yield from make_store(request, request.param, fake_clock, store_options)


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
