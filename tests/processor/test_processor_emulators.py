"""
ProcessorRun on the Firestore and Pub/Sub emulators, feeding the README's orchestrator.

Five phase-3 processors, two instances of each started for the same date at
the same moment (threads with distinct owners), lock their date in Firestore
and publish to a real emulator topic; the orchestrator pulls that topic and
calls ``record_and_trigger`` on a ``CompletionTracker`` over ``FirestoreStore``,
publishing phase 4 to a second real topic. The fenced writes go to an
in-memory table guarded by ``FenceGuard`` (the BigQuery emulator adds minutes
and nothing that this test is about; the writer's own fence check is tested
in tests/sinks). At most two transactions contend for any document.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from pipeline_reliability import (
    CompletionPublisher,
    CompletionTracker,
    FenceGuard,
    PhaseSpec,
    ProcessorRun,
    PubSubTriggerPublisher,
    parse_completion_message,
    processor_run,
)
from pipeline_reliability.errors import AlreadyRunningError, StaleFenceError
from pipeline_reliability.stores.firestore import FirestoreStore

pytestmark = [pytest.mark.firestore, pytest.mark.pubsub]

DATE = "2026-01-31"
PROCESSORS = (
    "player_game_summary",
    "team_defense_game_summary",
    "team_offense_game_summary",
    "upcoming_player_game_context",
    "upcoming_team_game_context",
)
WAIT = 30.0  # seconds: generous bound on every wait for another thread or the emulator


@dataclass
class Pipeline:
    """The two topics, the orchestrator, and the fenced table the processors write."""

    completions: CompletionPublisher
    pull_completions: Callable[[], list[Any]]
    pull_triggers: Callable[[], list[Any]]
    tracker: CompletionTracker
    start_phase4: PubSubTriggerPublisher
    guard: FenceGuard = field(default_factory=FenceGuard)
    table: dict[str, str] = field(default_factory=dict)
    table_lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, run: ProcessorRun, value: str) -> None:
        """A fenced write: refused when a newer lease of the processor's date already wrote."""
        assert run.fence is not None
        with self.table_lock:
            self.guard.check(run.fence.token, key=(run.processor, run.date))
            self.table[run.processor] = value

    def orchestrate(self, expected: int) -> list[Any]:
        """The README's orchestrator: pull completions until ``expected`` arrived; results."""
        results: list[Any] = []
        deadline = time.monotonic() + WAIT
        while len(results) < expected and time.monotonic() < deadline:
            for received in self.pull_completions():
                message = parse_completion_message(received)
                results.append(self.tracker.record_and_trigger(
                    "phase3", **message.completion_kwargs(), publish=self.start_phase4
                ))
        return results


def _topic(publisher: Any, subscriber: Any, project: str, name: str) -> Callable[[], list[Any]]:
    topic = publisher.topic_path(project, name)
    subscription = subscriber.subscription_path(project, f"{name}-sub")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscription, topic=topic)

    def pull() -> list[Any]:
        response = subscriber.pull(
            subscription=subscription, max_messages=100, return_immediately=True, timeout=10
        )
        if response.received_messages:
            subscriber.acknowledge(
                subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
            )
        else:
            time.sleep(0.1)  # the emulator is polled: do not spin
        return [m.message for m in response.received_messages]

    return pull


@pytest.fixture
def pipeline(
    firestore_store: FirestoreStore, pubsub_emulator: str, pubsub_project: str
) -> Iterator[Pipeline]:
    """Real topics on the Pub/Sub emulator, the tracker on the Firestore emulator."""
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    publisher, subscriber = PublisherClient(), SubscriberClient()
    pull_completions = _topic(publisher, subscriber, pubsub_project, "phase3-complete")
    pull_triggers = _topic(publisher, subscriber, pubsub_project, "nba-phase4-trigger")
    phase3 = PhaseSpec("phase3", expected=set(PROCESSORS), next_phase="phase4")
    yield Pipeline(
        completions=CompletionPublisher("phase3-complete", project=pubsub_project, timeout=10),
        pull_completions=pull_completions,
        pull_triggers=pull_triggers,
        tracker=CompletionTracker(firestore_store, [phase3], owner="orchestrator"),
        start_phase4=PubSubTriggerPublisher(
            "nba-phase4-trigger", project=pubsub_project, timeout=10
        ),
    )
    subscriber.close()


