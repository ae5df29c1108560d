"""
The simulation's checks can fail: each test breaks one guarantee on purpose
through the ``build_components`` hook, and ``simulate`` must report it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any, TypeVar, cast

import pytest
from cli_helpers import Cli

from pipeline_reliability.breaker import CircuitBreaker
from pipeline_reliability.cli import simulate
from pipeline_reliability.cli.simulate import (
    Components,
    Report,
    SimulationConfig,
    memory_components,
    run_simulation,
)
from pipeline_reliability.lock import DateLock
from pipeline_reliability.stores import Outcome, Put, Snapshot, StateStore
from pipeline_reliability.testing import StoreWrapper

R = TypeVar("R")
CONFIG = SimulationConfig(dates=2, seed=1, chaos="medium")
LOST = "team_defense_game_summary"


class RewritingStore(StoreWrapper):
    """A store wrapper that rewrites every completion document it writes."""

    def __init__(self, inner: StateStore, rewrite: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(inner)
        self.rewrite = rewrite

    def transact(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        def wrapped(snap: Snapshot) -> Outcome[R]:
            outcome = fn(snap)
            if collection.startswith("completion_") and isinstance(outcome.write, Put):
                data = dict(outcome.write.data)
                self.rewrite(data)
                return Outcome(outcome.result, Put(data))
            return outcome

        return super().transact(collection, key, wrapped, timeout=timeout)


def _drop_processor(doc: dict[str, Any]) -> None:
    # A side writer's lost update: one processor's record never survives a write.
    processors = dict(cast(Mapping[str, Any], doc.get("processors") or {}))
    processors.pop(LOST, None)
    doc["processors"] = processors


def _forget_trigger(doc: dict[str, Any]) -> None:
    # The trigger claim is never persisted, so every caller may claim it again.
    doc.pop("trigger", None)


class WriteOnSuccessBreaker(CircuitBreaker):
    """The production bug of F6: reset the failure counter in the store on every success."""

    _naive_store: StateStore

    def call(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        result = super().call(fn, *args, **kwargs)
        self._naive_store.transact(
            "circuit_breakers", "naive-counter",
            lambda snap: Outcome(None, Put({"failure_count": 0})),
        )
        return result


class UnfencedLock:
    """A lock that always grants, with a token that never increases."""

    def __init__(self, name: str) -> None:
        self.name = name

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> Any:
        return SimpleNamespace(token=1)

    def release(self) -> None:
        return None


def _no_dedup(rows: Any, **options: Any) -> Any:
    rows = list(rows)
    return SimpleNamespace(rows=rows, dropped=0, null_key_rows=[])


def _broken(kind: str) -> Callable[[SimulationConfig], Components]:
    def build(config: SimulationConfig) -> Components:
        parts = memory_components(config)
        if kind == "lost_record":
            return dataclasses.replace(parts, store=RewritingStore(parts.store, _drop_processor))
        if kind == "double_trigger":
            return dataclasses.replace(parts, store=RewritingStore(parts.store, _forget_trigger))
        if kind == "breaker_writes":
            original = parts.make_breaker

            def make_breaker(owner: str) -> CircuitBreaker:
                real = original(owner)
                breaker = WriteOnSuccessBreaker(
                    real.name, parts.breaker_store, failure_threshold=3, clock=parts.clock,
                    instance_id=owner,
                )
                breaker._naive_store = parts.breaker_store
                return breaker

            return dataclasses.replace(parts, make_breaker=make_breaker)
        if kind == "unfenced_lock":
            def make_lock(store: StateStore, name: str, date: str, owner: str) -> DateLock:
                return cast(DateLock, UnfencedLock(name))

            return dataclasses.replace(parts, make_lock=make_lock)
        if kind == "no_dedup":
            return dataclasses.replace(parts, dedup=_no_dedup)
        raise AssertionError(kind)

    return build


def _violated(report: Report) -> set[str]:
    return {v.split(" ", 1)[0] for v in report.violations}


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("lost_record", {"count_complete", "reported_are_counted", "trigger_exactly_once"}),
        ("double_trigger", {"trigger_exactly_once"}),
        ("breaker_writes", {"breaker_writes_are_transitions"}),
        ("unfenced_lock", {"lock_race_one_winner", "stale_write_fenced", "stale_release_refused"}),
        ("no_dedup", {"table_one_row_per_key"}),
    ],
)
def test_a_broken_guarantee_is_reported(kind: str, expected: set[str]) -> None:
    """Breaking one guarantee makes the matching invariants fail."""
    report = run_simulation(CONFIG, components=_broken(kind)(CONFIG))

    assert not report.ok
    assert expected <= _violated(report), report.violations


@pytest.mark.parametrize("kind", ["lost_record", "breaker_writes", "unfenced_lock", "no_dedup"])
def test_simulate_exits_non_zero_when_broken(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Through the command line, a violated invariant is printed and exits 1."""
    monkeypatch.setattr(simulate, "build_components", _broken(kind))

    run = cli("simulate", "--dates", "2", "--seed", "1")

    assert run.status == 1
    last = run.out.strip().splitlines()[-1]
    assert last.startswith("invariants: ")
    assert not last.endswith(" 0 violated")
    assert "VIOLATED " in run.out


def test_the_unbroken_hook_passes(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same hook with the real components reports nothing: the failures above are real."""
    monkeypatch.setattr(simulate, "build_components", memory_components)

    run = cli("simulate", "--dates", "2", "--seed", "1")

    assert run.status == 0
    assert run.out.strip().endswith(" 0 violated")
