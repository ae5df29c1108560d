"""
The envelopes a completion message arrives in, and the JSON decoding they share.

An envelope (CloudEvent, push body, bare Pub/Sub message, subscriber message)
is told from a decoded completion body by its shape: a body has completion
fields (``processor_name``, ``execution_id``...), an envelope's ``message`` is
an object with ``data``/``messageId``/``publishTime`` (issue 10, item 4).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ..errors import InvalidMessageError

__all__ = ["Envelope", "attributes", "json_object", "show", "unwrap", "utc_time"]


@dataclass(frozen=True, slots=True)
class Envelope:
    message_id: str | None = None
    publish_time: datetime | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


def unwrap(message: Any) -> tuple[Mapping[str, Any], Envelope]:
    """Return the decoded completion body and what the Pub/Sub envelope said."""
    if isinstance(message, bytes | bytearray | memoryview):
        message = _json(bytes(message), "body")
    elif isinstance(message, str):
        message = _json(message, "body")
    if not isinstance(message, Mapping):
        return _unwrap_object(message)
    if _is_completion_body(message):
        # A decoded completion; its own "message"/"data" fields are free text.
        return json_object(message, "completion message"), Envelope()
    inner = message.get("message")
    if _is_pubsub_message(inner):  # push body, or CloudEvent data passed on its own
        return _from_pubsub(json_object(inner, "message"))
    data = message.get("data")
    if isinstance(data, Mapping):  # CloudEvent dict: {"data": {"message": {...}}}
        if not _is_pubsub_message(data.get("message")):
            raise InvalidMessageError("CloudEvent data has no Pub/Sub 'message' object")
        return _from_pubsub(json_object(data["message"], "data.message"))
    if isinstance(data, str):  # a bare Pub/Sub message: {"data": "<base64>", "messageId": ...}
        return _from_pubsub(message)
    if "data" in message:
        raise InvalidMessageError(f"'data' must be base64 text, got {type(data).__name__}")
    if isinstance(inner, Mapping):
        raise InvalidMessageError("'message' is an object but not a Pub/Sub message (no 'data')")
    return json_object(message, "completion message"), Envelope()


#: Keys of a Pub/Sub message in its JSON form (push body, CloudEvent).
_PUBSUB_KEYS = frozenset({"data", "messageId", "message_id", "publishTime", "publish_time"})
#: Keys only a completion body has: a body is recognised by them, never by
#: the absence of "message" (a body may carry a free-text "message" field).
_BODY_KEYS = frozenset({"processor_name", "output_table", "execution_id", "game_date"})


def _is_pubsub_message(value: object) -> bool:
    """Whether ``value`` has the shape of a Pub/Sub message: an object with data/messageId."""
    return isinstance(value, Mapping) and any(k in value for k in _PUBSUB_KEYS)


def _is_completion_body(message: Mapping[str, Any]) -> bool:
    return any(k in message for k in _BODY_KEYS)


def _unwrap_object(message: Any) -> tuple[Mapping[str, Any], Envelope]:
    """Recognise a CloudEvent or a subscriber message by its attributes."""
    data = getattr(message, "data", None)
    if isinstance(data, bytes | bytearray) and hasattr(message, "message_id"):
        return _from_subscriber(message, bytes(data))
    if isinstance(data, Mapping):
        return unwrap({"data": data})
    if isinstance(data, bytes | bytearray | str):  # a CloudEvent whose data is JSON text
        return unwrap(data if isinstance(data, str) else bytes(data))
    raise InvalidMessageError(
        f"expected a CloudEvent, a Pub/Sub message or a JSON object, got {type(message).__name__}"
    )


def _from_pubsub(msg: Mapping[str, Any]) -> tuple[Mapping[str, Any], Envelope]:
    """Decode a Pub/Sub message in its JSON form (push body / CloudEvent)."""
    message_id = msg.get("messageId", msg.get("message_id"))
    if message_id is not None and not isinstance(message_id, str):
        raise InvalidMessageError("message.messageId must be a string")
    label = f" (message {message_id})" if message_id else ""
    data = msg.get("data")
    if data is None or data == "":
        raise InvalidMessageError(f"Pub/Sub message has no data{label}")
    if not isinstance(data, str):
        raise InvalidMessageError(
            f"message.data must be base64 text, got {type(data).__name__}{label}"
        )
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidMessageError(f"message.data is not valid base64{label}: {exc}") from exc
    publish = msg.get("publishTime", msg.get("publish_time"))
    envelope = Envelope(
        message_id=message_id,
        publish_time=None if publish is None else utc_time(publish, "message.publishTime"),
        attributes=attributes(msg.get("attributes")),
    )
    return json_object(_json(raw, f"message.data{label}"), f"message.data{label}"), envelope


def _from_subscriber(message: Any, data: bytes) -> tuple[Mapping[str, Any], Envelope]:
    """Decode a ``google.cloud.pubsub_v1`` subscriber message (duck-typed)."""
    message_id = getattr(message, "message_id", None)
    label = f" (message {message_id})" if message_id else ""
    publish = getattr(message, "publish_time", None)
    envelope = Envelope(
        message_id=str(message_id) if message_id else None,
        publish_time=utc_time(publish, "message.publish_time")
        if isinstance(publish, datetime)
        else None,
        attributes=attributes(getattr(message, "attributes", None)),
    )
    return json_object(_json(data, f"message.data{label}"), f"message.data{label}"), envelope


def _json(data: bytes | str, what: str) -> Any:
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
    except UnicodeDecodeError as exc:
        raise InvalidMessageError(f"{what} is not UTF-8 text") from exc
    except ValueError as exc:  # json.JSONDecodeError and _reject_constant
        raise InvalidMessageError(f"{what} is not valid JSON: {exc}") from exc


def _reject_constant(name: str) -> Any:
    # NaN/Infinity are not JSON: BigQuery and Firestore would reject them later.
    raise ValueError(f"{name} is not allowed")


def _finite(text: str) -> float:
    value = float(text)
    if value in {float("inf"), float("-inf")}:
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def json_object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidMessageError(f"{what} must be a JSON object, got {type(value).__name__}")
    if not all(isinstance(k, str) for k in value):
        raise InvalidMessageError(f"{what} has non-string keys")
    return value


def attributes(value: Any) -> Mapping[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidMessageError("message.attributes must map strings to strings")
    return dict(value)


def utc_time(value: Any, what: str) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidMessageError(f"{what} is not an ISO-8601 time: {show(value)}") from exc
    else:
        raise InvalidMessageError(f"{what} must be an ISO-8601 string, got {show(value)}")
    # Publishers write UTC; a naive time is taken as UTC rather than local time.
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidMessageError(f"{what} is out of range: {show(value)}") from exc


def show(value: Any) -> str:
    # Only scalars are shown: a container's repr may be endless, deep or raise.
    if isinstance(value, str | bytes):
        value = value[:61]
    elif not isinstance(value, int | float | date | timedelta | type(None)):
        return f"<{type(value).__name__}>"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - e.g. an int too large to print
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."
