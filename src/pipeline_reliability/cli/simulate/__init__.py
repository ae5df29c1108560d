"""
``pipeline-reliability simulate``: a chaos game day of a two-phase pipeline.

Five phase-3 processors per date report to a completion barrier; its trigger
starts five phase-4 processors; instances (threads) get duplicate, late and
re-run deliveries, a Firestore outage, failing trigger publishes, lock races
and a stalled lock holder, a flaky downstream behind a shared breaker, and
rows with duplicate keys. Afterwards every guarantee of DESIGN §1 is checked.

Use it from Python::

    from pipeline_reliability.cli.simulate import SimulationConfig, run_simulation

    report = run_simulation(SimulationConfig(dates=3, seed=7))
    assert report.ok, report.violations

``build_components`` is the hook that builds what the instances use; pass
your own ``components`` (or replace fields of the default ones) to check
that a broken component is caught.
"""

from __future__ import annotations

from ._build import build_components
from ._components import (
    Components,
    TableSink,
    default_phases,
    memory_components,
)
from ._config import CHAOS_LEVELS, Chaos, SimulationConfig
from ._engine import Progress, Simulation
from ._invariants import Check, Verdict, check_run
from ._report import Report, RowReport, build_report, render_text
from ._table import MemoryTable

__all__ = [
    "CHAOS_LEVELS",
    "Chaos",
    "Check",
    "Components",
    "MemoryTable",
    "Progress",
    "Report",
    "RowReport",
    "Simulation",
    "SimulationConfig",
    "TableSink",
    "Verdict",
    "build_components",
    "build_report",
    "check_run",
    "default_phases",
    "memory_components",
    "render_text",
    "run_simulation",
]


def run_simulation(
    config: SimulationConfig,
    components: Components | None = None,
    progress: Progress | None = None,
) -> Report:
    """
    Run one simulation and check its invariants.

    Args:
        config: Dates, instances, chaos level, seed, store.
        components: What the instances use; by default ``build_components(config)``.
        progress: Called after every tick with (tick, items done, items known).

    Returns:
        The report; ``report.ok`` is False when an invariant was violated.
    """
    parts = components if components is not None else build_components(config)
    try:
        sim = Simulation(config, parts, progress)
        sim.run()
        return build_report(sim, check_run(sim))
    finally:
        parts.close()
