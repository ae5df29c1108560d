"""ProcessorRun and its lock: one instance per date, the fence, a superseded run."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pipeline_reliability import (
    DateLock,
    FenceGuard,
    MemoryCompletionPublisher,
    MemoryStore,
    ProcessorRun,
)
from pipeline_reliability.errors import (
    AlreadyRunningError,
    LockLostError,
    StaleFenceError,
)
from pipeline_reliability.testing import FakeClock

DATE = "2026-01-31"
PHASE = "phase_3_analytics"


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

    # Each attempt is a plain read, then the token reservation: contention
    # on the reservation of each of the first ``contended`` attempts.
    plan = {2 * attempt + 1: Fault.CONTENTION for attempt in range(contended)}
    faulty = FaultyStore(memory_store, plan=plan)
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

