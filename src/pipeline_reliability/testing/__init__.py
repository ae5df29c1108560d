"""
Test support that users can use on their own code: a fake clock, fault
injection around any store, a pass-through base for writing store wrappers,
and (in ``pytest_plugin``) pytest fixtures.
"""

from __future__ import annotations

from ._clock import FakeClock
from ._faults import Fault, FaultyStore
from ._wrapper import StoreWrapper

__all__ = ["FakeClock", "Fault", "FaultyStore", "StoreWrapper"]
