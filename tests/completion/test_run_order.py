"""
Issue 10, item 1: the runs of one processor are ordered by the processor's
own completion time (``completed_at``), never by arrival or by an
orchestrator's clock; on MemoryStore and on the Firestore emulator.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from tracker_helpers import DATE, EXPECTED, FIRST, OTHERS, PHASE

from pipeline_reliability import MemoryStore, StateStore
from pipeline_reliability.completion import (
    CompletionTracker,
    MemoryLedger,
    PhaseSpec,
)
from pipeline_reliability.errors import InvalidInputError
from pipeline_reliability.testing import FakeClock, FaultyStore

T = datetime(2026, 1, 31, 6, tzinfo=UTC)
US = timedelta(microseconds=1)


def _tracker(store: StateStore, clock: FakeClock, owner: str = "w1") -> CompletionTracker:
    return CompletionTracker(store, [PhaseSpec(PHASE, EXPECTED)], clock=clock, owner=owner)


def _others_done(tracker: CompletionTracker) -> None:
    for name in OTHERS:
        tracker.record_completion(PHASE, DATE, name, execution_id=f"run-{name}", completed_at=T)


def test_item1_older_failed_run_delivered_late_is_stale(
    backend: StateStore, fake_clock: FakeClock
) -> None:
    """A newer success arrives first, then an older failure: the date still triggers."""
    tracker = _tracker(backend, fake_clock)
    _others_done(tracker)

    newer = tracker.record_completion(
        PHASE, DATE, FIRST, execution_id="run-2", completed_at=T + timedelta(hours=1)
    )
    writes = backend.stats.writes
    older = tracker.record_completion(
        PHASE, DATE, FIRST, execution_id="run-1", status="failed", completed_at=T
    )

    assert newer.trigger is not None
    assert (older.stale, older.counted, older.updated, older.duplicate) == (
        True,
        False,
        False,
        False,
    )
    assert older.count == len(EXPECTED)
    assert backend.stats.writes == writes  # a stale run changes nothing
    status = tracker.status(PHASE, DATE)
    assert status.records[FIRST].execution_id == "run-2"
    assert status.records[FIRST].completed_at == T + timedelta(hours=1)
    assert status.completed == EXPECTED


def test_item1_orchestrator_clocks_hours_apart_do_not_decide(
    backend: StateStore, fake_clock: FakeClock
) -> None:
    """Two instances whose clocks differ by 5 h: the processor's own times decide."""
    ahead = FakeClock(fake_clock.now() + timedelta(hours=5))
    fast, slow = _tracker(backend, ahead, "fast"), _tracker(backend, fake_clock, "slow")

    fast.record_completion(PHASE, DATE, FIRST, execution_id="old", status="failed", completed_at=T)
    new = slow.record_completion(
        PHASE, DATE, FIRST, execution_id="new", completed_at=T + timedelta(minutes=1)
    )

    assert (new.updated or new.counted, new.stale) == (True, False)
    assert fast.status(PHASE, DATE).records[FIRST].execution_id == "new"


@pytest.mark.parametrize(
    ("offset", "execution_id", "outcome"),
    [
        (-US, "run-z", "stale"),  # older by 1 µs, whatever its id
        (timedelta(0), "run-m", "duplicate"),  # same run again
        (timedelta(0), "run-a", "stale"),  # same instant, smaller id: the stored run wins
        (timedelta(0), "run-z", "updated"),  # same instant, larger id: the new run wins
        (US, "run-a", "updated"),  # newer by 1 µs, whatever its id
    ],
    ids=["older-1us", "equal-same-run", "equal-smaller-id", "equal-larger-id", "newer-1us"],
)
def test_item1_order_boundary(
    backend: StateStore,
    fake_clock: FakeClock,
    offset: timedelta,
    execution_id: str,
    outcome: str,
) -> None:
    """Both sides of the comparison, with adjacent times; ties go to the larger execution id."""
    tracker = _tracker(backend, fake_clock)
    tracker.record_completion(PHASE, DATE, FIRST, execution_id="run-m", completed_at=T)

    r = tracker.record_completion(
        PHASE, DATE, FIRST, execution_id=execution_id, status="failed", completed_at=T + offset
    )

    got = {"stale": r.stale, "duplicate": r.duplicate, "updated": r.updated}
    assert got == {k: k == outcome for k in got}
    kept = tracker.status(PHASE, DATE).records[FIRST].execution_id
    assert kept == (execution_id if outcome == "updated" else "run-m")


def test_item1_any_time_zone_orders_by_the_instant(memory_store: MemoryStore) -> None:
    """completed_at in another zone is compared as the same instant in UTC."""
    tracker = _tracker(memory_store, FakeClock())
    east = timezone(timedelta(hours=9))
    tracker.record_completion(PHASE, DATE, FIRST, execution_id="a", completed_at=T)

    r = tracker.record_completion(
        PHASE, DATE, FIRST, execution_id="b", completed_at=(T - US).astimezone(east)
    )

    assert r.stale
    assert tracker.status(PHASE, DATE).records[FIRST].completed_at == T


@pytest.mark.parametrize(
    "bad",
    [datetime(2026, 1, 31, 6), "2026-01-31T06:00:00Z", 1769839200, T.date()],
    ids=["naive", "string", "epoch", "date"],
)
def test_item1_completed_at_must_be_timezone_aware(memory_store: MemoryStore, bad: object) -> None:
    """A naive datetime (or anything but a datetime) is refused before anything is written."""
    tracker = _tracker(memory_store, FakeClock())

    with pytest.raises(InvalidInputError, match="completed_at"):
        tracker.record_completion(PHASE, DATE, FIRST, execution_id="r", completed_at=bad)  # type: ignore[arg-type]

    assert memory_store.stats.writes == 0


def test_item1_order_survives_the_ledger(memory_store: MemoryStore, fake_clock: FakeClock) -> None:
    """An older run degraded to the ledger and replayed after a newer one stays stale."""
    faulty, ledger = FaultyStore(memory_store), MemoryLedger()
    tracker = CompletionTracker(faulty, [PhaseSpec(PHASE, EXPECTED)], ledger, fake_clock)
    faulty.set_outage(True)
    degraded = tracker.record_completion(
        PHASE, DATE, FIRST, execution_id="old", status="failed", completed_at=T
    )
    faulty.set_outage(False)
    fake_clock.advance(3600)  # the degraded row's report time is now the oldest
    tracker.record_completion(PHASE, DATE, FIRST, execution_id="new", completed_at=T + US)

    report = tracker.replay_ledger(PHASE, [DATE])

    assert degraded.degraded
    assert ledger.rows[0].completed_at == T
    assert (report.rows, report.applied) == (1, 0)
    assert tracker.status(PHASE, DATE).records[FIRST].execution_id == "new"


def test_item1_without_completed_at_the_store_time_orders(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """No completion time given: the store's time at receipt stands in (never the tracker's)."""
    skewed = FakeClock(fake_clock.now() - timedelta(days=1))  # the tracker's clock is a day behind
    tracker = _tracker(memory_store, skewed)
    tracker.record_completion(PHASE, DATE, FIRST, execution_id="first")
    fake_clock.advance(1)

    r = tracker.record_completion(PHASE, DATE, FIRST, execution_id="second", status="failed")

    assert r.updated
    record = tracker.status(PHASE, DATE).records[FIRST]
    assert record.completed_at == fake_clock.now()
