"""``sweep --dry-run`` prints what the real sweep then does (issue 10, item 13)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from cli_helpers import Cli

from pipeline_reliability import MemoryStore
from pipeline_reliability.cli import _common
from pipeline_reliability.cli._phases import PRESETS
from pipeline_reliability.completion import CompletionTracker, PhaseSpec
from pipeline_reliability.testing import FakeClock

DATE = "2026-01-31"


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch, fake_clock: FakeClock) -> MemoryStore:
    """The store every command of the test opens."""
    shared = MemoryStore(clock=fake_clock)
    monkeypatch.setattr(_common, "open_store", lambda args: shared)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "memory-project")
    return shared


def test_item13_cli_dry_run_says_deadline_exceeded_like_the_real_sweep(
    cli: Cli, store: MemoryStore, fake_clock: FakeClock
) -> None:
    """Past the deadline, never swept: the dry run says deadline_exceeded (it said waiting)."""
    spec = PhaseSpec("phase4", PRESETS["phase4"], deadline=timedelta(minutes=360))
    tracker = CompletionTracker(store, [spec], clock=fake_clock, owner="test")
    tracker.record_completion("phase4", DATE, PRESETS["phase4"][0], execution_id="r1")
    fake_clock.advance(timedelta(hours=7))
    writes = store.stats.writes

    dry = cli("sweep", "phase4", DATE, "--dry-run", "--json")
    real = tracker.sweep("phase4", [DATE])

    assert [d["action"] for d in json.loads(dry.out)["dates"]] == ["deadline_exceeded"]
    assert [o.action for o in real.outcomes] == ["deadline_exceeded"]
    assert store.stats.writes == writes + 1  # the real sweep's mark, nothing from the dry run


def test_cli_dry_run_says_due_for_a_date_the_sweep_would_claim(
    cli: Cli, store: MemoryStore, fake_clock: FakeClock
) -> None:
    """A complete date whose trigger nobody claimed is 'due' and stays unclaimed."""
    spec = PhaseSpec("phase4", PRESETS["phase4"])
    tracker = CompletionTracker(store, [spec], clock=fake_clock, owner="test")
    for name in PRESETS["phase4"]:
        result = tracker.record_completion("phase4", DATE, name, execution_id=f"r-{name}")
    assert result.trigger is not None
    tracker.release_trigger(result.trigger, "test")

    dry = cli("sweep", "phase4", DATE, "--dry-run")

    assert dry.out.strip() == f"phase4 {DATE}: due"
    assert tracker.status("phase4", DATE).trigger_state == "released"
