"""
A ledger row that can never be applied is quarantined, and the rest of its
date still replays (issue 10, item 3).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from tracker_helpers import DATE, EXPECTED, FIRST, OTHERS, PHASE, MakeTracker

from otel_helpers import metric_points
from pipeline_reliability.completion import (
    CompletionTracker,
    LedgerRow,
    MemoryExecutionLog,
    MemoryLedger,
)
from pipeline_reliability.completion._ledger import (
    MAX_INT64,
    ExecutionLogRow,
    check_execution_row,
    check_ledger_row,
)
from pipeline_reliability.errors import InvalidInputError
from pipeline_reliability.testing import FaultyStore

AT = datetime(2026, 1, 31, 12, tzinfo=UTC)


def _row(name: str, **changes: Any) -> LedgerRow:
    row = LedgerRow(
        phase=PHASE,
        date=DATE,
        processor=name,
        execution_id=f"run-{name}",
        status="success",
        event_time=AT,
        recorded_time=AT,
        primary_ok=False,
    )
    return dataclasses.replace(row, **changes)


class OldLedger(MemoryLedger):
    """A ledger as older versions wrote it: rows go in unchecked."""

    def append(self, row: LedgerRow) -> None:
        self.rows.append(row)


def test_item3_one_bad_row_does_not_block_its_date(
    make_tracker: MakeTracker, caplog: pytest.LogCaptureFixture, metric_reader: Any
) -> None:
    """A record_count of 2**63 is quarantined; every valid row of the date is applied."""
    ledger = OldLedger()
    ledger.rows.append(_row(FIRST, record_count=2**63))
    for name in OTHERS:
        ledger.rows.append(_row(name, record_count=MAX_INT64))
    tracker = make_tracker(ledger=ledger)
    name = "pipeline_reliability.tracker.replay_quarantined"
    before = sum(p.value for p in metric_points(metric_reader, name))  # cumulative per session

    with caplog.at_level(logging.ERROR, "pipeline_reliability.completion"):
        report = tracker.replay_ledger(PHASE, [DATE])
    again = tracker.replay_ledger(PHASE, [DATE])

    [bad] = report.quarantined
    assert (bad.date, bad.processor, bad.execution_id) == (DATE, FIRST, f"run-{FIRST}")
    assert "record_count" in bad.reason
    assert (report.rows, report.applied, report.duplicates) == (5, 4, 0)
    assert tracker.status(PHASE, DATE).completed == EXPECTED - {FIRST}
    assert (again.applied, again.duplicates, len(again.quarantined)) == (0, 4, 1)
    logged = [r for r in caplog.records if "quarantined" in r.getMessage()]
    assert len(logged) == 2  # once per replay
    assert logged[0].pipeline_reliability["processor"] == FIRST  # type: ignore[attr-defined]
    [point] = metric_points(metric_reader, name)
    assert (point.value - before, point.attributes["phase"]) == (2, PHASE)


BAD_ROWS = {
    "record_count above int64": {"record_count": 2**63},
    "negative record_count": {"record_count": -1},
    "bool record_count": {"record_count": True},
    "naive event_time": {"event_time": datetime(2026, 1, 31)},
    "event_time not a datetime": {"event_time": "2026-01-31"},
    "event_time past 9999 in UTC": {
        "event_time": datetime(9999, 12, 31, 23, tzinfo=timezone(-timedelta(hours=5)))
    },
    "non-JSON metadata": {"metadata": {"x": object()}},
    "metadata not a mapping": {"metadata": "[1, 2]"},
    "oversize metadata": {"metadata": {"x": "y" * 70_000}},
    "unsafe processor": {"processor": "a/b"},
    "impossible date": {"date": "2026-02-30"},
    "unsafe status": {"status": "fin ished"},
    "empty execution_id": {"execution_id": ""},
    "huge message_id": {"message_id": "m" * 513},
    "primary_ok not a bool": {"primary_ok": "no"},
}


@pytest.mark.parametrize(
    "changes", [*BAD_ROWS.values(), {"status": "finished"}], ids=[*BAD_ROWS, "unknown status"]
)
def test_every_unfit_field_is_quarantined_not_raised(
    make_tracker: MakeTracker, changes: dict[str, Any]
) -> None:
    """Whatever is wrong with a row, replay reports it and applies the others."""
    ledger = OldLedger()
    ledger.rows.extend([_row(FIRST, **changes), _row(OTHERS[0])])
    tracker = make_tracker(ledger=ledger)

    report = tracker.replay_ledger(PHASE, [DATE])

    if "date" in changes:  # a row of an impossible date is never read for DATE
        assert report.quarantined == ()
        return
    assert len(report.quarantined) == 1
    assert report.applied == 1
    assert tracker.status(PHASE, DATE).completed == {OTHERS[0]}


def test_deeply_nested_metadata_is_quarantined(make_tracker: MakeTracker) -> None:
    """Metadata nested past the recursion limit is a reason, not a RecursionError."""
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    ledger = OldLedger()
    ledger.rows.extend([_row(FIRST, metadata=deep), _row(OTHERS[0])])

    report = make_tracker(ledger=ledger).replay_ledger(PHASE, [DATE])

    assert len(report.quarantined) == 1
    assert report.applied == 1


@pytest.mark.parametrize("changes", BAD_ROWS.values(), ids=list(BAD_ROWS))
def test_ledgers_refuse_unfit_rows_before_writing(changes: dict[str, Any]) -> None:
    """MemoryLedger.append checks the row first: nothing unfit is ever written."""
    ledger = MemoryLedger()

    with pytest.raises(InvalidInputError):
        ledger.append(_row(FIRST, **changes))
    assert ledger.rows == []


def test_record_completion_refuses_counts_no_sink_can_hold(
    make_tracker: MakeTracker, store: FaultyStore, ledger: MemoryLedger
) -> None:
    """2**63 is refused up front, store up or down; 2**63 - 1 is recorded (and degrades)."""
    tracker: CompletionTracker = make_tracker()
    with store.outage():
        with pytest.raises(InvalidInputError):
            tracker.record_completion(PHASE, DATE, FIRST, execution_id="r", record_count=2**63)
        result = tracker.record_completion(
            PHASE, DATE, FIRST, execution_id="r", record_count=MAX_INT64
        )

    assert result.degraded
    assert [r.record_count for r in ledger.rows] == [MAX_INT64]
    assert tracker.replay_ledger(PHASE, [DATE]).applied == 1


def test_check_ledger_row_accepts_the_boundaries() -> None:
    """0 and 2**63-1, year 1 and 9999 in UTC, 64 KiB of metadata all fit."""
    edge = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    for row in (
        _row(FIRST, record_count=0),
        _row(FIRST, record_count=MAX_INT64),
        _row(FIRST, event_time=edge, recorded_time=datetime(1, 1, 1, tzinfo=UTC)),
        _row(FIRST, metadata={"x": "y" * (64 * 1024 - 8)}),
    ):
        assert check_ledger_row(row) is row


def test_execution_rows_are_checked_before_writing() -> None:
    """An execution-log row with a non-finite duration is refused by the memory log."""
    log = MemoryExecutionLog()
    row = ExecutionLogRow(AT, PHASE, DATE, AT, float("nan"), "complete")

    with pytest.raises(InvalidInputError):
        log.write(row)
    assert check_execution_row(dataclasses.replace(row, duration_seconds=1.5)).duration_seconds
    assert log.rows == []
