"""
:func:`build_components`, the simulation's hook: the embedded store, or the
emulators.

Kept apart from ``_components`` (what is wired) and ``_emulated`` (the
emulator backends, which use ``_components``), so neither imports the other
back.
"""

from __future__ import annotations

from ._components import Components, memory_components
from ._config import SimulationConfig

__all__ = ["build_components"]


def build_components(config: SimulationConfig) -> Components:
    """
    Build the components of one run: the embedded store, or the emulators.

    This is the simulation's hook: tests replace it (or the fields of what
    it returns) to break a guarantee on purpose.
    """
    if config.emulators:
        from ._emulated import emulator_components

        return emulator_components(config)
    return memory_components(config)
