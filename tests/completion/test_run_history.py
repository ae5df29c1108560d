"""Processor run history (issue 15, item 2): a row per report, never in the completion's way."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from tracker_helpers import DATE, EXPECTED, FIRST, PHASE, MakeTracker, record_all

from otel_helpers import metric_points
from pipeline_reliability import ConfigurationError
from pipeline_reliability.completion import (
    BufferedRunHistory,
    CompletionTracker,
    Deployment,
    MemoryRunHistory,
    RunHistoryRow,
)
from pipeline_reliability.completion._history import deployment_from_env
from pipeline_reliability.testing import FaultyStore

T0 = datetime(2026, 2, 1, 12, tzinfo=UTC)
GENEROUS = 10.0  # seconds: a bound on waits for real threads, never a timing assertion


class BlackHole:
    """A writer that never returns until released (a sink that hangs)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.batches: list[list[RunHistoryRow]] = []
        self.fail = False

    def __call__(self, rows: Sequence[RunHistoryRow]) -> None:
        self.gate.wait()
        if self.fail:
            raise RuntimeError("sink down")
        self.batches.append(list(rows))


@pytest.fixture
def hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.gate.set()  # let the daemon thread finish


def _row(n: int = 0, phase: str = PHASE) -> RunHistoryRow:
    return RunHistoryRow(phase, DATE, FIRST, f"r{n}", "success", "counted", T0)


def _dropped(reader: Any, **attrs: Any) -> int:
    return sum(
        int(p.value)
        for p in metric_points(reader, "pipeline_reliability.tracker.history_dropped")
        if all(p.attributes.get(k) == v for k, v in attrs.items())
    )


