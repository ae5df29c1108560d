"""
Parse the completion messages that processors publish (PRODUCTION-SHAPES §2.1-2.2).

One function takes every shape a message arrives in: a CloudEvent (Cloud
Functions gen2 / Eventarc), a push-subscription HTTP body, a bare Pub/Sub
message dict, a ``google.cloud.pubsub_v1`` subscriber message, or the already
decoded completion dict. Anything malformed raises ``InvalidMessageError``: a
poison message, which no retry can fix, so the caller acknowledges it or lets
it go to a dead-letter topic. No Google module is imported here: messages are
recognised by their attributes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .._validate import iso_date
from ..errors import InvalidInputError, InvalidMessageError
from ._names import normalise_processor_name

__all__ = ["STATUSES", "CompletionMessage", "parse_completion_message"]

STATUSES = frozenset({"success", "partial", "no_data", "failed", "skipped"})
"""The statuses a completion message may carry."""

_REQUIRED = ("phase", "execution_id", "game_date", "status")


@dataclass(frozen=True, slots=True)
class CompletionMessage:
    """
    One processor completion, parsed and validated.

    Attributes:
        processor_name: The snake_case processor name (class names normalised
            by :func:`normalise_processor_name`; ``output_table`` when the
            message names no processor).
        phase: The publisher's phase, e.g. ``phase_3_analytics``.
        execution_id: The run id of the processor.
        correlation_id: The trace id across phases (defaults to ``execution_id``).
        game_date: The date, ``YYYY-MM-DD``.
        status: One of :data:`STATUSES`.
        record_count: Rows written, if the message says.
        metadata: The message's ``metadata`` object (``{}`` when absent).
        timestamp: When the processor finished (the message's ``timestamp``,
            else the Pub/Sub publish time), tz-aware UTC; ``None`` if neither.
        message_id: The Pub/Sub message id, if the message came through Pub/Sub.
        attributes: The Pub/Sub message attributes (``{}`` when none).
        raw: The decoded completion message as published.

    .. versionadded:: 0.1.0
    """

    processor_name: str
    phase: str
    execution_id: str
    correlation_id: str
    game_date: str
    status: str
    record_count: int | None
    metadata: Mapping[str, Any]
    timestamp: datetime | None
    message_id: str | None
    attributes: Mapping[str, str] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # Built by hand (tests, other transports) as well as by the parser:
        # check the types up front, so no method fails later with a raw error.
        texts = ("processor_name", "phase", "execution_id", "correlation_id", "status")
        for name in texts:
            if not isinstance(getattr(self, name), str):
                raise InvalidMessageError(
                    f"{name} must be a string, got {_show(getattr(self, name))}"
                )
        _game_date(self.game_date)
        _count(self.record_count)
        timestamp: object = self.timestamp  # checked as given: callers may pass anything
        if timestamp is not None and (
            not isinstance(timestamp, datetime) or timestamp.utcoffset() is None
        ):
            raise InvalidMessageError(
                f"timestamp must be a timezone-aware datetime, got {_show(self.timestamp)}"
            )
        if self.message_id is not None and not isinstance(self.message_id, str):
            raise InvalidMessageError(f"message_id must be a string, got {_show(self.message_id)}")
        _object(self.metadata, "metadata")
        _attributes(self.attributes)
        _object(self.raw, "raw")

    def completion_kwargs(self) -> dict[str, Any]:
        """
        Return the keyword arguments of ``CompletionTracker.record_completion``.

        ``completed_at`` is :attr:`timestamp` (the message's ``timestamp``,
        else its Pub/Sub publish time, else ``None``: the store's time at
        receipt). Everything but the phase, which is the tracker's ``PhaseSpec`` name and
        need not be the publisher's ``phase`` string::

            msg = parse_completion_message(cloud_event)
            tracker.record_and_trigger("phase3", **msg.completion_kwargs(), publish=publisher)
        """
        return {
            "date": self.game_date,
            "processor": self.processor_name,
            "execution_id": self.execution_id,
            "message_id": self.message_id,
            "status": self.status,
            "record_count": self.record_count,
            "metadata": dict(self.metadata),
            "correlation_id": self.correlation_id,
            # The processor's own time orders its runs (issue 10, item 1): the
            # body's timestamp, else the publish time, else (None) the store's.
            "completed_at": self.timestamp,
        }

    def to_dict(self) -> dict[str, Any]:
        """
        Return the completion as a unified completion message (JSON-safe).

        Parsing the result gives back an equal :class:`CompletionMessage`
        (apart from ``raw`` and ``attributes``).
        """
        body: dict[str, Any] = {
            "processor_name": self.processor_name,
            "phase": self.phase,
            "execution_id": self.execution_id,
            "correlation_id": self.correlation_id,
            "game_date": self.game_date,
            "status": self.status,
            "metadata": dict(self.metadata),
        }
        if self.record_count is not None:
            body["record_count"] = self.record_count
        if self.timestamp is not None:
            body["timestamp"] = self.timestamp.isoformat()
        if self.message_id is not None:
            body["message_id"] = self.message_id
        return body


def parse_completion_message(message: Any) -> CompletionMessage:
    """
    Parse a completion message in any of the shapes it arrives in.

    Accepted shapes:

    - a CloudEvent object (anything with a ``.data`` that is not bytes) or
      CloudEvent dict ``{"data": {"message": {...}}}``, whose message carries
      base64 JSON in ``data`` plus ``messageId``, ``publishTime``, ``attributes``;
    - a push-subscription body ``{"message": {...}, "subscription": ...}`` as a
      dict, or as ``bytes``/``str`` JSON (``messageId`` or ``message_id``);
    - a bare Pub/Sub message dict ``{"data": "<base64>", "messageId": ...}``;
    - a ``google.cloud.pubsub_v1`` subscriber message (``.data`` bytes,
      ``.message_id``, ``.attributes``, ``.publish_time``);
    - the decoded unified completion message itself (a dict with
      ``processor_name``...), e.g. from a test or another transport.

    Args:
        message: The message, in one of the shapes above.

    Returns:
        The validated :class:`CompletionMessage`.

    Raises:
        InvalidMessageError: the message cannot be decoded or lacks or
            mistypes a required field. It is a poison message: acknowledge it
            (or let the subscription dead-letter it); never retry it.

    .. versionadded:: 0.1.0
    """
    try:
        body, envelope = _unwrap(message)
        return _build(body, envelope)
    except InvalidMessageError:
        raise
    except InvalidInputError as exc:
        raise InvalidMessageError(str(exc)) from exc
    except RecursionError as exc:
        raise InvalidMessageError("message is nested too deeply to decode") from exc


@dataclass(frozen=True, slots=True)
class _Envelope:
    message_id: str | None = None
    publish_time: datetime | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


def _unwrap(message: Any) -> tuple[Mapping[str, Any], _Envelope]:
    """Return the decoded completion body and what the Pub/Sub envelope said."""
    if isinstance(message, bytes | bytearray | memoryview):
        message = _json(bytes(message), "body")
    elif isinstance(message, str):
        message = _json(message, "body")
    if not isinstance(message, Mapping):
        return _unwrap_object(message)
    if _is_completion_body(message):
        # A decoded completion; its own "message"/"data" fields are free text.
        return _object(message, "completion message"), _Envelope()
    inner = message.get("message")
    if _is_pubsub_message(inner):  # push body, or CloudEvent data passed on its own
        return _from_pubsub(_object(inner, "message"))
    data = message.get("data")
    if isinstance(data, Mapping):  # CloudEvent dict: {"data": {"message": {...}}}
        if not _is_pubsub_message(data.get("message")):
            raise InvalidMessageError("CloudEvent data has no Pub/Sub 'message' object")
        return _from_pubsub(_object(data["message"], "data.message"))
    if isinstance(data, str):  # a bare Pub/Sub message: {"data": "<base64>", "messageId": ...}
        return _from_pubsub(message)
    if "data" in message:
        raise InvalidMessageError(f"'data' must be base64 text, got {type(data).__name__}")
    if isinstance(inner, Mapping):
        raise InvalidMessageError("'message' is an object but not a Pub/Sub message (no 'data')")
    return _object(message, "completion message"), _Envelope()


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


def _unwrap_object(message: Any) -> tuple[Mapping[str, Any], _Envelope]:
    """Recognise a CloudEvent or a subscriber message by its attributes."""
    data = getattr(message, "data", None)
    if isinstance(data, bytes | bytearray) and hasattr(message, "message_id"):
        return _from_subscriber(message, bytes(data))
    if isinstance(data, Mapping):
        return _unwrap({"data": data})
    if isinstance(data, bytes | bytearray | str):  # a CloudEvent whose data is JSON text
        return _unwrap(data if isinstance(data, str) else bytes(data))
    raise InvalidMessageError(
        f"expected a CloudEvent, a Pub/Sub message or a JSON object, got {type(message).__name__}"
    )


def _from_pubsub(msg: Mapping[str, Any]) -> tuple[Mapping[str, Any], _Envelope]:
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
    envelope = _Envelope(
        message_id=message_id,
        publish_time=None if publish is None else _time(publish, "message.publishTime"),
        attributes=_attributes(msg.get("attributes")),
    )
    return _object(_json(raw, f"message.data{label}"), f"message.data{label}"), envelope


def _from_subscriber(message: Any, data: bytes) -> tuple[Mapping[str, Any], _Envelope]:
    """Decode a ``google.cloud.pubsub_v1`` subscriber message (duck-typed)."""
    message_id = getattr(message, "message_id", None)
    label = f" (message {message_id})" if message_id else ""
    publish = getattr(message, "publish_time", None)
    envelope = _Envelope(
        message_id=str(message_id) if message_id else None,
        publish_time=_time(publish, "message.publish_time")
        if isinstance(publish, datetime)
        else None,
        attributes=_attributes(getattr(message, "attributes", None)),
    )
    return _object(_json(data, f"message.data{label}"), f"message.data{label}"), envelope


def _build(body: Mapping[str, Any], envelope: _Envelope) -> CompletionMessage:
    """Validate the decoded completion body and build the result."""
    label = f" (message {envelope.message_id})" if envelope.message_id else ""
    missing = [k for k in _REQUIRED if body.get(k) is None]
    if body.get("processor_name") is None and body.get("output_table") is None:
        missing.insert(0, "processor_name")
    if missing:
        raise InvalidMessageError(
            f"completion message is missing required field(s) {', '.join(missing)}{label}"
        )
    name_field = "processor_name" if body.get("processor_name") is not None else "output_table"
    execution_id = _text(body, "execution_id")
    status = _text(body, "status").lower()
    if status not in STATUSES:
        raise InvalidMessageError(
            f"field 'status' must be one of {sorted(STATUSES)}, got {status!r}{label}"
        )
    timestamp = body.get("timestamp")
    return CompletionMessage(
        processor_name=normalise_processor_name(_text(body, name_field)),
        phase=_text(body, "phase"),
        execution_id=execution_id,
        correlation_id=(
            _text(body, "correlation_id") if body.get("correlation_id") else execution_id
        ),
        game_date=_game_date(body.get("game_date")),
        status=status,
        record_count=_count(body.get("record_count")),
        metadata=_metadata(body.get("metadata")),
        timestamp=envelope.publish_time if timestamp is None else _time(timestamp, "timestamp"),
        message_id=envelope.message_id or _optional_text(body, "message_id"),
        attributes=envelope.attributes,
        raw=body,
    )


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


def _metadata(value: Any) -> dict[str, Any]:
    return {} if value is None else dict(_object(value, "field 'metadata'"))


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidMessageError(f"{what} must be a JSON object, got {type(value).__name__}")
    if not all(isinstance(k, str) for k in value):
        raise InvalidMessageError(f"{what} has non-string keys")
    return value


def _attributes(value: Any) -> Mapping[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidMessageError("message.attributes must map strings to strings")
    return dict(value)


def _text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidMessageError(f"field {key!r} must be a non-empty string, got {_show(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidMessageError(f"field {key!r} is not valid UTF-8") from exc
    return value.strip()


def _optional_text(body: Mapping[str, Any], key: str) -> str | None:
    return None if body.get(key) is None else _text(body, key)


def _game_date(value: Any) -> str:
    if not isinstance(value, str):  # a message carries text, never a date object
        raise InvalidMessageError(f"field 'game_date' must be 'YYYY-MM-DD', got {_show(value)}")
    try:
        return iso_date(value, "field 'game_date'")
    except InvalidInputError as exc:
        raise InvalidMessageError(str(exc)) from exc


def _count(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**63 - 1:
        raise InvalidMessageError(
            f"field 'record_count' must be an integer in 0..2**63-1, got {_show(value)}"
        )
    return value


def _time(value: Any, what: str) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidMessageError(f"{what} is not an ISO-8601 time: {_show(value)}") from exc
    else:
        raise InvalidMessageError(f"{what} must be an ISO-8601 string, got {_show(value)}")
    # Publishers write UTC; a naive time is taken as UTC rather than local time.
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidMessageError(f"{what} is out of range: {_show(value)}") from exc


def _show(value: Any) -> str:
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
