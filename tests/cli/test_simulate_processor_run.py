"""``simulate``'s processors are written with ``ProcessorRun`` (issue 14)."""

from __future__ import annotations

import pytest
from cli_helpers import Cli

from pipeline_reliability.cli.simulate import _instance
from pipeline_reliability.processor import ProcessorRun


def test_simulated_processors_run_through_processor_run(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every delivery is one ProcessorRun; its completions reach the tracker; 0 violated."""
    runs: list[ProcessorRun] = []

    class Counting(ProcessorRun):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            runs.append(self)

    monkeypatch.setattr(_instance, "ProcessorRun", Counting)

    run = cli("simulate", "--dates", "1", "--seed", "3", "--chaos", "high")

    assert run.status == 0, run.out + run.err
    assert "0 violated" in run.out
    published = [r for r in runs if r.completion is not None]
    assert len(published) >= 10  # five processors in each of two phases, at least
    assert {r.completion.status for r in published if r.completion} == {"success"}
    # Locked runs carried a fence; the misspelled processors ran without a lock.
    assert any(r.fence is not None for r in published)
