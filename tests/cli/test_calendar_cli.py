"""
The operator commands and issue 11: default dates in the phase's time zone,
``--from/--to`` ranges with a progress bar and a bounded rate, ``rearm``,
``set-expected``, and calendar keys in ``--config``.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Cli

from pipeline_reliability import MemoryStore
from pipeline_reliability.cli import _common, _ranges, _tracker
from pipeline_reliability.completion import CompletionTracker, PhaseSpec, TriggerEvent
from pipeline_reliability.testing import FakeClock

PROCS = ("a", "b")
CONFIG = """
[phases.p3]
schedule = "test_calendar_cli:schedule"
timezone = "America/New_York"
local_deadline = "14:00"
local_deadline_days_after = 1
next_phase = "p4"
"""


def schedule(day: date) -> set[str]:
    """Games on odd days of the month only."""
    return set(PROCS) if day.day % 2 else set()


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch, fake_clock: FakeClock) -> MemoryStore:
    shared = MemoryStore(clock=fake_clock)
    monkeypatch.setattr(_common, "open_store", lambda args: shared)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "memory-project")
    return shared


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "phases.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return str(path)


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[TriggerEvent]:
    """What the commands publish (instead of a Pub/Sub topic)."""
    published: list[TriggerEvent] = []
    monkeypatch.setattr(_tracker, "_publisher", lambda args: published.append)
    return published


@pytest.fixture(autouse=True)
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses ``paced`` takes (none really happen)."""
    pauses: list[float] = []
    monkeypatch.setattr("pipeline_reliability.cli._ranges.time.sleep", pauses.append)
    return pauses


def test_sweep_without_dates_sweeps_today_and_yesterday_in_the_phase_zone(
    cli: Cli, store: MemoryStore, config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 03:00 UTC on 2026-01-04 is the evening of 2026-01-03 in New York.
    monkeypatch.setattr(_ranges, "utc_now", lambda: datetime(2026, 1, 4, 3, tzinfo=UTC))
    run = cli("sweep", "p3", "--config", config, "--dry-run", "--json")
    assert run.status == 0, run.err
    rows = json.loads(run.out)["dates"]
    assert [r["date"] for r in rows] == ["2026-01-02", "2026-01-03"]
    assert (rows[0]["action"], rows[0]["reason"]) == ("skipped", "nothing_scheduled")
    assert rows[1]["missing"] == ["a", "b"]  # an odd day: games


def test_from_to_range_is_paced_and_reports_every_date(
    cli: Cli, store: MemoryStore, config: str, slept: list[float], events: list[Any]
) -> None:
    run = cli("sweep", "p3", "--config", config, "--from", "2026-01-01", "--to", "2026-01-05",
              "--rate", "2", "--topic", "t")
    assert run.status == 0, run.err
    lines = run.out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [f"p3 2026-01-0{i}" for i in range(1, 6)]
    assert "p3 2026-01-02: skipped (nothing_scheduled)" in lines
    assert len(slept) == 4
    assert all(0 < s <= 0.5 for s in slept)
    assert events == []  # nothing was due


@pytest.mark.parametrize(
    "argv",
    [
        ("--from", "2026-01-01"),
        ("--to", "2026-01-01"),
        ("--from", "2026-01-05", "--to", "2026-01-01"),
        ("2026-01-01", "--rate", "0"),
        ("2026-01-01", "--rate", "1000"),
    ],
)
def test_bad_ranges_and_rates_are_usage_errors(
    cli: Cli, store: MemoryStore, argv: tuple[str, ...]
) -> None:
    run = cli("sweep", "phase3", "--dry-run", *argv)
    assert run.status == 2


def test_progress_bar_draws_on_a_terminal_only() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        progress = _ranges.Progress(2, "sweep p3", stream)
        list(_ranges.paced(["d1", "d2"], 100.0, progress, sleep=lambda s: None))
    assert tty.getvalue().endswith("[" + "#" * 30 + "] 2/2 d2\n")
    assert "1/2 d1" in tty.getvalue()
    assert pipe.getvalue() == ""


def test_paced_waits_the_interval_between_items() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    progress = _ranges.Progress(3, "x", io.StringIO())
    list(_ranges.paced([1, 2, 3], 4.0, progress, monotonic=lambda: now[0], sleep=sleep))
    assert slept == [0.25, 0.25]


def test_rearm_publishes_one_new_trigger_with_a_higher_attempt(
    cli: Cli, store: MemoryStore, fake_clock: FakeClock, events: list[TriggerEvent]
) -> None:
    spec = PhaseSpec("p3", PROCS)
    tracker = CompletionTracker(store, [spec], clock=fake_clock, owner="w")
    for p in PROCS:
        tracker.record_and_trigger("p3", "2026-01-03", p, execution_id="r", publish=events.append)

    run = cli("rearm", "p3", "2026-01-03", "--expected", "a,b", "--reason", "model fixed",
              "--by", "ops", "--topic", "t")

    assert run.status == 0, run.err
    assert [(e.attempt, e.trigger_id) for e in events] == [
        (1, "p3:2026-01-03"), (2, "p3:2026-01-03:rearm1"),
    ]
    status = cli("status", "p3", "2026-01-03", "--expected", "a,b")
    assert "audit: " in status.out
    assert "rearm_trigger by ops: model fixed" in status.out
    refused = cli("rearm", "p3", "2026-01-04", "--expected", "a,b", "--reason", "x",
                  "--topic", "t")
    assert refused.status == 1
    assert "nothing to rearm" in refused.err


def test_set_expected_changes_one_date_with_an_audit(
    cli: Cli, store: MemoryStore, config: str
) -> None:
    cli("sweep", "p3", "2026-01-02", "--config", config, "--dry-run")
    run = cli("set-expected", "p3", "2026-01-02", "a", "--config", config,
              "--reason", "late game", "--by", "ops", "--json")
    assert run.status == 0, run.err
    body = json.loads(run.out)
    assert body["expected"] == ["a"]
    assert body["expected_fixed"] is True
    assert [(a["op"], a["by"], a["reason"]) for a in body["audit"]] == [
        ("set_expected", "ops", "late game")
    ]


def test_status_over_a_range_and_its_local_deadline(
    cli: Cli, store: MemoryStore, config: str
) -> None:
    run = cli("status", "p3", "--config", config, "--from", "2026-03-07", "--to", "2026-03-08",
              "--json")
    assert run.status == 0, run.err
    first, second = json.loads(run.out)
    assert first["deadline_at"] == (datetime(2026, 3, 8, 18, tzinfo=UTC)).isoformat()
    assert second["nothing_scheduled"] is True
    assert first["timezone"] == "America/New_York"
    text = cli("status", "p3", "2026-03-07", "--config", config).out
    assert "deadline: 2026-03-08T14:00:00-04:00 America/New_York" in text
    assert (datetime(2026, 3, 8, 18, tzinfo=UTC) - timedelta(hours=4)).hour == 14


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('local_deadline = "2pm"', "local_deadline"),
        ('timezone = "Nowhere/City"', "unknown time zone"),
        ('schedule = "no_such_module:fn"', "cannot be imported"),
        ('on_nothing_scheduled = "maybe"', "on_nothing_scheduled"),
        ("gates = [{ min_rows = 3 }]", "needs table"),
    ],
)
def test_bad_calendar_config_is_a_usage_error(
    cli: Cli, store: MemoryStore, tmp_path: Path, extra: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f'[phases.p3]\nexpected = ["a"]\n{extra}\n', encoding="utf-8")
    run = cli("status", "p3", "2026-01-01", "--config", str(path))
    assert run.status == 2
    assert message in run.err
