"""simulate's lock-race invariant: never two holders, none only when both failed closed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pipeline_reliability.cli.simulate._invariants import Verdict, _check_races
from pipeline_reliability.cli.simulate._observe import Observations

RACE = ("phase3", "2026-01-25", "team_defense_game_summary")


@pytest.mark.parametrize(
    ("outcomes", "ok"),
    [
        ([(True, False), (False, False)], True),  # one won, one contended
        ([(True, False), (False, True)], True),  # one won, the other's store failed
        ([(False, True), (False, True)], True),  # both aborted by contention: fail closed
        ([(False, True), (False, False)], False),  # nobody won, yet one saw a holder
        ([(False, False), (False, False)], False),  # nobody won for no reason
        ([(True, False), (True, False)], False),  # two holders: F7
    ],
)
def test_lock_race_verdict(outcomes: list[tuple[bool, bool]], ok: bool) -> None:
    """A race passes with one winner, or with none when both racers found nobody holding."""
    obs = Observations()
    for won, store_error in outcomes:
        obs.race(*RACE, won, store_error)
    sim = SimpleNamespace(planner=SimpleNamespace(races=frozenset({RACE})), obs=obs)
    verdict = Verdict()

    _check_races(sim, verdict)  # type: ignore[arg-type]

    assert (verdict.violated == []) is ok
