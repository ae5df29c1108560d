"""
``pipeline-reliability day DATE`` and ``report --from D1 --to D2 --html FILE``
on a MemoryStore holding the sample state of report_sample.py.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import report_sample
from cli_helpers import Cli
from report_browser import Dom

from pipeline_reliability import MemoryStore
from pipeline_reliability.cli import _common, main
from pipeline_reliability.testing import FakeClock


@pytest.fixture
def config(tmp_path: Path) -> str:
    """The sample's phases as a --config file."""
    path = tmp_path / "phases.toml"
    path.write_text(report_sample.CONFIG, encoding="utf-8")
    return str(path)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> MemoryStore:
    """The store every command opens, holding the sample state."""
    clock = FakeClock(report_sample.START)
    shared = MemoryStore(clock=clock)
    report_sample.build(clock=clock, store=shared)
    monkeypatch.setattr(_common, "open_store", lambda args: shared)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "memory-project")
    return shared


def _no_store(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(args: object) -> MemoryStore:
        raise AssertionError("the store was opened")

    monkeypatch.setattr(_common, "open_store", refuse)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "memory-project")


# -- day ------------------------------------------------------------------------------------


def test_day_prints_every_phase_processors_and_trigger(
    cli: Cli, store: MemoryStore, config: str
) -> None:
    run = cli("day", "2026-01-28", "--config", config)
    assert run.status == 0, run.err
    lines = run.out.splitlines()
    assert lines[0] == "2026-01-28"
    summary = {line.split()[0]: line.split()[1] for line in lines[4:6]}
    assert summary == {"phase2": "triggered", "phase3": "released"}
    assert "Pub/Sub 503: service unavailable" in run.out
    assert "player_summary" in run.out
    assert "confirmed" in run.out


def test_day_json_has_the_known_states(cli: Cli, store: MemoryStore, config: str) -> None:
    run = cli("day", "2026-01-31", "--config", config, "--json")
    assert run.status == 0, run.err
    data = json.loads(run.out)
    states = {p["phase"]: p["state"] for p in data["phases"]}
    assert states == {"phase2": "partial", "phase3": "no_data"}
    phase2 = data["phases"][0]
    by_name = {p["name"]: p["state"] for p in phase2["processors"]}
    assert by_name["scrape_odz"] == "ignored"
    assert by_name["scrape_boxscores"] == "not_done"


def test_day_phase_option_selects_one_phase(cli: Cli, store: MemoryStore, config: str) -> None:
    run = cli("day", "2026-01-29", "--config", config, "--phase", "phase3", "--json")
    assert [p["state"] for p in json.loads(run.out)["phases"]] == ["overdue"]


@pytest.mark.parametrize(("date", "status"), [("2026-01-27", 0), ("2026-01-29", 1)])
def test_day_check_exits_1_unless_every_phase_is_settled(
    cli: Cli, store: MemoryStore, config: str, date: str, status: int
) -> None:
    assert cli("day", date, "--config", config, "--check").status == status


@pytest.mark.parametrize("argv", [
    ["day", "2026-02-30"],
    ["day", "yesterday"],
    ["day", "2026-01-31", "--phase", "nope"],
    ["day", "2026-01-31", "--config", "/nonexistent.toml"],
])
def test_day_bad_input_exits_2_before_opening_the_store(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    _no_store(monkeypatch)
    run = cli(*argv)
    assert run.status == 2
    assert run.err.count("\n") == 1
    assert "error" in run.err


# -- report ---------------------------------------------------------------------------------


def test_report_writes_the_grid(
    cli: Cli, store: MemoryStore, config: str, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    run = cli("report", "--from", "2026-01-27", "--to", "2026-01-31", "--html", str(out),
              "--config", config, "--rate", "100")
    assert run.status == 0, run.err
    assert run.out.startswith(f"wrote {out}: 5 date(s), 2 phase(s);")
    assert Dom(out.read_text(encoding="utf-8")).cells() == dict(report_sample.EXPECTED_STATES)


def test_report_replaces_an_existing_file_whole(
    cli: Cli, store: MemoryStore, config: str, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    out.write_text("old", encoding="utf-8")
    run = cli("report", "--from", "2026-01-31", "--to", "2026-01-31", "--html", str(out),
              "--config", config)
    assert run.status == 0
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("argv", [
    ["report", "--from", "2026-01-27", "--to", "2026-01-31"],  # no --html
    ["report", "--from", "2026-01-27", "--html", "r.html"],  # no --to
    ["report", "--from", "2026-01-31", "--to", "2026-01-27", "--html", "r.html"],
    ["report", "--from", "2026-01-27", "--to", "2026-01-31", "--html", "/nonexistent/r.html"],
    ["report", "--from", "2026-01-27", "--to", "2026-01-31", "--html", "r.html",
     "--rate", "0"],
])
def test_report_bad_input_exits_2_before_opening_the_store(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, argv: list[str]
) -> None:
    _no_store(monkeypatch)
    monkeypatch.chdir(tmp_path)
    run = cli(*argv)
    assert run.status == 2, run.err
    assert not (tmp_path / "r.html").exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_report_over_a_range_shows_a_progress_bar_on_a_terminal(
    store: MemoryStore, config: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    out = tmp_path / "r.html"
    status = main(["report", "--from", "2026-01-27", "--to", "2026-01-31", "--html", str(out),
                   "--config", config, "--rate", "100"])
    assert status == 0
    assert "report [" in terminal.getvalue()
    assert "5/5" in terminal.getvalue()
