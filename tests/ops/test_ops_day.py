"""
The day/report model (issue 15, item 5): every phase of a date read through
``tracker.status``, one state per cell, processors, the trigger's history and
completions waiting in the fallback ledger; and the dates-by-phases grid.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from pipeline_reliability import MemoryStore
from pipeline_reliability.completion import (
    CompletionTracker,
    GateResult,
    LedgerRow,
    MemoryLedger,
    PhaseSpec,
)
from pipeline_reliability.errors import InvalidInputError
from pipeline_reliability.ops._day import CELL_STATES, DayView, PhaseDay, read_day
from pipeline_reliability.ops._report import build_report
from pipeline_reliability.retry import set_testing
from pipeline_reliability.stores import Outcome, Put, Snapshot
from pipeline_reliability.testing import FakeClock, FaultyStore

DAY = "2026-01-31"
NAMES = frozenset({"a", "b", "c"})


@pytest.fixture(autouse=True)
def _no_retry_sleeps() -> Iterator[None]:
    with set_testing(True):
        yield


@pytest.fixture
def clock() -> FakeClock:
    """The test's time."""
    return FakeClock(datetime(2026, 1, 31, 8, 0, tzinfo=UTC))


@pytest.fixture
def store(clock: FakeClock) -> FaultyStore:
    """A memory store that can be made to fail."""
    return FaultyStore(MemoryStore(clock=clock))


def _tracker(store: FaultyStore, clock: FakeClock, *specs: PhaseSpec,
             ledger: MemoryLedger | None = None) -> CompletionTracker:
    chosen = specs or (PhaseSpec("p2", NAMES, deadline=timedelta(hours=6)),
                       PhaseSpec("p3", NAMES, deadline=timedelta(hours=6)))
    return CompletionTracker(store, list(chosen), clock=clock, ledger=ledger, owner="w1")


def _record(tracker: CompletionTracker, names: list[str], phase: str = "p2", **kw: object) -> None:
    for name in names:
        tracker.record_completion(phase, DAY, name, execution_id=f"r-{name}", **kw)  # type: ignore[arg-type]


def _cell(tracker: CompletionTracker, phase: str = "p2",
          ledger: MemoryLedger | None = None) -> PhaseDay:
    return next(p for p in read_day(tracker, DAY, ledger=ledger).phases if p.phase == phase)


# -- cell states, each at its boundary ----------------------------------------------------


def test_no_report_is_no_data_and_one_report_is_partial(
    store: FaultyStore, clock: FakeClock
) -> None:
    tracker = _tracker(store, clock)
    assert _cell(tracker).state == "no_data"
    _record(tracker, ["a"])
    cell = _cell(tracker)
    assert (cell.state, cell.count, cell.expected) == ("partial", 1, 3)


def test_all_but_one_is_partial_all_is_claimed_then_confirmed(
    store: FaultyStore, clock: FakeClock
) -> None:
    tracker = _tracker(store, clock)
    _record(tracker, ["a", "b"])
    assert _cell(tracker).state == "partial"
    claim = tracker.record_completion("p2", DAY, "c", execution_id="r-c").trigger
    assert claim is not None
    assert _cell(tracker).state == "claimed"
    tracker.confirm_trigger(claim)
    cell = _cell(tracker)
    assert cell.state == "triggered"
    assert [s.what for s in cell.history] == ["first completion", "claimed", "confirmed"]


def test_complete_without_a_claim_is_complete(store: FaultyStore, clock: FakeClock) -> None:
    """All done and no trigger in the document (e.g. an older writer's) is "complete"."""
    tracker = _tracker(store, clock)
    _record(tracker, sorted(NAMES))

    def drop_trigger(snap: Snapshot) -> Outcome[None]:
        data = dict(snap.data or {})
        data.pop("trigger", None)
        return Outcome(None, Put(data))

    store.transact(tracker.phases["p2"].collection, DAY, drop_trigger)
    assert _cell(tracker).state == "complete"


def test_released_shows_the_publish_error_in_the_history(
    store: FaultyStore, clock: FakeClock
) -> None:
    tracker = _tracker(store, clock)
    _record(tracker, ["a", "b"])
    claim = tracker.record_completion("p2", DAY, "c", execution_id="r-c").trigger
    assert claim is not None
    clock.advance(5)
    tracker.release_trigger(claim, "Pub/Sub said 503")
    cell = _cell(tracker)
    assert cell.state == "released"
    released = [s for s in cell.history if s.what == "released"]
    assert len(released) == 1
    assert "Pub/Sub said 503" in released[0].detail
    assert released[0].at == clock.now()
    assert [s.at for s in cell.history] == sorted(s.at for s in cell.history if s.at)


def test_overdue_only_once_the_sweep_marked_the_deadline(
    store: FaultyStore, clock: FakeClock
) -> None:
    tracker = _tracker(store, clock)
    _record(tracker, ["a"])
    clock.advance(timedelta(hours=6) - timedelta(seconds=1))
    tracker.sweep("p2", [DAY])
    assert _cell(tracker).state == "partial"  # one second before the deadline
    clock.advance(1)
    tracker.sweep("p2", [DAY])
    cell = _cell(tracker)
    assert cell.state == "overdue"
    assert "deadline passed" in [s.what for s in cell.history]


def test_a_closed_gate_is_gated(store: FaultyStore, clock: FakeClock) -> None:
    spec = PhaseSpec("p2", NAMES, gates=[lambda day: GateResult(False, "rows missing")])
    tracker = _tracker(store, clock, spec)
    _record(tracker, sorted(NAMES))
    cell = _cell(tracker)
    assert cell.state == "gated"
    assert any("rows missing" in s.detail for s in cell.history)