def test_two_instances_per_processor_one_body_each_and_one_trigger(
    pipeline: Pipeline, firestore_store: FirestoreStore
) -> None:
    """Ten instances of five processors, one date: five bodies, five turned away, one trigger."""
    bodies: dict[str, list[str]] = {name: [] for name in PROCESSORS}
    refused = {name: threading.Event() for name in PROCESSORS}
    outcomes: dict[str, str] = {}
    holders: dict[str, Any] = {}
    start = threading.Barrier(2 * len(PROCESSORS), timeout=WAIT)

    def instance(name: str, owner: str) -> None:
        @processor_run(name, phase="phase_3_analytics", publisher=pipeline.completions,
                       lock={"store": firestore_store, "ttl": 60}, owner=owner)
        def process(run: ProcessorRun) -> None:
            bodies[name].append(owner)
            pipeline.write(run, owner)
            # Stay inside the run until the twin has been turned away: they overlap.
            assert refused[name].wait(WAIT), f"the twin of {owner} never got its outcome"
            run.record_count = 1

        start.wait()
        try:
            process(DATE)
            outcomes[owner] = "ran"
        except AlreadyRunningError as exc:
            outcomes[owner] = "already_running"
            holders[owner] = (exc.holder, repr(exc.__cause__))
            refused[name].set()
        except Exception as exc:  # reported by the assertions below
            outcomes[owner] = repr(exc)
            refused[name].set()

    threads = [
        threading.Thread(target=instance, args=(name, f"{name}-{i}"))
        for name in PROCESSORS for i in (1, 2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(2 * WAIT)
    results = pipeline.orchestrate(expected=len(PROCESSORS))

    assert sorted(outcomes.values()) == ["already_running"] * 5 + ["ran"] * 5, (outcomes, holders)
    assert all(len(owners) == 1 for owners in bodies.values()), bodies
    assert pipeline.table == {name: owners[0] for name, owners in bodies.items()}
    assert sum(r.counted for r in results) == len(PROCESSORS)
    assert sum(r.published for r in results) == 1
    status = pipeline.tracker.status("phase3", DATE)
    assert status.triggered
    assert status.count == len(PROCESSORS)
    triggers = pipeline.pull_triggers() or pipeline.pull_triggers()
    assert [t.attributes["trigger_id"] for t in triggers] == [f"phase3:{DATE}"]
    assert pipeline.pull_completions() == []  # no stray completion from a refused instance


def test_a_superseded_holder_is_refused_and_reports_nothing(
    pipeline: Pipeline, firestore_store: FirestoreStore
) -> None:
    """A stalls past its 2 s lease, B takes the date; A's next write is refused, A is silent."""
    lock = {"store": firestore_store, "ttl": 2.0, "auto_renew": False}

    def run(owner: str) -> ProcessorRun:
        return ProcessorRun("player_game_summary", DATE, phase="phase_3_analytics",
                            publisher=pipeline.completions, lock=lock, owner=owner)

    def instance_a() -> None:
        with run("instance-a") as a:
            pipeline.write(a, "a-1")
            time.sleep(2.5)  # stalls past its lease (Firestore's time decides)
            with run("instance-b") as b:
                assert b.lease is not None
                assert a.lease is not None
                assert b.lease.token > a.lease.token
                pipeline.write(b, "b-1")
            pipeline.write(a, "a-2")  # refused

    with pytest.raises(StaleFenceError):
        instance_a()

    assert pipeline.table == {"player_game_summary": "b-1"}
    [result] = pipeline.orchestrate(expected=1)
    assert result.counted
    assert pipeline.tracker.status("phase3", DATE).records["player_game_summary"].status == (
        "success"
    )
    assert pipeline.pull_completions() == []


def test_a_body_that_raises_is_recorded_failed_and_not_counted(
    pipeline: Pipeline, firestore_store: FirestoreStore
) -> None:
    """The failed completion reaches the tracker through the topic; it records, never counts."""
    def body() -> None:
        with ProcessorRun("team_offense_game_summary", DATE, phase="phase_3_analytics",
                          publisher=pipeline.completions, lock={"store": firestore_store}):
            raise RuntimeError("lost the connection")

    with pytest.raises(RuntimeError, match="lost the connection"):
        body()

    [result] = pipeline.orchestrate(expected=1)

    assert not result.counted
    status = pipeline.tracker.status("phase3", DATE)
    assert status.count == 0
    record = status.records["team_offense_game_summary"]
    assert record.status == "failed"
    assert "team_offense_game_summary" in status.missing
