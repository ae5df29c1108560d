"""
pytest fixtures for testing code that embeds ``pipeline_reliability``.

Installed with the package and loaded automatically through the ``pytest11``
entry point ``pipeline_reliability`` (disable it with
``-p no:pipeline_reliability``). The fixtures:

- ``fake_clock``: a :class:`~pipeline_reliability.testing.FakeClock`; time
  moves only when the test calls ``advance``.
- ``reliability_store``: a fresh :class:`~pipeline_reliability.MemoryStore`
  on ``fake_clock``.
- ``faulty_store``: a :class:`~pipeline_reliability.testing.FaultyStore`
  around ``reliability_store`` (no faults until the test plans some).
- ``reliability_firestore_emulator`` (session, opt-in): ``host:port`` of a
  Firestore emulator, taken from ``FIRESTORE_EMULATOR_HOST`` or started by
  :mod:`pipeline_reliability.testing.emulators`.
- ``reliability_firestore_store`` (opt-in): a
  :class:`~pipeline_reliability.FirestoreStore` on that emulator, isolated
  by a project id of its own.

The emulator fixtures are only started by tests that request them. When the
emulator cannot be started the test is skipped with the reason, unless the
environment variable ``CI`` is ``true`` (or ``--reliability-require-emulators``
is given): then it fails, so that a CI run cannot pass by skipping.

A ``fake_clock`` defined in a project's ``conftest.py`` overrides this one,
and ``reliability_store`` then uses it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from ..errors import EmulatorError
from ..stores.memory import MemoryStore
from ._clock import FakeClock
from ._faults import FaultyStore

if TYPE_CHECKING:
    from ..stores.firestore import FirestoreStore

__all__ = [
    "fake_clock",
    "faulty_store",
    "reliability_firestore_emulator",
    "reliability_firestore_store",
    "reliability_store",
]

_REQUIRE_OPTION = "--reliability-require-emulators"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--reliability-require-emulators``."""
    parser.addoption(
        _REQUIRE_OPTION,
        action="store_true",
        default=False,
        help="fail (instead of skip) tests whose emulator cannot be started "
        "(default when CI=true)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``firestore`` marker the emulator fixtures apply."""
    config.addinivalue_line("markers", "firestore: needs the Firestore emulator")


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that moves only when the test calls ``advance`` (or ``sleep``)."""
    return FakeClock()


@pytest.fixture
def reliability_store(fake_clock: FakeClock) -> MemoryStore:
    """A fresh, empty MemoryStore whose time is ``fake_clock``."""
    return MemoryStore(clock=fake_clock)


@pytest.fixture
def faulty_store(reliability_store: MemoryStore) -> FaultyStore:
    """``reliability_store`` behind fault injection (no faults until planned)."""
    return FaultyStore(reliability_store)


def _must_not_skip(config: pytest.Config) -> bool:
    return bool(config.getoption(_REQUIRE_OPTION)) or os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def reliability_firestore_emulator(request: pytest.FixtureRequest) -> Iterator[str]:
    """
    ``host:port`` of a Firestore emulator for this test session.

    Reuses ``FIRESTORE_EMULATOR_HOST`` when it is set; otherwise starts the
    emulator (and stops it at the end of the session) and sets the variable
    for the session.
    """
    existing = os.environ.get("FIRESTORE_EMULATOR_HOST")
    if existing:
        yield existing
        return
    from .emulators import start_firestore

    try:
        emulator = start_firestore()
    except EmulatorError as exc:
        if _must_not_skip(request.config):
            pytest.fail(f"the Firestore emulator is required but could not start: {exc}")
        pytest.skip(f"the Firestore emulator could not start: {exc}")
    with emulator, pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIRESTORE_EMULATOR_HOST", emulator.host)
        yield emulator.host


@pytest.fixture
def reliability_firestore_store(
    reliability_firestore_emulator: str,  # noqa: ARG001 - requested so that the emulator runs
) -> FirestoreStore:
    """
    A FirestoreStore on the emulator, isolated from every other test by a
    project id of its own (the emulator keeps projects apart).
    """
    from ..stores.firestore import FirestoreStore

    return FirestoreStore(project=f"test-{uuid.uuid4().hex[:12]}")