def test_a_backfill_is_skipped(store: FaultyStore, clock: FakeClock) -> None:
    tracker = _tracker(store, clock)
    for name in sorted(NAMES):
        tracker.record_completion("p2", DAY, name, execution_id=f"r-{name}", trigger=False)
    cell = _cell(tracker)
    assert cell.state == "skipped"
    assert cell.trigger_reason == "backfill"


def test_store_down_with_a_ledger_is_degraded_and_without_is_error(
    store: FaultyStore, clock: FakeClock
) -> None:
    ledger = MemoryLedger()
    with_ledger = _tracker(store, clock, ledger=ledger)
    without = _tracker(store, clock)
    store.set_outage(True)
    assert _cell(with_ledger).state == "degraded"
    assert _cell(with_ledger).degraded
    view = read_day(without, DAY)
    assert [p.state for p in view.phases] == ["error", "error"]
    assert view.errors == view.phases
    assert all(p.error and "Error" in p.error for p in view.phases)


# -- processors ---------------------------------------------------------------------------


def test_processors_done_empty_failed_missing_and_ignored(
    store: FaultyStore, clock: FakeClock
) -> None:
    spec = PhaseSpec("p2", {"a", "b", "c", "d"}, done_empty_statuses={"no_data"})
    tracker = _tracker(store, clock, spec)
    tracker.record_completion("p2", DAY, "a", execution_id="r1", record_count=7,
                              metadata={"k": "v"})
    tracker.record_completion("p2", DAY, "b", execution_id="r2", status="no_data")
    tracker.record_completion("p2", DAY, "c", execution_id="r3", status="failed")
    tracker.record_completion("p2", DAY, "typo", execution_id="r4")
    by_name = {p.name: p for p in _cell(tracker).processors}
    assert {n: p.state for n, p in by_name.items()} == {
        "a": "done", "b": "done_empty", "c": "not_done", "d": "missing", "typo": "ignored",
    }
    a = by_name["a"]
    assert (a.status, a.execution_id, a.record_count, a.runs) == ("success", "r1", 7, 1)
    assert a.metadata == {"k": "v"}
    assert a.reported_at == clock.now()


def _row(processor: str, run: str, at: datetime) -> LedgerRow:
    return LedgerRow("p2", DAY, processor, run, "success", at, at, False, completed_at=at)


def test_ledger_rows_wait_only_when_the_store_lacks_that_run_or_a_newer_one(
    store: FaultyStore, clock: FakeClock
) -> None:
    tracker = _tracker(store, clock)
    tracker.record_completion("p2", DAY, "a", execution_id="r-a", completed_at=clock.now())
    ledger = MemoryLedger()
    now = clock.now()
    ledger.append(_row("a", "r-a", now))  # the same run: already in the store
    ledger.append(_row("a", "r-old", now - timedelta(seconds=1)))  # older run: stale
    assert _cell(tracker, ledger=ledger).in_ledger == 0
    ledger.append(_row("a", "r-new", now + timedelta(seconds=1)))  # newer: waits
    ledger.append(_row("b", "r-b", now))  # not in the store at all: waits
    cell = _cell(tracker, ledger=ledger)
    assert cell.in_ledger == 2
    assert cell.degraded
    assert cell.state == "partial"
    waiting = [(p.name, p.execution_id) for p in cell.processors if p.state == "in_ledger"]
    assert waiting == [("a", "r-new"), ("b", "r-b")]


# -- read_day and the report ----------------------------------------------------------------


def test_read_day_reads_only_and_keeps_the_phase_order(clock: FakeClock) -> None:
    inner = MemoryStore(clock=clock)
    tracker = CompletionTracker(inner, [PhaseSpec("z", NAMES), PhaseSpec("a", NAMES)],
                                clock=clock)
    tracker.record_completion("z", DAY, "a", execution_id="r1")
    before = inner.stats.writes
    view = read_day(tracker, DAY)
    assert [p.phase for p in view.phases] == ["z", "a"]
    assert inner.stats.writes == before
    assert [p.phase for p in read_day(tracker, DAY, phases=["a"]).phases] == ["a"]


@pytest.mark.parametrize("date", ["2026-02-30", "31-01-2026", ""])
def test_read_day_refuses_bad_dates(store: FaultyStore, clock: FakeClock, date: str) -> None:
    with pytest.raises(InvalidInputError):
        read_day(_tracker(store, clock), date)


def test_read_day_refuses_unknown_phases(store: FaultyStore, clock: FakeClock) -> None:
    with pytest.raises(InvalidInputError, match="unknown phase"):
        read_day(_tracker(store, clock), DAY, phases=["p2", "nope"])


def test_report_grid_sorted_with_counts_and_cells(store: FaultyStore, clock: FakeClock) -> None:
    tracker = _tracker(store, clock)
    _record(tracker, ["a"])
    days = [read_day(tracker, d) for d in ("2026-02-01", DAY, "2026-01-30")]
    report = build_report(days, generated_at=clock.now())
    assert report.dates == ("2026-01-30", DAY, "2026-02-01")
    assert report.phases == ("p2", "p3")
    counts = report.counts()
    assert set(counts) == set(CELL_STATES)
    assert counts["partial"] == 1
    assert counts["no_data"] == 5
    assert sum(counts.values()) == 6
    cell = report.cell(DAY, "p2")
    assert cell is not None
    assert cell.state == "partial"
    assert report.cell(DAY, "p9") is None
    assert report.cell("2025-01-01", "p2") is None
    assert report.errors == ()


def test_report_refuses_a_date_twice() -> None:
    day = DayView(DAY, ())
    with pytest.raises(InvalidInputError):
        build_report([day, day])
