"""
Reliable building blocks for GCP data pipelines: a fan-in completion barrier
with exactly-once triggering, a shared circuit breaker that writes only on
state change, fenced date locks, deduplication and safe upserts, and retries.

Importing this package imports no Google client library and reads no
environment variable (DESIGN F10): clients are created on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._clock import Clock, SystemClock
from .errors import (
    CircuitOpenError,
    CompletionNotRecordedError,
    ConfigurationError,
    EmulatorError,
    InvalidInputError,
    InvalidMessageError,
    LockError,
    LockLostError,
    LockNotAcquiredError,
    MissingDependencyError,
    PayloadMismatchError,
    PublishFailedError,
    ReliabilityError,
    RetryExhaustedError,
    SinkError,
    SinkUnavailableError,
    StaleFenceError,
    StoreConflictError,
    StoreError,
    StoreUnavailableError,
    TriggerClaimLostError,
    WriteFailedError,
)
from .stores import Delete, MemoryStore, Outcome, Put, Snapshot, StateStore, StoreStats
from .testing import FakeClock, Fault, FaultyStore

if TYPE_CHECKING:
    from .stores.firestore import FirestoreStore

__all__ = [
    "CircuitOpenError",
    "Clock",
    "CompletionNotRecordedError",
    "ConfigurationError",
    "Delete",
    "EmulatorError",
    "FakeClock",
    "Fault",
    "FaultyStore",
    "FirestoreStore",
    "InvalidInputError",
    "InvalidMessageError",
    "LockError",
    "LockLostError",
    "LockNotAcquiredError",
    "MemoryStore",
    "MissingDependencyError",
    "Outcome",
    "PayloadMismatchError",
    "PublishFailedError",
    "Put",
    "ReliabilityError",
    "RetryExhaustedError",
    "SinkError",
    "SinkUnavailableError",
    "Snapshot",
    "StaleFenceError",
    "StateStore",
    "StoreConflictError",
    "StoreError",
    "StoreStats",
    "StoreUnavailableError",
    "SystemClock",
    "TriggerClaimLostError",
    "WriteFailedError",
]

# Names whose modules import Google client libraries: loaded on first access.
_LAZY = {
    "FirestoreStore": ".stores.firestore",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from ._telemetry import package_version

        return package_version()
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
