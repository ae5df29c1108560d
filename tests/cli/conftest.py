"""Fixtures of the CLI tests: run ``main`` in-process and capture its output."""

from __future__ import annotations

import pytest
from cli_helpers import Cli, Run

from pipeline_reliability.cli import main


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run ``pipeline-reliability ARGS...`` in-process."""

    def run(*argv: str) -> Run:
        capsys.readouterr()
        status = main(list(argv))
        captured = capsys.readouterr()
        return Run(status, captured.out, captured.err)

    return run
