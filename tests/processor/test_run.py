"""ProcessorRun on the memory store: ids, lock and fence, what is published, and when not."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline_reliability import (
    CompletionMessage,
    CompletionTracker,
    DateLock,
    FenceGuard,
    IdempotencyLedger,
    MemoryCompletionPublisher,
    MemoryStore,
    PhaseSpec,
    ProcessorRun,
    TriggerEvent,
    parse_completion_message,
    processor_run,
)
from pipeline_reliability.errors import (
    AlreadyCompletedError,
    AlreadyRunningError,
    CompletionNotPublishedError,
    ConfigurationError,
    InvalidInputError,
    LockLostError,
    StaleFenceError,
)
from pipeline_reliability.retry import RetryPolicy
from pipeline_reliability.testing import FakeClock

DATE = "2026-01-31"
PHASE = "phase_3_analytics"


@pytest.fixture
def topic(fake_clock: FakeClock) -> MemoryCompletionPublisher:
    """An in-memory completion topic on the fake clock."""
    return MemoryCompletionPublisher(clock=fake_clock)


@pytest.fixture
def make_run(
    memory_store: MemoryStore, fake_clock: FakeClock, topic: MemoryCompletionPublisher
) -> Callable[..., ProcessorRun]:
    """ProcessorRuns of player_game_summary on DATE, locked on the memory store."""

    def make(owner: str = "instance-a", **options: Any) -> ProcessorRun:
        options.setdefault("publisher", topic)
        options.setdefault("lock", {"store": memory_store, "ttl": 60, "auto_renew": False})
        return ProcessorRun(
            options.pop("processor", "player_game_summary"),
            options.pop("date", DATE),
            phase=PHASE,
            owner=owner,
            clock=fake_clock,
            **options,
        )

    return make


def test_a_run_publishes_the_completion_the_orchestrator_parses(
    make_run: Callable[..., ProcessorRun], topic: MemoryCompletionPublisher, fake_clock: FakeClock
) -> None:
    """Exit publishes one completion, in the parsed schema, with the run's own completion time."""
    with make_run(processor="PlayerGameSummaryProcessor", execution_id="run-1") as run:
        fake_clock.advance(42)
        run.record_count = 120
        run.metadata["is_incremental"] = True

    [published] = topic.drain()
    message = parse_completion_message(published)
    assert message.processor_name == "player_game_summary"
    assert (message.phase, message.game_date, message.status) == (PHASE, DATE, "success")
    assert (message.execution_id, message.correlation_id) == ("run-1", "run-1")
    assert message.record_count == 120
    assert message.metadata == {"is_incremental": True}
    assert message.timestamp == fake_clock.now()
    assert run.message_id == message.message_id == published["messageId"]
    assert run.completion is not None
    assert run.completion.timestamp == fake_clock.now()


@pytest.mark.parametrize("status", ["no_data", "partial"])
def test_the_body_sets_the_status(
    make_run: Callable[..., ProcessorRun], topic: MemoryCompletionPublisher, status: str
) -> None:
    """run.status = no_data / partial is what the completion says."""
    with make_run() as run:
        run.status = status

    assert [m.status for m in topic.completions()] == [status]


@pytest.mark.parametrize(
    ("field", "value"),
    [("status", "failed"), ("status", "done"), ("record_count", -1), ("record_count", True),
     ("record_count", 1.5), ("metadata", ["a"]), ("metadata", {1: "a"})],
)
def test_bad_values_from_the_body_are_refused_at_once(
    make_run: Callable[..., ProcessorRun], field: str, value: object
) -> None:
    """A status the body may not set, a bad count or non-mapping metadata raise when set."""
    run = make_run()
    with pytest.raises(InvalidInputError):
        setattr(run, field, value)


def test_ids_are_inherited_from_the_triggering_completion(
    make_run: Callable[..., ProcessorRun], topic: MemoryCompletionPublisher
) -> None:
    """The upstream completion's correlation id flows on; the execution id is new."""
    upstream = parse_completion_message({
        "processor_name": "p2_odds_game_lines", "phase": "phase_2_raw", "execution_id": "up-1",
        "correlation_id": "corr-42", "game_date": DATE, "status": "success",
    })

    with make_run(trigger=upstream) as run:
        pass

    [message] = topic.completions()
    assert message.correlation_id == "corr-42"
    assert message.execution_id == run.execution_id != "up-1"