def test_item2_every_report_is_one_row_with_its_facts(
    make_tracker: MakeTracker, store: FaultyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted, duplicate, ignored and degraded reports each give a row with the report's facts."""
    history = MemoryRunHistory()
    tracker = make_tracker(history=history)
    # Read on the first row, not at construction (nor at import).
    monkeypatch.setenv("K_SERVICE", "phase3-processors")
    monkeypatch.setenv("K_REVISION", "phase3-processors-00042-abc")
    monkeypatch.setenv("FUNCTION_TARGET", "handle")
    tracker.record_completion(
        PHASE, DATE, FIRST, execution_id="r1", message_id="m1", record_count=12,
        correlation_id="c1", completed_at=T0,
    )  # fmt: skip
    tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1")
    tracker.record_completion(PHASE, DATE, "stranger", execution_id="r1")
    with store.outage():
        tracker.record_completion(PHASE, "2026-01-30", FIRST, execution_id="r9")

    counted, duplicate, ignored, degraded = history.rows
    assert [r.outcome for r in history.rows] == ["counted", "duplicate", "ignored", "degraded"]
    assert (counted.phase, counted.date, counted.processor, counted.execution_id) == (
        PHASE, DATE, FIRST, "r1"
    )
    assert (counted.status, counted.record_count, counted.message_id) == ("success", 12, "m1")
    assert (counted.correlation_id, counted.completed_at) == ("c1", T0)
    assert counted.received_at.tzinfo is not None
    assert (counted.done_count, counted.expected_count) == (1, len(EXPECTED))
    assert counted.trigger_state == "none"
    assert counted.tracker_owner == tracker.owner
    assert counted.library_version
    assert counted.deployment == Deployment("phase3-processors", "phase3-processors-00042-abc",
                                            "handle")
    assert ignored.processor == "stranger"
    assert (degraded.done_count, degraded.expected_count, degraded.trigger_state) == (
        None, None, None
    )
    assert degraded.error is not None
    assert not any(r.replayed for r in (counted, duplicate, ignored, degraded))


def test_item2_replayed_rows_are_marked(
    make_tracker: MakeTracker, store: FaultyStore
) -> None:
    """A report degraded to the ledger appears again, replayed=True, when replay applies it."""
    history = MemoryRunHistory()
    tracker = make_tracker(history=history)
    with store.outage():
        tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1")
    tracker.replay_ledger(PHASE, [DATE])

    assert [(r.outcome, r.replayed) for r in history.rows] == [
        ("degraded", False), ("counted", True)
    ]


def test_deployment_falls_back_to_jobs_and_first_generation_functions() -> None:
    """Cloud Run jobs and 1st-gen functions name themselves with other variables."""
    assert deployment_from_env({"CLOUD_RUN_JOB": "j", "CLOUD_RUN_EXECUTION": "j-x1"}) == (
        Deployment("j", "j-x1", None)
    )
    assert deployment_from_env(
        {"FUNCTION_NAME": "f", "X_GOOGLE_FUNCTION_VERSION": "7", "FUNCTION_TARGET": "main"}
    ) == Deployment("f", "7", "main")
    assert deployment_from_env({}) == Deployment()


def test_item2_a_failing_history_never_fails_a_completion(
    make_tracker: MakeTracker, caplog: pytest.LogCaptureFixture
) -> None:
    """A history whose record raises is logged with its traceback; the completion counts."""

    class Broken(MemoryRunHistory):
        def record(self, row: RunHistoryRow) -> None:
            raise RuntimeError("history bug")

    tracker = make_tracker(history=Broken())
    with caplog.at_level(logging.ERROR, logger="pipeline_reliability.completion"):
        result = tracker.record_completion(PHASE, DATE, FIRST, execution_id="r1")

    assert result.counted
    [record] = [r for r in caplog.records if "run history" in r.getMessage()]
    assert record.exc_info is not None


def test_history_must_be_a_run_history(make_tracker: MakeTracker) -> None:
    """Anything else is refused at construction."""
    with pytest.raises(ConfigurationError, match="history"):
        make_tracker(history=[])


def test_run_history_never_delays_a_completion_drop_counter_counts_every_lost_row(
    make_tracker: MakeTracker, hole: BlackHole, metric_reader: Any
) -> None:
    """
    Must show: with the sink black-holed, every completion returns and every row past
    the bound is dropped and counted (attribute, counter), exactly.
    """
    history = BufferedRunHistory(hole, max_pending=3, batch_size=2)
    tracker = make_tracker(history=history)
    before = _dropped(metric_reader, phase=PHASE, reason="full")
    results: list[Any] = []
    names = sorted(EXPECTED)

    def work() -> None:
        results.extend(record_all(tracker, names))
        results.extend(record_all(tracker, names))  # duplicates: rows too

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(GENEROUS)

    assert not worker.is_alive(), "a completion waited for the black-holed history"
    assert len(results) == 2 * len(names)
    assert results[-1].duplicate
    lost = 2 * len(names) - 3
    assert history.dropped == lost
    assert _dropped(metric_reader, phase=PHASE, reason="full") - before == lost
    assert history.pending == 3

    hole.gate.set()
    assert history.flush(GENEROUS)
    assert history.written == 3
    assert [r.execution_id for b in hole.batches for r in b] == ["run-" + n for n in names[:3]]


def test_bound_exactly_at_max_pending_is_kept_one_more_is_dropped(hole: BlackHole) -> None:
    """Row max_pending is taken (held == bound); row max_pending + 1 is dropped."""
    history = BufferedRunHistory(hole, max_pending=2)
    history.record(_row(1))
    history.record(_row(2))
    assert (history.pending, history.dropped) == (2, 0)
    history.record(_row(3))
    assert (history.pending, history.dropped) == (2, 1)


def test_flush_times_out_while_the_sink_hangs_then_succeeds(hole: BlackHole) -> None:
    """flush(timeout) returns False while a batch hangs, True once it is written."""
    history = BufferedRunHistory(hole, max_pending=10)
    history.record(_row())
    assert history.flush(0.05) is False
    hole.gate.set()
    assert history.flush(GENEROUS) is True
    assert history.close(GENEROUS) is True


def test_close_drops_later_rows_and_a_failed_batch_is_counted(
    hole: BlackHole, caplog: pytest.LogCaptureFixture, metric_reader: Any
) -> None:
    """A batch the sink fails is counted in failed (and logged); rows after close are dropped."""
    history = BufferedRunHistory(hole, max_pending=10)
    hole.fail = True
    hole.gate.set()
    with caplog.at_level(logging.ERROR, logger="pipeline_reliability.completion"):
        history.record(_row(1, phase="p_close"))
        assert history.flush(GENEROUS)
    assert (history.failed, history.written) == (1, 0)
    assert any(r.exc_info for r in caplog.records if "not written" in r.getMessage())

    assert history.close(GENEROUS) is False  # a batch was lost
    history.record(_row(2, phase="p_close"))
    assert history.dropped == 1
    assert _dropped(metric_reader, phase="p_close", reason="closed") == 1


def test_the_thread_starts_with_the_first_row() -> None:
    """No thread at construction: only the first row starts the writer."""
    before = {t.name for t in threading.enumerate()}
    history = BufferedRunHistory(lambda rows: None)
    assert "pipeline_reliability-run-history" not in (
        {t.name for t in threading.enumerate()} - before
    )
    history.record(_row())
    assert history.close(GENEROUS)
    assert history.written == 1


@pytest.mark.parametrize(
    "options", [{"max_pending": 0}, {"batch_size": True}, {"max_pending": "9"}]
)
def test_bad_bounds_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        BufferedRunHistory(lambda rows: None, **options)


def test_write_must_be_callable() -> None:
    with pytest.raises(ConfigurationError):
        BufferedRunHistory("nope")  # type: ignore[arg-type]


class BufferMachine(RuleBasedStateMachine):
    """
    The buffer against a model: while the sink hangs, held rows are exactly
    min(bound, taken); every row is accounted for as written, failed, held or dropped.
    """

    def __init__(self) -> None:
        super().__init__()
        self.hole = BlackHole()
        self.history = BufferedRunHistory(self.hole, max_pending=4, batch_size=3)
        self.sent = self.held = self.dropped = self.finished = 0
        self.closed = False

    @rule(n=st.integers(1, 6))
    def record(self, n: int) -> None:
        for _ in range(n):
            self.history.record(_row(self.sent))
            self.sent += 1
            if self.closed or self.held >= 4:
                self.dropped += 1
            else:
                self.held += 1

    @precondition(lambda self: not self.closed)
    @rule(fail=st.booleans())
    def drain(self, fail: bool) -> None:
        self.hole.fail = fail
        self.hole.gate.set()
        assert self.history.flush(GENEROUS)
        self.hole.gate.clear()  # nothing in flight now: flush saw nothing held
        self.finished += self.held
        self.held = 0

    @rule()
    def close(self) -> None:
        self.hole.gate.set()
        self.history.close(GENEROUS)
        self.finished += self.held
        self.held = 0
        self.closed = True

    @invariant()
    def accounted(self) -> None:
        h = self.history
        assert h.dropped == self.dropped
        assert h.pending == self.held
        assert h.written + h.failed == self.finished
        assert h.written + h.failed + h.pending + h.dropped == self.sent

    def teardown(self) -> None:
        self.hole.gate.set()
        self.history.close(GENEROUS)


TestBufferMachine = BufferMachine.TestCase
TestBufferMachine.settings = settings(max_examples=25, stateful_step_count=12, deadline=None)


def test_memory_history_keeps_rows_in_order(tracker: CompletionTracker) -> None:
    history = MemoryRunHistory()
    history.record(_row(1))
    history.record(_row(2))
    assert [r.execution_id for r in history.rows] == ["r1", "r2"]
    assert history.flush()
    assert history.close()
    assert tracker.history is None
