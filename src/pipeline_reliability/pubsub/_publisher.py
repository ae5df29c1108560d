"""
Publish trigger events to Pub/Sub: the one place that talks to Pub/Sub.

``google.cloud.pubsub_v1`` is imported when the first message is published,
never at import (DESIGN F10).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Protocol

from .._telemetry import counter, log_failure, span
from .._validate import duration_seconds
from ..errors import (
    ConfigurationError,
    InvalidInputError,
    MissingDependencyError,
    PublishFailedError,
)
from ..retry import RetryPolicy
from ..retry._predicates import any_of, if_exception_type

__all__ = ["DEFAULT_PUBLISH_RETRY", "PubSubTriggerPublisher", "PublishableEvent", "publish_policy"]

logger = logging.getLogger("pipeline_reliability.pubsub")

DEFAULT_PUBLISH_RETRY = RetryPolicy(attempts=5, deadline=60.0, initial=0.5, maximum=10.0)
"""Default retry of :class:`PubSubTriggerPublisher`: 5 attempts within 60 s."""

_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-.:]{0,127}")
_FULL_TOPIC = re.compile(r"projects/([^/]+)/topics/([^/]+)")
# Pub/Sub's naming rules: 3-255 chars, starts with a letter, no "goog" prefix.
_SHORT_TOPIC = re.compile(r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}")


class PublishableEvent(Protocol):
    """What the publisher needs of an event (``TriggerEvent`` has it)."""

    def to_dict(self) -> Mapping[str, Any]:
        """Return the JSON body."""
        ...

    def attributes(self) -> Mapping[str, str]:
        """Return the message attributes."""
        ...


class PubSubTriggerPublisher:
    """
    Publish :class:`~pipeline_reliability.completion.TriggerEvent` s to a topic.

    An instance is a callable, so it can be handed straight to
    ``CompletionTracker.record_and_trigger(..., publish=publisher)``. Each event
    is one message: the JSON body ``event.to_dict()`` and the attributes
    ``event.attributes()`` (which carry ``trigger_id``, so subscribers can
    deduplicate a trigger that was published twice because a confirmation was
    lost). The call waits for the server's acknowledgement; transient failures
    are retried under ``retry``; anything else raises
    :class:`~pipeline_reliability.errors.PublishFailedError`.

    Args:
        topic: ``projects/P/topics/T``, or a short topic name with ``project``.
        publisher: A ``google.cloud.pubsub_v1.PublisherClient`` (or anything
            with its ``publish``). Created on first publish when ``None``; it
            honours ``PUBSUB_EMULATOR_HOST`` on its own.
        project: The project of a short topic name (default: the
            ``GOOGLE_CLOUD_PROJECT`` environment variable, read now).
        timeout: Seconds to wait for each publish attempt.
        retry: The retry policy (default :data:`DEFAULT_PUBLISH_RETRY`). Its
            predicate is extended to retry attempts that timed out.

    Raises:
        ConfigurationError: The topic cannot be resolved or ``timeout`` is
            not positive.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        topic: str,
        *,
        publisher: Any = None,
        project: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.topic = _topic_path(topic, project)
        self.timeout = duration_seconds(timeout, "timeout")
        # A timed-out attempt may still be delivered; publishing again is safe
        # because subscribers deduplicate on trigger_id.
        self.retry = publish_policy(retry)
        self._client = publisher
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PubSubTriggerPublisher({self.topic!r})"

    def __call__(self, event: PublishableEvent) -> str:
        """Publish ``event``; the same as :meth:`publish`."""
        return self.publish(event)

    def publish(self, event: PublishableEvent) -> str:
        """
        Publish one event and wait until Pub/Sub has stored it.

        Args:
            event: A ``TriggerEvent`` (anything with ``to_dict()`` and
                ``attributes()``).

        Returns:
            The Pub/Sub message id.

        Raises:
            PublishFailedError: The publish failed permanently, or transient
                failures outlasted the retry policy. The cause is chained.
        """
        body, attributes = _encode(event)
        fields = {"topic": self.topic, **attributes}
        with span("pubsub", "publish", lambda: fields):
            try:
                message_id = self.retry.call(self._publish_once, body, attributes)
            except ConfigurationError:
                # A missing extra or a bad setup is not a failed publish: it is
                # permanent, and PublishFailedError would mark it transient.
                raise
            except Exception as exc:
                error = PublishFailedError(f"publishing to {self.topic} failed: {exc}")
                log_failure(
                    logger,
                    "trigger publish failed",
                    exc,
                    topic=self.topic,
                    trigger_id=attributes.get("trigger_id"),
                    phase=attributes.get("phase"),
                    date=attributes.get("date"),
                )
                raise error from exc
        counter("pubsub.published", "Trigger messages published").add(1, {"topic": self.topic})
        logger.info(
            "published trigger %s to %s as message %s",
            attributes.get("trigger_id"),
            self.topic,
            message_id,
        )
        return message_id

    def _publish_once(self, body: bytes, attributes: Mapping[str, str]) -> str:
        # retry=None: this class's policy is the only retry layer, so one
        # failure is never retried twice over (DESIGN F9).
        future = self._publisher().publish(
            self.topic, body, retry=None, timeout=self.timeout, **attributes
        )
        return str(future.result(timeout=self.timeout))

    def _publisher(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    from google.cloud.pubsub_v1 import PublisherClient
                except ImportError as exc:  # pragma: no cover - only without the extra
                    raise MissingDependencyError("google-cloud-pubsub", "pubsub") from exc
                self._client = PublisherClient()
            return self._client


def publish_policy(retry: object) -> RetryPolicy:
    """
    The retry policy of a publisher: ``retry`` (default :data:`DEFAULT_PUBLISH_RETRY`)
    that also retries a timed-out attempt. A publish that timed out may still
    have been delivered, so every publisher's subscribers deduplicate.

    Raises:
        ConfigurationError: ``retry`` is not a ``RetryPolicy``.
    """
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ConfigurationError(f"retry must be a RetryPolicy, got {retry!r:.80}")
    policy = retry or DEFAULT_PUBLISH_RETRY
    return policy.with_(predicate=any_of(policy.predicate, if_exception_type(TimeoutError)))


def _encode(event: object) -> tuple[bytes, dict[str, str]]:
    """The message body and attributes of ``event``, or ``InvalidInputError`` before any I/O."""
    to_dict, attributes = getattr(event, "to_dict", None), getattr(event, "attributes", None)
    if not (callable(to_dict) and callable(attributes)):
        raise InvalidInputError(
            f"publish needs an event with to_dict() and attributes(), got {type(event).__name__}"
        )
    try:
        body = json.dumps(to_dict(), sort_keys=True, default=_json_default).encode()
        attrs = attributes()
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"the event cannot be encoded as a message: {exc}") from exc
    if not isinstance(attrs, Mapping):
        raise InvalidInputError(f"attributes() must return a mapping, got {type(attrs).__name__}")
    return body, {str(k): str(v) for k, v in attrs.items()}


def _topic_path(topic: object, project: object) -> str:
    if not isinstance(topic, str) or not topic:
        raise ConfigurationError(f"topic must be a non-empty string: {topic!r}")
    if project is not None and not (isinstance(project, str) and _PROJECT.fullmatch(project)):
        raise ConfigurationError(f"project must be a project id, got {project!r:.80}")
    if topic.startswith("projects/"):
        match = _FULL_TOPIC.fullmatch(topic)
        if match is None or not _valid_short(match.group(2)):
            raise ConfigurationError(f"invalid topic path {topic!r}")
        return topic
    if not _valid_short(topic):
        raise ConfigurationError(f"invalid topic name {topic!r}")
    project = project or os.environ.get("GOOGLE_CLOUD_PROJECT")
    if not project:
        raise ConfigurationError(
            f"topic {topic!r} is a short name: pass project= or a 'projects/P/topics/T' path"
        )
    return f"projects/{project}/topics/{topic}"


def _valid_short(name: str) -> bool:
    return _SHORT_TOPIC.fullmatch(name) is not None and not name.startswith("goog")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")
