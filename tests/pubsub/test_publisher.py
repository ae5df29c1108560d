"""PubSubTriggerPublisher: configuration, retries, failures, and the real emulator."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from pipeline_reliability import MemoryStore
from pipeline_reliability.completion import CompletionTracker, PhaseSpec, TriggerEvent
from pipeline_reliability.errors import ConfigurationError, PublishFailedError, RetryExhaustedError
from pipeline_reliability.pubsub import PubSubTriggerPublisher
from pipeline_reliability.retry import RetryPolicy
from pipeline_reliability.testing import FakeClock

EVENT = TriggerEvent(
    phase="phase3",
    date="2026-01-25",
    trigger_id="phase3:2026-01-25",
    reason="complete",
    completed=frozenset({"player_game_summary", "team_defense_game_summary"}),
    missing=frozenset(),
    correlation_id="5f0c9e21",
    claimed_at=datetime(2026, 1, 25, 12, 0, tzinfo=UTC),
    attempt=1,
    next_phase="phase4",
)


class _Future:
    def __init__(self, outcome: str | BaseException) -> None:
        self.outcome = outcome

    def result(self, timeout: float | None = None) -> str:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


class ScriptedPublisher:
    """Stands in for PublisherClient where only a fake can inject a transient failure."""

    def __init__(self, outcomes: list[str | BaseException]) -> None:
        self.outcomes = outcomes
        self.calls: list[tuple[str, bytes, dict[str, Any]]] = []

    def publish(self, topic: str, data: bytes, **kwargs: Any) -> _Future:
        self.calls.append((topic, data, kwargs))
        return _Future(self.outcomes.pop(0))


def quick_retry(clock: FakeClock) -> RetryPolicy:
    """Three attempts on a fake clock: retries take no real time."""
    return RetryPolicy(attempts=3, deadline=30.0, clock=clock)


def test_publish_sends_json_body_and_attributes(fake_clock: FakeClock) -> None:
    """The body is event.to_dict() as JSON and the attributes carry the trigger id."""
    client = ScriptedPublisher(["m-1"])
    publisher = PubSubTriggerPublisher(
        "projects/p1/topics/phase4-trigger", publisher=client, retry=quick_retry(fake_clock)
    )

    message_id = publisher(EVENT)

    topic, data, kwargs = client.calls[0]
    assert message_id == "m-1"
    assert topic == "projects/p1/topics/phase4-trigger"
    assert json.loads(data) == EVENT.to_dict()
    assert kwargs["trigger_id"] == "phase3:2026-01-25"
    assert kwargs["retry"] is None  # our policy is the only retry layer


def test_short_topic_name_uses_project() -> None:
    """A short topic name is expanded with project=."""
    publisher = PubSubTriggerPublisher("phase4-trigger", project="p1")

    assert publisher.topic == "projects/p1/topics/phase4-trigger"


@pytest.mark.parametrize(
    ("topic", "kwargs"),
    [
        ("projects/p1/subscriptions/s", {}),
        ("t1", {"project": "p1"}),  # shorter than 3 characters
        ("goog-topic", {"project": "p1"}),
        ("", {"project": "p1"}),
        ("phase4-trigger", {"project": "p1", "timeout": 0}),
    ],
)
def test_invalid_configuration_is_rejected(topic: str, kwargs: dict[str, Any]) -> None:
    """Invalid topics and timeouts raise ConfigurationError at construction."""
    with pytest.raises(ConfigurationError):
        PubSubTriggerPublisher(topic, **kwargs)


def test_short_topic_without_project_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """A short topic name needs a project from project= or GOOGLE_CLOUD_PROJECT."""
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)

    with pytest.raises(ConfigurationError, match="project="):
        PubSubTriggerPublisher("phase4-trigger")


def test_transient_failures_are_retried(fake_clock: FakeClock) -> None:
    """A connection error and a timed-out attempt are retried until the publish succeeds."""
    client = ScriptedPublisher([ConnectionError("reset"), TimeoutError(), "m-3"])
    publisher = PubSubTriggerPublisher(
        "projects/p1/topics/phase4-trigger", publisher=client, retry=quick_retry(fake_clock)
    )

    assert publisher.publish(EVENT) == "m-3"
    assert len(client.calls) == 3


def test_exhausted_retries_raise_publish_failed(fake_clock: FakeClock) -> None:
    """When every attempt fails transiently, PublishFailedError chains the exhaustion."""
    client = ScriptedPublisher([ConnectionError("down")] * 3)
    publisher = PubSubTriggerPublisher(
        "projects/p1/topics/phase4-trigger", publisher=client, retry=quick_retry(fake_clock)
    )

    with pytest.raises(PublishFailedError) as info:
        publisher(EVENT)

    assert isinstance(info.value.__cause__, RetryExhaustedError)
    assert len(client.calls) == 3


def test_permanent_failure_is_not_retried(fake_clock: FakeClock) -> None:
    """A permanent error raises PublishFailedError after one attempt, the cause chained."""
    error = ValueError("bad attribute")
    client = ScriptedPublisher([error, "never"])
    publisher = PubSubTriggerPublisher(
        "projects/p1/topics/phase4-trigger", publisher=client, retry=quick_retry(fake_clock)
    )

    with pytest.raises(PublishFailedError) as info:
        publisher(EVENT)

    assert info.value.__cause__ is error
    assert len(client.calls) == 1


def test_failure_is_logged_with_traceback(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed publish is logged at ERROR with its traceback (DESIGN F2)."""
    client = ScriptedPublisher([ValueError("bad")])
    publisher = PubSubTriggerPublisher(
        "projects/p1/topics/phase4-trigger", publisher=client, retry=quick_retry(fake_clock)
    )

    with pytest.raises(PublishFailedError):
        publisher(EVENT)

    record = next(r for r in caplog.records if r.name == "pipeline_reliability.pubsub")
    assert record.levelname == "ERROR"
    assert record.exc_info is not None