@pytest.mark.parametrize(("correlation_id", "expected"), [("c-7", "c-7"), (None, "phase2:x")])
def test_ids_are_inherited_from_a_trigger_event(
    make_run: Callable[..., ProcessorRun], correlation_id: str | None, expected: str
) -> None:
    """A TriggerEvent gives its correlation id, else its trigger id."""
    event = TriggerEvent(
        phase="phase2", date=DATE, trigger_id="phase2:x", reason="complete",
        completed=frozenset({"a"}), missing=frozenset(), correlation_id=correlation_id,
        claimed_at=datetime(2026, 1, 31, tzinfo=UTC), attempt=1, next_phase="phase3",
    )
    assert make_run(trigger=event).correlation_id == expected


def test_an_explicit_correlation_id_wins(make_run: Callable[..., ProcessorRun]) -> None:
    """correlation_id= overrides the trigger's; bad ids are refused."""
    assert make_run(correlation_id="mine").correlation_id == "mine"
    with pytest.raises(InvalidInputError):
        make_run(execution_id="")


def test_a_body_that_raises_publishes_failed_and_reraises(
    make_run: Callable[..., ProcessorRun], topic: MemoryCompletionPublisher
) -> None:
    """The body's error propagates unchanged; a failed completion names it."""
    error = RuntimeError("BigQuery said no")

    def body() -> None:
        with make_run() as run:
            run.record_count = 7
            raise error

    with pytest.raises(RuntimeError) as info:
        body()

    assert info.value is error
    [message] = topic.completions()
    assert message.status == "failed"
    assert message.record_count == 7
    assert message.metadata == {"error_type": "RuntimeError", "error_message": "BigQuery said no"}


def test_a_failed_completion_is_recorded_by_the_tracker_and_not_counted(
    make_run: Callable[..., ProcessorRun], topic: MemoryCompletionPublisher,
    memory_store: MemoryStore, fake_clock: FakeClock,
) -> None:
    """The tracker records the failed run; it does not count; a later success does."""
    tracker = CompletionTracker(
        memory_store, [PhaseSpec("phase3", {"player_game_summary", "team_offense"})],
        clock=fake_clock,
    )
    triggers: list[Any] = []

    def orchestrate() -> None:
        for m in topic.drain():
            message = parse_completion_message(m)
            tracker.record_and_trigger(
                "phase3", **message.completion_kwargs(), publish=triggers.append
            )

    with pytest.raises(ValueError), make_run():
        raise ValueError("bad rows")
    orchestrate()

    status = tracker.status("phase3", DATE)
    assert status.count == 0
    assert status.records["player_game_summary"].status == "failed"
    fake_clock.advance(1)
    with make_run():
        pass
    orchestrate()
    assert tracker.status("phase3", DATE).count == 1
    assert triggers == []


def test_a_second_instance_is_already_running_and_does_not_run(
    make_run: Callable[..., ProcessorRun], topic: MemoryCompletionPublisher
) -> None:
    """While A holds the date, B gets AlreadyRunningError: no body, nothing published."""
    ran: list[str] = []
    with make_run("instance-a") as run_a:
        with pytest.raises(AlreadyRunningError) as info, make_run("instance-b"):
            ran.append("b")
        ran.append("a")
        assert run_a.fence is not None

    assert ran == ["a"]
    assert info.value.holder == "instance-a"
    assert (info.value.processor, info.value.date) == ("player_game_summary", DATE)
    assert len(topic.completions()) == 1


def test_the_lock_is_released_when_the_run_ends(
    make_run: Callable[..., ProcessorRun], memory_store: MemoryStore
) -> None:
    """After a run, success or failure, the next instance can take the date."""
    with make_run("instance-a"):
        pass
    with pytest.raises(KeyError), make_run("instance-b"):
        raise KeyError("x")
    with make_run("instance-c") as run:
        assert run.lease is not None
        assert run.lease.owner == "instance-c"
    assert not DateLock(memory_store, "player_game_summary", DATE).locked()


