"""parse_completion_message: every envelope shape, validation, and junk handling."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline_reliability import MemoryStore
from pipeline_reliability._validate import DATE_MAX, DATE_MIN
from pipeline_reliability.completion import CompletionTracker, PhaseSpec
from pipeline_reliability.errors import InvalidInputError, InvalidMessageError
from pipeline_reliability.pubsub import STATUSES, CompletionMessage, parse_completion_message

# A completion as UnifiedPubSubPublisher._build_message publishes it (PRODUCTION-SHAPES §2.2).
PHASE3_BODY: dict[str, Any] = {
    "processor_name": "PlayerGameSummaryProcessor",
    "phase": "phase_3_analytics",
    "execution_id": "a1b2c3d4",
    "correlation_id": "5f0c9e21",
    "game_date": "2026-01-25",
    "output_table": "player_game_summary",
    "output_dataset": "nba_analytics",
    "status": "success",
    "record_count": 241,
    "records_failed": 0,
    "timestamp": "2026-01-25T12:00:03.412000+00:00",
    "duration_seconds": 48.2,
    "trigger_source": "pubsub",
    "error_type": "str",
    "metadata": {
        "is_incremental": True,
        "entities_changed": ["lebron-james", "LAL"],
        "entities_changed_count": 2,
        "entities_total": 480,
    },
}


def b64(body: Any) -> str:
    """Base64 of the JSON of ``body``, as Pub/Sub carries message data."""
    return base64.b64encode(json.dumps(body).encode()).decode()


def pubsub_message(body: Any, **extra: Any) -> dict[str, Any]:
    """The JSON form of a Pub/Sub message (push body / CloudEvent ``message``)."""
    return {
        "data": b64(body),
        "messageId": "msg-456",
        "publishTime": "2026-01-25T12:00:05Z",
        **extra,
    }


def cloud_event(body: Any) -> SimpleNamespace:
    """A CloudEvent as functions-framework hands it to a Cloud Function (§2.1)."""
    return SimpleNamespace(
        data={"message": pubsub_message(body), "subscription": "projects/p/subscriptions/s"},
        id="msg-456",
        type="google.cloud.pubsub.topic.v1.messagePublished",
    )


def subscriber_message(body: Any) -> SimpleNamespace:
    """Shaped like google.cloud.pubsub_v1.subscriber.message.Message."""
    return SimpleNamespace(
        data=json.dumps(body).encode(),
        message_id="msg-456",
        attributes={"origin": "test"},
        publish_time=datetime(2026, 1, 25, 12, 0, 5, tzinfo=UTC),
    )


def test_cloud_event_is_parsed_and_normalised() -> None:
    """A production-shaped CloudEvent parses into every field, with the name normalised."""
    msg = parse_completion_message(cloud_event(PHASE3_BODY))

    assert msg == CompletionMessage(
        processor_name="player_game_summary",
        phase="phase_3_analytics",
        execution_id="a1b2c3d4",
        correlation_id="5f0c9e21",
        game_date="2026-01-25",
        status="success",
        record_count=241,
        metadata=PHASE3_BODY["metadata"],
        timestamp=datetime(2026, 1, 25, 12, 0, 3, 412000, tzinfo=UTC),
        message_id="msg-456",
        attributes={},
        raw=PHASE3_BODY,
    )
    assert msg.raw == PHASE3_BODY


@pytest.mark.parametrize(
    "shape",
    [
        "cloud_event",
        "cloud_event_dict",
        "push_dict",
        "push_bytes",
        "push_str",
        "push_snake_case_id",
        "bare_message",
        "subscriber",
    ],
)
def test_every_envelope_shape_gives_the_same_completion(shape: str) -> None:
    """All the shapes a message arrives in parse to the same completion and message id."""
    push = {"message": pubsub_message(PHASE3_BODY), "subscription": "projects/p/subscriptions/s"}
    snake = {"message": {"data": b64(PHASE3_BODY), "message_id": "msg-456"}}
    message = {
        "cloud_event": cloud_event(PHASE3_BODY),
        "cloud_event_dict": {"specversion": "1.0", "data": push},
        "push_dict": push,
        "push_bytes": json.dumps(push).encode(),
        "push_str": json.dumps(push),
        "push_snake_case_id": snake,
        "bare_message": pubsub_message(PHASE3_BODY),
        "subscriber": subscriber_message(PHASE3_BODY),
    }[shape]

    msg = parse_completion_message(message)

    assert (
        msg.processor_name,
        msg.message_id,
        msg.record_count,
    ) == ("player_game_summary", "msg-456", 241)


def test_decoded_dict_has_no_message_id() -> None:
    """An already decoded completion dict parses, without a Pub/Sub message id."""
    msg = parse_completion_message(PHASE3_BODY)

    assert (msg.message_id, msg.processor_name) == (None, "player_game_summary")


def test_attributes_and_publish_time_are_kept() -> None:
    """Pub/Sub attributes are exposed; publishTime stands in for a missing timestamp."""
    body = {k: v for k, v in PHASE3_BODY.items() if k != "timestamp"}
    message = {"message": pubsub_message(body, attributes={"kind": "completion"})}

    msg = parse_completion_message(message)

    assert msg.attributes == {"kind": "completion"}
    assert datetime(2026, 1, 25, 12, 0, 5, tzinfo=UTC) == msg.timestamp


def test_optional_fields_take_their_defaults() -> None:
    """correlation_id defaults to execution_id; metadata to {}; record_count to None."""
    body = {
        "processor_name": "p2_odds_game_lines",
        "phase": "phase_2_raw",
        "execution_id": "run-7",
        "game_date": "2026-01-25",
        "status": "no_data",
    }

    msg = parse_completion_message(body)

    assert (
        msg.correlation_id,
        msg.metadata,
        msg.record_count,
        msg.timestamp,
    ) == ("run-7", {}, None, None)


def test_output_table_is_the_fallback_processor_name() -> None:
    """Without processor_name, output_table names the processor."""
    body = {k: v for k, v in PHASE3_BODY.items() if k != "processor_name"}
    body["output_table"] = "ml_feature_store_v2"

    assert parse_completion_message(body).processor_name == "ml_feature_store_v2"


def test_async_and_acronym_class_names_are_normalised() -> None:
    """Async prefixes and acronyms in class names normalise to the config names."""
    names = ["AsyncUpcomingPlayerGameContextProcessor", "MLFeatureStoreProcessor"]

    parsed = [
        parse_completion_message({**PHASE3_BODY, "processor_name": n}).processor_name
        for n in names
    ]

    assert parsed == ["upcoming_player_game_context", "ml_feature_store"]


def test_completion_kwargs_feed_the_tracker(memory_store: MemoryStore) -> None:
    """completion_kwargs() is exactly what record_completion takes after the phase."""
    tracker = CompletionTracker(memory_store, [PhaseSpec("phase3", {"player_game_summary"})])
    msg = parse_completion_message(cloud_event(PHASE3_BODY))

    result = tracker.record_completion("phase3", **msg.completion_kwargs())

    assert result.counted
    assert result.trigger is not None
    assert result.trigger.correlation_id == "5f0c9e21"


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ({"message": {"data": "%%% not base64", "messageId": "m1"}}, "not valid base64"),
        ({"message": {"data": base64.b64encode(b"not json").decode()}}, "not valid JSON"),
        ({"message": {"data": base64.b64encode(b"\xff\xfe").decode()}}, "not UTF-8"),
        ({"message": {"data": b64([1, 2])}}, "must be a JSON object"),
        ({"message": {"messageId": "m1"}}, "has no data"),
        ({"message": "text"}, "missing required field"),
        ({"message": {"text": "hi"}}, "not a Pub/Sub message"),
        ({"data": {"subscription": "s"}}, "no Pub/Sub 'message'"),
        ({"data": 5}, "'data' must be base64 text"),
        (b"{not json", "body is not valid JSON"),
        (42, "expected a CloudEvent"),
        ({**PHASE3_BODY, "game_date": "2026-02-30"}, "not a real date"),
        ({**PHASE3_BODY, "game_date": "25/01/2026"}, "'YYYY-MM-DD'"),
        ({**PHASE3_BODY, "game_date": 20260125}, "'YYYY-MM-DD'"),
        ({**PHASE3_BODY, "status": "done"}, "must be one of"),
        ({**PHASE3_BODY, "record_count": -1}, "integer in 0..2\\*\\*63-1"),
        ({**PHASE3_BODY, "record_count": "12"}, "integer in 0..2\\*\\*63-1"),
        ({**PHASE3_BODY, "record_count": True}, "integer in 0..2\\*\\*63-1"),
        ({**PHASE3_BODY, "metadata": ["a"]}, "'metadata' must be a JSON object"),
        ({**PHASE3_BODY, "execution_id": 7}, "'execution_id' must be a non-empty string"),
        ({**PHASE3_BODY, "timestamp": "yesterday"}, "not an ISO-8601 time"),
        ({**PHASE3_BODY, "processor_name": "   "}, "'processor_name' must be a non-empty"),
        ({"phase": "p", "game_date": "2026-01-01"}, "processor_name, execution_id, status"),
        ({"message": {"data": b64({"x": float("nan")})}}, "not valid JSON"),
    ],
)
def test_malformed_messages_raise_invalid_message(message: Any, says: str) -> None:
    """Each kind of malformed message raises InvalidMessageError that says what is wrong."""
    with pytest.raises(InvalidMessageError, match=says):
        parse_completion_message(message)


def test_error_names_the_message_id() -> None:
    """The error of a poison message names its Pub/Sub message id for the logs."""
    body = {**PHASE3_BODY}
    del body["phase"]

    with pytest.raises(InvalidMessageError, match=r"\(message msg-456\)"):
        parse_completion_message({"message": pubsub_message(body)})


def test_invalid_message_is_permanent_input_error() -> None:
    """InvalidMessageError is an InvalidInputError and never transient."""
    with pytest.raises(InvalidMessageError) as info:
        parse_completion_message({"message": {}})

    assert isinstance(info.value, InvalidInputError)
    assert info.value.transient is False


@pytest.mark.pubsub
def test_real_pulled_messages_parse(pubsub_emulator: str, pubsub_project: str) -> None:
    """Messages pulled from the emulator parse, as PubsubMessage and as subscriber Message."""
    import queue

    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
    from google.cloud.pubsub_v1.subscriber.message import Message

    publisher, subscriber = PublisherClient(), SubscriberClient()
    topic = publisher.topic_path(pubsub_project, "phase3-complete")
    subscription = subscriber.subscription_path(pubsub_project, "phase3-complete-sub")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscription, topic=topic)
    sent = publisher.publish(topic, json.dumps(PHASE3_BODY).encode(), origin="test").result(10)
    response = subscriber.pull(subscription=subscription, max_messages=1, timeout=10)
    [received] = response.received_messages
    streamed = Message(received.message._pb, received.ack_id, 0, queue.Queue())
    subscriber.close()

    for message in (received.message, streamed):
        msg = parse_completion_message(message)
        assert (msg.message_id, msg.processor_name) == (sent, "player_game_summary")
        assert msg.attributes == {"origin": "test"}


# --- properties -------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
junk_text = st.one_of(
    st.text(),
    json_values.map(json.dumps),
    json_values.map(lambda v: base64.b64encode(json.dumps(v).encode()).decode()),
)
junk_message = st.one_of(
    junk_text, st.dictionaries(st.sampled_from(["data", "messageId", "attributes"]), json_values)
)
junk = st.one_of(
    st.binary(),
    st.text(),
    json_values,
    junk_text.map(lambda t: {"message": {"data": t}}),
    junk_message.map(lambda m: {"message": m}),
    junk_message.map(lambda m: {"data": {"message": m}}),
    junk_message.map(lambda m: SimpleNamespace(data={"message": m})),
    st.builds(
        lambda d, i, a: SimpleNamespace(data=d, message_id=i, attributes=a),
        st.binary() | json_values.map(lambda v: json.dumps(v).encode()),
        st.text(),
        json_values,
    ),
    st.fixed_dictionaries(
        {k: json_values | st.just(v) for k, v in PHASE3_BODY.items()},
    ),
    st.just("[" * 100_000),
)


@given(junk)
def test_junk_raises_only_invalid_message(message: Any) -> None:
    """Arbitrary junk either parses or raises InvalidMessageError, never anything else."""
    try:
        msg = parse_completion_message(message)
    except InvalidMessageError:
        return
    assert msg.status in STATUSES


identifier = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
valid_bodies = st.fixed_dictionaries(
    {
        "processor_name": identifier,
        "phase": identifier,
        "execution_id": identifier,
        "correlation_id": identifier,
        "game_date": st.dates(DATE_MIN, DATE_MAX).map(lambda d: d.isoformat()),
        "status": st.sampled_from(sorted(STATUSES)),
        "metadata": st.dictionaries(st.text(), json_values, max_size=3),
    },
    optional={
        "record_count": st.integers(min_value=0, max_value=2**63 - 1),
        "timestamp": st.datetimes(timezones=st.just(UTC)).map(lambda t: t.isoformat()),
    },
)


@given(valid_bodies, st.sampled_from(["decoded", "push", "cloud_event", "subscriber"]))
def test_valid_messages_round_trip(body: dict[str, Any], shape: str) -> None:
    """A valid completion parses to its own fields in every shape, and to_dict round-trips."""
    wrapped: Any = {
        "decoded": body,
        "push": {"message": pubsub_message(body)},
        "cloud_event": cloud_event(body),
        "subscriber": subscriber_message(body),
    }[shape]

    msg = parse_completion_message(wrapped)

    assert body == {k: msg.to_dict()[k] for k in body}
    assert _fields(msg) == _fields(parse_completion_message(msg.to_dict()))


def _fields(msg: CompletionMessage) -> dict[str, Any]:
    """The parsed fields, without the envelope-only ``raw`` and ``attributes``."""
    return {
        name: getattr(msg, name)
        for name in CompletionMessage.__dataclass_fields__
        if name not in {"raw", "attributes"}
    }


@pytest.mark.parametrize(
    "free_text",
    ["Processed 241 rows", {"text": "ok", "level": "info"}, ""],
    ids=["string", "object", "empty"],
)
def test_item4_decoded_body_with_a_free_text_message_field_is_a_body(free_text: Any) -> None:
    """Item 4: a decoded completion with its own 'message' field is not a push envelope."""
    body = {**PHASE3_BODY, "message": free_text}

    for shape in (body, json.dumps(body), json.dumps(body).encode()):
        msg = parse_completion_message(shape)
        assert (msg.processor_name, msg.message_id) == ("player_game_summary", None)
        assert msg.raw["message"] == free_text


def test_item4_push_envelope_is_recognised_by_its_shape() -> None:
    """A push body is {"message": {data, messageId, publishTime, attributes}, "subscription"}."""
    body = {**PHASE3_BODY, "message": "free text too"}
    push = {"message": pubsub_message(body, attributes={"a": "b"}), "subscription": "s"}

    msg = parse_completion_message(push)

    assert (msg.message_id, msg.attributes) == ("msg-456", {"a": "b"})
    assert msg.raw["message"] == "free text too"


@pytest.mark.parametrize(
    ("timestamp", "publish", "expected"),
    [
        ("2026-01-25T12:00:03+00:00", "2026-01-25T12:00:05Z", datetime(2026, 1, 25, 12, 0, 3)),
        (None, "2026-01-25T12:00:05Z", datetime(2026, 1, 25, 12, 0, 5)),
        (None, None, None),
    ],
    ids=["body-timestamp", "publish-time", "neither"],
)
def test_item1_completion_kwargs_carry_the_processors_completion_time(
    timestamp: str | None, publish: str | None, expected: datetime | None
) -> None:
    """completed_at: the body's timestamp, else the publish time, else None (the store's time)."""
    body = {k: v for k, v in PHASE3_BODY.items() if k != "timestamp"}
    if timestamp is not None:
        body["timestamp"] = timestamp
    message = pubsub_message(body)
    if publish is None:
        del message["publishTime"]

    kwargs = parse_completion_message({"message": message}).completion_kwargs()

    assert kwargs["completed_at"] == (None if expected is None else expected.replace(tzinfo=UTC))
