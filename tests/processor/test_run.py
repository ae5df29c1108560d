"""ProcessorRun on the memory store: ids, status, failures, and its three forms."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline_reliability import (
    CompletionTracker,
    DateLock,
    MemoryCompletionPublisher,
    MemoryStore,
    PhaseSpec,
    ProcessorRun,
    TriggerEvent,
    parse_completion_message,
    processor_run,
)
from pipeline_reliability.errors import (
    ConfigurationError,
    InvalidInputError,
)
from pipeline_reliability.testing import FakeClock

DATE = "2026-01-31"
PHASE = "phase_3_analytics"


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