def test_lock_timeout_waits_then_reports_already_running(
    make_run: Callable[..., ProcessorRun], fake_clock: FakeClock
) -> None:
    """lock_timeout waits (on the clock) for a held lock, then reports already running."""
    with make_run("instance-a"), pytest.raises(AlreadyRunningError):
        make_run("instance-b", lock_timeout=5).__enter__()


def test_the_fence_carries_the_lease_token_and_ends_with_the_run(
    make_run: Callable[..., ProcessorRun],
) -> None:
    """run.fence.token is the lease token during the run; reading it after the run raises."""
    with make_run() as run:
        assert run.fence is not None
        assert run.lease is not None
        fence = run.fence
        assert fence.token == run.lease.token > 0

    with pytest.raises(LockLostError):
        _ = fence.token


def test_without_a_lock_there_is_no_fence(
    topic: MemoryCompletionPublisher, fake_clock: FakeClock
) -> None:
    """lock=None: run.fence is None (unfenced writes), the run still publishes."""
    with ProcessorRun("a", DATE, phase=PHASE, publisher=topic, clock=fake_clock) as run:
        assert run.fence is None
        assert run.lease is None
    assert len(topic.completions()) == 1


def test_superseded_holder_writes_are_rejected_and_it_publishes_nothing(
    make_run: Callable[..., ProcessorRun], topic: MemoryCompletionPublisher, fake_clock: FakeClock
) -> None:
    """A stalls past its TTL, B takes over and writes; A's next write is refused, A is silent."""
    guard, table = FenceGuard(), {}

    def write(run: ProcessorRun, value: str) -> None:
        assert run.fence is not None
        guard.check(run.fence.token, key=("player_game_summary", DATE))
        table[DATE] = value

    runs: list[ProcessorRun] = []

    def instance_a() -> None:
        with make_run("instance-a") as run_a:
            write(run_a, "a-1")
            fake_clock.advance(61)  # A stalls past its lease
            with make_run("instance-b") as run_b:
                runs.append(run_b)
                write(run_b, "b-1")
            write(run_a, "a-2")  # refused: B's newer token already wrote

    with pytest.raises(StaleFenceError):
        instance_a()

    assert table == {DATE: "b-1"}
    assert [m.execution_id for m in topic.completions()] == [runs[0].execution_id]


def test_a_lost_lease_found_at_exit_raises_and_publishes_nothing(
    make_run: Callable[..., ProcessorRun], topic: MemoryCompletionPublisher, fake_clock: FakeClock
) -> None:
    """A body that ends after its lease was taken over is told so and does not report."""
    def instance_a() -> None:
        with make_run("instance-a"):
            fake_clock.advance(61)  # stalls past its TTL; B takes the date and is still running
            make_run("instance-b").__enter__()

    with pytest.raises(LockLostError):
        instance_a()

    assert topic.completions() == []


def test_a_lease_still_held_at_exit_reports(
    make_run: Callable[..., ProcessorRun], topic: MemoryCompletionPublisher, fake_clock: FakeClock
) -> None:
    """The other side of the boundary: 59 s into a 60 s lease, the run reports."""
    with make_run("instance-a"):
        fake_clock.advance(59)

    assert len(topic.completions()) == 1


def test_a_known_lost_lease_stops_further_fenced_writes(
    make_run: Callable[..., ProcessorRun], topic: MemoryCompletionPublisher
) -> None:
    """Once the lease is marked lost (as the renewal thread does), run.fence.token raises."""
    refused: list[LockLostError] = []

    def body() -> None:
        with make_run() as run:
            assert run.lease is not None
            assert run.fence is not None
            assert run.fence.token == run.lease.token
            run.lease.mark_lost("superseded", "taken over by instance-b")
            try:
                _ = run.fence.token
            except LockLostError as exc:
                refused.append(exc)
            run.status = "partial"  # the body caught it; the run still reports nothing

    with pytest.raises(LockLostError, match="no completion was published"):
        body()
    assert len(refused) == 1
    assert topic.completions() == []


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


@pytest.mark.parametrize(
    "lock",
    [{"ttl": 60}, {"store": MemoryStore(), "colour": "red"}, "store",
     DateLock(MemoryStore(), "player_game_summary", "2026-02-01")],
)
def test_bad_lock_options_are_refused(
    make_run: Callable[..., ProcessorRun], lock: object
) -> None:
    """Missing store, an unknown option, a non-mapping or a lock for another date."""
    with pytest.raises(ConfigurationError):
        make_run(lock=lock)


