"""
Test support that users can use on their own code: a fake clock, fault
injection around any store (sync or async), pass-through bases for writing
store wrappers, and (in ``pytest_plugin``) pytest fixtures.
"""

from __future__ import annotations

from ._async_faults import AsyncFaultyStore
from ._clock import FakeClock
from ._faults import Fault, FaultyStore
from ._wrapper import AsyncStoreWrapper, StoreWrapper

__all__ = [
    "AsyncFaultyStore",
    "AsyncStoreWrapper",
    "FakeClock",
    "Fault",
    "FaultyStore",
    "StoreWrapper",
]
