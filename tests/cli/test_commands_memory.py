"""
The operator commands' parsing, phase configuration and output, on a
MemoryStore (fast; the emulator tests in test_ops_emulators.py cover the real
backends end to end).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from cli_helpers import Cli

from pipeline_reliability import MemoryStore
from pipeline_reliability.cli import _common
from pipeline_reliability.cli._common import CliError, parse_dates
from pipeline_reliability.cli._phases import PRESETS, resolve_phase
from pipeline_reliability.completion import CompletionTracker, PhaseSpec
from pipeline_reliability.errors import LockLostError
from pipeline_reliability.lock import DateLock
from pipeline_reliability.testing import FakeClock

DATE = "2026-01-31"


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch, fake_clock: FakeClock) -> MemoryStore:
    """The store every command of the test opens."""
    shared = MemoryStore(clock=fake_clock)
    monkeypatch.setattr(_common, "open_store", lambda args: shared)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "memory-project")
    return shared


def _args(**values: object) -> argparse.Namespace:
    return argparse.Namespace(**{"config": None, "expected": None, **values})


def test_dates_accept_ranges_and_lists() -> None:
    """Dates, comma lists and inclusive ranges are expanded, sorted and unique."""
    dates = parse_dates(["2026-01-30,2026-01-28", "2026-01-28..2026-01-29"])

    assert dates == ["2026-01-28", "2026-01-29", "2026-01-30"]


@pytest.mark.parametrize("text", ["2026-02-30", "2026-1-5", "2026-01-05..2026-01-01", ""])
def test_bad_dates_are_refused(text: str) -> None:
    """Impossible days, non-ISO forms, backwards ranges and nothing at all are errors."""
    with pytest.raises(CliError):
        parse_dates([text])


def test_presets_hold_the_production_sets() -> None:
    """Without a config, phase3 and phase4 are the production pipeline's expected sets."""
    phase = resolve_phase(_args(), "phase3")

    assert phase.spec.expected == frozenset(PRESETS["phase3"])
    assert phase.spec.next_phase == "phase4"


def test_expected_overrides_the_preset() -> None:
    """--expected defines the phase's set for one command."""
    phase = resolve_phase(_args(expected="a,b"), "adhoc")

    assert phase.spec.expected == {"a", "b"}


def test_config_file_defines_phases_and_outputs(tmp_path: Path) -> None:
    """A TOML config defines phases with options and reconcile outputs."""
    config = tmp_path / "phases.toml"
    config.write_text(
        '[phases.p3]\nexpected = ["x", "y"]\ndeadline_minutes = 30\nnext_phase = "p4"\n'
        '[phases.p3.outputs]\nx = "ds.x_table"\n'
    )

    phase = resolve_phase(_args(config=str(config)), "p3")

    assert phase.spec.expected == {"x", "y"}
    assert phase.spec.deadline.total_seconds() == 1800
    assert phase.outputs == {"x": "ds.x_table"}


def test_json_config_works_too(tmp_path: Path) -> None:
    """A .json config with the same keys is read as JSON."""
    config = tmp_path / "phases.json"
    config.write_text(json.dumps({"phases": {"p3": {"expected": ["x"]}}}))

    assert resolve_phase(_args(config=str(config)), "p3").spec.expected == {"x"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[phases.p3]\nexpected = []\n", "must not be empty"),
        ("[phases.p3]\nexpected = ['x']\ncolour = 'red'\n", "unknown key"),
        ("[phases.p3]\nexpected = ['x']\n", "unknown phase 'p9'"),
        ("not toml [", "not valid"),
        ("[other]\n", r"needs a \[phases\.NAME\] table"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    """Invalid configs and unknown phases raise one clear CliError."""
    config = tmp_path / "phases.toml"
    config.write_text(content)

    with pytest.raises(CliError, match=message):
        resolve_phase(_args(config=str(config)), "p9" if "p9" in message else "p3")


def test_help_exits_zero(cli: Cli) -> None:
    """--help prints usage and returns 0."""
    run = cli("--help")

    assert run.status == 0
    assert "simulate" in run.out


@pytest.mark.parametrize(
    "argv", [["frobnicate"], [], ["breaker", "explode", "x"], ["status", "phase3"]]
)
def test_usage_errors_exit_2(cli: Cli, argv: list[str]) -> None:
    """Unknown commands, actions and missing arguments are one line and exit 2."""
    run = cli(*argv)

    assert run.status == 2
    assert len(run.err.strip().splitlines()) == 1


def test_status_on_a_store(cli: Cli, store: MemoryStore, fake_clock: FakeClock) -> None:
    """status reports done, missing and ignored processors and the trigger state."""
    tracker = CompletionTracker(store, [PhaseSpec("phase3", PRESETS["phase3"])], clock=fake_clock)
    tracker.record_completion("phase3", DATE, "player_game_summary", execution_id="r1")
    tracker.record_completion("phase3", DATE, "player_game_sumary", execution_id="r1")

    run = cli("status", "phase3", DATE)

    assert run.status == 0
    assert "INCOMPLETE (1/5)" in run.out
    assert "done     player_game_summary  success  run r1" in run.out
    assert "ignored  player_game_sumary" in run.out


def test_sweep_dry_run_writes_nothing(cli: Cli, store: MemoryStore) -> None:
    """sweep --dry-run reports each date and writes nothing."""
    run = cli("sweep", "phase4", "2026-01-30..2026-01-31", "--dry-run", "--json")

    data = json.loads(run.out)
    # 2026-01-30 is past its deadline (end of day + 6 h): the real sweep would mark it.
    assert [d["action"] for d in data["dates"]] == ["deadline_exceeded", "waiting"]
    assert store.stats.writes == 0


def test_lock_break_prints_the_invalidated_token(
    cli: Cli, store: MemoryStore, fake_clock: FakeClock
) -> None:
    """lock break --force clears the holder and names the token it invalidated."""
    lock = DateLock(store, "writer", DATE, owner="worker-a", clock=fake_clock)
    lease = lock.acquire()

    shown = cli("lock", "show", "writer", DATE)
    broken = cli("lock", "break", "writer", DATE, "--force")
    again = cli("lock", "break", "writer", DATE, "--force")

    assert f"HELD by worker-a, token {lease.token}" in shown.out
    assert f"invalidated token {lease.token}" in broken.out
    assert again.status == 1
    with pytest.raises(LockLostError):
        lock.release()


def test_breaker_commands_force_the_state(cli: Cli, store: MemoryStore) -> None:
    """breaker open then close: each prints the new state and the previous one."""
    opened = cli("breaker", "open", "stats-api")
    shown = cli("breaker", "show", "stats-api", "--json")
    closed = cli("breaker", "close", "stats-api")

    assert "open (was closed)" in opened.out
    assert json.loads(shown.out)["forced"] is True
    assert "closed (was open)" in closed.out
