"""ProcessorRun publishing: retries, typed failures, and idempotency."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from pipeline_reliability import (
    CompletionMessage,
    IdempotencyLedger,
    MemoryCompletionPublisher,
    MemoryStore,
    ProcessorRun,
)
from pipeline_reliability.errors import (
    AlreadyCompletedError,
    AlreadyRunningError,
    CompletionNotPublishedError,
    InvalidInputError,
)
from pipeline_reliability.retry import RetryPolicy
from pipeline_reliability.testing import FakeClock

DATE = "2026-01-31"
PHASE = "phase_3_analytics"


class FlakyPublisher:
    """A plain callable publisher that fails ``failures`` times, then succeeds."""

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls: list[CompletionMessage] = []

    def __call__(self, message: CompletionMessage) -> str:
        self.calls.append(message)
        if self.failures:
            raise self.failures.pop(0)
        return f"id-{len(self.calls)}"


def test_a_transient_publish_failure_is_retried(
    make_run: Callable[..., ProcessorRun], fake_clock: FakeClock
) -> None:
    """A callable publisher failing transiently is retried; the run gets the message id."""
    publisher = FlakyPublisher([ConnectionError("reset"), TimeoutError()])
    retry = RetryPolicy(attempts=3, clock=fake_clock)
    with make_run(publisher=publisher, publish_retry=retry) as run:
        pass
    assert len(publisher.calls) == 3
    assert run.message_id == "id-3"


def test_an_exhausted_publish_raises_a_typed_error_and_frees_the_date(
    make_run: Callable[..., ProcessorRun], fake_clock: FakeClock, memory_store: MemoryStore
) -> None:
    """Publishing never succeeds: CompletionNotPublishedError with the message; claim released."""
    ledger = IdempotencyLedger(memory_store, owner="a")
    publisher = FlakyPublisher([ConnectionError("down")] * 3)
    retry = RetryPolicy(attempts=3, clock=fake_clock)

    with pytest.raises(CompletionNotPublishedError) as info, make_run(
        publisher=publisher, publish_retry=retry, idempotency=ledger
    ):
        pass

    assert len(publisher.calls) == 3
    assert info.value.completion == publisher.calls[-1]
    with make_run(idempotency=ledger) as rerun:  # the date is not stuck
        pass
    assert rerun.completion is not None


def test_a_permanent_publish_failure_is_not_retried(
    make_run: Callable[..., ProcessorRun], fake_clock: FakeClock
) -> None:
    """A permanent error is raised after one attempt, chained."""
    error = PermissionError("no access to the topic")
    publisher = FlakyPublisher([error])
    with pytest.raises(CompletionNotPublishedError) as info, make_run(
        publisher=publisher, publish_retry=RetryPolicy(attempts=3, clock=fake_clock)
    ):
        pass
    assert info.value.__cause__ is error
    assert len(publisher.calls) == 1


def test_a_failed_publish_after_a_failed_body_keeps_the_body_error(
    make_run: Callable[..., ProcessorRun], fake_clock: FakeClock
) -> None:
    """The body's error propagates, with a note that its failed completion was not published."""
    publisher = FlakyPublisher([PermissionError("denied")])
    with pytest.raises(ValueError) as info, make_run(
        publisher=publisher, publish_retry=RetryPolicy(attempts=1, clock=fake_clock)
    ):
        raise ValueError("body")
    assert any("failed completion failed" in note for note in info.value.__notes__)


def test_metadata_that_cannot_be_published_fails_the_run(
    make_run: Callable[..., ProcessorRun], topic: MemoryCompletionPublisher
) -> None:
    """Non-JSON metadata: a failed completion (without it) is published and the error raised."""
    with pytest.raises(InvalidInputError), make_run() as run:
        run.metadata["when"] = object()
    [message] = topic.completions()
    assert message.status == "failed"
    assert message.metadata["error_type"] == "InvalidInputError"


def test_idempotency_runs_a_date_once(
    make_run: Callable[..., ProcessorRun], memory_store: MemoryStore,
    topic: MemoryCompletionPublisher,
) -> None:
    """With an IdempotencyLedger, a later run of a completed date is AlreadyCompletedError."""
    ledger = IdempotencyLedger(memory_store, owner="a", expires_after=timedelta(hours=1))
    with make_run(idempotency=ledger, execution_id="run-1") as run:
        run.record_count = 3

    with pytest.raises(AlreadyCompletedError) as info, make_run(idempotency=ledger):
        pytest.fail("the body must not run")

    assert info.value.result["execution_id"] == "run-1"
    assert len(topic.completions()) == 1


def test_a_failed_run_leaves_the_date_to_be_retried(
    make_run: Callable[..., ProcessorRun], memory_store: MemoryStore
) -> None:
    """A failed body releases the idempotency claim: a retry runs."""
    ledger = IdempotencyLedger(memory_store, owner="a")
    with pytest.raises(ValueError), make_run(idempotency=ledger):
        raise ValueError("x")
    with make_run(idempotency=ledger) as run:
        pass
    assert run.completion is not None


def test_idempotency_in_progress_is_already_running(
    memory_store: MemoryStore, topic: MemoryCompletionPublisher, fake_clock: FakeClock
) -> None:
    """Without a lock, a live claim of another instance is AlreadyRunningError."""
    ledger_a = IdempotencyLedger(memory_store, owner="a")
    ledger_b = IdempotencyLedger(memory_store, owner="b")

    def run(ledger: IdempotencyLedger) -> ProcessorRun:
        return ProcessorRun("p", DATE, phase=PHASE, publisher=topic, idempotency=ledger,
                            clock=fake_clock)

    with run(ledger_a), pytest.raises(AlreadyRunningError):
        run(ledger_b).__enter__()


