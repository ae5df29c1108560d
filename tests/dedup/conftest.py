"""Fixtures for the dedup tests: retries without sleeping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline_reliability.retry import set_testing


@pytest.fixture(autouse=True)
def _no_retry_sleeps() -> Iterator[None]:
    """Retries in these tests never sleep (the FakeClock alone moves time)."""
    with set_testing(True):
        yield
