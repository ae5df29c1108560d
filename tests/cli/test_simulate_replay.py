"""simulate's scheduler replays the ledger whenever completions went there, not only after the
planned outage (a store call that times out under load degrades a completion too)."""

from __future__ import annotations

import pytest

from pipeline_reliability.cli.simulate._build import build_components
from pipeline_reliability.cli.simulate._config import SimulationConfig
from pipeline_reliability.cli.simulate._engine import Simulation
from pipeline_reliability.cli.simulate._invariants import check_run
from pipeline_reliability.cli.simulate._plan import Planner


@pytest.mark.parametrize("down_tick", [3, 5])
def test_a_completion_degraded_outside_the_outage_is_replayed(
    monkeypatch: pytest.MonkeyPatch, down_tick: int
) -> None:
    """An unplanned store failure at one tick: its degraded rows are replayed; 0 violated."""
    monkeypatch.setattr(Planner, "store_down", lambda self, tick: tick == down_tick)
    config = SimulationConfig(seed=1, chaos="none", dates=1)
    sim = Simulation(config, build_components(config))
    assert not sim.planner.outage  # no planned outage: the old code never replayed

    sim.run()
    verdict = check_run(sim)

    degraded = sum(sim.obs.stats(phase, date).degraded
                   for phase, days in sim.schedule.started.items() for date in days)
    assert degraded > 0
    assert verdict.violated == []
