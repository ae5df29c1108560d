"""
State stores: the only place that talks to Firestore.

``FirestoreStore`` imports ``google.cloud.firestore`` inside its methods, so
importing this package never imports a Google client library.
"""

from __future__ import annotations

from ._async_memory import AsyncMemoryStore
from ._protocol import AsyncStateStore, Delete, Outcome, Put, Snapshot, StateStore, StoreStats
from .firestore import FirestoreStore
from .memory import MemoryStore

__all__ = [
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
