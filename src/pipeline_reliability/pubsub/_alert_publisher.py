"""
Send ``watch``'s alerts to a Pub/Sub topic: one JSON message per alert that
is new or resolved (persisting alerts are not sent again).

``google.cloud.pubsub_v1`` is imported on the first publish, never at import.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from .._telemetry import counter, log_failure, span
from ..errors import ConfigurationError, InvalidInputError, PublishFailedError
from ..retry import RetryPolicy
from ._publisher import PubSubTriggerPublisher

__all__ = ["AlertMessage", "PubSubAlertPublisher"]

logger = logging.getLogger("pipeline_reliability.pubsub")


class AlertMessage(Protocol):
    """What the publisher needs of an alert (``pipeline_reliability.ops.Alert`` has it)."""

    def to_dict(self) -> Mapping[str, Any]:
        """The alert as a JSON-ready mapping with ``id``, ``rule`` and ``severity``."""
        ...


class PubSubAlertPublisher:
    """
    Publish alerts to a topic; pass an instance as ``watch(..., notify=...)``.

    Each message's body is the alert's JSON (``Alert.to_dict()``) plus
    ``"state": "firing" | "resolved"``; its attributes are ``alert_id``,
    ``rule``, ``severity``, ``state``, ``phase`` and ``date`` (empty when
    none), so a subscription can filter on them. Delivery is at least once:
    subscribers deduplicate on (``alert_id``, ``state``).

    Args:
        topic: ``projects/P/topics/T``, or a short name with ``project``.
        publisher: A ``google.cloud.pubsub_v1.PublisherClient`` (created on
            first publish when ``None``; it honours ``PUBSUB_EMULATOR_HOST``).
        project: The project of a short topic name.
        timeout: Seconds to wait for each publish attempt.
        retry: The retry policy (default: the trigger publisher's).

    Raises:
        ConfigurationError: the topic cannot be resolved or ``timeout`` is bad.

    .. versionadded:: 0.3.0
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
        # The trigger publisher owns the topic checks, the lazy client and the retry.
        self._inner = PubSubTriggerPublisher(
            topic, publisher=publisher, project=project, timeout=timeout, retry=retry
        )
        self.topic = self._inner.topic

    def __repr__(self) -> str:
        return f"PubSubAlertPublisher({self.topic!r})"

    def __call__(
        self, new: Sequence[AlertMessage], resolved: Sequence[AlertMessage] = ()
    ) -> list[str]:
        """
        Publish every alert of ``new`` (state ``firing``) and ``resolved``.

        Returns:
            The Pub/Sub message ids, in order.

        Raises:
            InvalidInputError: an alert cannot be encoded (nothing was sent for it).
            PublishFailedError: a publish failed (the ones before it were sent).
        """
        ids = []
        for alerts, state in ((new, "firing"), (resolved, "resolved")):
            for alert in alerts:
                ids.append(self._publish(alert, state))
        return ids

    def _publish(self, alert: AlertMessage, state: str) -> str:
        body, attributes = _encode(alert, state)
        with span("pubsub", "publish_alert", lambda: {"topic": self.topic, **attributes}):
            try:
                message_id = self._inner.retry.call(self._inner._publish_once, body, attributes)
            except ConfigurationError:
                raise  # a missing extra or bad setup: permanent, not a failed publish
            except Exception as exc:
                log_failure(logger, "alert publish failed", exc, topic=self.topic,
                            alert_id=attributes["alert_id"])
                raise PublishFailedError(f"publishing to {self.topic} failed: {exc}") from exc
        counter("pubsub.alerts_published", "Alert messages published").add(
            1, {"topic": self.topic, "state": state})
        return message_id


def _encode(alert: object, state: str) -> tuple[bytes, dict[str, str]]:
    to_dict = getattr(alert, "to_dict", None)
    if not callable(to_dict):
        raise InvalidInputError(f"an alert needs to_dict(), got {type(alert).__name__}")
    try:
        data = dict(to_dict())
        body = json.dumps({**data, "state": state}, sort_keys=True, default=str).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"the alert cannot be encoded as a message: {exc}") from exc
    attributes = {"alert_id": str(data.get("id") or ""), "state": state}
    for key in ("rule", "severity", "phase", "date"):
        attributes[key] = "" if data.get(key) is None else str(data[key])
    return body, attributes
