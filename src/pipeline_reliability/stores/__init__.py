"""
State stores: the only place that talks to Firestore.

``FirestoreStore`` is loaded on first access so that importing this package
never imports a Google client library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._protocol import Delete, Outcome, Put, Snapshot, StateStore, StoreStats
from .memory import MemoryStore

if TYPE_CHECKING:
    from .firestore import FirestoreStore

__all__ = [
    "Delete",
    "FirestoreStore",
    "MemoryStore",
    "Outcome",
    "Put",
    "Snapshot",
    "StateStore",
    "StoreStats",
]


def __getattr__(name: str) -> Any:
    if name == "FirestoreStore":
        from .firestore import FirestoreStore

        return FirestoreStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
