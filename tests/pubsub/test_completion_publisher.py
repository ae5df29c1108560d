"""CompletionPublisher: the versioned schema, the round trip, retries, and the real emulator."""

from __future__ import annotations

import base64
import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline_reliability import (
    SCHEMA_VERSION,
    STATUSES,
    CompletionMessage,
    CompletionPublisher,
    MemoryCompletionPublisher,
    parse_completion_message,
)
from pipeline_reliability.errors import (
    CompletionNotPublishedError,
    InvalidInputError,
    InvalidMessageError,
    RetryExhaustedError,
)
from pipeline_reliability.retry import RetryPolicy
from pipeline_reliability.testing import FakeClock

_CHARS = st.characters(blacklist_categories=("Cs", "Cc"))
_TEXT = st.text(_CHARS, min_size=1, max_size=30).map(str.strip).filter(bool)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(_CHARS, max_size=20),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(_CHARS, max_size=10), inner, max_size=3),
    max_leaves=10,
)

COMPLETIONS = st.builds(
    CompletionMessage,
    processor_name=st.from_regex(r"[a-z][a-z0-9_]{0,30}", fullmatch=True),
    phase=_TEXT,
    execution_id=_TEXT,
    correlation_id=_TEXT,
    game_date=st.dates(date(2000, 1, 1), date(2100, 12, 31)).map(date.isoformat),
    status=st.sampled_from(sorted(STATUSES)),
    record_count=st.none() | st.integers(0, 2**53),
    metadata=st.dictionaries(st.text(_CHARS, max_size=10), _JSON, max_size=4),
    timestamp=st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)),
    message_id=st.none(),
)
"""Every valid completion a processor publishes (a ProcessorRun always sets the timestamp)."""

MESSAGE = CompletionMessage(
    processor_name="player_game_summary", phase="phase_3_analytics", execution_id="run-1",
    correlation_id="corr-1", game_date="2026-01-31", status="success", record_count=120,
    metadata={"is_incremental": True}, timestamp=datetime(2026, 1, 31, 6, tzinfo=UTC),
    message_id=None,
)


def same_fields(parsed: CompletionMessage, published: CompletionMessage) -> bool:
    """Equal in every field the publisher controls (the transport assigns the message id)."""
    ignore = {"message_id", "attributes", "raw"}
    return all(
        getattr(parsed, f.name) == getattr(published, f.name)
        for f in dataclasses.fields(CompletionMessage) if f.name not in ignore
    )


# --- the schema, defined once and versioned -----------------------------------


def test_the_body_carries_the_schema_version() -> None:
    """to_dict() writes the version, and parsing reads it back."""
    body = MESSAGE.to_dict()
    assert body["schema_version"] == SCHEMA_VERSION == 1
    assert same_fields(parse_completion_message(body), MESSAGE)


def test_a_body_without_a_version_is_version_1() -> None:
    """The production publishers never sent a version: accepted."""
    body = MESSAGE.to_dict()
    del body["schema_version"]
    assert same_fields(parse_completion_message(body), MESSAGE)


@pytest.mark.parametrize("version", [2, 99, 0, -1, "1", True, 1.0, None])
def test_an_unknown_or_malformed_version_is_a_poison_message(version: object) -> None:
    """A newer version than this library knows, or a non-integer, is refused (None is 1)."""
    body = {**MESSAGE.to_dict(), "schema_version": version}
    if version is None:
        assert parse_completion_message(body).status == "success"
        return
    with pytest.raises(InvalidMessageError, match="schema"):
        parse_completion_message(body)


# --- the round trip -------------------------------------------------------------


@given(COMPLETIONS)
def test_round_trip_through_the_memory_topic(message: CompletionMessage) -> None:
    """parse(publish(m)) == m for every valid completion, as a Pub/Sub message dict."""
    topic = MemoryCompletionPublisher(clock=FakeClock())
    message_id = topic.publish(message)
    [published] = topic.drain()

    parsed = parse_completion_message(published)

    assert same_fields(parsed, message)
    assert parsed.message_id == message_id


