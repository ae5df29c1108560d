"""
The async tracker passes the sync tracker's scenario tests (issue 12, item 5).

Every test of the modules below that builds its tracker through the
``tracker`` or ``make_tracker`` fixture is collected here a second time, with
those fixtures overridden to build an ``AsyncCompletionTracker`` (behind
``BlockingTracker``, on the same fault-injectable store, ledger, execution
log and clock). The sync run stays in its own module: together they are the
scenario suite parametrised over both trackers, with nothing copied.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest
from async_tracker_adapter import BlockingTracker, blocking_factory
from tracker_helpers import MakeTracker

from pipeline_reliability.completion import (
    AsyncCompletionTracker,
    CompletionTracker,
    MemoryExecutionLog,
    MemoryLedger,
    PhaseSpec,
)
from pipeline_reliability.testing import FakeClock, FaultyStore

SCENARIO_MODULES = (
    "test_record",
    "test_trigger",
    "test_status_and_replay",
    "test_sweep_and_reconcile",
    "test_sweep_dry_run",
    "test_duplicate_fast_path",
    "test_tracker_listeners",
    "test_telemetry_and_events",
    "test_backfill_paths",
    "test_run_order",
    "test_ledger_quarantine",
    "test_regressions",
)
_FIXTURES = {"tracker", "make_tracker"}


def _uses_tracker_fixture(fn: object) -> bool:
    try:
        params = inspect.signature(fn).parameters  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return bool(_FIXTURES & set(params))


def _is_fixture(value: object) -> bool:
    # pytest >= 8.4 wraps fixture functions in FixtureFunctionDefinition.
    return type(value).__name__ == "FixtureFunctionDefinition" or hasattr(
        value, "_fixture_function_marker"
    )


def _collect() -> dict[str, Any]:
    """The scenario tests (and the module fixtures they use), keyed ``<module>__<test>``."""
    found: dict[str, Any] = {}
    for name in SCENARIO_MODULES:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if attr.startswith("test_"):
                if callable(value) and _uses_tracker_fixture(value):
                    found[f"test_{name[5:]}__{attr[5:]}"] = value
            elif not attr.startswith("__") and _is_fixture(value):
                found.setdefault(attr, value)  # a module's own fixture, which its tests use
    return found


SCENARIOS = _collect()
globals().update(SCENARIOS)


@pytest.fixture
def make_tracker(
    store: FaultyStore,
    ledger: MemoryLedger,
    execution_log: MemoryExecutionLog,
    fake_clock: FakeClock,
    spec: PhaseSpec,
) -> MakeTracker:
    """``make_tracker`` of tests/completion/conftest.py, building async trackers."""

    def options(**given: Any) -> dict[str, Any]:
        given.setdefault("ledger", ledger)
        given.setdefault("execution_log", execution_log)
        given.setdefault("phases", [spec])
        given.setdefault("clock", fake_clock)
        return given

    return blocking_factory(store, options)


@pytest.fixture
def tracker(make_tracker: MakeTracker) -> CompletionTracker:
    """An async tracker owned by 'worker-1', behind the blocking adapter."""
    return make_tracker()


def test_item5_async_tracker_passes_the_sync_scenario_tests(make_tracker: MakeTracker) -> None:
    made: object = make_tracker()
    assert isinstance(made, BlockingTracker)
    assert isinstance(made.inner, AsyncCompletionTracker)
    assert len([n for n in SCENARIOS if n.startswith("test_")]) >= 75
