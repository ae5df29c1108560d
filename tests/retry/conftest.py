"""Fixtures for the retry tests: the testing switch is reset around every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline_reliability.retry import set_testing


@pytest.fixture(autouse=True)
def _reset_testing_mode() -> Iterator[None]:
    """Start every test with sleeps enabled, and restore that afterwards."""
    with set_testing(False):
        yield