def test_failed_publish_marks_its_span(
    fake_clock: FakeClock, span_exporter: InMemorySpanExporter
) -> None:
    """The publish span carries the trigger id and is marked as an error when it fails."""
    client = ScriptedPublisher([ValueError("bad")])
    publisher = PubSubTriggerPublisher(
        "projects/p1/topics/phase4-trigger", publisher=client, retry=quick_retry(fake_clock)
    )

    with pytest.raises(PublishFailedError):
        publisher(EVENT)

    [span] = [s for s in span_exporter.get_finished_spans() if s.name.endswith("pubsub.publish")]
    assert span.attributes is not None
    assert span.attributes["trigger_id"] == "phase3:2026-01-25"
    assert span.status.status_code is StatusCode.ERROR


def test_publisher_is_the_publish_callable_of_the_tracker(
    fake_clock: FakeClock, memory_store: MemoryStore
) -> None:
    """As publish=, a failed publish releases the claim and the redelivery triggers."""
    client = ScriptedPublisher([ValueError("topic misconfigured"), "m-2"])
    publisher = PubSubTriggerPublisher(
        "projects/p1/topics/phase4-trigger", publisher=client, retry=quick_retry(fake_clock)
    )
    tracker = CompletionTracker(memory_store, [PhaseSpec("phase3", {"player_game_summary"})])
    args: dict[str, Any] = {"execution_id": "run-1", "message_id": "msg-1", "publish": publisher}

    with pytest.raises(PublishFailedError):
        tracker.record_and_trigger("phase3", "2026-01-25", "player_game_summary", **args)
    redelivered = tracker.record_and_trigger("phase3", "2026-01-25", "player_game_summary", **args)

    assert redelivered.confirmation is not None
    assert tracker.status("phase3", "2026-01-25").triggered
    assert len(client.calls) == 2


def test_constructing_imports_no_google() -> None:
    """Building a publisher creates no client and imports no Google module (F10)."""
    before = {m for m in sys.modules if m.startswith("google.cloud.pubsub")}

    PubSubTriggerPublisher("phase4-trigger", project="p1")

    assert {m for m in sys.modules if m.startswith("google.cloud.pubsub")} == before


# --- on the Pub/Sub emulator --------------------------------------------------


@pytest.fixture
def topic_and_pull(
    pubsub_emulator: str, pubsub_project: str
) -> Iterator[tuple[str, Callable[[], list[Any]]]]:
    """A fresh topic with a subscription, and a function that pulls everything from it."""
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    publisher = PublisherClient()
    subscriber = SubscriberClient()
    topic = publisher.topic_path(pubsub_project, "phase4-trigger")
    subscription = subscriber.subscription_path(pubsub_project, "phase4-trigger-sub")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscription, topic=topic)

    def pull() -> list[Any]:
        response = subscriber.pull(
            subscription=subscription, max_messages=100, return_immediately=True, timeout=10
        )
        received = [m.message for m in response.received_messages]
        if response.received_messages:
            subscriber.acknowledge(
                subscription=subscription,
                ack_ids=[m.ack_id for m in response.received_messages],
            )
        return received

    yield topic, pull
    subscriber.close()


@pytest.mark.pubsub
def test_emulator_publish_is_received_with_body_and_attributes(
    topic_and_pull: tuple[str, Callable[[], list[Any]]],
) -> None:
    """A trigger published to the emulator is pulled back with its body and attributes."""
    topic, pull = topic_and_pull
    publisher = PubSubTriggerPublisher(topic, timeout=10)

    message_id = publisher(EVENT)
    [message] = pull()

    assert message.message_id == message_id
    assert json.loads(message.data) == EVENT.to_dict()
    assert dict(message.attributes) == EVENT.attributes()


@pytest.mark.pubsub
def test_emulator_publish_to_missing_topic_fails(
    pubsub_emulator: str, pubsub_project: str
) -> None:
    """Publishing to a topic that does not exist raises PublishFailedError (NotFound chained)."""
    from google.api_core.exceptions import NotFound

    publisher = PubSubTriggerPublisher("no-such-topic", project=pubsub_project, timeout=10)

    with pytest.raises(PublishFailedError) as info:
        publisher(EVENT)

    assert isinstance(info.value.__cause__, NotFound)
