"""simulate's table writes run under a ConcurrencyLimit, and dml_limit_respected can fail."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from pipeline_reliability import MemoryStore
from pipeline_reliability.cli.simulate import _limited
from pipeline_reliability.cli.simulate._components import memory_components
from pipeline_reliability.cli.simulate._config import SimulationConfig
from pipeline_reliability.cli.simulate._engine import Simulation
from pipeline_reliability.cli.simulate._invariants import Verdict, _check_dml_limit, check_run
from pipeline_reliability.cli.simulate._limited import LimitedTable
from pipeline_reliability.limits import ConcurrencyLimit


class SlowTable:
    """A table whose upsert takes 50 ms, so that writers overlap when nothing limits them."""

    def upsert(
        self, rows: Sequence[Mapping[str, Any]], *, fence: int | None = None,
        fence_key: Hashable = None,
    ) -> tuple[int, int]:
        time.sleep(0.05)
        return len(rows), 0

    def rows(self) -> list[dict[str, Any]]:
        return []


def _write_from_threads(table: LimitedTable, n: int) -> None:
    threads = [threading.Thread(target=table.upsert, args=([{}],)) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)


def _verdict(table: LimitedTable) -> Verdict:
    verdict = Verdict()
    _check_dml_limit(SimpleNamespace(c=SimpleNamespace(table=table)), verdict)  # type: ignore[arg-type]
    return verdict


def test_writers_from_several_threads_never_exceed_the_limit() -> None:
    table = LimitedTable(SlowTable(), MemoryStore(), limit=2)

    _write_from_threads(table, 6)

    assert (table.entries, table.overruns) == (6, 0)
    assert 1 <= table.peak <= 2
    assert [c.ok for c in _verdict(table).checks] == [True]


def test_the_invariant_fails_when_the_limit_does_not_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each thread gets a limit of its own name: nothing is shared, writers overlap."""
    names = iter(range(100))
    real = ConcurrencyLimit

    def unshared(name: str, *args: Any, **kwargs: Any) -> ConcurrencyLimit:
        return real(f"{name}-{next(names)}", *args, **kwargs)

    monkeypatch.setattr(_limited, "ConcurrencyLimit", unshared)
    table = LimitedTable(SlowTable(), MemoryStore(), limit=1)

    _write_from_threads(table, 4)

    assert table.overruns > 0
    (check,) = _verdict(table).checks
    assert check.name == "dml_limit_respected"
    assert not check.ok
    assert "overrun" in check.detail


def test_a_simulated_day_writes_under_the_limit_and_gives_every_slot_back() -> None:
    config = SimulationConfig(dates=3, chaos="high", seed=7)
    sim = Simulation(config, memory_components(config))
    sim.run()

    table = sim.c.table
    assert isinstance(table, LimitedTable)
    assert table.entries > 0
    assert table.limit == config.workers // 2
    checks = [c for c in check_run(sim).checks if c.name == "dml_limit_respected"]
    assert [c.ok for c in checks] == [True]
    assert not table.slots_left()
