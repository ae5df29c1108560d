"""
Test support that users can use on their own code: a fake clock, fault
injection around any store, and (in ``pytest_plugin``) pytest fixtures.
"""

from __future__ import annotations

from ._clock import FakeClock
from ._faults import Fault, FaultyStore

__all__ = ["FakeClock", "Fault", "FaultyStore"]
