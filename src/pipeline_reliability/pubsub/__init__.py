"""
The Pub/Sub edge: parse incoming completion messages, publish completions,
trigger events and watch's alerts.

The only place that talks to Pub/Sub (DESIGN §2). ``google.cloud.pubsub_v1``
is imported on first publish, never at import.
"""

from __future__ import annotations

from ._alert_publisher import PubSubAlertPublisher
from ._completion_publisher import CompletionPublisher, MemoryCompletionPublisher
from ._message import STATUSES, CompletionMessage, parse_completion_message
from ._names import normalise_processor_name
from ._publisher import DEFAULT_PUBLISH_RETRY, PublishableEvent, PubSubTriggerPublisher
from ._schema import SCHEMA_VERSION

__all__ = [
    "CompletionMessage",
    "CompletionPublisher",
    "DEFAULT_PUBLISH_RETRY",
    "MemoryCompletionPublisher",
    "PubSubAlertPublisher",
    "PubSubTriggerPublisher",
    "PublishableEvent",
    "SCHEMA_VERSION",
    "STATUSES",
    "normalise_processor_name",
    "parse_completion_message",
]
