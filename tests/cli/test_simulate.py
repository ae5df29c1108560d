"""``pipeline-reliability simulate`` on the embedded store: the main job."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from cli_helpers import Cli

from pipeline_reliability.cli.simulate import (
    SimulationConfig,
    render_text,
    run_simulation,
)

FINAL = re.compile(r"^invariants: (\d+) checked, (\d+) violated$")


def test_small_run_ends_with_zero_violated(cli: Cli) -> None:
    """A small run prints a table per phase and date and ends with '0 violated'."""
    run = cli("simulate", "--dates", "2", "--seed", "3")

    assert run.status == 0, run.out
    last = run.out.strip().splitlines()[-1]
    match = FINAL.match(last)
    assert match is not None, last
    assert int(match.group(1)) > 20
    assert match.group(2) == "0"
    for phase in ("phase3", "phase4"):
        for date in ("2026-01-25", "2026-01-26"):
            assert re.search(rf"^{phase}\s+{date}\s+5/5\s+1x complete", run.out, re.M), run.out


def test_same_seed_prints_identical_reports(cli: Cli) -> None:
    """Two runs with one seed print byte-identical reports although instances run in threads."""
    first = cli("simulate", "--dates", "4", "--seed", "11", "--chaos", "high")
    second = cli("simulate", "--dates", "4", "--seed", "11", "--chaos", "high")

    assert first.status == second.status == 0
    assert first.out == second.out


def test_different_seeds_play_different_days(cli: Cli) -> None:
    """The seed drives the chaos: another seed gives another report."""
    first = cli("simulate", "--dates", "3", "--seed", "1")
    second = cli("simulate", "--dates", "3", "--seed", "2")

    assert first.out != second.out


@pytest.mark.parametrize("chaos", ["none", "low", "medium", "high"])
def test_every_chaos_level_holds_the_invariants(chaos: str) -> None:
    """Each chaos level, from none to high, keeps every invariant."""
    report = run_simulation(SimulationConfig(dates=3, chaos=chaos, seed=5))  # type: ignore[arg-type]

    assert report.violations == ()
    assert report.ok


def test_no_chaos_means_no_breaker_writes() -> None:
    """Without a downstream outage the shared breaker makes zero store writes (F6)."""
    report = run_simulation(SimulationConfig(dates=2, chaos="none"))

    assert report.breaker_writes == 0
    assert report.naive_writes > 0
    assert all(r.degraded == 0 and r.duplicates == 0 for r in report.rows)


def test_high_chaos_exercises_every_failure() -> None:
    """High chaos really injects what the report claims to survive."""
    report = run_simulation(SimulationConfig(dates=7, chaos="high", seed=0))

    assert report.ok, report.violations
    assert sum(r.degraded for r in report.rows) > 0
    assert sum(r.replayed for r in report.rows) > 0
    assert sum(r.duplicates for r in report.rows) > 0
    assert sum(r.ignored for r in report.rows) > 0
    assert sum(r.rows_dropped for r in report.rows) > 0
    assert sum(r.stale_refused for r in report.rows) > 0
    assert sum(r.contended for r in report.rows) > 0
    assert any(r.publish_attempts > 1 for r in report.rows)
    assert 0 < report.breaker_writes == report.breaker_transitions < report.naive_writes


def test_single_worker_runs_without_races() -> None:
    """With one instance there is nobody to race: the run still holds every invariant."""
    report = run_simulation(SimulationConfig(dates=2, workers=1, seed=4))

    assert report.ok, report.violations


def test_json_output_is_clean_and_complete(cli: Cli) -> None:
    """--json prints one JSON document (nothing else on stdout) with the invariants."""
    run = cli("simulate", "--dates", "2", "--json", "--progress")

    data = json.loads(run.out)
    assert run.status == 0
    assert data["invariants"]["violated"] == 0
    assert data["invariants"]["checked"] > 0
    assert {r["phase"] for r in data["rows"]} == {"phase3", "phase4"}
    assert data["breaker"]["store_writes"] == data["breaker"]["transitions"]
    assert "simulate [" in run.err  # the forced progress bar went to stderr


def test_progress_bar_is_off_when_stderr_is_not_a_terminal(cli: Cli) -> None:
    """Without --progress nothing is drawn on a captured (non-TTY) stderr."""
    run = cli("simulate", "--dates", "1")

    assert run.status == 0
    assert "simulate [" not in run.err


def test_report_text_matches_the_report_object() -> None:
    """The text report's last line carries the checked and violated counts."""
    report = run_simulation(SimulationConfig(dates=1))

    text = render_text(report)

    assert text.splitlines()[-1] == f"invariants: {report.checked} checked, 0 violated"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dates", "0"], "dates must be within"),
        (["--workers", "0"], "workers must be within"),
        (["--chaos", "extreme"], "invalid choice"),
        (["--start", "2026-02-30"], "invalid --start"),
        (["--dates", "many"], "invalid int value"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(cli: Cli, argv: list[str], message: str) -> None:
    """A bad option is one line on stderr and exit status 2."""
    run = cli("simulate", *argv)

    assert run.status == 2
    assert message in run.err
    assert len(run.err.strip().splitlines()) == 1
    assert run.out == ""


def test_console_script_runs_as_a_subprocess() -> None:
    """``python -m pipeline_reliability.cli simulate`` works as a separate process."""
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline_reliability.cli", "simulate", "--dates", "1"],
        capture_output=True, text=True, timeout=120, check=False,
    )

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].endswith("0 violated")