@pytest.mark.parametrize(
    "options", [{"publisher": "topic"}, {"lock_timeout": -1}, {"lock_timeout": "5"}]
)
def test_bad_run_options_are_refused(
    make_run: Callable[..., ProcessorRun], options: dict[str, Any]
) -> None:
    """A publisher that is not callable, a negative or non-duration lock_timeout."""
    with pytest.raises(ConfigurationError):
        make_run(**options)


def test_a_run_is_used_once(make_run: Callable[..., ProcessorRun]) -> None:
    """Entering the same run twice is refused."""
    run = make_run()
    with run:
        pass
    with pytest.raises(InvalidInputError), run:
        pass


def test_the_async_form(
    make_run: Callable[..., ProcessorRun], topic: MemoryCompletionPublisher
) -> None:
    """async with: same publishing, same failure handling."""

    async def main() -> None:
        async with make_run("instance-a") as run:
            run.record_count = 1
        with pytest.raises(ValueError):
            async with make_run("instance-b"):
                raise ValueError("x")

    asyncio.run(main())
    assert [(m.status, m.record_count) for m in topic.completions()] == [
        ("success", 1), ("failed", None)
    ]


def test_the_decorator_form(
    memory_store: MemoryStore, topic: MemoryCompletionPublisher, fake_clock: FakeClock
) -> None:
    """@processor_run: called with a date or with the triggering message; sync and async."""

    @processor_run("team_offense", phase=PHASE, publisher=topic, clock=fake_clock,
                   lock={"store": memory_store, "auto_renew": False})
    def team_offense(run: ProcessorRun, rows: int) -> int:
        run.record_count = rows
        return rows * 2

    @processor_run("team_defense", phase=PHASE, publisher=topic, clock=fake_clock)
    async def team_defense(run: ProcessorRun) -> str:
        return run.correlation_id

    upstream = parse_completion_message({
        "processor_name": "a", "phase": "p2", "execution_id": "e", "correlation_id": "c-1",
        "game_date": "2026-02-02", "status": "success",
    })
    assert team_offense(DATE, 5) == 10
    assert asyncio.run(team_defense(upstream)) == "c-1"
    first, second = topic.completions()
    assert (first.processor_name, first.game_date, first.record_count) == ("team_offense", DATE, 5)
    assert (second.game_date, second.correlation_id) == ("2026-02-02", "c-1")


def test_a_writer_upsert_with_a_lost_fence_writes_nothing(
    make_run: Callable[..., ProcessorRun],
) -> None:
    """upsert(fence=run.fence) raises before any BigQuery call once the lease is known lost."""
    from pipeline_reliability import BigQueryWriter

    writer = BigQueryWriter(project="p")  # no client: any BigQuery call would have to create one

    def body() -> None:
        with make_run() as run:
            assert run.lease is not None
            run.lease.mark_lost("superseded", "taken over")
            writer.upsert("ds.table", [{"player": "a"}], key="player", fence=run.fence)

    with pytest.raises(LockLostError, match="no more fenced writes"):
        body()
    assert writer._client is None


@pytest.mark.parametrize(("contended", "runs"), [(4, True), (5, False)])
def test_a_contended_lock_is_tried_again_before_already_running(
    memory_store: MemoryStore, topic: MemoryCompletionPublisher, fake_clock: FakeClock,
    contended: int, runs: bool,
) -> None:
    """Contention (nobody seen holding) is retried: 4 contended attempts run, 5 do not."""
    from pipeline_reliability.testing import Fault, FaultyStore

    faulty = FaultyStore(memory_store, plan=dict.fromkeys(range(contended), Fault.CONTENTION))
    run = ProcessorRun("p", DATE, phase=PHASE, publisher=topic, clock=fake_clock,
                       lock={"store": faulty, "auto_renew": False})

    if runs:
        with run:
            pass
        assert len(topic.completions()) == 1
    else:
        with pytest.raises(AlreadyRunningError, match="contended") as info:
            run.__enter__()
        assert info.value.holder is None
