"""
``simulate`` exercises calendars (issue 11): phase 5 on a schedule with
no-games dates, gated dates, a backfill and an operator re-run, and its
invariants cover them: each holds on a healthy run and fails when the
guarantee behind it is broken on purpose.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline_reliability.cli.simulate._build import build_components
from pipeline_reliability.cli.simulate._config import SimulationConfig
from pipeline_reliability.cli.simulate._engine import Simulation
from pipeline_reliability.cli.simulate._invariants import INVARIANTS, Verdict, check_run
from pipeline_reliability.completion import (
    TriggerClaim,
    _claims,
    _decide,
    _decide_record,
    _expected,
)

CALENDAR = {
    "calendar_no_error",
    "calendar_nothing_scheduled",
    "calendar_game_day_once",
    "calendar_gate_holds",
    "calendar_gate_once",
    "backfill_never_triggers",
    "rearm_one_new_trigger",
}


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


def run(seed: int = 0, chaos: str = "low") -> Verdict:
    config = SimulationConfig(seed=seed, chaos=chaos, dates=6)  # type: ignore[arg-type]
    sim = Simulation(config, build_components(config))
    sim.run()
    assert sim.calendar is not None
    assert sim.calendar.no_games
    assert sim.calendar.gated
    return check_run(sim)


def failed(verdict: Verdict) -> set[str]:
    return {c.name for c in verdict.violated}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_simulate_exercises_schedules_gates_and_a_backfill_and_its_invariants_cover_them(
    seed: int,
) -> None:
    verdict = run(seed, "high")
    assert set(INVARIANTS) >= CALENDAR
    assert {c.name for c in verdict.checks} >= CALENDAR
    assert verdict.violated == []


def _never(*args: Any, **kwargs: Any) -> bool:
    return False


def test_a_backfill_that_triggers_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_decide_record, "suppress", _never)
    assert failed(run()) == {"backfill_never_triggers"}


def test_a_gate_that_is_not_asked_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_claims, "gate_pending", _never)
    monkeypatch.setattr(_decide, "gate_pending", _never)
    assert failed(run()) == {"calendar_gate_holds"}


def test_a_no_games_date_that_triggers_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_expected, "skip_trigger", lambda *a, **k: None)
    assert failed(run()) == {"calendar_nothing_scheduled"}


def test_a_rearm_without_a_new_trigger_id_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _claims.rearm

    def same_id(*args: Any, **kwargs: Any) -> Any:
        claim = real(*args, **kwargs)
        assert isinstance(claim, TriggerClaim)
        old = claim.trigger_id.split(":rearm")[0]
        args[0]["trigger"]["trigger_id"] = old
        return dataclasses.replace(claim, trigger_id=old)

    monkeypatch.setattr("pipeline_reliability.completion._decide.rearm", same_id)
    assert failed(run()) == {"rearm_one_new_trigger"}
