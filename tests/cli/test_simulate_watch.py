"""
``simulate``'s watch invariants (issue 15, item 4): watch runs at the end of
each simulated day; every stall the chaos caused is alerted and a healthy
day raises nothing. A blind or a noisy watch is caught.
"""

from __future__ import annotations

from typing import Any, Literal

import pytest

from pipeline_reliability.cli.simulate import (
    Check,
    Simulation,
    SimulationConfig,
    _watching,
    build_components,
    check_run,
)
from pipeline_reliability.ops import Alert, WatchReport


def _checks(chaos: Literal["none", "low", "medium", "high"]) -> list[Check]:
    config = SimulationConfig(dates=6, seed=3, chaos=chaos)
    parts = build_components(config)
    try:
        sim = Simulation(config, parts)
        sim.run()
        return check_run(sim).checks
    finally:
        parts.close()


WATCH = {"watch_no_error", "watch_chaos_alerted", "watch_stall_alerted", "watch_no_false_alarm"}


@pytest.mark.parametrize("chaos", ["none", "medium", "high"])
def test_item4_simulate_watch_alerts_every_stall_and_no_healthy_day(chaos: Any) -> None:
    """Every watch invariant is checked and holds, whatever the chaos level."""
    checks = _checks(chaos)

    assert {c.name for c in checks} >= WATCH
    assert [c for c in checks if c.name in WATCH and not c.ok] == []
    stalls = [c for c in checks if c.name == "watch_stall_alerted"]
    assert len(stalls) >= 4  # one per kind of stall


def test_item4_simulate_catches_a_blind_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A watch that never alerts misses the stalls and the chaos: both are violations."""
    def blind(*args: Any, now: Any = None, **kwargs: Any) -> WatchReport:
        return WatchReport(now, {})

    monkeypatch.setattr(_watching, "watch", blind)

    violated = {c.name for c in _checks("medium") if not c.ok}
    assert {"watch_stall_alerted", "watch_chaos_alerted"} <= violated
    assert "watch_no_false_alarm" not in violated


def test_item4_simulate_catches_a_noisy_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A watch that alerts on every day raises a false alarm on the healthy ones."""
    real = _watching.watch

    def noisy(*args: Any, **kwargs: Any) -> WatchReport:
        found = real(*args, **kwargs)
        extra = Alert("phase_late", "critical", "watch3", "x", "", "noise", "none")
        return WatchReport(found.now, found.dates, (*found.alerts, extra))

    monkeypatch.setattr(_watching, "watch", noisy)

    violated = {c.name for c in _checks("none") if not c.ok}
    assert "watch_no_false_alarm" in violated
