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

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .._validate import iso_date
from ..errors import InvalidInputError, InvalidMessageError
from ._envelope import Envelope, attributes, json_object, show, unwrap, utc_time
from ._names import normalise_processor_name
from ._schema import SCHEMA_FIELD, SCHEMA_VERSION, schema_version

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
                    f"{name} must be a string, got {show(getattr(self, name))}"
                )
        _game_date(self.game_date)
        _count(self.record_count)
        timestamp: object = self.timestamp  # checked as given: callers may pass anything
        if timestamp is not None and (
            not isinstance(timestamp, datetime) or timestamp.utcoffset() is None
        ):
            raise InvalidMessageError(
                f"timestamp must be a timezone-aware datetime, got {show(self.timestamp)}"
            )
        if self.message_id is not None and not isinstance(self.message_id, str):
            raise InvalidMessageError(f"message_id must be a string, got {show(self.message_id)}")
        json_object(self.metadata, "metadata")
        attributes(self.attributes)
        json_object(self.raw, "raw")

    def completion_kwargs(self) -> dict[str, Any]:
        """
        Return the keyword arguments of ``CompletionTracker.record_completion``.

        ``completed_at`` is ``timestamp`` (the message's ``timestamp``,
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
            SCHEMA_FIELD: SCHEMA_VERSION,
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
        body, envelope = unwrap(message)
        return _build(body, envelope)
    except InvalidMessageError:
        raise
    except InvalidInputError as exc:
        raise InvalidMessageError(str(exc)) from exc
    except RecursionError as exc:
        raise InvalidMessageError("message is nested too deeply to decode") from exc


def _build(body: Mapping[str, Any], envelope: Envelope) -> CompletionMessage:
    """Validate the decoded completion body and build the result."""
    label = f" (message {envelope.message_id})" if envelope.message_id else ""
    schema_version(body, label)
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
        timestamp=envelope.publish_time if timestamp is None else utc_time(timestamp, "timestamp"),
        message_id=envelope.message_id or _optional_text(body, "message_id"),
        attributes=envelope.attributes,
        raw=body,
    )


def _metadata(value: Any) -> dict[str, Any]:
    return {} if value is None else dict(json_object(value, "field 'metadata'"))


def _text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidMessageError(f"field {key!r} must be a non-empty string, got {show(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidMessageError(f"field {key!r} is not valid UTF-8") from exc
    return value.strip()


def _optional_text(body: Mapping[str, Any], key: str) -> str | None:
    return None if body.get(key) is None else _text(body, key)


def _game_date(value: Any) -> str:
    if not isinstance(value, str):  # a message carries text, never a date object
        raise InvalidMessageError(f"field 'game_date' must be 'YYYY-MM-DD', got {show(value)}")
    try:
        return iso_date(value, "field 'game_date'")
    except InvalidInputError as exc:
        raise InvalidMessageError(str(exc)) from exc


def _count(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**63 - 1:
        raise InvalidMessageError(
            f"field 'record_count' must be an integer in 0..2**63-1, got {show(value)}"
        )
    return value