@given(COMPLETIONS)
def test_round_trip_through_the_cloud_event_and_push_shapes(message: CompletionMessage) -> None:
    """The same through the CloudEvent (Eventarc) and push-subscription envelopes."""
    topic = MemoryCompletionPublisher(clock=FakeClock())
    topic.publish(message)
    [published] = topic.drain()
    cloud_event = {"data": {"message": published, "subscription": "projects/p/subscriptions/s"}}
    push = json.dumps({"message": published, "subscription": "projects/p/subscriptions/s"})

    for shape in (cloud_event, push.encode()):
        parsed = parse_completion_message(shape)
        assert same_fields(parsed, message)
        assert parsed.attributes["processor"] == message.processor_name


def test_the_memory_topic_keeps_what_pubsub_would_deliver(fake_clock: FakeClock) -> None:
    """base64 JSON data, message id, publish time, attributes, and the ordering key."""
    topic = MemoryCompletionPublisher(clock=fake_clock, ordering=True)

    topic.publish(MESSAGE)

    [published] = topic.messages
    assert json.loads(base64.b64decode(published["data"])) == MESSAGE.to_dict()
    assert published["publishTime"] == fake_clock.now().isoformat()
    assert published["orderingKey"] == "phase_3_analytics:2026-01-31"
    assert published["attributes"] == {
        "processor": "player_game_summary", "phase": "phase_3_analytics",
        "date": "2026-01-31", "status": "success", "execution_id": "run-1",
        "correlation_id": "corr-1", "schema_version": "1",
    }
    assert topic.drain() == [published]
    assert topic.drain() == []


@pytest.mark.parametrize(
    "change",
    [{"metadata": {"t": object()}}, {"metadata": {"x": float("nan")}}, {"status": "done"},
     {"game_date": "2026-02-30"}, {"execution_id": " "}, {"record_count": -1}],
)
def test_an_invalid_completion_is_refused_before_publishing(change: dict[str, Any]) -> None:
    """What would not parse (or is not JSON) is never published."""
    client = ScriptedPublisher(["never"])
    publisher = CompletionPublisher("projects/p/topics/done", publisher=client)

    with pytest.raises(InvalidInputError):
        publisher(dataclasses.replace(MESSAGE, **change))
    with pytest.raises(InvalidInputError):
        MemoryCompletionPublisher().publish(dataclasses.replace(MESSAGE, **change))
    assert client.calls == []


# --- the Pub/Sub client, scripted -----------------------------------------------


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
        self.resumed: list[tuple[str, str]] = []

    def publish(self, topic: str, data: bytes, **kwargs: Any) -> _Future:
        self.calls.append((topic, data, kwargs))
        return _Future(self.outcomes.pop(0))

    def resume_publish(self, topic: str, ordering_key: str) -> None:
        self.resumed.append((topic, ordering_key))


def test_publish_sends_the_body_attributes_and_ordering_key(fake_clock: FakeClock) -> None:
    """The body is to_dict() as JSON; attributes for filters; an ordering key per (phase, date)."""
    client = ScriptedPublisher(["m-1"])
    publisher = CompletionPublisher(
        "projects/p1/topics/phase3-complete", publisher=client, ordering=True,
        retry=RetryPolicy(attempts=3, clock=fake_clock),
    )

    assert publisher(MESSAGE) == "m-1"

    [(topic, data, kwargs)] = client.calls
    assert topic == "projects/p1/topics/phase3-complete"
    assert json.loads(data) == MESSAGE.to_dict()
    assert kwargs["ordering_key"] == "phase_3_analytics:2026-01-31"
    assert kwargs["status"] == "success"
    assert kwargs["processor"] == "player_game_summary"
    assert kwargs["retry"] is None


def test_without_ordering_no_key_is_sent(fake_clock: FakeClock) -> None:
    """ordering=False (the default): no ordering key."""
    client = ScriptedPublisher(["m-1"])
    CompletionPublisher("projects/p1/topics/done", publisher=client)(MESSAGE)
    assert "ordering_key" not in client.calls[0][2]


