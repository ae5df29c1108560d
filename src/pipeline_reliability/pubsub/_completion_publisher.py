"""
Publish processor completions: the processor's side of the completion topic.

One encoding (:func:`encode_completion`) serves the Pub/Sub publisher and the
in-memory one, and it checks every body with ``parse_completion_message``
before it leaves: what a processor publishes is, by construction, what the
orchestrator reads. ``google.cloud.pubsub_v1`` is imported on first publish.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from .._clock import Clock, SystemClock
from .._telemetry import counter, log_failure, span
from .._validate import duration_seconds
from ..errors import (
    CompletionNotPublishedError,
    ConfigurationError,
    InvalidInputError,
    InvalidMessageError,
    MissingDependencyError,
)
from ..retry import RetryPolicy
from ._message import CompletionMessage, parse_completion_message
from ._publisher import _json_default, _topic_path, publish_policy
from ._schema import SCHEMA_VERSION

__all__ = ["CompletionPublisher", "MemoryCompletionPublisher", "encode_completion"]

logger = logging.getLogger("pipeline_reliability.pubsub")


def encode_completion(message: CompletionMessage) -> tuple[bytes, dict[str, str]]:
    """
    Return the JSON body and the attributes of ``message`` as published.

    The attributes repeat the routing fields (``processor``, ``phase``,
    ``date``, ``status``, ``execution_id``, ``correlation_id``,
    ``schema_version``) so that subscriptions can filter without decoding.

    Raises:
        InvalidInputError: the message is not a valid completion (it would be
            refused by ``parse_completion_message``), or its metadata is not
            JSON. Nothing was published.
    """
    if not isinstance(message, CompletionMessage):
        raise InvalidInputError(f"expected a CompletionMessage, got {type(message).__name__}")
    try:
        body = json.dumps(
            message.to_dict(), sort_keys=True, allow_nan=False, default=_json_default
        ).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"the completion is not JSON serialisable: {exc}") from exc
    try:
        checked = parse_completion_message(body)
    except InvalidMessageError as exc:
        raise InvalidInputError(f"the completion would not parse: {exc}") from exc
    attributes = {
        "processor": checked.processor_name,
        "phase": checked.phase,
        "date": checked.game_date,
        "status": checked.status,
        "execution_id": checked.execution_id,
        "correlation_id": checked.correlation_id,
        "schema_version": str(SCHEMA_VERSION),
    }
    return body, attributes


def ordering_key(message: CompletionMessage) -> str:
    """The ordering key of a completion: one per (phase, date)."""
    return f"{message.phase}:{message.game_date}"


class CompletionPublisher:
    """
    Publish :class:`~pipeline_reliability.CompletionMessage` s to a Pub/Sub topic.

    The body is ``message.to_dict()`` as JSON (the versioned schema that
    :func:`~pipeline_reliability.parse_completion_message` reads) and the
    attributes carry the routing fields for subscription filters. An
    instance is a callable, so it is the ``publisher`` of a
    :class:`~pipeline_reliability.ProcessorRun`. Each call waits for the
    server's acknowledgement. Transient failures (and timed-out attempts)
    are retried under ``retry``: safe, because the tracker deduplicates a
    completion by (processor, execution_id).

    Args:
        topic: ``projects/P/topics/T``, or a short name with ``project``.
        publisher: A ``google.cloud.pubsub_v1.PublisherClient``; created on
            first publish when ``None`` (honouring ``PUBSUB_EMULATOR_HOST``).
            With ``ordering=True`` it must have message ordering enabled.
        project: The project of a short topic name (default:
            ``GOOGLE_CLOUD_PROJECT``, read now).
        timeout: Seconds to wait for each attempt.
        retry: The retry policy (default :data:`DEFAULT_PUBLISH_RETRY`).
        ordering: Publish with the ordering key ``"<phase>:<date>"``, so a
            subscription with ordering delivers one date's completions of a
            phase in publish order.

    Raises:
        ConfigurationError: the topic cannot be resolved or ``timeout`` is
            not positive.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        topic: str,
        *,
        publisher: Any = None,
        project: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        ordering: bool = False,
    ) -> None:
        self.topic = _topic_path(topic, project)
        self.timeout = duration_seconds(timeout, "timeout")
        self.retry = publish_policy(retry)  # subscribers deduplicate on execution_id
        self.ordering = bool(ordering)
        self._client = publisher
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CompletionPublisher({self.topic!r}, ordering={self.ordering})"

    def __call__(self, message: CompletionMessage) -> str:
        """Publish ``message``; the same as :meth:`publish`."""
        return self.publish(message)

    def publish(self, message: CompletionMessage) -> str:
        """
        Publish one completion and wait until Pub/Sub has stored it.

        Returns:
            The Pub/Sub message id.

        Raises:
            InvalidInputError: the completion is invalid; nothing was sent.
            CompletionNotPublishedError: the publish failed permanently or
                transient failures outlasted the retry policy (the cause is
                chained; ``completion`` holds the message).
        """
        body, attributes = encode_completion(message)
        key = ordering_key(message) if self.ordering else None
        fields = {"topic": self.topic, **attributes}
        with span("pubsub", "publish_completion", lambda: fields):
            try:
                message_id = self.retry.call(self._publish_once, body, attributes, key)
            except ConfigurationError:
                raise  # a missing extra is permanent, not a failed publish
            except Exception as exc:
                log_failure(
                    logger,
                    "completion publish failed",
                    exc,
                    topic=self.topic,
                    processor=attributes["processor"],
                    date=attributes["date"],
                    execution_id=attributes["execution_id"],
                )
                raise CompletionNotPublishedError(
                    f"publishing the completion of {attributes['processor']} "
                    f"{attributes['date']} to {self.topic} failed: {exc}",
                    completion=message,
                ) from exc
        counter("pubsub.completions_published", "Completion messages published").add(
            1, {"topic": self.topic, "status": attributes["status"]}
        )
        return message_id

    def _publish_once(self, body: bytes, attributes: Mapping[str, str], key: str | None) -> str:
        client = self._publisher()
        extra = {} if key is None else {"ordering_key": key}
        try:
            # retry=None: this class's policy is the only retry layer (DESIGN F9).
            future = client.publish(
                self.topic, body, retry=None, timeout=self.timeout, **extra, **attributes
            )
            return str(future.result(timeout=self.timeout))
        except Exception:
            if key is not None and hasattr(client, "resume_publish"):
                # A failed ordered publish pauses its key; the retry needs it resumed.
                client.resume_publish(self.topic, key)
            raise

    def _publisher(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    from google.cloud.pubsub_v1 import PublisherClient
                    from google.cloud.pubsub_v1.types import PublisherOptions
                except ImportError as exc:  # pragma: no cover - only without the extra
                    raise MissingDependencyError("google-cloud-pubsub", "pubsub") from exc
                options = PublisherOptions(enable_message_ordering=self.ordering)
                self._client = PublisherClient(publisher_options=options)
            return self._client


class MemoryCompletionPublisher:
    """
    An in-process completion topic, for tests, demos and the simulator.

    Publishing encodes the message exactly as :class:`CompletionPublisher`
    does and keeps it as a Pub/Sub message dict (``data`` in base64,
    ``messageId``, ``publishTime``, ``attributes``, ``orderingKey``): what
    ``parse_completion_message`` reads from a push subscription. Thread-safe.

    Args:
        clock: The publish time source (default: the system clock).
        ordering: Set ``orderingKey`` as :class:`CompletionPublisher` would.

    Example::

        topic = MemoryCompletionPublisher()
        with ProcessorRun("player_game_summary", "2026-01-31", phase="phase3",
                          publisher=topic):
            ...
        [message] = [parse_completion_message(m) for m in topic.drain()]

    .. versionadded:: 0.2.0
    """

    def __init__(self, *, clock: Clock | None = None, ordering: bool = False) -> None:
        self._clock = clock or SystemClock()
        self.ordering = bool(ordering)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        """Every message published, oldest first (Pub/Sub message dicts)."""

    def __call__(self, message: CompletionMessage) -> str:
        """Publish ``message``; the same as :meth:`publish`."""
        return self.publish(message)

    def publish(self, message: CompletionMessage) -> str:
        """
        Keep ``message`` as published; return its message id.

        Raises:
            InvalidInputError: the completion is invalid; nothing was kept.
        """
        body, attributes = encode_completion(message)
        with self._lock:
            message_id = f"memory-{next(self._ids)}"
            record: dict[str, Any] = {
                "data": base64.b64encode(body).decode("ascii"),
                "messageId": message_id,
                "publishTime": self._clock.now().isoformat(),
                "attributes": attributes,
            }
            if self.ordering:
                record["orderingKey"] = ordering_key(message)
            self.messages.append(record)
            self._pending.append(record)
        return message_id

    def drain(self) -> list[dict[str, Any]]:
        """Return the messages published since the last drain (a subscriber's pull)."""
        with self._lock:
            pending, self._pending = self._pending, []
        return pending

    def completions(self) -> list[CompletionMessage]:
        """Every message published so far, parsed."""
        with self._lock:
            messages = list(self.messages)
        return [parse_completion_message(m) for m in messages]
