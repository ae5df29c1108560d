"""
State stores: the only place that talks to Firestore.

``FirestoreStore`` and ``AsyncFirestoreStore`` import ``google.cloud.firestore``
inside their methods, so importing this package never imports a Google client
library.
"""

from __future__ import annotations

from ._async_memory import AsyncMemoryStore
from ._protocol import AsyncStateStore, Delete, Outcome, Put, Snapshot, StateStore, StoreStats
from .async_firestore import AsyncFirestoreStore
from .firestore import FirestoreStore
from .memory import MemoryStore

__all__ = [
    "AsyncFirestoreStore",
    "AsyncMemoryStore",
    "AsyncStateStore",
    "Delete",
    "FirestoreStore",
    "MemoryStore",
    "Outcome",
    "Put",
    "Snapshot",
    "StateStore",
    "StoreStats",
]