def test_transient_failures_are_retried_and_an_ordered_key_resumed(
    fake_clock: FakeClock,
) -> None:
    """A reset and a timeout are retried; a failed ordered publish resumes its key first."""
    client = ScriptedPublisher([ConnectionError("reset"), TimeoutError(), "m-3"])
    publisher = CompletionPublisher(
        "projects/p1/topics/done", publisher=client, ordering=True,
        retry=RetryPolicy(attempts=3, clock=fake_clock),
    )

    assert publisher.publish(MESSAGE) == "m-3"
    assert len(client.calls) == 3
    assert client.resumed == [("projects/p1/topics/done", "phase_3_analytics:2026-01-31")] * 2


def test_exhausted_retries_raise_completion_not_published(fake_clock: FakeClock) -> None:
    """Every attempt fails: CompletionNotPublishedError, carrying the completion."""
    client = ScriptedPublisher([ConnectionError("down")] * 3)
    publisher = CompletionPublisher(
        "projects/p1/topics/done", publisher=client,
        retry=RetryPolicy(attempts=3, clock=fake_clock),
    )

    with pytest.raises(CompletionNotPublishedError) as info:
        publisher(MESSAGE)

    assert isinstance(info.value.__cause__, RetryExhaustedError)
    assert info.value.completion is MESSAGE


def test_constructing_imports_no_google() -> None:
    """Building a publisher creates no client and imports no Google module (F10)."""
    before = {m for m in sys.modules if m.startswith("google.cloud.pubsub")}
    CompletionPublisher("phase3-complete", project="p1", ordering=True)
    assert {m for m in sys.modules if m.startswith("google.cloud.pubsub")} == before


# --- on the Pub/Sub emulator ----------------------------------------------------


@pytest.fixture
def completion_topic(
    pubsub_emulator: str, pubsub_project: str
) -> Iterator[tuple[str, Callable[[], list[Any]]]]:
    """A fresh topic with an ordered subscription, and a function that pulls from it."""
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    publisher, subscriber = PublisherClient(), SubscriberClient()
    topic = publisher.topic_path(pubsub_project, "phase3-complete")
    subscription = subscriber.subscription_path(pubsub_project, "phase3-orchestrator")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(
        request={"name": subscription, "topic": topic, "enable_message_ordering": True}
    )

    def pull() -> list[Any]:
        response = subscriber.pull(
            subscription=subscription, max_messages=100, return_immediately=True, timeout=10
        )
        if response.received_messages:
            subscriber.acknowledge(
                subscription=subscription,
                ack_ids=[m.ack_id for m in response.received_messages],
            )
        return [m.message for m in response.received_messages]

    yield topic, pull
    subscriber.close()


@pytest.mark.pubsub
def test_round_trip_through_the_emulator(
    completion_topic: tuple[str, Callable[[], list[Any]]],
) -> None:
    """parse(publish(m)) == m through a real Pub/Sub message, with the ordering key."""
    topic, pull = completion_topic
    publisher = CompletionPublisher(topic, timeout=10, ordering=True)

    @settings(max_examples=15)
    @given(COMPLETIONS)
    def check(message: CompletionMessage) -> None:
        message_id = publisher(message)
        [received] = pull()
        parsed = parse_completion_message(received)
        assert same_fields(parsed, message)
        assert parsed.message_id == message_id
        assert received.ordering_key == f"{message.phase}:{message.game_date}"
        assert parsed.attributes["schema_version"] == "1"

    check()


@pytest.mark.pubsub
def test_emulator_publish_to_missing_topic_fails(
    pubsub_emulator: str, pubsub_project: str
) -> None:
    """A missing topic: CompletionNotPublishedError with NotFound chained."""
    from google.api_core.exceptions import NotFound

    publisher = CompletionPublisher("no-such-topic", project=pubsub_project, timeout=10)

    with pytest.raises(CompletionNotPublishedError) as info:
        publisher(MESSAGE)

    assert isinstance(info.value.__cause__, NotFound)


@pytest.mark.parametrize("retry", ["fast", 3, RetryPolicy])
def test_a_retry_that_is_not_a_policy_is_a_configuration_error(retry: Any) -> None:
    """Checked like the trigger publisher's (one helper): never a raw AttributeError."""
    from pipeline_reliability import CompletionPublisher, ConfigurationError

    with pytest.raises(ConfigurationError, match="retry must be a RetryPolicy"):
        CompletionPublisher("projects/p/topics/done", publisher=object(), retry=retry)
